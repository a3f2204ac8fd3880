use std::io;
use std::path::PathBuf;

/// Why a sandboxed run could not start or complete. A command that starts and exits non-zero is
/// not an error: see [`crate::Outcome::status`].
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("invalid sandbox spec: {field}: {message}")]
    Spec {
        field: &'static str,
        message: String,
    },

    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("cannot start the sandbox init {binary}: {source}")]
    Spawn {
        binary: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A step inside the sandbox failed before the command was executed.
    #[error("sandbox setup failed at {stage}: {message}")]
    Setup {
        stage: String,
        message: String,
        errno: Option<i32>,
    },

    /// The command's binary is for another architecture and no binfmt_misc handler runs it.
    #[error("{0}")]
    ForeignArchitecture(String),

    #[error("rootless sandbox: {0}")]
    Rootless(String),

    /// The calling user cannot get a user namespace with subordinate ids (no newuidmap, no
    /// `/etc/subuid` range); `hint` says what to install or configure.
    #[error("{message}\nhint: {hint}")]
    UserNamespace { message: String, hint: String },

    #[error("cgroup {path}: {message}")]
    Cgroup { path: PathBuf, message: String },

    #[error("snapshot of layer {digest}: {message}")]
    Snapshot { digest: String, message: String },

    #[error("sandbox protocol: {0}")]
    Protocol(String),
}

impl SandboxError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        SandboxError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
