//! One job from start to end: secrets checked, workspace copied, image resolved, services
//! started, steps run in order (host shell or sandbox; build, push, attach), files persisted,
//! everything torn down, and the result recorded.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use drydock_db::{RunImage, Status};
use drydock_expr::{JobStatus, Value};
use drydock_oci::Reference;
use drydock_sandbox::{Changes, Mount, NetworkMode, Root, SandboxSpec, Stdio};
use drydock_secret::{Masker, Secret};

use crate::ctx::{self, Contexts};
use crate::engine::{Engine, Finished, PipelineRun, remove_tree};
use crate::host::{self, HostCommand};
use crate::images::{BuildRequest, ImageState, RootImage};
use crate::logs::{JobLog, now_ms};
use crate::plan::{Action, Attach, Job, PushStep, Step};
use crate::progress::RunEvent;
use crate::result::{JobResult, StepResult};
use crate::secrets;
use crate::services::{self, SandboxEnv, ServiceSpec};
use crate::workspace::{self, Persisted};

/// Where the workspace is mounted in a job's sandbox.
pub const SANDBOX_WORKSPACE: &str = "/workspace";
/// Where the step scripts and output files are mounted in a job's sandbox.
const SANDBOX_CTL: &str = "/.drydock";

/// What a job gets from the jobs it needs.
pub(crate) struct JobInputs {
    /// The `needs` context.
    pub needs: Value,
    /// `images.*` as the needed jobs left them.
    pub images: BTreeMap<String, ImageState>,
    /// What the needed jobs (transitively) persisted, needed first.
    pub persisted: Vec<Persisted>,
}

pub(crate) struct JobRunner<'a> {
    pub engine: &'a Engine,
    pub run: &'a PipelineRun,
    pub run_id: i64,
    pub job_id: i64,
    pub index: usize,
    /// This job's directory: `workspace/` and `ctl/`.
    pub dir: PathBuf,
    pub source: &'a Path,
    pub masker: &'a Masker,
    pub secret_keys: &'a [String],
    pub sbx: &'a SandboxEnv,
    /// A directory holding `drydock`, put first on the `PATH` of host-shell steps.
    pub bin_dir: Option<&'a Path>,
}

struct StepEnd {
    status: Status,
    exit_code: Option<i32>,
    reason: Option<String>,
    outputs: BTreeMap<String, String>,
}

impl StepEnd {
    fn ok() -> Self {
        Self {
            status: Status::Success,
            exit_code: None,
            reason: None,
            outputs: BTreeMap::new(),
        }
    }

    fn fail(reason: impl Into<String>) -> Self {
        Self {
            status: Status::Failure,
            exit_code: None,
            reason: Some(reason.into()),
            outputs: BTreeMap::new(),
        }
    }
}

/// Everything a running job accumulates.
struct State {
    contexts: Contexts,
    /// The pipeline's and the job's env, evaluated.
    env: Vec<(String, String)>,
    /// Variables steps added through `$GITHUB_ENV`.
    added_env: Vec<(String, String)>,
    secrets: Vec<(String, Secret)>,
    workspace: PathBuf,
    ctl: PathBuf,
    root: Option<RootImage>,
    /// Each sandboxed step's changes, kept so the next step sees them (as overlay lowers).
    uppers: Vec<Changes>,
    /// In copy mode, the whole tree the last step left.
    rootfs: Option<PathBuf>,
    services: Vec<services::Running>,
    service_names: Vec<String>,
    /// Images built or pushed by this job.
    touched: BTreeSet<String>,
    /// The first failure that fails the job.
    failure: Option<String>,
    steps: Vec<StepResult>,
    deadline: Option<Instant>,
    job_timed_out: bool,
    persisted: Option<Persisted>,
}

fn status_word(s: Status) -> &'static str {
    match s {
        Status::Success => "success",
        Status::Failure | Status::Interrupted => "failure",
        Status::Cancelled => "cancelled",
        _ => "skipped",
    }
}

fn minutes(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 60.0 && (s / 60.0).fract() == 0.0 {
        format!("{} minute{}", s / 60.0, if s == 60.0 { "" } else { "s" })
    } else {
        format!("{s:.0}s")
    }
}

impl JobRunner<'_> {
    fn job(&self) -> &Job {
        &self.run.pipeline.jobs[self.index]
    }

    pub(crate) fn run(self, inputs: JobInputs) -> Finished {
        let started = Instant::now();
        let job = self.job();
        let db = &self.engine.db;
        let _ = db.set_job_status(self.job_id, Status::Running, None, now_ms());
        self.run.progress.event(&RunEvent::Job {
            job: &job.name,
            status: Status::Running,
            reason: None,
        });
        let log = JobLog::new(
            db.clone(),
            self.job_id,
            &job.name,
            self.masker.clone(),
            self.run.progress.clone(),
        );
        let mut st = State {
            contexts: Contexts::default(),
            env: Vec::new(),
            added_env: Vec::new(),
            secrets: Vec::new(),
            workspace: self.dir.join("workspace"),
            ctl: self.dir.join("ctl"),
            root: None,
            uppers: Vec::new(),
            rootfs: None,
            services: Vec::new(),
            service_names: Vec::new(),
            touched: BTreeSet::new(),
            failure: None,
            steps: Vec::new(),
            deadline: job.timeout.map(|t| started + t),
            job_timed_out: false,
            persisted: None,
        };
        let mut images = inputs.images.clone();
        crate::ctx::set_workspace(Some(st.workspace.clone()));
        if let Err(why) = self.prepare(&mut st, &log, &inputs, &mut images) {
            st.failure = Some(why);
        }
        if st.failure.is_none() {
            self.steps(&mut st, &log, &inputs, &mut images);
        }
        // Tear down: services, then persist what later jobs need.
        for svc in std::mem::take(&mut st.services) {
            let name = svc.name.clone();
            let how = svc.stop();
            log.system(None, format!("service {name}: {how}"));
        }
        let cancelled = self.run.cancel.is_cancelled();
        let outputs = self.outputs(&mut st, &log, &images, cancelled);
        if st.failure.is_none() && !cancelled && !job.persist.is_empty() {
            match workspace::persist(&self.engine.store, &st.workspace, &job.name, &job.persist) {
                Ok(p) => {
                    log.system(
                        None,
                        format!(
                            "persisted {} as {} ({} bytes)",
                            job.persist.join(", "),
                            p.digest,
                            p.size
                        ),
                    );
                    st.persisted = Some(p);
                }
                Err(e) => st.failure = Some(e),
            }
        }
        st.uppers.clear();
        crate::ctx::set_workspace(None);
        if !self.engine.cfg.keep_workspaces {
            let _ = remove_tree(&self.dir);
        }

        let continue_on_error = self.flag(&job.continue_on_error, &st.contexts);
        let (status, reason, continued) = match &st.failure {
            _ if cancelled && (st.failure.is_some() || st.steps.len() < job.steps.len()) => {
                (Status::Cancelled, Some("cancelled".to_string()), false)
            }
            Some(r) if continue_on_error => (
                Status::Failure,
                Some(format!("{r} (continue-on-error: the run goes on)")),
                true,
            ),
            Some(r) => (Status::Failure, Some(r.clone()), false),
            None => (Status::Success, None, false),
        };
        let reason = reason.map(|r| self.masker.mask(&r));
        // Images this job built or pushed, with why they were not pushed.
        let mut own = BTreeMap::new();
        for name in &st.touched {
            if let Some(img) = images.get(name) {
                let _ = db.record_image(
                    self.run_id,
                    &RunImage {
                        job: job.name.clone(),
                        image: name.clone(),
                        digest: img.digest.to_string(),
                        tags: img.tags.clone(),
                        pushed: img.pushed,
                        reason: img.reason.clone(),
                    },
                );
                own.insert(name.clone(), img.clone());
            }
        }
        log.flush();
        if let Some(e) = log.db_error() {
            self.run.progress.event(&RunEvent::Log {
                job: &job.name,
                step: None,
                stream: "system",
                line: &format!("warning: some log lines were not recorded: {e}"),
            });
        }
        let _ = db.set_job_status(self.job_id, status, reason.as_deref(), now_ms());
        self.run.progress.event(&RunEvent::Job {
            job: &job.name,
            status,
            reason: reason.as_deref(),
        });
        Finished {
            status,
            reason: reason.clone(),
            continued,
            images: own,
            persisted: st.persisted.clone(),
            outputs: outputs.clone(),
            result: JobResult {
                name: job.name.clone(),
                status,
                reason,
                continued_on_error: continued,
                steps: st.steps,
                persisted: st.persisted,
                outputs,
                duration_ms: started.elapsed().as_millis() as u64,
            },
        }
    }

    /// The job's `outputs:`, evaluated at its end (success or failure, as GitHub does) in its
    /// contexts. An output whose value the masker would mask is left out, with a warning in the
    /// log; one that fails to evaluate fails the job.
    fn outputs(
        &self,
        st: &mut State,
        log: &Arc<JobLog>,
        images: &BTreeMap<String, ImageState>,
        cancelled: bool,
    ) -> BTreeMap<String, String> {
        let job = self.job();
        let mut out = BTreeMap::new();
        if job.outputs.is_empty() {
            return out;
        }
        st.contexts.job_status = if cancelled {
            "cancelled"
        } else if st.failure.is_some() {
            "failure"
        } else {
            "success"
        };
        st.contexts.images = images.clone();
        let value = st.contexts.value();
        for (name, t) in &job.outputs {
            match ctx::text(t, &value) {
                Ok(v) if self.masker.mask(&v) != v => log.system(
                    None,
                    format!(
                        "warning: output {name} was skipped because it contains a secret (outputs holding secrets are not passed to other jobs)"
                    ),
                ),
                Ok(v) => {
                    out.insert(name.clone(), v);
                }
                Err(e) => {
                    let e = format!("output {name}: {}", self.masker.mask(&e));
                    log.system(None, &e);
                    if st.failure.is_none() {
                        st.failure = Some(e);
                    }
                }
            }
        }
        out
    }

    /// Secrets, contexts, env, workspace, image, services.
    fn prepare(
        &self,
        st: &mut State,
        log: &Arc<JobLog>,
        inputs: &JobInputs,
        images: &mut BTreeMap<String, ImageState>,
    ) -> Result<(), String> {
        let job = self.job();
        let run = self.run;
        st.secrets = secrets::for_job(
            &run.pipeline,
            &run.project,
            &job.name,
            &job.secrets,
            &run.event,
            &run.secrets,
        )?;
        let ws_shown = if job.image.is_some() {
            SANDBOX_WORKSPACE.to_string()
        } else {
            st.workspace.display().to_string()
        };
        st.contexts = Contexts {
            github: run.event.github_context(&[
                ("workspace", Value::string(&ws_shown)),
                ("run_id", Value::string(self.run_id.to_string())),
                ("job", Value::string(&job.name)),
            ]),
            env: BTreeMap::new(),
            needs: inputs.needs.clone(),
            images: images.clone(),
            steps: BTreeMap::new(),
            secrets: st
                .secrets
                .iter()
                .map(|(k, v)| (k.clone(), v.expose().to_string()))
                .collect(),
            job_status: "success",
        };
        let mut env = ctx::env_pairs(&run.pipeline.env, &mut st.contexts)?;
        env.extend(ctx::env_pairs(&job.env, &mut st.contexts)?);
        st.env = env;

        std::fs::create_dir_all(&st.ctl)
            .map_err(|e| format!("job directory {}: {e}", st.ctl.display()))?;
        workspace::copy_tree(self.source, &st.workspace, false)
            .map_err(|e| format!("copying the workspace: {e}"))?;

        let log_line = |s: &str| log.system(None, s);
        if let Some(image) = &job.image {
            let reference = ctx::text(image, &st.contexts.value())?;
            let root = self
                .engine
                .roots
                .resolve(reference.trim(), &log_line)
                .map_err(|e| format!("job image: {e}"))?;
            st.root = Some(root);
        }
        if !job.services.is_empty() {
            let mut specs = Vec::new();
            for s in &job.services {
                let reference = ctx::text(&s.image, &st.contexts.value())?;
                let image = self
                    .engine
                    .roots
                    .resolve(reference.trim(), &log_line)
                    .map_err(|e| format!("service {}: {e}", s.name))?;
                let mut c = st.contexts.clone();
                let env = ctx::env_pairs(&s.env, &mut c)?;
                let command = match &s.command {
                    Some(t) => Some(vec![
                        "/bin/sh".to_string(),
                        "-c".to_string(),
                        ctx::text(t, &c.value())?,
                    ]),
                    None => None,
                };
                specs.push(ServiceSpec {
                    name: s.name.clone(),
                    image,
                    env,
                    command,
                    ready: s
                        .ready
                        .as_ref()
                        .map(|r| ctx::text(r, &c.value()))
                        .transpose()?,
                    ready_timeout: s.ready_timeout,
                });
            }
            st.service_names = job.services.iter().map(|s| s.name.clone()).collect();
            st.services =
                services::start(specs, &st.service_names, self.sbx, log, &self.run.cancel)?;
        }
        Ok(())
    }

    fn steps(
        &self,
        st: &mut State,
        log: &Arc<JobLog>,
        inputs: &JobInputs,
        images: &mut BTreeMap<String, ImageState>,
    ) {
        let job = self.job();
        for (idx, step) in job.steps.iter().enumerate() {
            let name = step.display_name();
            let continue_on_error = self.flag(&step.continue_on_error, &st.contexts);
            let cancelled = self.run.cancel.is_cancelled();
            let status = if cancelled {
                JobStatus::Cancelled
            } else if st.failure.is_some() {
                JobStatus::Failure
            } else {
                JobStatus::Success
            };
            st.contexts.job_status = match status {
                JobStatus::Success => "success",
                JobStatus::Failure => "failure",
                JobStatus::Cancelled => "cancelled",
            };
            st.contexts.images = images.clone();
            // Does it run?
            let skip: Option<String> = if cancelled {
                Some("cancelled".into())
            } else if st.job_timed_out {
                Some("the job timed out".into())
            } else {
                match &step.condition {
                    None if status != JobStatus::Success => Some("an earlier step failed".into()),
                    None => None,
                    Some(c) => match ctx::cond(c, &st.contexts.value(), status) {
                        Ok(true) => None,
                        Ok(false) if !c.cond.explicit_status && status != JobStatus::Success => {
                            Some("an earlier step failed".into())
                        }
                        Ok(false) => Some(format!("if: {} was false", c.text.trim())),
                        Err(e) => {
                            let e = self.masker.mask(&e);
                            self.record_unstarted(st, idx, &name, Status::Failure, &e);
                            if !continue_on_error && st.failure.is_none() {
                                st.failure = Some(format!("step {} ({name}): {e}", idx + 1));
                            }
                            continue;
                        }
                    },
                }
            };
            if let Some(why) = skip {
                let s = if cancelled {
                    Status::Cancelled
                } else {
                    Status::Skipped
                };
                self.record_unstarted(st, idx, &name, s, &why);
                continue;
            }

            let step_id = self
                .engine
                .db
                .start_step(self.job_id, idx as i64, &name, now_ms())
                .ok();
            self.run.progress.event(&RunEvent::StepStarted {
                job: &job.name,
                index: idx,
                name: &name,
            });
            let end = match self.step(st, log, inputs, images, idx, step) {
                Ok(e) => e,
                Err(e) => StepEnd::fail(e),
            };
            let reason = end.reason.as_deref().map(|r| self.masker.mask(r));
            if let Some(r) = &reason
                && end.status != Status::Success
            {
                log.system(Some(idx), format!("step failed: {r}"));
            }
            log.flush();
            if let Some(id) = step_id {
                let _ = self.engine.db.finish_step(
                    id,
                    end.status,
                    end.exit_code.map(i64::from),
                    reason.as_deref(),
                    now_ms(),
                );
            }
            self.run.progress.event(&RunEvent::StepFinished {
                job: &job.name,
                index: idx,
                name: &name,
                status: end.status,
                exit_code: end.exit_code,
                reason: reason.as_deref(),
            });
            let outcome = status_word(end.status);
            let conclusion = if end.status == Status::Failure && continue_on_error {
                "success"
            } else {
                outcome
            };
            if let Some(id) = &step.id {
                st.contexts.steps.insert(
                    id.clone(),
                    Value::from_pairs([
                        ("outcome", Value::string(outcome)),
                        ("conclusion", Value::string(conclusion)),
                        (
                            "outputs",
                            Value::object(
                                end.outputs
                                    .iter()
                                    .map(|(k, v)| (k.clone(), Value::string(v)))
                                    .collect(),
                            ),
                        ),
                    ]),
                );
            }
            if end.status != Status::Success && !continue_on_error && st.failure.is_none() {
                let r = reason.clone().unwrap_or_else(|| "failed".into());
                st.failure = Some(format!("step {} ({name}) failed: {r}", idx + 1));
            }
            st.steps.push(StepResult {
                index: idx,
                name,
                status: end.status,
                exit_code: end.exit_code,
                reason,
            });
        }
    }

    fn record_unstarted(&self, st: &mut State, idx: usize, name: &str, status: Status, why: &str) {
        let db = &self.engine.db;
        if let Ok(id) = db.start_step(self.job_id, idx as i64, name, now_ms()) {
            let _ = db.finish_step(id, status, None, Some(why), now_ms());
        }
        self.run.progress.event(&RunEvent::StepFinished {
            job: &self.job().name,
            index: idx,
            name,
            status,
            exit_code: None,
            reason: Some(why),
        });
        st.steps.push(StepResult {
            index: idx,
            name: name.to_string(),
            status,
            exit_code: None,
            reason: Some(why.to_string()),
        });
    }

    /// A `continue-on-error` value; an expression that fails to evaluate counts as false.
    fn flag(&self, f: &crate::plan::Flag, contexts: &Contexts) -> bool {
        match f {
            crate::plan::Flag::Bool(b) => *b,
            crate::plan::Flag::Expr(t) => ctx::truthy(t, &contexts.value()).unwrap_or(false),
        }
    }

    /// The time a step may take: its own timeout, within what is left of the job's.
    fn step_timeout(&self, st: &State, step: &Step) -> Option<Duration> {
        let left = st
            .deadline
            .map(|d| d.saturating_duration_since(Instant::now()));
        match (step.timeout, left) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn step(
        &self,
        st: &mut State,
        log: &Arc<JobLog>,
        inputs: &JobInputs,
        images: &mut BTreeMap<String, ImageState>,
        idx: usize,
        step: &Step,
    ) -> Result<StepEnd, String> {
        match &step.action {
            Action::Run(script) => self.run_script(st, log, idx, step, script),
            Action::Build(name) => self.build(st, log, images, idx, step, name),
            Action::Push(p) => self.push(st, log, images, idx, step, p),
            Action::Attach(what) => {
                let chosen = match what {
                    Attach::All => workspace::select(&inputs.persisted, None, &self.job().needs)?,
                    Attach::Paths(p) => {
                        workspace::select(&inputs.persisted, Some(p.as_slice()), &self.job().needs)?
                    }
                    Attach::Jobs(jobs) => {
                        workspace::select_jobs(&inputs.persisted, jobs, &self.job().needs)?
                    }
                };
                for p in chosen {
                    workspace::restore(&self.engine.store, p, &st.workspace)?;
                    log.system(
                        Some(idx),
                        format!(
                            "attached {} from job {} ({})",
                            p.paths.join(", "),
                            p.job,
                            p.digest
                        ),
                    );
                }
                Ok(StepEnd::ok())
            }
        }
    }

    /// The environment of a step: the image's (in a sandbox) or the host's without any secret
    /// key, then CI variables, `images.*`, the pipeline's, job's and step's env, `$GITHUB_ENV`
    /// additions, and the job's secrets.
    fn step_env(
        &self,
        st: &mut State,
        step: &Step,
        idx: usize,
        sandboxed: bool,
    ) -> Result<Vec<(String, String)>, String> {
        let mut env: Vec<(String, String)> = Vec::new();
        let set = |env: &mut Vec<(String, String)>, k: &str, v: String| {
            env.retain(|(ek, _)| ek != k);
            env.push((k.to_string(), v));
        };
        if sandboxed {
            for (k, v) in st.root.as_ref().map(|r| r.env.clone()).unwrap_or_default() {
                set(&mut env, &k, v);
            }
        } else {
            for (k, v) in std::env::vars() {
                if self.secret_keys.contains(&k) || k == host::MARKER {
                    continue;
                }
                set(&mut env, &k, v);
            }
            if let Some(dir) = self.bin_dir {
                let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into());
                set(&mut env, "PATH", format!("{}:{path}", dir.display()));
            }
        }
        let (ws, ctl) = if sandboxed {
            (SANDBOX_WORKSPACE.to_string(), SANDBOX_CTL.to_string())
        } else {
            (
                st.workspace.display().to_string(),
                st.ctl.display().to_string(),
            )
        };
        set(&mut env, "CI", "true".into());
        set(&mut env, "DRYDOCK", "true".into());
        set(&mut env, "DRYDOCK_RUN_ID", self.run_id.to_string());
        set(&mut env, "DRYDOCK_JOB", self.job().name.clone());
        set(&mut env, "DRYDOCK_WORKSPACE", ws.clone());
        set(&mut env, "GITHUB_ACTIONS", "false".into());
        set(&mut env, "GITHUB_WORKSPACE", ws);
        set(&mut env, "GITHUB_RUN_ID", self.run_id.to_string());
        set(&mut env, "GITHUB_JOB", self.job().name.clone());
        for (k, v) in self.run.event.env_vars() {
            set(&mut env, &k, v);
        }
        let out = format!("{ctl}/output-{idx}");
        set(&mut env, "GITHUB_OUTPUT", out.clone());
        set(&mut env, "DRYDOCK_OUTPUT", out);
        set(&mut env, "GITHUB_ENV", format!("{ctl}/env-{idx}"));
        for img in st.contexts.images.values() {
            for (k, v) in img.env_vars() {
                set(&mut env, &k, v);
            }
        }
        for (k, v) in &st.env {
            set(&mut env, k, v.clone());
        }
        for (k, v) in &st.added_env {
            set(&mut env, k, v.clone());
        }
        let mut c = st.contexts.clone();
        for (k, v) in ctx::env_pairs(&step.env, &mut c)? {
            set(&mut env, &k, v);
        }
        for (k, v) in &st.secrets {
            set(&mut env, k, v.expose().to_string());
        }
        Ok(env)
    }

    /// The shell command line for a script file, GitHub's way: `bash --noprofile --norc -eo
    /// pipefail {0}` where bash exists, else `sh -e {0}`; a custom shell has `{0}` replaced.
    fn shell_argv(&self, st: &State, step: &Step, script: &str) -> Vec<String> {
        let shell = step.shell.as_deref().or(self.job().shell.as_deref());
        let has_bash = || match &st.root {
            Some(r) => r.has("/bin/bash") || r.has("/usr/bin/bash"),
            None => crate::which("bash").is_some(),
        };
        let template: Vec<String> = match shell {
            None if has_bash() => "bash --noprofile --norc -eo pipefail {0}"
                .split(' ')
                .map(String::from)
                .collect(),
            None | Some("sh") => vec!["sh".into(), "-e".into(), "{0}".into()],
            Some("bash") => "bash --noprofile --norc -eo pipefail {0}"
                .split(' ')
                .map(String::from)
                .collect(),
            Some("python") => vec!["python3".into(), "{0}".into()],
            Some(custom) => {
                let mut parts: Vec<String> = custom.split_whitespace().map(String::from).collect();
                if !parts.iter().any(|p| p.contains("{0}")) {
                    parts.push("{0}".into());
                }
                parts
            }
        };
        template
            .into_iter()
            .map(|p| p.replace("{0}", script))
            .collect()
    }

    fn working_dir(
        &self,
        st: &State,
        step: &Step,
        sandboxed: bool,
    ) -> Result<(PathBuf, String), String> {
        let wd = step
            .working_directory
            .as_deref()
            .or(self.job().working_directory.as_deref());
        let Some(wd) = wd else {
            return Ok((st.workspace.clone(), SANDBOX_WORKSPACE.to_string()));
        };
        if wd.starts_with('/') {
            if sandboxed {
                return Ok((st.workspace.clone(), wd.to_string()));
            }
            return Ok((PathBuf::from(wd), wd.to_string()));
        }
        let rel = workspace::normalize(wd)
            .ok_or_else(|| format!("working-directory {wd}: not a path inside the workspace"))?;
        let host = st.workspace.join(&rel);
        if !host.is_dir() {
            return Err(format!(
                "working-directory {wd} does not exist in the workspace"
            ));
        }
        Ok((host, format!("{SANDBOX_WORKSPACE}/{rel}")))
    }

    fn run_script(
        &self,
        st: &mut State,
        log: &Arc<JobLog>,
        idx: usize,
        step: &Step,
        script: &crate::plan::Text,
    ) -> Result<StepEnd, String> {
        let text = ctx::text(script, &st.contexts.value())?;
        let sandboxed = st.root.is_some();
        let file = st.ctl.join(format!("step-{idx}.sh"));
        std::fs::write(&file, &text).map_err(|e| format!("writing the step script: {e}"))?;
        for f in [format!("output-{idx}"), format!("env-{idx}")] {
            std::fs::write(st.ctl.join(f), "").map_err(|e| format!("step files: {e}"))?;
        }
        let env = self.step_env(st, step, idx, sandboxed)?;
        let (host_cwd, sandbox_cwd) = self.working_dir(st, step, sandboxed)?;
        let timeout = self.step_timeout(st, step);
        let started = Instant::now();
        let (code, timed_out, cancelled) = if sandboxed {
            let argv = self.shell_argv(st, step, &format!("{SANDBOX_CTL}/step-{idx}.sh"));
            let root = match &st.rootfs {
                Some(r) => Root::Rootfs(r.clone()),
                None => {
                    let mut layers = st
                        .root
                        .as_ref()
                        .map(|r| r.layers.clone())
                        .unwrap_or_default();
                    layers.extend(st.uppers.iter().map(|c| c.upper().to_path_buf()));
                    Root::Layers(layers)
                }
            };
            let mut spec = SandboxSpec::new(root, argv);
            spec.env = env;
            spec.cwd = Some(sandbox_cwd);
            spec.user = st.root.as_ref().and_then(|r| r.user.clone());
            spec.hostname = sanitize_hostname(&self.job().name);
            spec.network = NetworkMode::Host;
            spec.extra_hosts = services::host_entries(&st.service_names);
            spec.mounts = vec![
                Mount::Bind {
                    source: st.workspace.clone(),
                    target: SANDBOX_WORKSPACE.into(),
                    readonly: false,
                },
                Mount::Bind {
                    source: st.ctl.clone(),
                    target: SANDBOX_CTL.into(),
                    readonly: false,
                },
            ];
            spec.timeout = timeout;
            spec.state_dir = self.sbx.state_dir.clone();
            spec.init_binary = self.sbx.init_binary.clone();
            spec.keep_changes = true;
            let token = drydock_sandbox::CancelToken::new().map_err(|e| format!("sandbox: {e}"))?;
            let t2 = token.clone();
            let _guard = self.run.cancel.on_cancel(move || t2.cancel());
            spec.cancel = Some(token);
            let mut out = log.stream(Some(idx), "stdout");
            let mut err = log.stream(Some(idx), "stderr");
            spec.stdout = Stdio::Stream(Box::new(move |b| out.push(b)));
            spec.stderr = Stdio::Stream(Box::new(move |b| err.push(b)));
            let outcome = drydock_sandbox::run(spec).map_err(|e| format!("sandbox: {e}"))?;
            for w in &outcome.warnings {
                log.system(Some(idx), format!("sandbox: {w}"));
            }
            if let Some(ch) = outcome.changes {
                if !ch.is_overlay() {
                    st.rootfs = Some(ch.upper().to_path_buf());
                }
                st.uppers.push(ch);
            }
            (outcome.status.code(), outcome.timed_out, outcome.cancelled)
        } else {
            let argv = self.shell_argv(st, step, &file.display().to_string());
            let mut out = log.stream(Some(idx), "stdout");
            let mut err = log.stream(Some(idx), "stderr");
            let o = host::run(
                HostCommand {
                    argv,
                    env,
                    cwd: host_cwd,
                    timeout,
                },
                &mut out,
                &mut err,
                &self.run.cancel,
            )
            .map_err(|e| format!("cannot start the step's shell: {e}"))?;
            (o.code, o.timed_out, o.cancelled)
        };
        let outputs: BTreeMap<String, String> =
            parse_kv_file(&st.ctl.join(format!("output-{idx}")))
                .into_iter()
                .collect();
        for (k, v) in parse_kv_file(&st.ctl.join(format!("env-{idx}"))) {
            st.added_env.retain(|(ek, _)| *ek != k);
            st.added_env.push((k, v));
        }
        if cancelled {
            return Ok(StepEnd {
                status: Status::Cancelled,
                exit_code: Some(code),
                reason: Some("cancelled".into()),
                outputs,
            });
        }
        if timed_out {
            let job_deadline_hit = st.deadline.is_some_and(|d| Instant::now() >= d);
            let reason = if job_deadline_hit {
                st.job_timed_out = true;
                format!(
                    "the job timed out after {} (timeout-minutes); the step was killed",
                    minutes(self.job().timeout.unwrap_or_default())
                )
            } else {
                format!(
                    "timed out after {} (timeout-minutes); the step was killed",
                    minutes(started.elapsed())
                )
            };
            return Ok(StepEnd {
                status: Status::Failure,
                exit_code: Some(code),
                reason: Some(reason),
                outputs,
            });
        }
        if code != 0 {
            let hint = match code {
                127 => " (command not found)",
                126 => " (not executable)",
                c if c > 128 => " (killed by a signal)",
                _ => "",
            };
            return Ok(StepEnd {
                status: Status::Failure,
                exit_code: Some(code),
                reason: Some(format!("exit code {code}{hint}")),
                outputs,
            });
        }
        Ok(StepEnd {
            status: Status::Success,
            exit_code: Some(0),
            reason: None,
            outputs,
        })
    }

    /// Tags, labels and the local names of an image for this event.
    fn computed_tags(
        &self,
        st: &State,
        spec: &crate::plan::ImageSpec,
        event: &crate::event::Event,
    ) -> Result<crate::images::ComputedTags, String> {
        let Some(compute) = &spec.tags else {
            return Ok(crate::images::ComputedTags::default());
        };
        // `${{ }}` in tags, flavor and labels sees `github` and `env`.
        let v = Value::from_pairs([
            ("github", st.contexts.github.clone()),
            (
                "env",
                Value::object(
                    st.contexts
                        .env
                        .iter()
                        .map(|(k, v)| (k.clone(), Value::string(v)))
                        .collect(),
                ),
            ),
        ]);
        compute(&v, event).map_err(|e| format!("images.{}: tags: {e}", spec.name))
    }

    /// The run's event with the sha and time of the last commit that changed the image's
    /// context and Dockerfile (when the source is a git checkout and such a commit exists).
    fn source_event(&self, spec: &crate::plan::ImageSpec) -> Option<crate::event::Event> {
        if !self.run.git_files_only || spec.git_context.is_some() {
            return None;
        }
        let context = if spec.context.is_empty() {
            "."
        } else {
            spec.context.as_str()
        };
        let mut paths = vec![context];
        if let Some(d) = &spec.dockerfile {
            paths.push(d.as_str());
        }
        let (sha, time) = crate::git::last_change(&self.run.source, &paths)?;
        let mut ev = self.run.event.clone();
        ev.sha = sha;
        ev.commit_time = Some(time);
        Some(ev)
    }

    fn build(
        &self,
        st: &mut State,
        log: &Arc<JobLog>,
        images: &mut BTreeMap<String, ImageState>,
        idx: usize,
        _step: &Step,
        name: &str,
    ) -> Result<StepEnd, String> {
        let spec = self
            .run
            .pipeline
            .images
            .get(name)
            .ok_or_else(|| format!("build: there is no images.{name}"))?;
        let v = st.contexts.value();
        let all_secrets: Vec<(String, Secret)> = self
            .run
            .secrets
            .iter()
            .map(|(k, s)| (k.clone(), s.clone()))
            .collect();
        let mut args = Vec::new();
        for (k, t) in &spec.args {
            if t.text.contains("secrets.") {
                return Err(secret_arg_error(name, k, None));
            }
            let value = ctx::text(t, &v)?;
            if let Some(key) = secrets::find_secret_in(&all_secrets, &value) {
                return Err(secret_arg_error(name, k, Some(key)));
            }
            args.push((k.clone(), value));
        }
        let mut build_secrets = Vec::new();
        for key in &spec.secrets {
            match st.secrets.iter().find(|(k, _)| k == key) {
                Some(s) => build_secrets.push(s.clone()),
                None => {
                    return Err(format!(
                        "images.{name} needs build secret {key}, which none of job {}'s secret groups provides",
                        self.job().name
                    ));
                }
            }
        }
        let mut computed = self.computed_tags(st, spec, &self.run.event)?;
        // Labels and timestamps come from the last commit that changed the image's sources, so
        // an image whose context did not change is rebuilt from the cache byte for byte.
        let source_event = self.source_event(spec);
        if let Some(ev) = &source_event {
            computed.labels = self.computed_tags(st, spec, ev)?.labels;
        }
        let epoch = source_event
            .as_ref()
            .and_then(|e| e.commit_time)
            .or(self.run.event.commit_time);
        let mut names = Vec::new();
        for t in &computed.tags {
            names.push(Reference::parse(t).map_err(|e| format!("images.{name}: tag {t}: {e}"))?);
        }
        if names.is_empty() {
            let local = format!(
                "drydock.local/{}/{}:run-{}",
                sanitize_repo(&self.run.project),
                sanitize_repo(name),
                self.run_id
            );
            names.push(Reference::parse(&local).map_err(|e| format!("local name {local}: {e}"))?);
        }
        let ctx_rel = workspace::normalize(&spec.context).ok_or_else(|| {
            format!(
                "images.{name}.context {}: not inside the workspace",
                spec.context
            )
        })?;
        let context = st.workspace.join(&ctx_rel);
        let dockerfile = match &spec.dockerfile {
            Some(d) => st.workspace.join(workspace::normalize(d).ok_or_else(|| {
                format!("images.{name}.dockerfile {d}: not inside the workspace")
            })?),
            None => context.join("Dockerfile"),
        };
        let mut line_log = {
            let log = log.clone();
            move |l: &str| log.system(Some(idx), l)
        };
        log.system(
            Some(idx),
            format!(
                "building images.{name} from {}",
                if ctx_rel.is_empty() { "." } else { &ctx_rel }
            ),
        );
        let built = self.engine.builder.build(BuildRequest {
            image: spec,
            context,
            dockerfile,
            args,
            labels: computed.labels.clone(),
            names,
            secrets: build_secrets,
            epoch,
            log: &mut line_log,
            cancel: &self.run.cancel,
        })?;
        let digest = drydock_content::graph::digest_of(&built.descriptor)
            .map_err(|e| format!("built image: {e}"))?;
        log.system(
            Some(idx),
            format!(
                "images.{name}: {digest}{}",
                if built.cached { " (all cached)" } else { "" }
            ),
        );
        let state = ImageState {
            name: name.to_string(),
            job: self.job().name.clone(),
            digest,
            descriptor: Some(built.descriptor),
            tags: computed.tags,
            labels: computed.labels,
            pushed: false,
            reason: Some("not pushed: no push step ran".into()),
            cached: built.cached,
        };
        images.insert(name.to_string(), state);
        st.touched.insert(name.to_string());
        st.contexts.images = images.clone();
        Ok(StepEnd::ok())
    }

    fn push(
        &self,
        st: &mut State,
        log: &Arc<JobLog>,
        images: &mut BTreeMap<String, ImageState>,
        idx: usize,
        _step: &Step,
        p: &PushStep,
    ) -> Result<StepEnd, String> {
        let name = p.image.as_str();
        let spec = self
            .run
            .pipeline
            .images
            .get(name)
            .ok_or_else(|| format!("push: there is no images.{name}"))?;
        let mut state = match &p.from {
            Some(from) => {
                let descriptor = self.load_from_workspace(st, from)?;
                let digest = drydock_content::graph::digest_of(&descriptor)
                    .map_err(|e| format!("push from {from}: {e}"))?;
                let computed = self.computed_tags(st, spec, &self.run.event)?;
                log.system(
                    Some(idx),
                    format!("loaded images.{name} from {from}: {digest}"),
                );
                ImageState {
                    name: name.to_string(),
                    job: self.job().name.clone(),
                    digest,
                    descriptor: Some(descriptor),
                    tags: computed.tags,
                    labels: computed.labels,
                    pushed: false,
                    reason: None,
                    cached: false,
                }
            }
            None => match images.get(name) {
                Some(s) => s.clone(),
                None => {
                    return Err(format!(
                        "push: images.{name} was not built in this job or in a job it needs (add `build: {name}` before it)"
                    ));
                }
            },
        };
        state.job = self.job().name.clone();
        st.touched.insert(name.to_string());
        let not_pushed =
            |state: &mut ImageState, why: String, images: &mut BTreeMap<String, ImageState>| {
                log.system(Some(idx), format!("images.{name} not pushed: {why}"));
                state.pushed = false;
                state.reason = Some(format!("not pushed: {why}"));
                images.insert(name.to_string(), state.clone());
            };
        if let Some(c) = &spec.push {
            let allowed = ctx::truthy(c, &st.contexts.value())?;
            if !allowed {
                not_pushed(
                    &mut state,
                    format!(
                        "images.{name}.push is false for this event: {}",
                        c.text.trim()
                    ),
                    images,
                );
                st.contexts.images = images.clone();
                return Ok(StepEnd::ok());
            }
        }
        if spec.repositories.is_empty() {
            not_pushed(
                &mut state,
                format!("images.{name} has no repositories"),
                images,
            );
            st.contexts.images = images.clone();
            return Ok(StepEnd::ok());
        }
        if state.tags.is_empty() {
            not_pushed(
                &mut state,
                "no tags were computed for this event".into(),
                images,
            );
            st.contexts.images = images.clone();
            return Ok(StepEnd::ok());
        }
        let descriptor = match &state.descriptor {
            Some(d) => d.clone(),
            None => {
                drydock_content::names::descriptor_for_digest(&self.engine.store, &state.digest)
                    .map_err(|e| format!("push: images.{name} ({}): {e}", state.digest))?
                    .ok_or_else(|| {
                        format!(
                            "push: images.{name} ({}) is not in the local store",
                            state.digest
                        )
                    })?
            }
        };
        let mut targets = Vec::new();
        for t in &state.tags {
            targets.push(Reference::parse(t).map_err(|e| format!("push: tag {t}: {e}"))?);
        }
        log.system(
            Some(idx),
            format!(
                "pushing images.{name} ({}) to {}",
                state.digest,
                state.tags.join(", ")
            ),
        );
        let pushed = self
            .engine
            .registry
            .push(&self.engine.store, &descriptor, &targets)
            .map_err(|e| format!("push of images.{name} failed: {e}"))?;
        if pushed != state.digest {
            log.system(
                Some(idx),
                format!(
                    "note: the registry received {pushed} (the local image is {})",
                    state.digest
                ),
            );
        }
        state.pushed = true;
        state.reason = None;
        images.insert(name.to_string(), state);
        st.contexts.images = images.clone();
        Ok(StepEnd::ok())
    }

    /// Loads an image from an OCI layout or archive in the workspace into the local store.
    fn load_from_workspace(
        &self,
        st: &State,
        from: &str,
    ) -> Result<drydock_oci::spec::Descriptor, String> {
        use drydock_content::transport::{self, Location};
        let relocate = |p: &Path| -> Result<PathBuf, String> {
            let s = p.to_string_lossy();
            let rel = workspace::normalize(&s).ok_or_else(|| {
                format!("push from {from}: {s} is not a path inside the workspace")
            })?;
            Ok(st.workspace.join(rel))
        };
        let loc = if from.starts_with("oci:") || from.starts_with("docker-archive:") {
            Location::parse(from).map_err(|e| format!("push from: {e}"))?
        } else {
            Location::OciDir {
                path: PathBuf::from(from),
                tag: None,
            }
        };
        let loc = match loc {
            Location::OciDir { path, tag } => Location::OciDir {
                path: relocate(&path)?,
                tag,
            },
            Location::DockerArchive { path, reference } => Location::DockerArchive {
                path: relocate(&path)?,
                reference,
            },
            _ => {
                return Err(format!(
                    "push from {from}: expected oci:DIR or docker-archive:FILE"
                ));
            }
        };
        let (top, _) = transport::open_source(&self.engine.store, &loc)
            .map_err(|e| format!("push from {from}: {e}"))?;
        Ok(top)
    }
}

fn secret_arg_error(image: &str, arg: &str, key: Option<&str>) -> String {
    let what = match key {
        Some(k) => format!("carries the value of secret {k}"),
        None => "reads a secret".to_string(),
    };
    format!(
        "images.{image}: build arg {arg} {what}; build args are stored in the image's config and history. \
         Pass it as a build secret instead (images.{image}.secrets: [KEY], read with `RUN --mount=type=secret,id=KEY`, \
         like `docker build --secret`)"
    )
}

/// `key=value` lines and `key<<DELIM` heredocs (GitHub's `$GITHUB_OUTPUT` format).
fn parse_kv_file(path: &Path) -> Vec<(String, String)> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some((k, delim)) = line.split_once("<<") {
            let mut v = Vec::new();
            for l in lines.by_ref() {
                if l == delim {
                    break;
                }
                v.push(l);
            }
            out.push((k.trim().to_string(), v.join("\n")));
        } else if let Some((k, v)) = line.split_once('=') {
            out.push((k.trim().to_string(), v.to_string()));
        }
    }
    out
}

fn sanitize_hostname(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    if s.is_empty() { "job".into() } else { s }
}

fn sanitize_repo(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let s = s
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string();
    if s.is_empty() { "project".into() } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_files() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("out");
        std::fs::write(&p, "a=1\nmulti<<EOF\nx\ny\nEOF\nb=two=2\n").unwrap();
        assert_eq!(
            parse_kv_file(&p),
            vec![
                ("a".to_string(), "1".to_string()),
                ("multi".to_string(), "x\ny".to_string()),
                ("b".to_string(), "two=2".to_string())
            ]
        );
    }

    #[test]
    fn names() {
        assert_eq!(sanitize_hostname("Build_App"), "build-app");
        assert_eq!(sanitize_repo("My Repo"), "my-repo");
        assert_eq!(minutes(Duration::from_secs(120)), "2 minutes");
        assert_eq!(minutes(Duration::from_secs(5)), "5s");
    }
}
