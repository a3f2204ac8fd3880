//! From drydock-config's parsed `drydock.yml` to the engine's [`Pipeline`]: expressions keep
//! their text and `file:line:col`, and the event filters, secret rules and tag computation are
//! drydock-config's own (GitHub filter semantics, docker/metadata-action tags).

use std::sync::Arc;
use std::time::Duration;

use drydock_config as config;
use drydock_diagnostics::{LineIndex, Span};
use drydock_expr::Value;

use crate::event::Event;
use crate::images::ComputedTags;
use crate::plan::{
    Action, Attach, Cond, Flag, ImageSpec, Job, Pipeline, PushStep, SecretGroup, Service, Step,
    Text,
};

/// The event as drydock-config sees it, with the git facts beside it.
pub fn config_event(ev: &Event) -> (config::Event, config::GitInfo) {
    let kind = match ev.name.as_str() {
        "push" => config::EventKind::Push,
        "pull_request" => match &ev.pull_request {
            Some(pr) => config::EventKind::PullRequest {
                base: pr.base_ref.clone(),
                head: pr.head_ref.clone(),
                number: pr.number,
                fork: pr.fork,
            },
            None => config::EventKind::Push,
        },
        "schedule" => config::EventKind::Schedule {
            cron: ev.schedule.clone(),
        },
        "image" => config::EventKind::Image {
            reference: ev.image.clone().unwrap_or_default(),
        },
        _ => config::EventKind::Manual,
    };
    let cev = config::Event {
        kind,
        git_ref: ev.git_ref.clone(),
        changed_paths: None,
    };
    let git = config::GitInfo {
        sha: ev.sha.clone(),
        default_branch: ev.default_branch.clone(),
        commit_time: ev.commit_time,
        describe: ev.describe.clone(),
        repo_url: ev.repository_url.clone(),
        repo_name: ev.repository.clone(),
    };
    (cev, git)
}

struct Conv<'a> {
    file: &'a str,
    src: &'a str,
    index: LineIndex,
}

impl Conv<'_> {
    fn at(&self, span: Span) -> String {
        let lc = self.index.line_col(self.src, span.start);
        format!("{}:{}:{}", self.file, lc.line, lc.col)
    }

    fn text(&self, e: &config::Expression) -> Text {
        Text {
            template: e.template.clone(),
            text: e.text.clone(),
            origin: self.at(e.span),
        }
    }

    fn cond(&self, i: &config::If) -> Cond {
        Cond {
            cond: i.condition.clone(),
            text: i.text.clone(),
            origin: self.at(i.span),
        }
    }

    fn env(&self, pairs: &[(config::Spanned<String>, config::Expression)]) -> Vec<(String, Text)> {
        pairs
            .iter()
            .map(|(k, v)| (k.value.clone(), self.text(v)))
            .collect()
    }

    fn flag(&self, f: &Option<config::BoolOrExpr>) -> Flag {
        match f {
            None => Flag::Bool(false),
            Some(config::BoolOrExpr::Bool(b)) => Flag::Bool(*b),
            Some(config::BoolOrExpr::Expr(e)) => Flag::Expr(self.text(e)),
        }
    }
}

fn minutes(m: &Option<config::Spanned<f64>>) -> Option<Duration> {
    m.as_ref()
        .filter(|m| m.value.is_finite() && m.value > 0.0)
        .map(|m| Duration::from_secs_f64(m.value * 60.0))
}

/// Converts a parsed pipeline. `file` names it in messages; `src` is its text (for line and
/// column numbers).
pub fn from_config(cfg: config::Pipeline, file: &str, src: &str) -> Pipeline {
    let conv = Conv {
        file,
        src,
        index: LineIndex::new(src),
    };
    let cfg = Arc::new(cfg);
    let source = Arc::new((file.to_string(), src.to_string()));

    let on = {
        let cfg = cfg.clone();
        Some(Arc::new(move |ev: &Event| cfg.accepts(&config_event(ev).0))
            as crate::plan::EventFilter)
    };

    let mut images = std::collections::BTreeMap::new();
    for img in &cfg.images {
        let name = img.name.value.clone();
        let tags: crate::plan::TagFn = {
            let cfg = cfg.clone();
            let name = name.clone();
            let source = source.clone();
            Arc::new(move |contexts: &Value, ev: &Event| {
                let Some(img) = cfg.image(&name) else {
                    return Err(format!("there is no images.{name}"));
                };
                let (cev, git) = config_event(ev);
                let mut te = cev.tag_event(&git, None);
                // docker/metadata-action reads the short sha length from the environment.
                if let Some(n) = contexts
                    .get("env")
                    .and_then(|e| e.get("DOCKER_METADATA_SHORT_SHA_LENGTH"))
                    .and_then(|v| v.as_str())
                    .and_then(|s| s.trim().parse().ok())
                {
                    te.short_sha_length = n;
                }
                let out = img.compute_tags(contexts, &te).map_err(|diags| {
                    drydock_diagnostics::render_all(&source.0, &source.1, &diags)
                        .trim_end()
                        .to_string()
                })?;
                Ok(ComputedTags {
                    tags: out.refs,
                    labels: out.labels,
                })
            })
        };
        let git_context = img.git.as_ref().map(|g| {
            let mut s = g.url.clone();
            if g.git_ref.is_some() || g.subdir.is_some() {
                s.push('#');
                s.push_str(g.git_ref.as_deref().unwrap_or(""));
                if let Some(sub) = &g.subdir {
                    s.push(':');
                    s.push_str(sub);
                }
            }
            s
        });
        images.insert(
            name.clone(),
            ImageSpec {
                name,
                context: img.context.value.clone(),
                dockerfile: Some(img.dockerfile.value.clone()),
                target: img.target.as_ref().map(|t| t.value.clone()),
                args: conv.env(&img.args),
                platforms: img.platforms.iter().map(|p| p.value.clone()).collect(),
                repositories: img.repositories.iter().map(|r| r.value.clone()).collect(),
                git_context,
                tags: Some(tags),
                push: img.push.as_ref().map(|e| conv.text(e)),
                secrets: Vec::new(),
            },
        );
    }

    let mut secrets = std::collections::BTreeMap::new();
    for g in &cfg.secrets {
        let name = g.name.value.clone();
        let rule: crate::plan::SecretRule = {
            let cfg = cfg.clone();
            let name = name.clone();
            Arc::new(move |ev: &Event, job: &str, project: &str| {
                let Some(group) = cfg.secret_group(&name) else {
                    return Err(format!("there is no secret group {name}"));
                };
                let project = (!project.is_empty()).then_some(project);
                group.allows(&config_event(ev).0, job, project)
            })
        };
        secrets.insert(
            name.clone(),
            SecretGroup {
                name,
                keys: g.keys.iter().map(|k| k.value.clone()).collect(),
                allow: Some(rule),
            },
        );
    }

    let mut jobs = Vec::new();
    for j in &cfg.jobs {
        let filter = j.on.as_ref().map(|_| {
            let cfg = cfg.clone();
            let name = j.name.value.clone();
            Arc::new(move |ev: &Event| {
                let Some(job) = cfg.job(&name) else {
                    return Ok(());
                };
                cfg.job_accepts(job, &config_event(ev).0)
                    .map_err(|r| r.strip_prefix("filtered: ").unwrap_or(&r).to_string())
            }) as crate::plan::EventFilter
        });
        let steps = j
            .steps
            .iter()
            .map(|s| {
                let action = match &s.kind {
                    config::StepKind::Run(e) => Action::Run(conv.text(e)),
                    config::StepKind::Build(i) => Action::Build(i.value.clone()),
                    config::StepKind::Push(i) => Action::Push(PushStep {
                        image: i.value.clone(),
                        from: None,
                    }),
                    config::StepKind::Attach(config::Attach::All) => Action::Attach(Attach::All),
                    config::StepKind::Attach(config::Attach::Jobs(js)) => {
                        Action::Attach(Attach::Jobs(js.iter().map(|j| j.value.clone()).collect()))
                    }
                };
                Step {
                    name: s.name.as_ref().map(|n| n.value.clone()),
                    id: s.id.as_ref().map(|n| n.value.clone()),
                    condition: s.if_.as_ref().map(|i| conv.cond(i)),
                    action,
                    env: conv.env(&s.env),
                    continue_on_error: conv.flag(&s.continue_on_error),
                    timeout: minutes(&s.timeout_minutes),
                    working_directory: s.working_directory.as_ref().map(|w| w.value.clone()),
                    shell: s.shell.as_ref().map(|w| w.value.clone()),
                }
            })
            .collect();
        let services = j
            .services
            .iter()
            .map(|s| Service {
                name: s.name.value.clone(),
                image: conv.text(&s.image),
                env: conv.env(&s.env),
                command: s.command.as_ref().map(|c| conv.text(c)),
                ready: s.ready.as_ref().map(|r| conv.text(r)),
                ready_timeout: Duration::from_secs(s.timeout_seconds.max(1)),
            })
            .collect();
        jobs.push(Job {
            name: j.name.value.clone(),
            needs: j.needs.iter().map(|n| n.value.clone()).collect(),
            condition: j.if_.as_ref().map(|i| conv.cond(i)),
            filter,
            image: j.image.as_ref().map(|e| conv.text(e)),
            services,
            env: conv.env(&j.env),
            secrets: j.secrets.iter().map(|s| s.value.clone()).collect(),
            steps,
            persist: j.persist.iter().map(|p| p.value.clone()).collect(),
            timeout: minutes(&j.timeout_minutes),
            continue_on_error: conv.flag(&j.continue_on_error),
            working_directory: j.working_directory.as_ref().map(|w| w.value.clone()),
            shell: j.shell.as_ref().map(|w| w.value.clone()),
            outputs: conv.env(&j.outputs),
        });
    }

    Pipeline {
        file: file.to_string(),
        on,
        env: conv.env(&cfg.env),
        images,
        secrets,
        jobs,
    }
}

/// Parses and converts a pipeline file; errors are rendered (`file:line:col`, caret, hints).
pub fn load(file: &str, src: &str) -> Result<Pipeline, String> {
    match config::parse(src) {
        Ok(p) => Ok(from_config(p, file, src)),
        Err(diags) => Err(drydock_diagnostics::render_all(file, src, &diags)),
    }
}
