//! Build chains: an ordered sequence of image tags (`init, step-1, …, latest`) where each step
//! builds FROM the previous one. A step is a run of the project's pipeline restricted to the
//! step's job (by default the job named like the tag), on the default branch. The next step
//! starts when the previous run succeeded and pushed the step's tag, after the chain's delay.
//! A failed step stops the chain (status `failure` with the reason). A start (tick, API,
//! webhook) while the chain runs is coalesced: counted, and nothing more starts.
//!
//! Docker Hub's webhook payload (`push_data.tag`, `repository.repo_name`, `callback_url`)
//! advances a chain: the push of step N's tag starts step N+1.

use std::sync::Arc;

use drydock_db::{Chain, Status};
use serde::{Deserialize, Serialize};

use crate::app::{App, RunRequest};
use crate::triggers::{Refused, make_event};
use crate::util::now_ms;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainStep {
    pub tag: String,
    /// The pipeline job that builds and pushes this tag (default: the job named like the tag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
}

impl ChainStep {
    pub fn job(&self) -> &str {
        self.job.as_deref().unwrap_or(&self.tag)
    }
}

pub fn steps(c: &Chain) -> Vec<ChainStep> {
    serde_json::from_str(&c.steps).unwrap_or_default()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartOutcome {
    Started(i64),
    Waiting,
    Coalesced,
}

fn busy(c: &Chain) -> bool {
    matches!(c.status.as_str(), "running" | "waiting")
}

/// Starts the chain from step `from` (0 for the whole chain).
pub fn start(
    app: &Arc<App>,
    name: &str,
    from: usize,
    cause: &str,
) -> Result<StartOutcome, Refused> {
    let mut c = app
        .db
        .chain(name)
        .map_err(|e| Refused::new(500, e.to_string()))?
        .ok_or_else(|| Refused::new(404, format!("no chain {name}")))?;
    if busy(&c) {
        c.coalesced += 1;
        app.db
            .update_chain_state(&c)
            .map_err(|e| Refused::new(500, e.to_string()))?;
        app.changed();
        return Ok(StartOutcome::Coalesced);
    }
    let n = steps(&c).len();
    if from >= n {
        return Err(Refused::new(422, format!("chain {name} has {n} steps")));
    }
    c.status = "running".into();
    c.reason = None;
    c.cause = Some(cause.to_string());
    c.started_at = Some(now_ms());
    c.finished_at = None;
    c.current_step = Some(from as i64);
    c.current_run = None;
    c.next_at = None;
    start_step(app, c).map(StartOutcome::Started)
}

fn fail(app: &App, mut c: Chain, reason: String) {
    c.status = "failure".into();
    c.reason = Some(reason);
    c.finished_at = Some(now_ms());
    c.next_at = None;
    let _ = app.db.update_chain_state(&c);
    app.changed();
}

/// Queues the run of the chain's current step.
fn start_step(app: &Arc<App>, mut c: Chain) -> Result<i64, Refused> {
    let st = steps(&c);
    let k = c.current_step.unwrap_or(0) as usize;
    let Some(step) = st.get(k) else {
        return Err(Refused::new(422, "no such step"));
    };
    let r = (|| {
        let project = app
            .db
            .project(&c.project)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("project {} no longer exists", c.project))?;
        let git_ref = format!("refs/heads/{}", project.default_branch);
        let sha = app
            .git
            .resolve_ref(&project.name, &project.repo_url, &git_ref)
            .map_err(|e| e.to_string())?;
        let loaded = app.load_pipeline(&project, &sha)?;
        if loaded.plan.jobs.iter().all(|j| j.name != step.job()) {
            return Err(format!(
                "the pipeline has no job {} for step {} ({})",
                step.job(),
                k + 1,
                step.tag
            ));
        }
        let mut ev = make_event(app, &project, "manual", &git_ref, &sha, None);
        ev.actor = Some(format!("chain {}", c.name));
        let prev = if k == 0 {
            String::new()
        } else {
            format!(", FROM {}:{}", c.repository, st[k - 1].tag)
        };
        let cause = format!(
            "chain {} step {}/{} ({}{prev}): {}",
            c.name,
            k + 1,
            st.len(),
            step.tag,
            c.cause.as_deref().unwrap_or("started")
        );
        app.enqueue(RunRequest {
            only_job: Some(step.job().to_string()),
            chain: Some((c.id, k as i64)),
            ..RunRequest::new(project, loaded, ev, cause)
        })
        .map_err(|e| e.to_string())
    })();
    match r {
        Ok(id) => {
            c.status = "running".into();
            c.current_run = Some(id);
            c.next_at = None;
            app.db
                .update_chain_state(&c)
                .map_err(|e| Refused::new(500, e.to_string()))?;
            app.changed();
            Ok(id)
        }
        Err(e) => {
            let why = format!("step {} ({}) could not start: {e}", k + 1, step.tag);
            fail(app, c, why.clone());
            Err(Refused::new(422, why))
        }
    }
}

/// A run finished: if it was a chain's current step, advance or stop the chain.
pub fn run_finished(app: &App, run: i64) {
    let Ok(Some(meta)) = app.db.run_meta(run) else {
        return;
    };
    let (Some(cid), Some(k)) = (meta.chain_id, meta.chain_step) else {
        return;
    };
    let Ok(Some(mut c)) = app.db.chain_by_id(cid) else {
        return;
    };
    if c.current_run != Some(run) {
        return;
    }
    let Ok(detail) = app.db.run_detail(run) else {
        return;
    };
    let st = steps(&c);
    let k = k as usize;
    let Some(step) = st.get(k) else { return };
    let r = &detail.run;
    if r.status != Status::Success {
        let why = r.reason.clone().unwrap_or_else(|| r.status.to_string());
        fail(
            app,
            c,
            format!(
                "step {} ({}) {}: run {run}: {why}",
                k + 1,
                step.tag,
                r.status
            ),
        );
        return;
    }
    let suffix = format!(":{}", step.tag);
    let pushed = detail
        .images
        .iter()
        .any(|i| i.pushed && i.tags.iter().any(|t| t.ends_with(&suffix)));
    if !pushed {
        fail(
            app,
            c,
            format!(
                "step {} ({}): run {run} succeeded but pushed no image tagged {}",
                k + 1,
                step.tag,
                step.tag
            ),
        );
        return;
    }
    if k + 1 >= st.len() {
        c.status = "success".into();
        c.reason = None;
        c.finished_at = Some(now_ms());
        c.current_step = Some(k as i64);
        let _ = app.db.update_chain_state(&c);
        app.changed();
        return;
    }
    c.status = "waiting".into();
    c.current_step = Some(k as i64 + 1);
    c.next_at = Some(now_ms() + c.delay_seconds * 1000);
    let _ = app.db.update_chain_state(&c);
    app.changed();
    app.wake();
}

/// A chain's step run was requeued after a crash: follow the new run.
pub fn run_replaced(app: &App, chain: i64, old: i64, new: i64) {
    if let Ok(Some(mut c)) = app.db.chain_by_id(chain)
        && c.current_run == Some(old)
    {
        c.current_run = Some(new);
        let _ = app.db.update_chain_state(&c);
    }
}

/// Starts waiting steps whose delay has passed, and chains whose cron ticked.
pub fn tick(app: &Arc<App>, now: i64) {
    let Ok(chains) = app.db.chains() else { return };
    for c in chains {
        if c.status == "waiting" && c.next_at.is_some_and(|t| t <= now) {
            let _ = start_step(app, c.clone());
            continue;
        }
        let Some(cron_text) = &c.cron else { continue };
        let Ok(cron) = drydock_config::cron::Cron::parse(cron_text) else {
            continue;
        };
        let owner = format!("chain:{}", c.name);
        let last = match app.db.schedule_last_fired(&owner, cron_text) {
            Ok(Some(l)) => l,
            Ok(None) => {
                let _ = app.db.set_schedule_fired(&owner, cron_text, now);
                continue;
            }
            Err(_) => continue,
        };
        match cron.next_after(last.div_euclid(1000), drydock_tags::time::TimeZone::UTC) {
            Some(next) if next <= now.div_euclid(1000) => {
                let _ = app.db.set_schedule_fired(&owner, cron_text, now);
                let _ = start(app, &c.name, 0, &format!("schedule {cron_text}"));
            }
            _ => {}
        }
    }
}

/// What the Docker Hub webhook asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubPush {
    pub tag: String,
    pub repo_name: String,
    pub callback_url: Option<String>,
}

pub fn parse_hub(body: &[u8]) -> Result<HubPush, Refused> {
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| Refused::new(400, format!("the body is not JSON: {e}")))?;
    let tag = v
        .pointer("/push_data/tag")
        .and_then(|t| t.as_str())
        .ok_or_else(|| Refused::new(400, "the payload has no push_data.tag"))?;
    let repo = v
        .pointer("/repository/repo_name")
        .and_then(|t| t.as_str())
        .ok_or_else(|| Refused::new(400, "the payload has no repository.repo_name"))?;
    Ok(HubPush {
        tag: tag.to_string(),
        repo_name: repo.to_string(),
        callback_url: v
            .get("callback_url")
            .and_then(|t| t.as_str())
            .map(String::from),
    })
}

/// The repository path without a registry host (`acme/app` for `localhost:5000/acme/app`).
fn repo_path(r: &str) -> &str {
    match r.split_once('/') {
        Some((host, rest)) if host.contains('.') || host.contains(':') || host == "localhost" => {
            rest
        }
        _ => r,
    }
}

/// A Docker Hub-shaped push notification: step `tag` is done, start the next one.
pub fn hub_push(app: &Arc<App>, name: &str, push: &HubPush) -> Result<String, Refused> {
    let c = app
        .db
        .chain(name)
        .map_err(|e| Refused::new(500, e.to_string()))?
        .ok_or_else(|| Refused::new(404, format!("no chain {name}")))?;
    if repo_path(&push.repo_name) != repo_path(&c.repository) {
        return Err(Refused::new(
            422,
            format!(
                "repository {} does not match chain {name}'s repository {}",
                push.repo_name, c.repository
            ),
        ));
    }
    let st = steps(&c);
    let Some(k) = st.iter().position(|s| s.tag == push.tag) else {
        return Err(Refused::new(
            422,
            format!(
                "tag {} is not in chain {name}'s sequence ({})",
                push.tag,
                st.iter()
                    .map(|s| s.tag.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    };
    if k + 1 >= st.len() {
        return Ok(format!(
            "tag {} is the last step of chain {name}: nothing to start",
            push.tag
        ));
    }
    match start(
        app,
        name,
        k + 1,
        &format!(
            "{}:{} pushed (Docker Hub webhook)",
            push.repo_name, push.tag
        ),
    )? {
        StartOutcome::Started(id) => Ok(format!(
            "started step {} ({}) as run {id}",
            k + 2,
            st[k + 1].tag
        )),
        StartOutcome::Waiting => Ok("waiting".into()),
        StartOutcome::Coalesced => Ok(format!(
            "chain {name} is running: the push of {} was coalesced",
            push.tag
        )),
    }
}
