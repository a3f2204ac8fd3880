//! The typed pipeline. Every user-written value keeps its span for later diagnostics (the
//! engine reports evaluation errors at the expression that failed).

use drydock_diagnostics::Span;
use drydock_expr::{Condition, Template};
use drydock_tags::time::TimeZone;
use drydock_tags::{Flavor, TagsSpec};

use crate::cron::Cron;
use crate::glob::Glob;

#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: Span) -> Self {
        Self { value, span }
    }
}

/// A `${{ }}` template with its span mapper: the template's spans are offsets into `text`;
/// [`Expression::file_span`] turns them into spans of the file.
#[derive(Debug, Clone)]
pub struct Expression {
    pub text: String,
    pub template: Template,
    pub span: Span,
    /// Byte offsets in the file of each byte of `text` (plus one past the end).
    pub(crate) offsets: Vec<usize>,
}

impl Expression {
    /// A span inside `text` as a span of the file.
    pub fn file_span(&self, inner: Span) -> Span {
        map_span(&self.offsets, self.span.start, inner)
    }

    /// Turns an evaluation error into a diagnostic pointing into the file.
    pub fn diagnostic(&self, err: &drydock_expr::ExprError) -> drydock_diagnostics::Diagnostic {
        err.to_diagnostic(|s| self.file_span(s))
    }
}

/// A span inside an expression's text as a span of the file: `offsets` holds the file offset of
/// each byte of the text (plus one past the end); a position past them maps to the last one, and
/// with no offsets at all to `start`. An inverted span is made empty at its start.
pub(crate) fn map_span(offsets: &[usize], start: usize, inner: Span) -> Span {
    let at = |i: usize| offsets.get(i).or(offsets.last()).copied().unwrap_or(start);
    Span::new(at(inner.start), at(inner.end).max(at(inner.start)))
}

/// An `if:` condition with its span mapper.
#[derive(Debug, Clone)]
pub struct If {
    pub text: String,
    pub condition: Condition,
    pub span: Span,
    pub(crate) offsets: Vec<usize>,
}

impl If {
    pub fn file_span(&self, inner: Span) -> Span {
        map_span(&self.offsets, self.span.start, inner)
    }

    pub fn diagnostic(&self, err: &drydock_expr::ExprError) -> drydock_diagnostics::Diagnostic {
        err.to_diagnostic(|s| self.file_span(s))
    }
}

/// A list of branch/tag/path patterns.
#[derive(Debug, Clone, PartialEq)]
pub struct Patterns {
    pub globs: Vec<Glob>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct PushTrigger {
    pub branches: Option<Patterns>,
    pub branches_ignore: Option<Patterns>,
    pub tags: Option<Patterns>,
    pub tags_ignore: Option<Patterns>,
    pub paths: Option<Patterns>,
    pub paths_ignore: Option<Patterns>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct PullRequestTrigger {
    pub branches: Option<Patterns>,
    pub branches_ignore: Option<Patterns>,
    pub paths: Option<Patterns>,
    pub paths_ignore: Option<Patterns>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub cron: Cron,
    pub timezone: TimeZone,
    pub span: Span,
}

/// The `on` section (or a job's `on`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Triggers {
    pub push: Option<PushTrigger>,
    pub pull_request: Option<PullRequestTrigger>,
    pub schedule: Vec<Schedule>,
    pub image: Vec<Spanned<String>>,
    pub manual: bool,
    /// `on` was absent: push (any branch and tag) and pull_request.
    pub defaulted: bool,
}

impl Triggers {
    pub fn default_triggers() -> Triggers {
        Triggers {
            push: Some(PushTrigger::default()),
            pull_request: Some(PullRequestTrigger::default()),
            defaulted: true,
            ..Triggers::default()
        }
    }
}

/// `context: <url>#<ref>:<subdir>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitContext {
    pub url: String,
    pub git_ref: Option<String>,
    pub subdir: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ImageSpec {
    pub name: Spanned<String>,
    /// Local directory (default `.`), unless `git` is set.
    pub context: Spanned<String>,
    pub git: Option<GitContext>,
    /// Default `<context>/Dockerfile` (for a git context: `Dockerfile` in it).
    pub dockerfile: Spanned<String>,
    pub target: Option<Spanned<String>>,
    pub args: Vec<(Spanned<String>, Expression)>,
    pub platforms: Vec<Spanned<String>>,
    pub repositories: Vec<Spanned<String>>,
    /// The `tags` input as written (may hold `${{ }}`, evaluated before [`TagsSpec::parse`]).
    pub tags: Option<Expression>,
    /// Parsed with every `${{ }}` taken as `true`: for validation and the common case.
    pub tags_spec: TagsSpec,
    pub flavor: Option<Expression>,
    pub flavor_spec: Flavor,
    pub labels: Vec<(Spanned<String>, Expression)>,
    /// Whether `push:` steps push; default true.
    pub push: Option<Expression>,
}

impl ImageSpec {
    /// An image known only by its repository (`drydock tags --image REPO` for a repository the
    /// file does not name): metadata-action's default tags and flavor, pushed.
    pub fn for_repository(repository: &str) -> ImageSpec {
        let at = Span::default();
        ImageSpec {
            name: Spanned::new(repository.to_string(), at),
            context: Spanned::new(".".into(), at),
            git: None,
            dockerfile: Spanned::new("Dockerfile".into(), at),
            target: None,
            args: Vec::new(),
            platforms: Vec::new(),
            repositories: vec![Spanned::new(repository.to_string(), at)],
            tags: None,
            tags_spec: TagsSpec::default_rules(),
            flavor: None,
            flavor_spec: Flavor::default(),
            labels: Vec::new(),
            push: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct SecretAllow {
    pub branches: Option<Patterns>,
    pub events: Option<Vec<Spanned<String>>>,
    pub projects: Option<Vec<Spanned<String>>>,
    pub jobs: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SecretGroup {
    pub name: Spanned<String>,
    pub keys: Vec<Spanned<String>>,
    pub allow: SecretAllow,
}

#[derive(Debug, Clone)]
pub struct Service {
    pub name: Spanned<String>,
    pub image: Expression,
    pub env: Vec<(Spanned<String>, Expression)>,
    pub ready: Option<Expression>,
    /// Seconds; default 60.
    pub timeout_seconds: u64,
    pub ports: Vec<Spanned<u16>>,
    pub command: Option<Expression>,
}

/// `true`/`false`, or an expression.
#[derive(Debug, Clone)]
pub enum BoolOrExpr {
    Bool(bool),
    Expr(Expression),
}

#[derive(Debug, Clone)]
pub enum Attach {
    /// `attach: true`: what every needed job persisted.
    All,
    Jobs(Vec<Spanned<String>>),
}

#[derive(Debug, Clone)]
pub enum StepKind {
    Run(Expression),
    Build(Spanned<String>),
    Push(Spanned<String>),
    Attach(Attach),
}

#[derive(Debug, Clone)]
pub struct Step {
    pub kind: StepKind,
    pub name: Option<Spanned<String>>,
    pub id: Option<Spanned<String>>,
    pub if_: Option<If>,
    pub env: Vec<(Spanned<String>, Expression)>,
    pub working_directory: Option<Spanned<String>>,
    pub shell: Option<Spanned<String>>,
    pub continue_on_error: Option<BoolOrExpr>,
    pub timeout_minutes: Option<Spanned<f64>>,
    pub span: Span,
}

impl Step {
    /// The name for logs: `name:`, or a summary of what the step does.
    pub fn display_name(&self) -> String {
        if let Some(n) = &self.name {
            return n.value.clone();
        }
        match &self.kind {
            StepKind::Run(e) => {
                let first = e.text.lines().next().unwrap_or("").trim();
                format!("run: {first}")
            }
            StepKind::Build(i) => format!("build: {}", i.value),
            StepKind::Push(i) => format!("push: {}", i.value),
            StepKind::Attach(_) => "attach".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Job {
    pub name: Spanned<String>,
    pub image: Option<Expression>,
    pub services: Vec<Service>,
    pub steps: Vec<Step>,
    pub needs: Vec<Spanned<String>>,
    pub if_: Option<If>,
    /// Event filters of this job, if any.
    pub on: Option<Triggers>,
    pub env: Vec<(Spanned<String>, Expression)>,
    pub persist: Vec<Spanned<String>>,
    pub timeout_minutes: Option<Spanned<f64>>,
    pub continue_on_error: Option<BoolOrExpr>,
    pub working_directory: Option<Spanned<String>>,
    pub shell: Option<Spanned<String>>,
    pub secrets: Vec<Spanned<String>>,
    /// `outputs:`: name -> expression, evaluated when the job ends and handed to the jobs that
    /// need it as `needs.<job>.outputs.<name>`.
    pub outputs: Vec<(Spanned<String>, Expression)>,
}

/// A parsed and validated `drydock.yml`.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub on: Triggers,
    pub env: Vec<(Spanned<String>, Expression)>,
    pub images: Vec<ImageSpec>,
    pub secrets: Vec<SecretGroup>,
    pub jobs: Vec<Job>,
}

impl Pipeline {
    pub fn job(&self, name: &str) -> Option<&Job> {
        self.jobs.iter().find(|j| j.name.value == name)
    }

    pub fn image(&self, name: &str) -> Option<&ImageSpec> {
        self.images.iter().find(|i| i.name.value == name)
    }

    pub fn secret_group(&self, name: &str) -> Option<&SecretGroup> {
        self.secrets.iter().find(|g| g.name.value == name)
    }

    /// Jobs in an order where every job comes after the jobs it needs (input order otherwise).
    pub fn topological_order(&self) -> Vec<&Job> {
        let mut done: Vec<&str> = Vec::new();
        let mut out = Vec::new();
        let mut progress = true;
        while progress && out.len() < self.jobs.len() {
            progress = false;
            for j in &self.jobs {
                if done.contains(&j.name.value.as_str()) {
                    continue;
                }
                if j.needs
                    .iter()
                    .all(|n| done.contains(&n.value.as_str()) || self.job(&n.value).is_none())
                {
                    done.push(&j.name.value);
                    out.push(j);
                    progress = true;
                }
            }
        }
        out
    }

    /// `name` and every job it needs, transitively (for `--job NAME`), in topological order.
    pub fn with_dependencies(&self, name: &str) -> Vec<&Job> {
        let mut want: Vec<&str> = vec![name];
        let mut i = 0;
        while i < want.len() {
            if let Some(j) = self.job(want[i]) {
                for n in &j.needs {
                    if !want.contains(&n.value.as_str()) {
                        want.push(&n.value);
                    }
                }
            }
            i += 1;
        }
        self.topological_order()
            .into_iter()
            .filter(|j| want.contains(&j.name.value.as_str()))
            .collect()
    }
}
