//! The sandbox: runs one command inside an image's root filesystem, isolated with Linux
//! namespaces, overlayfs, cgroups, capabilities and seccomp, started by drydock's own binary (no
//! daemon), and hands back the exit status, the captured output and the file-system changes.
//!
//! It knows nothing of Dockerfiles, plans or pipelines: the builder and the pipeline engine turn
//! their steps into a [`SandboxSpec`] and call [`run`]. It is the only drydock crate with `unsafe`
//! (each block carries a `// SAFETY:` comment), all of it behind the [`sys`] seam.
//!
//! - [`run`] / [`SandboxSpec`] / [`Outcome`]: the blocking API.
//! - [`maybe_run_init`]: the entry point a binary calls first thing in `main` so the sandbox can
//!   re-exec it as a small single-threaded init (see "The sandbox" in ARCHITECTURE.md).
//! - [`SnapshotCache`] / [`LayerSource`]: layers extracted once per digest, shared between runs.
//! - [`Changes`]: a run's upper directory, the raw material of the resulting layer.
//! - [`userns`]: re-executing a whole drydock process inside a user namespace with the user's
//!   subordinate ids (rootless builds), and telling whether this process is inside one.
//! - Pure decision logic, unit-tested without root: [`users`], [`caps`], [`seccomp`], [`cgroup`],
//!   [`idmap`], [`mounts`], [`binfmt`], [`etcfiles`].
#![allow(unsafe_code)]

pub mod binfmt;
pub mod caps;
pub mod cgroup;
mod changes;
mod copytree;
mod error;
pub mod etcfiles;
pub mod idmap;
mod init;
pub mod mounts;
mod outcome;
mod protocol;
mod run;
pub mod seccomp;
mod snapshot;
mod spec;
pub mod sys;
pub mod userns;
pub mod users;

pub use changes::{Changes, Stub, StubKind, wait_for_cleanup};
pub use error::SandboxError;
pub use init::{INIT_ARG, maybe_run_init};
pub use outcome::{ExitStatus, Outcome};
pub use run::{CancelToken, run};
pub use snapshot::{BlobLayerSource, LayerSource, SnapshotCache};
pub use spec::{
    HostEntry, Isolation, Limits, Mount, NetworkMode, Rlimit, RlimitResource, Root, RootMode,
    SandboxSpec, SecretFile, Stdin, Stdio, UserNamespace,
};
pub use userns::in_user_namespace;
