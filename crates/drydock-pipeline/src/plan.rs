//! What the engine runs: a pipeline as a validated, resolved model. `drydock-config` parses
//! `drydock.yml` and [`crate::from_config`] turns it into this; the server builds the same from
//! its stored copy. Expressions are kept as parsed [`drydock_expr`] values, with the text they
//! came from and where, so an evaluation error can point at them.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use drydock_expr::{Condition, Template};

use crate::event::Event;
use crate::images::ComputedTags;

/// An `if:` condition (job, step, or an image's `push:`), with its source.
#[derive(Clone)]
pub struct Cond {
    pub cond: Condition,
    /// The condition as written.
    pub text: String,
    /// Where it was written: `drydock.yml:12:9`.
    pub origin: String,
}

impl Cond {
    /// Parses a condition written at `origin`.
    pub fn parse(text: &str, origin: impl Into<String>) -> Result<Self, String> {
        let origin = origin.into();
        let cond = Condition::parse(text).map_err(|e| format!("{origin}: {e}"))?;
        Ok(Self {
            cond,
            text: text.to_string(),
            origin,
        })
    }
}

impl fmt::Debug for Cond {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cond({:?} at {})", self.text, self.origin)
    }
}

/// A string that may hold `${{ }}` expressions, with its source.
#[derive(Clone)]
pub struct Text {
    pub template: Template,
    pub text: String,
    pub origin: String,
}

impl Text {
    pub fn parse(text: &str, origin: impl Into<String>) -> Result<Self, String> {
        let origin = origin.into();
        let template = Template::parse(text).map_err(|e| format!("{origin}: {e}"))?;
        Ok(Self {
            template,
            text: text.to_string(),
            origin,
        })
    }

    /// A plain string (no expressions).
    pub fn literal(text: &str) -> Self {
        let span = drydock_diagnostics::Span::new(0, text.len());
        Self {
            template: Template {
                segments: vec![drydock_expr::Segment::Text(text.to_string(), span)],
            },
            text: text.to_string(),
            origin: "<literal>".into(),
        }
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Text({:?})", self.text)
    }
}

/// Decides whether an event passes a filter (`on:`, a job's branch filters): `Err(reason)`
/// when it does not, e.g. "branch `feature/x` matches branches-ignore: [feature/**]". Built by
/// [`crate::from_config`] from drydock-config's matchers.
pub type EventFilter = Arc<dyn Fn(&Event) -> Result<(), String> + Send + Sync>;

/// A secret group's `allow` rules: `(event, job, project)` to `Err(reason)` when refused.
pub type SecretRule = Arc<dyn Fn(&Event, &str, &str) -> Result<(), String> + Send + Sync>;

/// Computes an image's tags and labels for an event; the contexts (`github`, `env`) are for
/// `${{ }}` inside the `tags`, `flavor` and `labels` inputs. Built by [`crate::from_config`]
/// over drydock-tags (docker/metadata-action semantics).
pub type TagFn =
    Arc<dyn Fn(&drydock_expr::Value, &Event) -> Result<ComputedTags, String> + Send + Sync>;

/// `true`, `false`, or an expression decided when it is needed.
#[derive(Debug, Clone)]
pub enum Flag {
    Bool(bool),
    Expr(Text),
}

impl Default for Flag {
    fn default() -> Self {
        Flag::Bool(false)
    }
}

/// A whole pipeline.
#[derive(Clone, Default)]
pub struct Pipeline {
    /// The file it came from, for messages (`drydock.yml`).
    pub file: String,
    /// The pipeline's `on:` (`None`: every event).
    pub on: Option<EventFilter>,
    pub env: Vec<(String, Text)>,
    pub images: BTreeMap<String, ImageSpec>,
    pub secrets: BTreeMap<String, SecretGroup>,
    /// In file order.
    pub jobs: Vec<Job>,
}

impl fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("file", &self.file)
            .field("on", &self.on.is_some())
            .field("env", &self.env)
            .field("images", &self.images)
            .field("secrets", &self.secrets)
            .field("jobs", &self.jobs)
            .finish()
    }
}

impl Pipeline {
    pub fn job(&self, name: &str) -> Option<&Job> {
        self.jobs.iter().find(|j| j.name == name)
    }
}

/// One job.
#[derive(Clone, Default)]
pub struct Job {
    pub name: String,
    pub needs: Vec<String>,
    pub condition: Option<Cond>,
    /// The job's own event filter (its `branches`/`branches-ignore`...): a job it rejects is
    /// skipped with "filtered: <why>".
    pub filter: Option<EventFilter>,
    /// The image the steps run in (the sandbox); `None`: a host shell.
    pub image: Option<Text>,
    pub services: Vec<Service>,
    pub env: Vec<(String, Text)>,
    /// Secret groups whose keys become environment variables.
    pub secrets: Vec<String>,
    pub steps: Vec<Step>,
    /// Paths (relative to the workspace) handed to later jobs.
    pub persist: Vec<String>,
    pub timeout: Option<Duration>,
    pub continue_on_error: Flag,
    pub working_directory: Option<String>,
    pub shell: Option<String>,
    /// `outputs:`: evaluated when the job ends (whatever its result) in the job's contexts,
    /// handed to dependents as `needs.<job>.outputs.<name>`.
    pub outputs: Vec<(String, Text)>,
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("name", &self.name)
            .field("needs", &self.needs)
            .field("condition", &self.condition)
            .field("filter", &self.filter.is_some())
            .field("image", &self.image)
            .field("services", &self.services)
            .field("env", &self.env)
            .field("secrets", &self.secrets)
            .field("steps", &self.steps)
            .field("persist", &self.persist)
            .field("timeout", &self.timeout)
            .field("continue_on_error", &self.continue_on_error)
            .field("outputs", &self.outputs)
            .finish()
    }
}

/// A service container started before a job's steps and torn down after them.
#[derive(Debug, Clone)]
pub struct Service {
    /// Its host name, as the job reaches it.
    pub name: String,
    pub image: Text,
    pub env: Vec<(String, Text)>,
    /// The command (run with `/bin/sh -c`); `None`: the image's entrypoint and command.
    pub command: Option<Text>,
    /// A readiness check run (in the service's image, with `/bin/sh -c`) until it exits 0.
    pub ready: Option<Text>,
    /// How long to wait for readiness before failing the job.
    pub ready_timeout: Duration,
}

/// The default readiness timeout.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// One step.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: Option<String>,
    /// For `steps.<id>` in expressions.
    pub id: Option<String>,
    pub condition: Option<Cond>,
    pub action: Action,
    pub env: Vec<(String, Text)>,
    pub continue_on_error: Flag,
    pub timeout: Option<Duration>,
    pub working_directory: Option<String>,
    pub shell: Option<String>,
}

impl Step {
    pub fn new(action: Action) -> Self {
        Self {
            name: None,
            id: None,
            condition: None,
            action,
            env: Vec::new(),
            continue_on_error: Flag::Bool(false),
            timeout: None,
            working_directory: None,
            shell: None,
        }
    }

    /// The name shown in logs: the given one, else derived from the action.
    pub fn display_name(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        match &self.action {
            Action::Run(t) => {
                let first = t.text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
                let first = first.trim();
                let more = t.text.trim().lines().count() > 1;
                let mut s: String = first.chars().take(60).collect();
                if more || first.chars().count() > 60 {
                    s.push_str(" …");
                }
                format!("run: {s}")
            }
            Action::Build(i) => format!("build: {i}"),
            Action::Push(p) => format!("push: {}", p.image),
            Action::Attach(Attach::All) => "attach".to_string(),
            Action::Attach(Attach::Jobs(j)) => format!("attach: {}", j.join(", ")),
            Action::Attach(Attach::Paths(p)) => format!("attach: {}", p.join(", ")),
        }
    }
}

#[derive(Debug, Clone)]
pub enum Action {
    /// A script for the step's shell.
    Run(Text),
    /// Build `images.NAME`.
    Build(String),
    /// Push `images.NAME` with its computed tags.
    Push(PushStep),
    /// Restore files persisted by the jobs this one needs.
    Attach(Attach),
}

#[derive(Debug, Clone)]
pub struct PushStep {
    pub image: String,
    /// Push the image stored in this OCI layout or archive (a path in the workspace: `oci:DIR`,
    /// `docker-archive:FILE` or a plain path to an OCI layout directory) instead of the one
    /// built in this run.
    pub from: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attach {
    /// Everything the needed jobs persisted.
    All,
    /// What these jobs (needed by this one) persisted.
    Jobs(Vec<String>),
    /// These paths; each must have been persisted by a needed job.
    Paths(Vec<String>),
}

/// `images.NAME`.
#[derive(Clone, Default)]
pub struct ImageSpec {
    pub name: String,
    /// Relative to the workspace (`.` by default).
    pub context: String,
    /// Relative to the workspace; `None`: `<context>/Dockerfile`.
    pub dockerfile: Option<String>,
    pub target: Option<String>,
    pub args: Vec<(String, Text)>,
    pub platforms: Vec<String>,
    pub repositories: Vec<String>,
    /// A git context (`<url>#<ref>:<subdir>`) instead of a workspace directory.
    pub git_context: Option<String>,
    /// Tags and OCI labels for an event (`None`: no tags).
    pub tags: Option<TagFn>,
    /// Whether a `push:` step pushes it (`None`: always); truthy or not.
    pub push: Option<Text>,
    /// Build secrets (`RUN --mount=type=secret,id=KEY`): secret keys of the job's groups.
    pub secrets: Vec<String>,
}

impl fmt::Debug for ImageSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImageSpec")
            .field("name", &self.name)
            .field("context", &self.context)
            .field("dockerfile", &self.dockerfile)
            .field("target", &self.target)
            .field("args", &self.args)
            .field("platforms", &self.platforms)
            .field("repositories", &self.repositories)
            .field("tags", &self.tags.is_some())
            .field("push", &self.push)
            .finish()
    }
}

/// `secrets.NAME`: a group of keys a job may ask for.
#[derive(Clone, Default)]
pub struct SecretGroup {
    pub name: String,
    pub keys: Vec<String>,
    /// The group's `allow` rules (branches, events, jobs, projects); `None`: any. Pull
    /// requests from forks are refused by the engine whatever the rules say.
    pub allow: Option<SecretRule>,
}

impl fmt::Debug for SecretGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretGroup")
            .field("name", &self.name)
            .field("keys", &self.keys)
            .field("allow", &self.allow.is_some())
            .finish()
    }
}
