//! The pipeline file, `drydock.yml`: parsing with spans, validation that reports every error,
//! event matching with GitHub's filter semantics, cron schedules, and a JSON Schema for editors.
//!
//! What it is for: turning the text into a typed [`Pipeline`] (or a list of
//! [`Diagnostic`]s with file positions, "did you mean" hints and the cycle of a `needs` loop),
//! and answering "does this event run the pipeline / this job / may this job have these
//! secrets". What it is not: it runs nothing and reads no files or clocks; `${{ }}` values are
//! parsed here and evaluated by the engine with [`drydock_expr`].
//!
//! YAML parser: `saphyr-parser` (the event-level parser of the saphyr project, the maintained
//! successor of yaml-rust/yaml-rust2). It reports a span for every event, is YAML 1.2 (so `on:`
//! is a string, not YAML 1.1's `true`), has two small dependencies and no unsafe-heavy or
//! deprecated stack (serde_yaml is unmaintained). We build our own small node tree from its
//! events ([`yaml`]), keeping byte spans for keys and values.
//!
//! - [`parse`]: text to [`Pipeline`] or every [`Diagnostic`].
//! - [`Event`], [`GitInfo`]: what started a run; [`Pipeline::accepts`],
//!   [`Pipeline::job_accepts`], [`SecretGroup::allows`]; [`Event::github_context`] and
//!   [`Event::tag_event`]; [`ImageSpec::compute_tags`], [`ImageSpec::push_decision`].
//! - [`cron`]: five-field cron with `next_after` in a fixed-offset zone.
//! - [`glob`]: GitHub filter patterns.
//! - [`schema`]: the JSON Schema (`schema/drydock.schema.json`).
//!
//! Decisions (where the design is silent):
//! - Per-job filters: a job may have its own `on:` (same syntax as the top level); a job whose
//!   `on` does not accept the event is skipped with the reason `filtered: ...`.
//! - `push` filters follow GitHub: with only tag filters a branch push does not run (and the
//!   reverse); `branches` and `branches-ignore` may be combined (the design's example does);
//!   in a list the last matching pattern decides (`!` excludes); `paths` filters are not
//!   evaluated for tag pushes and run when the changed files are unknown.
//! - Manual runs need `manual:` (or `workflow_dispatch:`) in `on`; the default `on` is push
//!   (any branch or tag) and pull_request.
//! - Secret groups: pull requests from forks never get secrets; `allow.branches` is checked
//!   against the branch whose code runs (a pull request's head branch), so a pull request into
//!   `main` does not get a group allowed on `main`.
//! - Cron: when both day fields are restricted a day matching either runs; a day field that
//!   starts with `*` (also `*/2`) counts as unrestricted (Vixie cron). Time zones are fixed
//!   offsets (see `drydock_tags::time`); there is no tz database.
//! - Expressions are checked against the contexts available where they appear
//!   ([`contexts`]); `secrets` in an image build arg is an error with a hint to use
//!   `--secret`.

pub mod cron;
mod event;
pub mod glob;
mod keys;
mod model;
mod parse;
pub mod schema;
mod suggest;
mod validate;
pub mod yaml;

pub use drydock_diagnostics::Diagnostic;
pub use event::{Event, EventKind, GitInfo};
pub use model::*;

/// The context names expressions may use in each place.
pub mod contexts {
    /// Top-level `env`.
    pub const TOP: &[&str] = crate::parse::CTX_TOP;
    /// `images.*` (`tags`, `flavor`, `args`, `labels`, `push`).
    pub const IMAGE: &[&str] = crate::parse::CTX_IMAGE;
    /// Job `if`, `image`, `env`, `services`.
    pub const JOB: &[&str] = crate::parse::CTX_JOB;
    /// Step fields.
    pub const STEP: &[&str] = crate::parse::CTX_STEP;
}

/// Parses and validates a pipeline file. Every error is reported (sorted by position), not
/// only the first.
pub fn parse(src: &str) -> Result<Pipeline, Vec<Diagnostic>> {
    let root = yaml::parse(src).map_err(|d| vec![d])?;
    let mut cx = parse::Cx {
        src,
        diags: Vec::new(),
    };
    let pipeline = parse::pipeline(&mut cx, &root);
    let mut diags = cx.diags;
    validate::check(&pipeline, &mut diags);
    if diags.iter().any(Diagnostic::is_error) {
        diags.sort_by_key(|d| (d.span.start, d.span.end));
        diags.dedup();
        return Err(diags);
    }
    Ok(pipeline)
}
