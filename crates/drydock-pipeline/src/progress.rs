//! Live progress of a run, for whoever watches it: the CLI prints it, the server streams it to
//! browsers. Every log line here is already masked. The database gets the same, written by the
//! engine.

use drydock_db::Status;

/// One thing that happened in a run.
#[derive(Debug, Clone, Copy)]
pub enum RunEvent<'a> {
    /// The run exists in the database (`drydock logs ID` works from now on).
    RunStarted { run_id: i64, cause: &'a str },
    /// A job changed state (queued, running, then success, failure, skipped or cancelled).
    Job {
        job: &'a str,
        status: Status,
        reason: Option<&'a str>,
    },
    StepStarted {
        job: &'a str,
        index: usize,
        name: &'a str,
    },
    StepFinished {
        job: &'a str,
        index: usize,
        name: &'a str,
        status: Status,
        exit_code: Option<i32>,
        reason: Option<&'a str>,
    },
    /// A line of output (`stdout`, `stderr`) or of drydock's own (`system`), masked.
    Log {
        job: &'a str,
        step: Option<usize>,
        stream: &'a str,
        line: &'a str,
    },
    RunFinished {
        run_id: i64,
        status: Status,
        reason: Option<&'a str>,
    },
}

/// Receives [`RunEvent`]s, from several job threads at once.
pub trait Progress: Send + Sync {
    fn event(&self, event: &RunEvent<'_>);
}

/// Ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn event(&self, _: &RunEvent<'_>) {}
}

impl<F> Progress for F
where
    F: Fn(&RunEvent<'_>) + Send + Sync,
{
    fn event(&self, event: &RunEvent<'_>) {
        self(event)
    }
}
