//! What a run produced: the `--json` summary and what the server shows.

use drydock_db::Status;
use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::workspace::Persisted;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunResult {
    pub run_id: i64,
    pub status: Status,
    pub reason: Option<String>,
    pub event: Event,
    pub jobs: Vec<JobResult>,
    pub images: Vec<ImageResult>,
    pub duration_ms: u64,
}

impl RunResult {
    pub fn job(&self, name: &str) -> Option<&JobResult> {
        self.jobs.iter().find(|j| j.name == name)
    }

    pub fn image(&self, name: &str) -> Option<&ImageResult> {
        self.images.iter().find(|i| i.image == name)
    }

    pub fn succeeded(&self) -> bool {
        self.status == Status::Success
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobResult {
    pub name: String,
    pub status: Status,
    pub reason: Option<String>,
    /// Failed, but `continue-on-error` kept the run (and the jobs needing it) going.
    pub continued_on_error: bool,
    pub steps: Vec<StepResult>,
    pub persisted: Option<Persisted>,
    /// Its `outputs:` as its dependents saw them (outputs holding a secret left out).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub outputs: std::collections::BTreeMap<String, String>,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepResult {
    pub index: usize,
    pub name: String,
    pub status: Status,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageResult {
    pub image: String,
    pub job: String,
    pub digest: String,
    pub tags: Vec<String>,
    pub pushed: bool,
    /// Why it was not pushed.
    pub reason: Option<String>,
    /// The build was all cache hits.
    pub cached: bool,
}
