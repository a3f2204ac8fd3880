//! The engine: [`Engine::run`] takes a [`PipelineRun`] and runs its job DAG to the end,
//! recording everything in the database and reporting progress to the caller.
//!
//! The server (issue 9) uses the same entry points: [`Engine::queue`] records a run (queued,
//! with its jobs) and returns its id; [`Engine::run`] with `run_id` set runs it; the caller's
//! [`Cancel`] stops it; [`Progress`] streams its events and masked log lines.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Instant;

use drydock_content::Store;
use drydock_db::{Db, NewRun, Status};
use drydock_expr::{JobStatus, Value};
use drydock_oci::Platform;
use drydock_secret::Masker;

use crate::cancel::Cancel;
use crate::ctx::{self, Contexts};
use crate::dag::Graph;
use crate::error::EngineError;
use crate::event::Event;
use crate::images::{ImageBuilder, ImageState, Registry, RootImages};
use crate::job::{JobInputs, JobRunner};
use crate::logs::now_ms;
use crate::plan::Pipeline;
use crate::progress::{Progress, RunEvent};
use crate::result::{ImageResult, JobResult, RunResult};
use crate::secrets::{self, SecretValues};
use crate::services::SandboxEnv;
use crate::workspace::{self, Persisted};

/// Where the engine keeps things and how much it runs at once.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// `DRYDOCK_HOME`: `runs/` (workspaces of running jobs), `sandbox/` (sandbox state),
    /// `snapshots/` (extracted image layers).
    pub home: PathBuf,
    /// Jobs running at once (`--jobs`); at least 1.
    pub max_parallel: usize,
    /// The binary the sandbox re-executes as its init (`None`: the current executable, which
    /// must call `drydock_sandbox::maybe_run_init` first in `main`).
    pub init_binary: Option<PathBuf>,
    /// Keep each job's workspace after the run (under `runs/<id>/`), for debugging.
    pub keep_workspaces: bool,
    /// The platform of job, service and built images.
    pub platform: Platform,
    /// The `drydock` binary, put on the `PATH` of host-shell steps (as `drydock`) so they can
    /// call it (`drydock copy local:... oci:...`).
    pub drydock_binary: Option<PathBuf>,
}

impl EngineConfig {
    pub fn new(home: impl Into<PathBuf>) -> Self {
        Self {
            home: home.into(),
            max_parallel: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            init_binary: None,
            keep_workspaces: false,
            platform: Platform::host(),
            drydock_binary: None,
        }
    }
}

/// Runs pipelines. One per process; share it behind an `Arc`.
pub struct Engine {
    pub(crate) cfg: EngineConfig,
    pub(crate) db: Arc<Db>,
    pub(crate) store: Arc<Store>,
    pub(crate) registry: Arc<dyn Registry>,
    pub(crate) builder: Arc<dyn ImageBuilder>,
    pub(crate) roots: RootImages,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("cfg", &self.cfg).finish()
    }
}

/// One run to make: the pipeline, the event, where the source is, the secrets, and the
/// caller's progress sink and cancellation token.
pub struct PipelineRun {
    /// The project (repository) name; runs are listed per project.
    pub project: String,
    pub pipeline: Arc<Pipeline>,
    pub event: Event,
    /// The source tree. Each job works in its own copy of it.
    pub source: PathBuf,
    /// Copy only what git lists (tracked and untracked-not-ignored files; uncommitted changes
    /// included) instead of the whole directory.
    pub git_files_only: bool,
    pub secrets: SecretValues,
    /// `--job NAME`: run this job and what it needs.
    pub only_job: Option<String>,
    /// Why the run exists ("push to main (abc1234)"); default: from the event.
    pub cause: Option<String>,
    /// Set when the run was recorded by [`Engine::queue`].
    pub run_id: Option<i64>,
    pub progress: Arc<dyn Progress>,
    pub cancel: Cancel,
}

impl std::fmt::Debug for PipelineRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineRun")
            .field("project", &self.project)
            .field("event", &self.event)
            .field("source", &self.source)
            .field("only_job", &self.only_job)
            .field("run_id", &self.run_id)
            .finish()
    }
}

/// A job kept from an earlier run by [`Engine::run_keeping`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeptJob {
    /// The run it passed in.
    pub from_run: i64,
    /// What it persisted there (handed to the jobs that attach it).
    pub persisted: Option<Persisted>,
    /// Its `outputs:` there (handed to the jobs that need it). Absent in records written
    /// before outputs were kept.
    #[serde(default)]
    pub outputs: BTreeMap<String, String>,
}

/// How a finished job looks to the jobs after it.
#[derive(Debug, Clone)]
pub(crate) struct Finished {
    pub status: Status,
    pub reason: Option<String>,
    /// Failed with `continue-on-error`: counts as a success for dependents and the run.
    pub continued: bool,
    /// `images.NAME` as this job left it (built or pushed here).
    pub images: BTreeMap<String, ImageState>,
    pub persisted: Option<Persisted>,
    /// The job's `outputs:` as evaluated when it ended (outputs holding a secret left out).
    pub outputs: BTreeMap<String, String>,
    pub result: JobResult,
}

impl Finished {
    fn failed(name: &str, reason: String) -> Self {
        Finished {
            status: Status::Failure,
            reason: Some(reason.clone()),
            continued: false,
            images: BTreeMap::new(),
            persisted: None,
            outputs: BTreeMap::new(),
            result: JobResult {
                name: name.to_string(),
                status: Status::Failure,
                reason: Some(reason),
                continued_on_error: false,
                steps: Vec::new(),
                persisted: None,
                outputs: BTreeMap::new(),
                duration_ms: 0,
            },
        }
    }

    pub(crate) fn ok(&self) -> bool {
        self.status == Status::Success || self.continued
    }
}

fn result_word(f: &Finished) -> &'static str {
    if f.continued {
        return "success";
    }
    match f.status {
        Status::Success => "success",
        Status::Failure | Status::Interrupted => "failure",
        Status::Cancelled => "cancelled",
        _ => "skipped",
    }
}

enum Slot {
    Waiting,
    Running,
    Done(Box<Finished>),
}

impl Engine {
    pub fn new(
        cfg: EngineConfig,
        db: Arc<Db>,
        store: Arc<Store>,
        registry: Arc<dyn Registry>,
        builder: Arc<dyn ImageBuilder>,
    ) -> Self {
        let roots = RootImages::new(
            store.clone(),
            &cfg.home.join("snapshots"),
            registry.clone(),
            cfg.platform.clone(),
        );
        Self {
            cfg,
            db,
            store,
            registry,
            builder,
            roots,
        }
    }

    pub fn db(&self) -> &Arc<Db> {
        &self.db
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Records the run (queued) and its selected jobs, and sets `run.run_id`.
    pub fn queue(&self, run: &mut PipelineRun) -> Result<i64, EngineError> {
        let graph = Graph::new(&run.pipeline).map_err(EngineError::Pipeline)?;
        let selected = graph
            .select(run.only_job.as_deref())
            .map_err(EngineError::Pipeline)?;
        let cause = run
            .cause
            .clone()
            .unwrap_or_else(|| run.event.describe_cause());
        let id = self.db.create_run(&NewRun {
            project: run.project.clone(),
            pipeline: run.pipeline.file.clone(),
            event: run.event.name.clone(),
            git_ref: run.event.git_ref.clone(),
            sha: run.event.sha.clone(),
            cause,
            context: serde_json::to_value(&run.event).unwrap_or_default(),
            created_at: now_ms(),
        })?;
        for &i in &selected {
            let j = &run.pipeline.jobs[i];
            self.db.create_job(id, &j.name, &j.needs)?;
        }
        run.run_id = Some(id);
        Ok(id)
    }

    /// Runs the pipeline to the end. Errors are for runs that could not run at all (a broken
    /// graph, the database); failed jobs are in the result.
    pub fn run(&self, run: PipelineRun) -> Result<RunResult, EngineError> {
        self.run_keeping(run, &BTreeMap::new())
    }

    /// Like [`Engine::run`], with jobs kept from an earlier run (the server's "re-run the
    /// failed jobs"): a kept job does not run again; it is recorded as passed (the reason
    /// names the run it passed in) and hands what it persisted to the jobs after it.
    pub fn run_keeping(
        &self,
        mut run: PipelineRun,
        kept: &BTreeMap<String, KeptJob>,
    ) -> Result<RunResult, EngineError> {
        let started = Instant::now();
        let graph = Graph::new(&run.pipeline).map_err(EngineError::Pipeline)?;
        let selected = graph
            .select(run.only_job.as_deref())
            .map_err(EngineError::Pipeline)?;
        let run_id = match run.run_id {
            Some(id) => id,
            None => self.queue(&mut run)?,
        };
        let job_ids: BTreeMap<String, i64> = self
            .db
            .jobs(run_id)?
            .into_iter()
            .map(|j| (j.name, j.id))
            .collect();
        self.db.start_run(run_id, now_ms())?;
        let cause = run
            .cause
            .clone()
            .unwrap_or_else(|| run.event.describe_cause());
        run.progress.event(&RunEvent::RunStarted {
            run_id,
            cause: &cause,
        });

        let run_dir = self.cfg.home.join("runs").join(run_id.to_string());
        let outcome = self.run_jobs(&run, run_id, &run_dir, &graph, &selected, &job_ids, kept);
        if !self.cfg.keep_workspaces {
            let _ = remove_tree(&run_dir);
        }
        let (slots, run_reason) = outcome?;

        let mut jobs = Vec::new();
        let mut images = Vec::new();
        let mut failed = Vec::new();
        let mut any_cancelled = false;
        let mut all_filtered = true;
        for &i in &selected {
            if let Some(f) = &slots[i] {
                if (f.status == Status::Failure || f.status == Status::Interrupted) && !f.continued
                {
                    failed.push(f.result.name.clone());
                }
                any_cancelled |= f.status == Status::Cancelled;
                all_filtered &= f.status == Status::Skipped
                    && f.reason
                        .as_deref()
                        .is_some_and(|r| r.starts_with("filtered"));
                jobs.push(f.result.clone());
                for img in f.images.values() {
                    // One entry per image and digest, in its final state (built by one job,
                    // pushed by a later one).
                    if let Some(pos) = images.iter().position(|i: &ImageResult| {
                        i.image == img.name && i.digest == img.digest.to_string()
                    }) {
                        if images[pos].pushed && !img.pushed {
                            continue;
                        }
                        images.remove(pos);
                    }
                    images.push(ImageResult {
                        image: img.name.clone(),
                        job: img.job.clone(),
                        digest: img.digest.to_string(),
                        tags: img.tags.clone(),
                        pushed: img.pushed,
                        reason: img.reason.clone(),
                        cached: img.cached,
                    });
                }
            }
        }
        let (status, reason) = if let Some(r) = run_reason {
            (Status::Skipped, Some(r))
        } else if run.cancel.is_cancelled() || any_cancelled {
            (Status::Cancelled, Some("cancelled".to_string()))
        } else if !failed.is_empty() {
            let what = if failed.len() == 1 { "job" } else { "jobs" };
            (
                Status::Failure,
                Some(format!("{what} {} failed", failed.join(", "))),
            )
        } else if all_filtered && !jobs.is_empty() {
            (
                Status::Skipped,
                Some("every job was filtered out for this event".to_string()),
            )
        } else {
            (Status::Success, None)
        };
        self.db
            .finish_run(run_id, status, reason.as_deref(), now_ms())?;
        run.progress.event(&RunEvent::RunFinished {
            run_id,
            status,
            reason: reason.as_deref(),
        });
        Ok(RunResult {
            run_id,
            status,
            reason,
            event: run.event.clone(),
            jobs,
            images,
            duration_ms: started.elapsed().as_millis() as u64,
        })
    }

    /// Schedules the selected jobs. Returns each job's end, and a reason when the whole run was
    /// filtered out by `on:`.
    #[allow(clippy::too_many_arguments)]
    fn run_jobs(
        &self,
        run: &PipelineRun,
        run_id: i64,
        run_dir: &std::path::Path,
        graph: &Graph,
        selected: &BTreeSet<usize>,
        job_ids: &BTreeMap<String, i64>,
        kept: &BTreeMap<String, KeptJob>,
    ) -> Result<(Vec<Option<Finished>>, Option<String>), EngineError> {
        let n = graph.len();
        let pipeline = &run.pipeline;
        let mut slots: Vec<Slot> = (0..n).map(|_| Slot::Waiting).collect();
        let job_id = |i: usize| -> Result<i64, EngineError> {
            job_ids.get(&pipeline.jobs[i].name).copied().ok_or_else(|| {
                EngineError::Pipeline(format!(
                    "run {run_id} has no record of job {}",
                    pipeline.jobs[i].name
                ))
            })
        };

        // The pipeline's `on:`.
        if let Some(on) = &pipeline.on
            && let Err(why) = on(&run.event)
        {
            let reason = format!("filtered: {why}");
            let mut out: Vec<Option<Finished>> = (0..n).map(|_| None).collect();
            for &i in selected {
                let f =
                    self.finish_without_running(run, job_id(i)?, i, Status::Skipped, &reason)?;
                out[i] = Some(f);
            }
            return Ok((out, Some(reason)));
        }

        // The source, copied once so every job sees the same tree.
        let source = run_dir.join("source");
        let ws_err = |source_err: std::io::Error, path: &std::path::Path| EngineError::Workspace {
            path: path.to_path_buf(),
            source: source_err,
        };
        if run.git_files_only {
            let (top, files) = crate::git::working_tree_files(&run.source)?;
            workspace::copy_files(&top, &files, &source).map_err(|e| ws_err(e, &run.source))?;
        } else {
            workspace::copy_tree(&run.source, &source, true).map_err(|e| ws_err(e, &run.source))?;
        }

        // `drydock` on the PATH of host-shell steps.
        let bin_dir = match &self.cfg.drydock_binary {
            Some(b) => {
                let dir = run_dir.join("bin");
                std::fs::create_dir_all(&dir).map_err(|e| ws_err(e, &dir))?;
                let link = dir.join("drydock");
                let _ = std::fs::remove_file(&link);
                std::os::unix::fs::symlink(b, &link).map_err(|e| ws_err(e, &link))?;
                Some(dir)
            }
            None => None,
        };
        let masker = secrets::masker(&run.secrets);
        let secret_keys = secrets::all_keys(pipeline);
        let sbx = SandboxEnv {
            state_dir: self.cfg.home.join("sandbox"),
            init_binary: self.cfg.init_binary.clone(),
        };
        let max = self.cfg.max_parallel.max(1);
        let (tx, rx) = mpsc::channel::<(usize, Finished)>();
        let mut running = 0usize;
        let result: Result<(), EngineError> = std::thread::scope(|scope| {
            loop {
                // Start (or settle) every job whose needs are done, in file order.
                let mut progressed = true;
                while progressed {
                    progressed = false;
                    for &i in selected {
                        if !matches!(slots[i], Slot::Waiting) {
                            continue;
                        }
                        let needs_done = graph.needs[i]
                            .iter()
                            .all(|&d| matches!(slots[d], Slot::Done(_)));
                        if !needs_done {
                            continue;
                        }
                        if let Some(k) = kept.get(&pipeline.jobs[i].name) {
                            let mut f = self.finish_without_running(
                                run,
                                job_id(i)?,
                                i,
                                Status::Success,
                                &format!("kept: passed in run {}", k.from_run),
                            )?;
                            f.persisted = k.persisted.clone();
                            f.result.persisted = k.persisted.clone();
                            f.outputs = k.outputs.clone();
                            f.result.outputs = k.outputs.clone();
                            slots[i] = Slot::Done(Box::new(f));
                            progressed = true;
                            continue;
                        }
                        let decision = self.decide(run, graph, i, &slots, &masker);
                        match decision {
                            Decision::Settle(status, reason) => {
                                let f = self.finish_without_running(
                                    run,
                                    job_id(i)?,
                                    i,
                                    status,
                                    &reason,
                                )?;
                                slots[i] = Slot::Done(Box::new(f));
                                progressed = true;
                            }
                            Decision::Run(needs_value) => {
                                if running >= max {
                                    continue;
                                }
                                let inputs = self.inputs(run, graph, i, &slots, needs_value);
                                let tx = tx.clone();
                                let id = job_id(i)?;
                                let runner = JobRunner {
                                    engine: self,
                                    run,
                                    run_id,
                                    job_id: id,
                                    index: i,
                                    dir: run_dir
                                        .join("jobs")
                                        .join(format!("{i}-{}", pipeline.jobs[i].name)),
                                    source: &source,
                                    masker: &masker,
                                    secret_keys: &secret_keys,
                                    sbx: &sbx,
                                    bin_dir: bin_dir.as_deref(),
                                };
                                slots[i] = Slot::Running;
                                running += 1;
                                progressed = true;
                                std::thread::Builder::new()
                                    .name(format!("job-{}", pipeline.jobs[i].name))
                                    .spawn_scoped(scope, move || {
                                        let name = pipeline.jobs[i].name.clone();
                                        let db = runner.engine.db.clone();
                                        let progress = run.progress.clone();
                                        let out = std::panic::catch_unwind(
                                            std::panic::AssertUnwindSafe(|| runner.run(inputs)),
                                        )
                                        .unwrap_or_else(|p| {
                                            // A bug must not hang the run: the job fails, saying so.
                                            let what = p
                                                .downcast_ref::<String>()
                                                .cloned()
                                                .or_else(|| {
                                                    p.downcast_ref::<&str>().map(|s| s.to_string())
                                                })
                                                .unwrap_or_default();
                                            let reason =
                                                format!("internal error in drydock: {what}");
                                            let _ = db.set_job_status(
                                                id,
                                                Status::Failure,
                                                Some(&reason),
                                                now_ms(),
                                            );
                                            progress.event(&RunEvent::Job {
                                                job: &name,
                                                status: Status::Failure,
                                                reason: Some(&reason),
                                            });
                                            Finished::failed(&name, reason)
                                        });
                                        let _ = tx.send((i, out));
                                    })
                                    .map_err(|e| {
                                        EngineError::Pipeline(format!(
                                            "cannot start a job thread: {e}"
                                        ))
                                    })?;
                            }
                        }
                    }
                }
                if running == 0 {
                    break;
                }
                let Ok((i, f)) = rx.recv() else { break };
                running -= 1;
                slots[i] = Slot::Done(Box::new(f));
            }
            Ok(())
        });
        result?;
        let out = slots
            .into_iter()
            .map(|s| match s {
                Slot::Done(f) => Some(*f),
                _ => None,
            })
            .collect();
        Ok((out, None))
    }

    /// The `needs` context of job `i`.
    fn needs_value(&self, graph: &Graph, i: usize, slots: &[Slot]) -> Value {
        let mut m = BTreeMap::new();
        for &d in &graph.needs[i] {
            if let Slot::Done(f) = &slots[d] {
                m.insert(
                    graph.names[d].clone(),
                    Value::from_pairs([
                        ("result", Value::string(result_word(f))),
                        (
                            "outputs",
                            Value::object(
                                f.outputs
                                    .iter()
                                    .map(|(k, v)| (k.clone(), Value::string(v)))
                                    .collect(),
                            ),
                        ),
                    ]),
                );
            }
        }
        Value::object(m)
    }

    fn decide(
        &self,
        run: &PipelineRun,
        graph: &Graph,
        i: usize,
        slots: &[Slot],
        masker: &Masker,
    ) -> Decision {
        let job = &run.pipeline.jobs[i];
        if run.cancel.is_cancelled() {
            return Decision::Settle(Status::Cancelled, "run cancelled".into());
        }
        if let Some(filter) = &job.filter
            && let Err(why) = filter(&run.event)
        {
            return Decision::Settle(Status::Skipped, format!("filtered: {why}"));
        }
        let mut failed_need = None;
        let mut skipped_need = None;
        let mut cancelled_need = None;
        for &d in &graph.needs[i] {
            if let Slot::Done(f) = &slots[d] {
                if f.ok() {
                    continue;
                }
                match f.status {
                    Status::Cancelled => cancelled_need = cancelled_need.or(Some(d)),
                    Status::Skipped => skipped_need = skipped_need.or(Some(d)),
                    _ => failed_need = failed_need.or(Some(d)),
                }
            }
        }
        let status = if cancelled_need.is_some() {
            JobStatus::Cancelled
        } else if failed_need.is_some() || skipped_need.is_some() {
            JobStatus::Failure
        } else {
            JobStatus::Success
        };
        let needs_reason = || {
            if let Some(d) = failed_need {
                format!("needed job {} failed", graph.names[d])
            } else if let Some(d) = skipped_need {
                format!("needed job {} was skipped", graph.names[d])
            } else if let Some(d) = cancelled_need {
                format!("needed job {} was cancelled", graph.names[d])
            } else {
                String::new()
            }
        };
        let needs_value = self.needs_value(graph, i, slots);
        match &job.condition {
            None => {
                if status == JobStatus::Success {
                    Decision::Run(needs_value)
                } else {
                    Decision::Settle(Status::Skipped, needs_reason())
                }
            }
            Some(c) => {
                let contexts = Contexts {
                    github: run.event.github_context(&[]),
                    env: BTreeMap::new(),
                    needs: needs_value.clone(),
                    images: self.visible_images(graph, i, slots),
                    job_status: "",
                    ..Default::default()
                };
                let mut contexts = contexts;
                // The pipeline's env is visible to a job's `if`.
                if ctx::env_pairs(&run.pipeline.env, &mut contexts).is_err() {
                    contexts.env.clear();
                }
                match ctx::cond(c, &contexts.value(), status) {
                    Ok(true) => Decision::Run(needs_value),
                    Ok(false) if !c.cond.explicit_status && status != JobStatus::Success => {
                        Decision::Settle(Status::Skipped, needs_reason())
                    }
                    Ok(false) => Decision::Settle(
                        Status::Skipped,
                        format!("if: {} was false", c.text.trim()),
                    ),
                    Err(e) => Decision::Settle(Status::Failure, masker.mask(&e)),
                }
            }
        }
    }

    /// `images.*` as the jobs `i` needs (transitively) left them.
    fn visible_images(
        &self,
        graph: &Graph,
        i: usize,
        slots: &[Slot],
    ) -> BTreeMap<String, ImageState> {
        let mut images = BTreeMap::new();
        for d in graph.ancestors_in_order(i) {
            if let Slot::Done(f) = &slots[d] {
                for (k, v) in &f.images {
                    images.insert(k.clone(), v.clone());
                }
            }
        }
        images
    }

    fn inputs(
        &self,
        run: &PipelineRun,
        graph: &Graph,
        i: usize,
        slots: &[Slot],
        needs: Value,
    ) -> JobInputs {
        let mut persisted = Vec::new();
        for d in graph.ancestors_in_order(i) {
            if let Slot::Done(f) = &slots[d]
                && let Some(p) = &f.persisted
            {
                persisted.push(p.clone());
            }
        }
        let _ = run;
        JobInputs {
            needs,
            images: self.visible_images(graph, i, slots),
            persisted,
        }
    }

    /// Records a job that does not run (skipped, cancelled, or failed before starting).
    fn finish_without_running(
        &self,
        run: &PipelineRun,
        job_id: i64,
        i: usize,
        status: Status,
        reason: &str,
    ) -> Result<Finished, EngineError> {
        let name = &run.pipeline.jobs[i].name;
        self.db
            .set_job_status(job_id, status, Some(reason), now_ms())?;
        run.progress.event(&RunEvent::Job {
            job: name,
            status,
            reason: Some(reason),
        });
        let result = JobResult {
            name: name.clone(),
            status,
            reason: Some(reason.to_string()),
            continued_on_error: false,
            steps: Vec::new(),
            persisted: None,
            outputs: BTreeMap::new(),
            duration_ms: 0,
        };
        Ok(Finished {
            status,
            reason: Some(reason.to_string()),
            continued: false,
            images: BTreeMap::new(),
            persisted: None,
            outputs: BTreeMap::new(),
            result,
        })
    }
}

enum Decision {
    Run(Value),
    Settle(Status, String),
}

/// Removes a tree, including directories left read-only by jobs.
pub(crate) fn remove_tree(dir: &std::path::Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) => {
            make_writable(dir);
            std::fs::remove_dir_all(dir)
        }
    }
}

fn make_writable(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(md) = std::fs::symlink_metadata(dir)
        && md.is_dir()
    {
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                make_writable(&e.path());
            }
        }
    }
}
