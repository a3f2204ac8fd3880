//! Events, and whether a pipeline, a job or a secret group accepts one (GitHub's filter
//! semantics), plus the `github` expression context and the tag input for an event.

use std::collections::BTreeMap;

use drydock_diagnostics::Diagnostic;
use drydock_expr::{Env, Value};
use drydock_tags::{Flavor, Output, TagEvent, TagsSpec};

use crate::glob::list_matches;
use crate::model::{
    ImageSpec, Job, Patterns, Pipeline, PullRequestTrigger, PushTrigger, SecretGroup, Triggers,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    Push,
    PullRequest {
        /// Base (target) branch name.
        base: String,
        /// Head (source) branch name.
        head: String,
        number: u64,
        /// From a fork: gets no secrets.
        fork: bool,
    },
    /// A schedule fired; `cron` is its expression when known.
    Schedule {
        cron: Option<String>,
    },
    /// An upstream image changed digest.
    Image {
        reference: String,
    },
    Manual,
}

/// What started a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    /// The ref the run builds: `refs/heads/main`, `refs/tags/v1.2.3`, `refs/pull/7/merge`.
    pub git_ref: String,
    /// Files changed by the event, when known (for `paths` filters; unknown means "run").
    pub changed_paths: Option<Vec<String>>,
}

/// Facts about the checkout that the caller reads from git.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitInfo {
    pub sha: String,
    pub default_branch: Option<String>,
    /// Commit time, Unix seconds.
    pub commit_time: Option<i64>,
    /// `git describe --tags --always`.
    pub describe: Option<String>,
    pub repo_url: Option<String>,
    /// `owner/name` or the directory name.
    pub repo_name: Option<String>,
}

impl Event {
    pub fn push(git_ref: impl Into<String>) -> Event {
        Event {
            kind: EventKind::Push,
            git_ref: git_ref.into(),
            changed_paths: None,
        }
    }

    pub fn pull_request(
        number: u64,
        base: impl Into<String>,
        head: impl Into<String>,
        fork: bool,
    ) -> Event {
        Event {
            kind: EventKind::PullRequest {
                base: base.into(),
                head: head.into(),
                number,
                fork,
            },
            git_ref: format!("refs/pull/{number}/merge"),
            changed_paths: None,
        }
    }

    /// `push`, `pull_request`, `schedule`, `image` or `manual`.
    pub fn name(&self) -> &'static str {
        match self.kind {
            EventKind::Push => "push",
            EventKind::PullRequest { .. } => "pull_request",
            EventKind::Schedule { .. } => "schedule",
            EventKind::Image { .. } => "image",
            EventKind::Manual => "manual",
        }
    }

    pub fn branch(&self) -> Option<&str> {
        self.git_ref.strip_prefix("refs/heads/")
    }

    pub fn tag(&self) -> Option<&str> {
        self.git_ref.strip_prefix("refs/tags/")
    }

    /// The branch whose code runs: the head branch of a pull request, else the ref's branch.
    pub fn code_branch(&self) -> Option<&str> {
        match &self.kind {
            EventKind::PullRequest { head, .. } => Some(head),
            _ => self.branch(),
        }
    }

    /// The `github` context: `event_name`, `ref`, `ref_name`, `ref_type`, `sha`, `head_ref`,
    /// `base_ref`, `repository`, `default_branch`, `event.pull_request.{number,head.ref,base.ref}`.
    pub fn github_context(&self, git: &GitInfo) -> Value {
        let s = |v: &str| Value::String(v.to_string());
        let (ref_name, ref_type) = match (self.branch(), self.tag()) {
            (Some(b), _) => (b.to_string(), "branch"),
            (_, Some(t)) => (t.to_string(), "tag"),
            _ => (
                self.git_ref
                    .rsplit_once("refs/")
                    .map_or(self.git_ref.clone(), |(_, r)| r.to_string()),
                "",
            ),
        };
        let mut m: BTreeMap<String, Value> = BTreeMap::new();
        m.insert("event_name".into(), s(self.name()));
        m.insert("ref".into(), s(&self.git_ref));
        m.insert("ref_name".into(), s(&ref_name));
        m.insert("ref_type".into(), s(ref_type));
        m.insert("sha".into(), s(&git.sha));
        m.insert(
            "repository".into(),
            git.repo_name.as_deref().map_or(Value::Null, s),
        );
        m.insert(
            "repository_url".into(),
            git.repo_url.as_deref().map_or(Value::Null, s),
        );
        m.insert(
            "default_branch".into(),
            git.default_branch.as_deref().map_or(Value::Null, s),
        );
        let mut event: BTreeMap<String, Value> = BTreeMap::new();
        match &self.kind {
            EventKind::PullRequest {
                base,
                head,
                number,
                fork,
            } => {
                m.insert("head_ref".into(), s(head));
                m.insert("base_ref".into(), s(base));
                event.insert(
                    "pull_request".into(),
                    Value::from_pairs([
                        ("number", Value::Number(*number as f64)),
                        (
                            "head",
                            Value::from_pairs([("ref", s(head)), ("fork", Value::Bool(*fork))]),
                        ),
                        ("base", Value::from_pairs([("ref", s(base))])),
                    ]),
                );
                event.insert("number".into(), Value::Number(*number as f64));
            }
            EventKind::Schedule { cron } => {
                m.insert("head_ref".into(), s(""));
                m.insert("base_ref".into(), s(""));
                event.insert("schedule".into(), cron.as_deref().map_or(Value::Null, s));
            }
            EventKind::Image { reference } => {
                m.insert("head_ref".into(), s(""));
                m.insert("base_ref".into(), s(""));
                event.insert("image".into(), s(reference));
            }
            EventKind::Push | EventKind::Manual => {
                m.insert("head_ref".into(), s(""));
                m.insert("base_ref".into(), s(""));
            }
        }
        event.insert("ref".into(), s(&self.git_ref));
        m.insert("event".into(), Value::object(event));
        Value::object(m)
    }

    /// The input of tag computation for this event. `now` is the time `{{date}}` renders
    /// (a schedule's tick); the commit time is used when it is `None`.
    pub fn tag_event(&self, git: &GitInfo, now: Option<i64>) -> TagEvent {
        let (pr, base) = match &self.kind {
            EventKind::PullRequest { number, base, .. } => (Some(*number), Some(base.clone())),
            _ => (None, None),
        };
        let event_name = match self.kind {
            EventKind::PullRequest { .. } => "pull_request",
            EventKind::Schedule { .. } => "schedule",
            EventKind::Manual => "workflow_dispatch",
            EventKind::Image { .. } => "image",
            EventKind::Push => "push",
        };
        TagEvent {
            event_name: event_name.into(),
            git_ref: self.git_ref.clone(),
            sha: git.sha.clone(),
            default_branch: git.default_branch.clone(),
            pr_number: pr,
            base_ref: base,
            commit_time: git.commit_time,
            now,
            describe: git.describe.clone(),
            repo_url: git.repo_url.clone(),
            repo_name: git.repo_name.clone(),
            description: None,
            licenses: None,
            short_sha_length: 0,
        }
    }
}

fn describe(p: &Patterns) -> String {
    p.globs
        .iter()
        .map(|g| g.pattern.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Include/ignore filter on one name: `Ok` or the reason it is filtered out.
fn filter(
    name: &str,
    what: &str,
    include: Option<&Patterns>,
    ignore: Option<&Patterns>,
    key: &str,
) -> Result<(), String> {
    if let Some(inc) = include
        && !list_matches(&inc.globs, name)
    {
        return Err(format!(
            "{what} `{name}` does not match {key}: [{}]",
            describe(inc)
        ));
    }
    if let Some(ign) = ignore
        && list_matches(&ign.globs, name)
    {
        return Err(format!(
            "{what} `{name}` matches {key}-ignore: [{}]",
            describe(ign)
        ));
    }
    Ok(())
}

fn paths_filter(
    changed: Option<&Vec<String>>,
    paths: Option<&Patterns>,
    ignore: Option<&Patterns>,
) -> Result<(), String> {
    let Some(changed) = changed else {
        return Ok(());
    };
    if let Some(p) = paths
        && !changed.iter().any(|f| list_matches(&p.globs, f))
    {
        return Err(format!("no changed file matches paths: [{}]", describe(p)));
    }
    if let Some(p) = ignore
        && !changed.is_empty()
        && changed.iter().all(|f| list_matches(&p.globs, f))
    {
        return Err(format!(
            "every changed file matches paths-ignore: [{}]",
            describe(p)
        ));
    }
    Ok(())
}

fn push_matches(t: &PushTrigger, ev: &Event) -> Result<(), String> {
    let branch_filters = t.branches.is_some() || t.branches_ignore.is_some();
    let tag_filters = t.tags.is_some() || t.tags_ignore.is_some();
    if let Some(b) = ev.branch() {
        if tag_filters && !branch_filters {
            return Err(format!("branch `{b}`: push has only tag filters"));
        }
        filter(
            b,
            "branch",
            t.branches.as_ref(),
            t.branches_ignore.as_ref(),
            "branches",
        )?;
        return paths_filter(
            ev.changed_paths.as_ref(),
            t.paths.as_ref(),
            t.paths_ignore.as_ref(),
        );
    }
    if let Some(tag) = ev.tag() {
        if branch_filters && !tag_filters {
            return Err(format!("tag `{tag}`: push has only branch filters"));
        }
        // GitHub does not evaluate path filters for tag pushes.
        return filter(tag, "tag", t.tags.as_ref(), t.tags_ignore.as_ref(), "tags");
    }
    if branch_filters || tag_filters {
        return Err(format!(
            "ref `{}` is neither a branch nor a tag",
            ev.git_ref
        ));
    }
    Ok(())
}

fn pr_matches(t: &PullRequestTrigger, ev: &Event, base: &str) -> Result<(), String> {
    filter(
        base,
        "base branch",
        t.branches.as_ref(),
        t.branches_ignore.as_ref(),
        "pull_request.branches",
    )?;
    paths_filter(
        ev.changed_paths.as_ref(),
        t.paths.as_ref(),
        t.paths_ignore.as_ref(),
    )
}

fn normalise_image(r: &str) -> String {
    let r = r.trim().to_ascii_lowercase();
    let r = r.strip_prefix("docker.io/").unwrap_or(&r).to_string();
    let r = r.strip_prefix("library/").unwrap_or(&r).to_string();
    if r.rsplit('/')
        .next()
        .is_some_and(|last| !last.contains(':') && !last.contains('@'))
    {
        format!("{r}:latest")
    } else {
        r
    }
}

impl Triggers {
    /// `Ok` when these triggers accept the event, or the reason they do not.
    pub fn accepts(&self, ev: &Event) -> Result<(), String> {
        match &ev.kind {
            EventKind::Push => match &self.push {
                Some(t) => push_matches(t, ev),
                None => Err("`on` has no push".into()),
            },
            EventKind::PullRequest { base, .. } => match &self.pull_request {
                Some(t) => pr_matches(t, ev, base),
                None => Err("`on` has no pull_request".into()),
            },
            EventKind::Schedule { cron } => {
                if self.schedule.is_empty() {
                    return Err("`on` has no schedule".into());
                }
                match cron {
                    Some(c) if !self.schedule.iter().any(|s| s.cron.text == c.trim()) => {
                        Err(format!("no schedule `{c}` in `on.schedule`"))
                    }
                    _ => Ok(()),
                }
            }
            EventKind::Image { reference } => {
                if self.image.is_empty() {
                    return Err("`on` has no image".into());
                }
                let want = normalise_image(reference);
                if self.image.iter().any(|i| normalise_image(&i.value) == want) {
                    Ok(())
                } else {
                    Err(format!("image `{reference}` is not watched by `on.image`"))
                }
            }
            EventKind::Manual => {
                if self.manual {
                    Ok(())
                } else {
                    Err("`on` has no manual (or workflow_dispatch)".into())
                }
            }
        }
    }
}

impl Pipeline {
    /// Whether the pipeline runs for the event (`Err` carries the reason it does not).
    pub fn accepts(&self, ev: &Event) -> Result<(), String> {
        self.on.accepts(ev)
    }

    /// Whether a job's own `on` filters let it run (`Err("filtered: ...")` otherwise). The
    /// job's `if` is evaluated by the engine, with the contexts of the run.
    pub fn job_accepts(&self, job: &Job, ev: &Event) -> Result<(), String> {
        match &job.on {
            Some(t) => t.accepts(ev).map_err(|r| format!("filtered: {r}")),
            None => Ok(()),
        }
    }
}

impl SecretGroup {
    /// Whether the group may be given to `job` for this event (and `project` on a server).
    /// Pull requests from forks never get secrets. Branch rules apply to the branch whose code
    /// runs (a pull request's head branch).
    pub fn allows(&self, ev: &Event, job: &str, project: Option<&str>) -> Result<(), String> {
        let g = &self.name.value;
        if let EventKind::PullRequest { fork: true, .. } = ev.kind {
            return Err(format!(
                "secret group `{g}`: pull requests from forks get no secrets"
            ));
        }
        if let Some(evs) = &self.allow.events {
            let name = ev.name();
            if !evs
                .iter()
                .any(|e| e.value == name || (name == "manual" && e.value == "workflow_dispatch"))
            {
                return Err(format!(
                    "secret group `{g}` is not allowed for {name} events"
                ));
            }
        }
        if let Some(b) = &self.allow.branches {
            match ev.code_branch() {
                Some(branch) if list_matches(&b.globs, branch) => {}
                Some(branch) => {
                    return Err(format!(
                        "secret group `{g}` is not allowed on branch `{branch}`"
                    ));
                }
                None => {
                    return Err(format!(
                        "secret group `{g}` is allowed on branches only, and `{}` is not one",
                        ev.git_ref
                    ));
                }
            }
        }
        if let Some(jobs) = &self.allow.jobs
            && !jobs.iter().any(|j| j.value == job)
        {
            return Err(format!("secret group `{g}` is not allowed for job `{job}`"));
        }
        if let (Some(projects), Some(p)) = (&self.allow.projects, project)
            && !projects.iter().any(|x| x.value == p)
        {
            return Err(format!(
                "secret group `{g}` is not allowed in project `{p}`"
            ));
        }
        Ok(())
    }
}

impl ImageSpec {
    /// Tags and labels for this image: `${{ }}` in `tags`, `flavor` and `labels` is evaluated
    /// with `contexts` (an object with `github` and `env`), then metadata-action's rules apply.
    pub fn compute_tags(
        &self,
        contexts: &Value,
        tag_event: &TagEvent,
    ) -> Result<Output, Vec<Diagnostic>> {
        let env = Env::new(contexts);
        let mut diags = Vec::new();
        let mut text = |e: &Option<crate::model::Expression>| -> Option<String> {
            let e = e.as_ref()?;
            match e.template.eval_string(&env) {
                Ok(s) => Some(s),
                Err(err) => {
                    diags.push(e.diagnostic(&err));
                    None
                }
            }
        };
        let tags_text = text(&self.tags);
        let flavor_text = text(&self.flavor);
        let mut labels = Vec::new();
        for (k, v) in &self.labels {
            match v.template.eval_string(&env) {
                Ok(s) => labels.push((k.value.clone(), s)),
                Err(err) => diags.push(v.diagnostic(&err)),
            }
        }
        if !diags.is_empty() {
            return Err(diags);
        }
        let at =
            |e: &Option<crate::model::Expression>| e.as_ref().map_or(self.name.span, |e| e.span);
        let spec = match tags_text {
            Some(t) => TagsSpec::parse(&t).map_err(|es| {
                es.iter()
                    .map(|e| e.to_diagnostic(|_| at(&self.tags)))
                    .collect::<Vec<_>>()
            })?,
            None => self.tags_spec.clone(),
        };
        let flavor = match flavor_text {
            Some(t) => Flavor::parse(&t).map_err(|es| {
                es.iter()
                    .map(|e| e.to_diagnostic(|_| at(&self.flavor)))
                    .collect::<Vec<_>>()
            })?,
            None => self.flavor_spec.clone(),
        };
        let repos: Vec<String> = self.repositories.iter().map(|r| r.value.clone()).collect();
        drydock_tags::compute(&spec, &flavor, tag_event, &repos, &labels).map_err(|es| {
            es.iter()
                .map(|e| e.to_diagnostic(|_| at(&self.tags)))
                .collect()
        })
    }

    /// Whether `push:` steps push this image: `Ok(None)` to push, `Ok(Some(reason))` when the
    /// `push` expression is false.
    pub fn push_decision(&self, contexts: &Value) -> Result<Option<String>, Diagnostic> {
        let Some(e) = &self.push else { return Ok(None) };
        let v = e
            .template
            .eval(&Env::new(contexts))
            .map_err(|err| e.diagnostic(&err))?;
        if v.truthy() {
            Ok(None)
        } else {
            Ok(Some(format!(
                "images.{}.push is false: {}",
                self.name.value,
                e.text.trim()
            )))
        }
    }
}
