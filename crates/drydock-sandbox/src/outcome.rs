use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::changes::Changes;

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExitStatus {
    Exited(i32),
    /// Killed by this signal (9 after a timeout, a cancel or the OOM killer).
    Signaled(i32),
}

impl ExitStatus {
    pub fn success(&self) -> bool {
        matches!(self, ExitStatus::Exited(0))
    }

    /// The shell convention: the exit code, or 128 + signal.
    pub fn code(&self) -> i32 {
        match self {
            ExitStatus::Exited(c) => *c,
            ExitStatus::Signaled(s) => 128 + s,
        }
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Exited(c) => write!(f, "exit code {c}"),
            ExitStatus::Signaled(s) => write!(f, "killed by signal {s}"),
        }
    }
}

/// What a run produced.
#[derive(Debug)]
pub struct Outcome {
    pub status: ExitStatus,
    /// The wall-clock timeout passed and the process tree was killed.
    pub timed_out: bool,
    /// The run was cancelled through its [`crate::CancelToken`].
    pub cancelled: bool,
    /// Captured output (for [`crate::Stdio::Capture`]; empty otherwise).
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The file-system changes, when [`crate::SandboxSpec::keep_changes`] was set.
    pub changes: Option<Changes>,
    /// Limits that could not be enforced on this machine, and similar notes.
    pub warnings: Vec<String>,
    pub duration: Duration,
    /// The id of the run (names its cgroups and its directory under the state dir).
    pub run_id: String,
    /// When each step of the run completed, from the start of [`crate::run`] (for performance
    /// diagnostics; the names are informal).
    pub timings: Vec<(&'static str, Duration)>,
}
