use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The life of a run, a job or a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Queued,
    Running,
    Success,
    Failure,
    /// Not run: a needed job failed, a filter or `if` said no, a secret group refused.
    Skipped,
    Cancelled,
    /// The process running it died (server restart); the reason says what happened next.
    Interrupted,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Success => "success",
            Status::Failure => "failure",
            Status::Skipped => "skipped",
            Status::Cancelled => "cancelled",
            Status::Interrupted => "interrupted",
        }
    }

    pub fn is_finished(self) -> bool {
        !matches!(self, Status::Queued | Status::Running)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "queued" => Status::Queued,
            "running" => Status::Running,
            "success" => Status::Success,
            "failure" => Status::Failure,
            "skipped" => Status::Skipped,
            "cancelled" => Status::Cancelled,
            "interrupted" => Status::Interrupted,
            other => return Err(format!("unknown status {other:?}")),
        })
    }
}

/// What starts a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRun {
    pub project: String,
    pub pipeline: String,
    pub event: String,
    pub git_ref: String,
    pub sha: String,
    /// Why the run exists, for people: "push to main", "schedule 0 0 * * *", "manual by ann".
    pub cause: String,
    /// The full event context (JSON), for re-runs and the UI.
    pub context: serde_json::Value,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub id: i64,
    pub project: String,
    pub pipeline: String,
    pub event: String,
    pub git_ref: String,
    pub sha: String,
    pub cause: String,
    pub status: Status,
    pub reason: Option<String>,
    pub context: serde_json::Value,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub id: i64,
    pub run_id: i64,
    pub name: String,
    pub status: Status,
    pub reason: Option<String>,
    pub needs: Vec<String>,
    pub attempt: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub id: i64,
    pub job_id: i64,
    pub idx: i64,
    pub name: String,
    pub status: Status,
    pub reason: Option<String>,
    pub exit_code: Option<i64>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub job_id: i64,
    pub seq: i64,
    pub step_idx: Option<i64>,
    /// `stdout`, `stderr` or `system` (drydock's own lines).
    pub stream: String,
    pub ts: i64,
    pub line: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunImage {
    pub job: String,
    pub image: String,
    pub digest: String,
    pub tags: Vec<String>,
    pub pushed: bool,
    /// Why it was not pushed, when it was not.
    pub reason: Option<String>,
}

/// A run with everything under it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunDetail {
    pub run: Run,
    pub jobs: Vec<(Job, Vec<Step>)>,
    pub images: Vec<RunImage>,
}
