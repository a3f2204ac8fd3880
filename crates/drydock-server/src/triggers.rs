//! From triggers to runs: webhook deliveries, manual runs, schedules (`on.schedule`, with
//! catch-up that fires once after downtime), and image triggers (`on.image`: a push to the
//! embedded registry, or an upstream digest change seen with HEAD requests).

use std::collections::HashMap;
use std::sync::Arc;

use drydock_db::{Project, Status};
use drydock_pipeline::{Event, PullRequest};

use crate::app::{App, Loaded, RunRequest};
use crate::util::now_ms;
use crate::webhooks::Trigger;

/// What a project's default branch asks to be watched for.
#[derive(Debug, Clone, Default)]
pub struct Watch {
    pub sha: String,
    pub schedules: Vec<drydock_config::Schedule>,
    pub images: Vec<String>,
}

/// What a delivery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Started(Vec<i64>),
    /// The pipeline does not run for this event (the reason).
    NotRun(String),
}

/// An error for the caller: HTTP status and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub status: u16,
    pub message: String,
}

impl Refused {
    pub fn new(status: u16, message: impl Into<String>) -> Refused {
        Refused {
            status,
            message: message.into(),
        }
    }
}

pub fn schedule_spec(s: &drydock_config::Schedule) -> String {
    format!("{}@{}", s.cron.text, s.timezone.offset_seconds)
}

/// The event of a run, with facts from the mirror (commit time).
pub fn make_event(
    app: &App,
    project: &Project,
    name: &str,
    git_ref: &str,
    sha: &str,
    actor: Option<String>,
) -> Event {
    let mirror = app.git.mirror_path(&project.name);
    Event {
        name: name.to_string(),
        git_ref: git_ref.to_string(),
        sha: sha.to_string(),
        default_branch: Some(project.default_branch.clone()),
        pull_request: None,
        commit_time: app.git.commit_time(&mirror, sha),
        describe: None,
        repository: Some(project.name.clone()),
        repository_url: Some(project.repo_url.clone()),
        actor,
        schedule: None,
        image: None,
    }
}

fn accepts(loaded: &Loaded, ev: &Event) -> Result<(), String> {
    loaded.config.accepts(&drydock_pipeline::config_event(ev).0)
}

/// A verified, parsed webhook delivery: fetch the commit, read the pipeline, queue a run if
/// the pipeline's `on` accepts the event. Blocking (git).
pub fn from_webhook(app: &Arc<App>, project: &Project, t: Trigger) -> Result<Outcome, Refused> {
    let extra = t.pull_request.as_ref().and_then(|pr| {
        pr.head_clone_url
            .as_ref()
            .filter(|_| pr.fork)
            .map(|u| (u.clone(), format!("refs/heads/{}", pr.head)))
    });
    let pr_ref = t
        .pull_request
        .as_ref()
        .filter(|_| extra.is_none())
        .map(|_| (project.repo_url.clone(), t.git_ref.clone()));
    let extra = extra.or(pr_ref);
    app.git
        .ensure_commit(
            &project.name,
            &project.repo_url,
            &t.sha,
            extra.as_ref().map(|(u, r)| (u.as_str(), r.as_str())),
        )
        .map_err(|e| Refused::new(422, format!("cannot fetch {}: {e}", t.sha)))?;
    let loaded = match app.load_pipeline(project, &t.sha) {
        Ok(l) => l,
        Err(e) => return Ok(Outcome::NotRun(e)),
    };
    let mut ev = make_event(app, project, &t.event, &t.git_ref, &t.sha, t.actor.clone());
    if let Some(pr) = &t.pull_request {
        ev.pull_request = Some(PullRequest {
            number: pr.number,
            base_ref: pr.base.clone(),
            head_ref: pr.head.clone(),
            fork: pr.fork,
        });
    }
    if let Err(why) = accepts(&loaded, &ev) {
        return Ok(Outcome::NotRun(why));
    }
    if ev.branch() == Some(project.default_branch.as_str()) {
        set_watch(app, &project.name, &t.sha, &loaded);
    }
    let fork_note = if ev.pull_request.as_ref().is_some_and(|p| p.fork) {
        " [fork: no secrets unless approved]"
    } else {
        ""
    };
    let by = t
        .actor
        .as_deref()
        .map(|a| format!(" by {a}"))
        .unwrap_or_default();
    let cause = format!("{}{by}{fork_note}", ev.describe_cause());
    let id = app
        .enqueue(RunRequest::new(project.clone(), loaded, ev, cause))
        .map_err(|e| Refused::new(500, e.to_string()))?;
    Ok(Outcome::Started(vec![id]))
}

/// A manual run of `git_ref` (default: the default branch), at its current commit.
pub fn manual(
    app: &Arc<App>,
    project: &Project,
    git_ref: Option<&str>,
    job: Option<&str>,
    actor: &str,
) -> Result<i64, Refused> {
    let git_ref = match git_ref {
        None | Some("") => format!("refs/heads/{}", project.default_branch),
        Some(r) if r.starts_with("refs/") => r.to_string(),
        Some(r) => format!("refs/heads/{r}"),
    };
    let sha = app
        .git
        .resolve_ref(&project.name, &project.repo_url, &git_ref)
        .map_err(|e| Refused::new(422, format!("cannot resolve {git_ref}: {e}")))?;
    let loaded = app
        .load_pipeline(project, &sha)
        .map_err(|e| Refused::new(422, e))?;
    let ev = make_event(
        app,
        project,
        "manual",
        &git_ref,
        &sha,
        Some(actor.to_string()),
    );
    accepts(&loaded, &ev).map_err(|why| {
        Refused::new(
            422,
            format!("the pipeline does not run for manual events: {why}"),
        )
    })?;
    if let Some(j) = job
        && loaded.plan.jobs.iter().all(|x| x.name != j)
    {
        return Err(Refused::new(422, format!("the pipeline has no job {j}")));
    }
    let cause = format!(
        "manual run of {} by {actor} ({})",
        ev.ref_name(),
        &sha[..7.min(sha.len())]
    );
    app.enqueue(RunRequest {
        only_job: job.map(String::from),
        ..RunRequest::new(project.clone(), loaded, ev, cause)
    })
    .map_err(|e| Refused::new(500, e.to_string()))
}

/// How a run is made again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rerun {
    /// Every job again.
    All,
    /// Only the jobs that did not pass (and those after them); the passed jobs are kept with
    /// what they persisted.
    Failed,
    /// A fork's pull request, approved: every job again, with the project's secrets.
    Approve,
}

/// Re-runs a run (same event and commit).
pub fn rerun(app: &Arc<App>, run: i64, actor: &str, how: Rerun) -> Result<i64, Refused> {
    let approve = how == Rerun::Approve;
    let r = app
        .db
        .run(run)
        .map_err(|e| Refused::new(404, e.to_string()))?;
    let meta = app
        .db
        .run_meta(run)
        .map_err(|e| Refused::new(500, e.to_string()))?
        .ok_or_else(|| Refused::new(422, format!("run {run} was not made by this server")))?;
    let project = app
        .db
        .project(&r.project)
        .map_err(|e| Refused::new(500, e.to_string()))?
        .ok_or_else(|| Refused::new(404, format!("project {} no longer exists", r.project)))?;
    let mut event: Event = serde_json::from_value(r.context.clone())
        .map_err(|e| Refused::new(422, format!("run {run} has no readable event: {e}")))?;
    let fork = event.pull_request.as_ref().is_some_and(|p| p.fork);
    if approve && let Some(pr) = &mut event.pull_request {
        // Approved: the secret rules treat it as the maintainers' own (the record keeps who).
        pr.fork = false;
    }
    if approve && !fork {
        return Err(Refused::new(
            422,
            format!("run {run} is not a pull request from a fork: nothing to approve"),
        ));
    }
    app.git
        .ensure_commit(&project.name, &project.repo_url, &event.sha, None)
        .map_err(|e| Refused::new(422, e.to_string()))?;
    let loaded = app
        .load_pipeline(&project, &event.sha)
        .map_err(|e| Refused::new(422, e))?;
    let keep = if how == Rerun::Failed {
        if !r.status.is_finished() {
            return Err(Refused::new(409, format!("run {run} has not finished")));
        }
        let jobs = app
            .db
            .jobs(run)
            .map_err(|e| Refused::new(500, e.to_string()))?;
        if jobs.iter().all(|j| j.status == Status::Success) {
            return Err(Refused::new(
                422,
                format!("run {run} has no failed jobs to re-run"),
            ));
        }
        let passed: std::collections::BTreeMap<String, String> = app
            .db
            .job_outputs(run)
            .map_err(|e| Refused::new(500, e.to_string()))?
            .into_iter()
            .filter(|(j, _)| {
                jobs.iter()
                    .any(|x| &x.name == j && x.status == Status::Success)
            })
            .collect();
        let mut m = serde_json::Map::new();
        for (j, kept) in passed {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&kept) {
                m.insert(j, v);
            }
        }
        Some(serde_json::Value::Object(m).to_string())
    } else {
        None
    };
    let cause = match how {
        Rerun::Approve => {
            format!("run {run} approved by {actor}: secrets given to the fork's pull request")
        }
        Rerun::Failed => format!("re-run of the failed jobs of run {run} by {actor}"),
        Rerun::All => format!("re-run of run {run} by {actor}"),
    };
    app.enqueue(RunRequest {
        project,
        loaded,
        event,
        cause,
        only_job: meta.only_job,
        chain: None,
        retry_of: Some(run),
        approved_by: if approve {
            Some(actor.to_string())
        } else {
            meta.approved_by
        },
        keep,
    })
    .map_err(|e| Refused::new(500, e.to_string()))
}

pub fn set_watch(app: &App, project: &str, sha: &str, loaded: &Loaded) {
    let w = Watch {
        sha: sha.to_string(),
        schedules: loaded.config.on.schedule.clone(),
        images: loaded
            .config
            .on
            .image
            .iter()
            .map(|i| i.value.clone())
            .collect(),
    };
    app.watch
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(project.to_string(), w);
}

/// Reads each project's default branch and what it watches. Blocking.
pub fn refresh_all(app: &Arc<App>) {
    let Ok(projects) = app.db.projects() else {
        return;
    };
    let names: Vec<String> = projects.iter().map(|p| p.name.clone()).collect();
    for p in projects {
        let r = format!("refs/heads/{}", p.default_branch);
        match app.git.resolve_ref(&p.name, &p.repo_url, &r) {
            Ok(sha) => match app.load_pipeline(&p, &sha) {
                Ok(l) => set_watch(app, &p.name, &sha, &l),
                Err(_) => set_watch_empty(app, &p.name, &sha),
            },
            Err(e) => {
                tracing::debug!(project = %p.name, error = %e, "cannot read the default branch")
            }
        }
    }
    app.watch
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|k, _| names.contains(k));
}

fn set_watch_empty(app: &App, project: &str, sha: &str) {
    app.watch.lock().unwrap_or_else(|p| p.into_inner()).insert(
        project.to_string(),
        Watch {
            sha: sha.to_string(),
            ..Watch::default()
        },
    );
}

fn fire(
    app: &Arc<App>,
    project: &str,
    sha: &str,
    mut ev_fill: impl FnMut(&mut Event),
    cause: String,
) -> Option<i64> {
    let p = app.db.project(project).ok().flatten()?;
    let loaded = app.load_pipeline(&p, sha).ok()?;
    let mut ev = make_event(
        app,
        &p,
        "schedule",
        &format!("refs/heads/{}", p.default_branch),
        sha,
        None,
    );
    ev_fill(&mut ev);
    if let Err(why) = accepts(&loaded, &ev) {
        tracing::info!(project, reason = %why, "trigger does not run the pipeline");
        return None;
    }
    app.enqueue(RunRequest::new(p, loaded, ev, cause)).ok()
}

/// Fires every schedule whose next tick after its last firing has passed: once, however
/// many ticks were missed. A schedule seen for the first time starts counting from now.
pub fn tick_schedules(app: &Arc<App>, now_ms: i64) -> Vec<i64> {
    let watches: Vec<(String, Watch)> = app
        .watch
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut started = Vec::new();
    let now_s = now_ms.div_euclid(1000);
    for (project, w) in watches {
        for s in &w.schedules {
            let spec = schedule_spec(s);
            let last = match app.db.schedule_last_fired(&project, &spec) {
                Ok(l) => l,
                Err(_) => continue,
            };
            let Some(last) = last else {
                let _ = app.db.set_schedule_fired(&project, &spec, now_ms);
                continue;
            };
            let Some(next) = s.cron.next_after(last.div_euclid(1000), s.timezone) else {
                continue;
            };
            if next > now_s {
                continue;
            }
            // Recorded first: a crash right after starts nothing twice.
            if app.db.set_schedule_fired(&project, &spec, now_ms).is_err() {
                continue;
            }
            let missed = {
                let mut n = 0u32;
                let mut t = next;
                while let Some(x) = s.cron.next_after(t, s.timezone) {
                    if x > now_s || n > 1000 {
                        break;
                    }
                    n += 1;
                    t = x;
                }
                n
            };
            let cron = s.cron.text.clone();
            let note = if missed > 0 {
                format!(" (caught up: {} missed ticks fired once)", missed + 1)
            } else {
                String::new()
            };
            let cause = format!("schedule {cron}{note}");
            // The default branch as it is now (the watch list may be minutes old).
            let sha = app
                .db
                .project(&project)
                .ok()
                .flatten()
                .and_then(|p| {
                    app.git
                        .resolve_ref(
                            &p.name,
                            &p.repo_url,
                            &format!("refs/heads/{}", p.default_branch),
                        )
                        .ok()
                })
                .unwrap_or_else(|| w.sha.clone());
            if let Some(id) = fire(
                app,
                &project,
                &sha,
                |ev| ev.schedule = Some(cron.clone()),
                cause,
            ) {
                started.push(id);
            }
        }
    }
    started
}

fn split_ref(r: &str) -> (Option<String>, String) {
    let r = r.trim();
    match r.split_once('/') {
        Some((host, rest)) if host.contains('.') || host.contains(':') || host == "localhost" => {
            (Some(host.to_ascii_lowercase()), rest.to_string())
        }
        _ => (None, r.to_string()),
    }
}

fn with_tag(path: &str) -> String {
    let last = path.rsplit('/').next().unwrap_or(path);
    if last.contains(':') || last.contains('@') {
        path.to_string()
    } else {
        format!("{path}:latest")
    }
}

/// Whether `host` names this server (its listen port on a loopback name, or its public host).
pub fn is_own_host(app: &App, host: &str) -> bool {
    let port = app.cfg.listen.port().to_string();
    let public = url::Url::parse(&app.public_url).ok().and_then(|u| {
        u.host_str()
            .map(|h| format!("{h}:{}", u.port_or_known_default().unwrap_or(80)))
    });
    let (h, p) = host.rsplit_once(':').unwrap_or((host, "80"));
    (p == port && matches!(h, "localhost" | "127.0.0.1" | "[::1]"))
        || public.as_deref() == Some(host)
}

/// A push of `repo:tag` to the embedded registry: runs the pipelines watching it.
pub fn registry_push(app: &Arc<App>, repo: &str, tag: &str) -> Vec<i64> {
    let pushed = format!("{repo}:{tag}");
    let watches: Vec<(String, Watch)> = app
        .watch
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut out = Vec::new();
    for (project, w) in watches {
        for img in &w.images {
            let (host, path) = split_ref(img);
            let Some(host) = host else { continue };
            if !is_own_host(app, &host) || with_tag(&path) != pushed {
                continue;
            }
            let img2 = img.clone();
            let cause = format!("image {img} was pushed to this server's registry");
            if let Some(id) = fire(
                app,
                &project,
                &w.sha,
                |ev| {
                    ev.name = "image".into();
                    ev.image = Some(img2.clone());
                },
                cause,
            ) {
                out.push(id);
            }
        }
    }
    out
}

/// Checks every upstream image watched by a project (not this server's own registry) with a
/// HEAD request; a changed digest runs the pipelines watching it. The first sighting only
/// records the digest.
pub async fn poll_upstream(app: &Arc<App>, client: &drydock_registry_client::Client) -> Vec<i64> {
    let watches: Vec<(String, Watch)> = app
        .watch
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut by_ref: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for (project, w) in &watches {
        for img in &w.images {
            if let (Some(h), _) = split_ref(img)
                && is_own_host(app, &h)
            {
                continue;
            }
            by_ref
                .entry(img.clone())
                .or_default()
                .push((project.clone(), w.sha.clone()));
        }
    }
    let mut out = Vec::new();
    for (img, watchers) in by_ref {
        let Ok(reference) = drydock_oci::Reference::parse(&img) else {
            continue;
        };
        let eps = client.pull_endpoints(&reference);
        let Some(ep) = eps.first() else { continue };
        let tag = reference
            .digest()
            .map(|d| d.to_string())
            .or_else(|| reference.tag().map(String::from))
            .unwrap_or_else(|| "latest".into());
        let digest = match client.head_manifest(ep, &tag).await {
            Ok(Some((d, _, _))) => d.to_string(),
            Ok(None) => continue,
            Err(e) => {
                tracing::debug!(image = %img, error = %e, "HEAD of a watched image failed");
                continue;
            }
        };
        let before = app.db.watched_digest(&img).ok().flatten();
        let _ = app.db.set_watched_digest(&img, Some(&digest), now_ms());
        match before {
            Some(Some(old)) if old != digest => {
                for (project, sha) in watchers {
                    let app2 = app.clone();
                    let img2 = img.clone();
                    let cause = format!("upstream image {img} changed digest ({old} -> {digest})");
                    let r = tokio::task::spawn_blocking(move || {
                        fire(
                            &app2,
                            &project,
                            &sha,
                            |ev| {
                                ev.name = "image".into();
                                ev.image = Some(img2.clone());
                            },
                            cause,
                        )
                    })
                    .await;
                    if let Ok(Some(id)) = r {
                        out.push(id);
                    }
                }
            }
            _ => {}
        }
    }
    out
}
