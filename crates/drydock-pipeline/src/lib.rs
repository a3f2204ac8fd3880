//! The pipeline engine: runs a pipeline's job DAG for an event, the way `drydock run` and the
//! server both do.
//!
//! What it is for: scheduling jobs in parallel where `needs` allows, skipping dependents of
//! failed jobs (with the reason), `if` per job and step with GitHub's status functions, steps in
//! a host shell or in the sandbox (the workspace at `/workspace`), services with readiness
//! checks, images built (through [`ImageBuilder`]) and pushed with computed tags (through
//! [`Registry`]), workspaces handed between jobs, secret groups enforced and
//! masked, and every run recorded in the database with its logs.
//!
//! What it is not: a YAML parser (drydock-config), an expression language (drydock-expr), tag
//! computation (drydock-tags) or an image builder (drydock-builder). It prints nothing: callers
//! get [`RunEvent`]s through [`Progress`] and stop runs with [`Cancel`].
//!
//! - [`Engine`] / [`EngineConfig`] / [`PipelineRun`] / [`RunResult`]: the entry points
//!   ([`Engine::queue`], [`Engine::run`]).
//! - [`plan`]: the pipeline model the engine runs; [`event`] and [`git`]: what a run is for.
//! - [`images`]: the builder, tag and registry seams, and `images.NAME` state.
//! - [`secrets`], [`workspace`], [`dag`]: the rules, each testable on its own.

mod builder;
mod cancel;
mod ctx;
pub mod dag;
mod engine;
mod error;
pub mod event;
mod from_config;
pub mod git;
mod host;
pub mod images;
mod job;
mod logs;
pub mod plan;
mod progress;
mod result;
pub mod secrets;
mod services;
pub mod workspace;

pub use cancel::{Cancel, CancelGuard};
pub use engine::{Engine, EngineConfig, KeptJob, PipelineRun};
pub use error::EngineError;
pub use event::{Event, PullRequest};
pub use from_config::{config_event, from_config, load};
pub use images::{
    BuildRequest, BuiltImage, ComputedTags, ImageBuilder, ImageState, NoBuilder, Registry,
};
pub use job::SANDBOX_WORKSPACE;
pub use progress::{NoProgress, Progress, RunEvent};
pub use result::{ImageResult, JobResult, RunResult, StepResult};

/// Finds an executable on the host's `PATH`.
pub(crate) fn which(tool: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| std::path::Path::new(d).join(tool))
        .find(|c| c.is_file())
}
