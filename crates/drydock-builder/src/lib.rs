//! The builder: executes drydock build plans into OCI images, without a daemon.
//!
//! [`Builder::build`] takes a [`BuildRequest`] (context, Dockerfile, target, args, platforms,
//! tags, outputs) and returns a [`BuildOutput`] (image descriptor, config digest, layers). It
//! is blocking; progress goes to the caller's [`Progress`] callback and [`Cancel`] stops it.
//! The CLI's `drydock build` and the pipeline engine's image builds both call it.
//!
//! It knows nothing of Dockerfile syntax (the frontend turns text into a plan) and prints
//! nothing. File-system states are layer chains in the content store; RUN steps run in the
//! sandbox on extracted snapshots; file operations run in Rust against a merged view of the
//! snapshots; results are cached by content-addressed keys.
//!
//! - [`request`]: [`BuildRequest`], [`BuildOutput`], outputs, secrets, pull policy.
//! - [`builder`]: [`Builder`]: base images, planning, solving, assembling, outputs.
//! - [`solver`]: cache keys, demand, the worker pool, RUN and file steps.
//! - [`cache`]: persistent cache records, pruning, GC roots.
//! - [`context`]: the build context (directory, git, tarball), its view and content digests.
//! - [`fileop`]: COPY/ADD/mkdir/mkfile/rm into a staging upper dir.
//! - [`exec`]: RUN in the sandbox with bind/cache/tmpfs/secret/ssh mounts.
//! - [`view`]: overlay-aware read-only views of layer directories, symlink resolution, globs.
//! - [`snapshots`]: layers extracted once per digest (overlayfs whiteouts).
//! - [`image`]: config, history and manifest of the result.
//! - [`export`]: OCI layout, docker archive, local directory and tar outputs.
//! - [`remote`]: `ADD` of URLs and git repositories.
//! - [`perms`]: `--chmod` and `--chown`.
//! - [`progress`]: events and cancellation.

pub mod builder;
pub mod cache;
pub mod chain;
pub mod context;
pub mod error;
pub mod exec;
pub mod export;
pub mod fileop;
pub mod hashcache;
pub mod image;
pub mod perms;
pub mod progress;
pub mod remote;
pub mod request;
pub mod snapshots;
pub mod solver;
pub mod view;

pub use builder::{Builder, parse_labels};
pub use cache::{BuildCache, PruneOptions, PruneReport};
pub use chain::LayerRef;
pub use context::ContextSource;
pub use error::{BuildError, SourceText, StepFailure};
pub use progress::{Cancel, Event, Progress, StepInfo, Stream};
pub use request::{
    BuildOutput, BuildRequest, BuildStats, DockerfileSource, Output, PullPolicy, SecretSource,
    Secrets,
};
