//! The server's shared state and its queue: runs are recorded in the database when they are
//! asked for ([`App::enqueue`]), started by the dispatcher when the server's job limit, the
//! project's own limit and its concurrency group allow, executed by the pipeline engine on a
//! blocking thread, and reported back (commit statuses, chains). After a crash
//! ([`App::recover`]) the runs that were running are marked interrupted and requeued or failed
//! as their project says; runs that never started stay queued.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use drydock_db::{Db, Project, RunMeta, Status};
use drydock_pipeline::{Cancel, Engine, EngineConfig, Event, ImageBuilder, PipelineRun, RunEvent};
use drydock_registry_server::Registry;
use drydock_secret::Secret;
use tokio::sync::{Notify, watch};

use crate::gitcache::GitCache;
use crate::sealbox::SealBox;
use crate::util::now_ms;

/// How a server is set up.
#[derive(Clone)]
pub struct ServerConfig {
    /// Everything the server keeps: `drydock.db`, `secret.key`, `git/`, `registry/`, and the
    /// engine's `runs/`, `sandbox/`, `content/` (unless `engine_home` says otherwise).
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// The URL people and forges reach the server at (links in commit statuses); default
    /// `http://<listen address>`.
    pub public_url: Option<String>,
    /// Jobs running at once on this server (also the runs started at once).
    pub job_limit: usize,
    /// DRYDOCK_HOME of the engine (content store, sandbox state); default `data_dir`.
    pub engine_home: Option<PathBuf>,
    pub init_binary: Option<PathBuf>,
    pub drydock_binary: Option<PathBuf>,
    /// The image builder; default drydock-builder over the engine home.
    pub builder: Option<Arc<dyn ImageBuilder>>,
    /// How often upstream images named in `on.image` are checked (HEAD requests).
    pub image_poll: Duration,
    /// How often schedules and chain delays are looked at.
    pub tick: Duration,
    /// How often each project's default branch is fetched to refresh its schedules and
    /// watched images.
    pub refresh: Duration,
    /// The first admin's password (else a random one is written to `initial-admin-password`).
    pub admin_password: Option<String>,
    pub tls: Option<drydock_registry_server::TlsFiles>,
    /// The SQLite file (default `<data_dir>/drydock.db`).
    pub database: Option<PathBuf>,
    /// How long a minute of a project's `timeout_minutes` is (60 s; tests shorten it).
    pub minute: Duration,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("data_dir", &self.data_dir)
            .field("listen", &self.listen)
            .field("job_limit", &self.job_limit)
            .finish()
    }
}

impl ServerConfig {
    pub fn new(data_dir: impl Into<PathBuf>, listen: SocketAddr) -> ServerConfig {
        ServerConfig {
            data_dir: data_dir.into(),
            listen,
            public_url: None,
            job_limit: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            engine_home: None,
            init_binary: None,
            drydock_binary: None,
            builder: None,
            image_poll: Duration::from_secs(300),
            tick: Duration::from_secs(5),
            refresh: Duration::from_secs(300),
            admin_password: None,
            tls: None,
            database: None,
            minute: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{0}")]
    Db(#[from] drydock_db::DbError),
    #[error("{0}")]
    Seal(#[from] crate::sealbox::SealError),
    #[error("{0}")]
    Git(#[from] crate::gitcache::GitError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Other(String),
}

/// A parsed pipeline file of one commit.
pub struct Loaded {
    pub config: drydock_config::Pipeline,
    pub plan: Arc<drydock_pipeline::plan::Pipeline>,
}

/// A logged line not yet in the database: (stream, step, line).
type LiveLine = (String, Option<i64>, String);

/// A run that is executing.
struct Active {
    project: String,
    group: Option<String>,
    cancel: Cancel,
    /// Why it was cancelled (superseded, user, timeout).
    cancel_reason: Option<String>,
}

#[derive(Default)]
struct QueueState {
    active: HashMap<i64, Active>,
}

/// What a new run is for.
pub struct RunRequest {
    pub project: Project,
    pub loaded: Arc<Loaded>,
    pub event: Event,
    pub cause: String,
    pub only_job: Option<String>,
    pub chain: Option<(i64, i64)>,
    pub retry_of: Option<i64>,
    pub approved_by: Option<String>,
    /// Jobs kept from an earlier run (JSON: job -> the engine's kept-job record).
    pub keep: Option<String>,
}

impl RunRequest {
    /// A run of the whole pipeline for `event`: no job filter, chain, retry, approval or kept
    /// jobs (set those fields on the result where they apply).
    pub fn new(project: Project, loaded: Arc<Loaded>, event: Event, cause: String) -> Self {
        Self {
            project,
            loaded,
            event,
            cause,
            only_job: None,
            chain: None,
            retry_of: None,
            approved_by: None,
            keep: None,
        }
    }
}

/// The engine, dropped on a thread of its own: its registry client owns a runtime, which
/// must not be dropped inside the server's async tasks.
pub struct EngineCell(Option<Arc<Engine>>);

impl std::ops::Deref for EngineCell {
    type Target = Arc<Engine>;
    fn deref(&self) -> &Arc<Engine> {
        self.0
            .as_ref()
            .expect("the engine lives as long as the app")
    }
}

impl Drop for EngineCell {
    fn drop(&mut self) {
        if let Some(e) = self.0.take() {
            let _ = std::thread::Builder::new()
                .name("engine-drop".into())
                .spawn(move || drop(e));
        }
    }
}

pub struct App {
    pub cfg: ServerConfig,
    pub db: Arc<Db>,
    pub seal: SealBox,
    pub git: GitCache,
    pub engine: EngineCell,
    pub registry: Registry,
    pub http: reqwest::Client,
    pub public_url: String,
    pub rt: tokio::runtime::Handle,
    queue: Mutex<QueueState>,
    wake: Notify,
    /// Bumped on every run, job, step and log event (SSE streams wait on it).
    pub changes: watch::Sender<u64>,
    loaded: Mutex<HashMap<(String, String, String), Arc<Loaded>>>,
    /// Schedules and watched images per project, from its default branch.
    pub watch: Mutex<HashMap<String, crate::triggers::Watch>>,
    /// Commit-status calls made (for the UI and tests): (url, state).
    pub status_log: Mutex<Vec<(String, String)>>,
    /// Lines of running jobs as they are logged, before the engine's batched database write:
    /// (run, job) -> (stream, step, line); line n here is sequence number n in the database.
    live: Mutex<HashMap<(i64, String), Vec<LiveLine>>>,
    pub(crate) status_tx: tokio::sync::mpsc::UnboundedSender<(String, reqwest::Request)>,
    pub(crate) status_rx:
        Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<(String, reqwest::Request)>>>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("cfg", &self.cfg).finish()
    }
}

impl App {
    pub(crate) fn new(
        cfg: ServerConfig,
        public_url: String,
        rt: tokio::runtime::Handle,
    ) -> Result<App, ServerError> {
        let data = cfg.data_dir.clone();
        std::fs::create_dir_all(&data)?;
        let db_path = cfg
            .database
            .clone()
            .unwrap_or_else(|| data.join("drydock.db"));
        let db = Arc::new(Db::open(db_path)?);
        let seal = SealBox::open(&data.join("secret.key"))?;
        let sample = db
            .projects()?
            .into_iter()
            .find_map(|p| p.webhook_secret.or(p.status_token));
        seal.finish_interrupted_rotation(sample.as_deref())?;
        let home = cfg.engine_home.clone().unwrap_or_else(|| data.clone());
        let store = Arc::new(
            drydock_content::Store::open(home.join("content"))
                .map_err(|e| ServerError::Other(format!("content store: {e}")))?,
        );
        let client = drydock_registry_client::BlockingClient::new(
            drydock_registry_client::ClientOptions::from_env(Some(&home))
                .map_err(|e| ServerError::Other(format!("registry client: {e}")))?,
        )
        .map_err(|e| ServerError::Other(format!("registry client: {e}")))?;
        let builder: Arc<dyn ImageBuilder> = match &cfg.builder {
            Some(b) => b.clone(),
            None => match drydock_builder::Builder::new(&home) {
                Ok(b) => Arc::new(b),
                Err(e) => {
                    tracing::warn!(error = %e, "no image builder: build steps will fail");
                    Arc::new(drydock_pipeline::NoBuilder)
                }
            },
        };
        let mut ecfg = EngineConfig::new(&home);
        ecfg.max_parallel = cfg.job_limit.max(1);
        ecfg.init_binary = cfg.init_binary.clone();
        ecfg.drydock_binary = cfg.drydock_binary.clone();
        let engine = EngineCell(Some(Arc::new(Engine::new(
            ecfg,
            db.clone(),
            store,
            Arc::new(client),
            builder,
        ))));
        let mut rcfg = drydock_registry_server::RegistryConfig::new(data.join("registry"));
        rcfg.public_url = Some(public_url.clone());
        let registry = Registry::open(rcfg)
            .map_err(|e| ServerError::Other(format!("embedded registry: {e}")))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| ServerError::Other(format!("HTTP client: {e}")))?;
        let (status_tx, status_rx) = tokio::sync::mpsc::unbounded_channel();
        Ok(App {
            status_tx,
            status_rx: Mutex::new(Some(status_rx)),
            live: Mutex::new(HashMap::new()),
            git: GitCache::new(data.join("git")),
            cfg,
            db,
            seal,
            engine,
            registry,
            http,
            public_url,
            rt,
            queue: Mutex::new(QueueState::default()),
            wake: Notify::new(),
            changes: watch::channel(0).0,
            loaded: Mutex::new(HashMap::new()),
            watch: Mutex::new(HashMap::new()),
            status_log: Mutex::new(Vec::new()),
        })
    }

    pub fn changed(&self) {
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// A job's log lines after sequence number `after`: from the database, then the lines
    /// logged since its last batch was written.
    pub fn job_lines(
        &self,
        run: i64,
        job: &drydock_db::Job,
        after: i64,
        limit: i64,
    ) -> Result<Vec<drydock_db::LogLine>, drydock_db::DbError> {
        let mut lines = self.db.logs(job.id, after, limit)?;
        let next = lines.last().map_or(after, |l| l.seq);
        if (lines.len() as i64) < limit {
            let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(v) = live.get(&(run, job.name.clone())) {
                let now = now_ms();
                for (i, (stream, step, line)) in v.iter().enumerate().skip(next.max(0) as usize) {
                    if lines.len() as i64 >= limit {
                        break;
                    }
                    lines.push(drydock_db::LogLine {
                        job_id: job.id,
                        seq: i as i64 + 1,
                        step_idx: *step,
                        stream: stream.clone(),
                        ts: now,
                        line: line.clone(),
                    });
                }
            }
        }
        Ok(lines)
    }

    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub fn run_url(&self, run: i64) -> String {
        format!("{}/runs/{run}", self.public_url.trim_end_matches('/'))
    }

    // ---- pipelines

    /// The pipeline file of `project` at `sha` (the mirror must have the commit).
    pub fn load_pipeline(&self, project: &Project, sha: &str) -> Result<Arc<Loaded>, String> {
        let key = (
            project.name.clone(),
            sha.to_string(),
            project.pipeline_file.clone(),
        );
        if let Some(l) = self
            .loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(l.clone());
        }
        let mirror = self.git.mirror_path(&project.name);
        let src = GitCache::read_file(&mirror, sha, &project.pipeline_file)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| {
                format!(
                    "commit {sha} has no {} (nothing to run)",
                    project.pipeline_file
                )
            })?;
        let config = drydock_config::parse(&src).map_err(|d| {
            drydock_diagnostics::render_all(&project.pipeline_file, &src, &d)
                .trim_end()
                .to_string()
        })?;
        let plan = drydock_pipeline::from_config(config.clone(), &project.pipeline_file, &src);
        let l = Arc::new(Loaded {
            config,
            plan: Arc::new(plan),
        });
        let mut cache = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() > 256 {
            cache.clear();
        }
        cache.insert(key, l.clone());
        Ok(l)
    }

    // ---- the queue

    fn group_key(project: &Project, event: &Event) -> Option<String> {
        match project.concurrency.as_str() {
            "ref" => Some(format!("{}:{}", project.name, event.git_ref)),
            "project" => Some(project.name.clone()),
            _ => None,
        }
    }

    /// Records a queued run (and its jobs) and wakes the dispatcher. With cancel-in-progress,
    /// older runs of the same concurrency group are cancelled.
    pub fn enqueue(&self, req: RunRequest) -> Result<i64, ServerError> {
        let mut plan = (*req.loaded.plan).clone();
        if req.chain.is_some() {
            plan.on = None;
        }
        let mut pr = PipelineRun {
            project: req.project.name.clone(),
            pipeline: Arc::new(plan),
            event: req.event.clone(),
            source: PathBuf::new(),
            git_files_only: false,
            secrets: Default::default(),
            only_job: req.only_job.clone(),
            cause: Some(req.cause.clone()),
            run_id: None,
            progress: Arc::new(drydock_pipeline::NoProgress),
            cancel: Cancel::new(),
        };
        let id = self
            .engine
            .queue(&mut pr)
            .map_err(|e| ServerError::Other(e.to_string()))?;
        let group = Self::group_key(&req.project, &req.event);
        self.db.put_run_meta(&RunMeta {
            run_id: id,
            project: req.project.name.clone(),
            group_key: group.clone(),
            only_job: req.only_job,
            chain_id: req.chain.map(|c| c.0),
            chain_step: req.chain.map(|c| c.1),
            retry_of: req.retry_of,
            approved_by: req.approved_by,
            keep_jobs: req.keep,
        })?;
        if let (Some(g), true) = (&group, req.project.cancel_in_progress) {
            let older: Vec<i64> = self
                .db
                .runs_with_status(Status::Queued)?
                .into_iter()
                .chain(self.db.runs_with_status(Status::Running)?)
                .filter(|(rid, m)| *rid != id && m.group_key.as_deref() == Some(g))
                .map(|(rid, _)| rid)
                .collect();
            for rid in older {
                self.cancel(rid, &format!("superseded by run {id} (cancel-in-progress)"))?;
            }
        }
        crate::statuses::report(self, &req.project, id, &req.event.sha, Status::Queued);
        self.changed();
        self.wake();
        Ok(id)
    }

    /// Cancels a run: a running one is stopped, a queued one never starts. `false` when the
    /// run had already finished.
    pub fn cancel(&self, run: i64, reason: &str) -> Result<bool, ServerError> {
        {
            let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(a) = q.active.get_mut(&run) {
                a.cancel_reason.get_or_insert_with(|| reason.to_string());
                a.cancel.cancel();
                return Ok(true);
            }
        }
        let r = self.db.run(run)?;
        if r.status != Status::Queued {
            return Ok(false);
        }
        let now = now_ms();
        self.db
            .settle_unfinished_jobs(run, Status::Cancelled, reason, now)?;
        self.db
            .finish_run(run, Status::Cancelled, Some(reason), now)?;
        if let Some(p) = self.db.project(&r.project)? {
            crate::statuses::report(self, &p, run, &r.sha, Status::Cancelled);
        }
        crate::chains::run_finished(self, run);
        self.changed();
        Ok(true)
    }

    pub fn is_active(&self, run: i64) -> bool {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .active
            .contains_key(&run)
    }

    /// Starts every queued run that may start now.
    fn dispatch(self: &Arc<Self>) -> Result<(), ServerError> {
        let queued = self.db.runs_with_status(Status::Queued)?;
        if queued.is_empty() {
            return Ok(());
        }
        let mut projects: HashMap<String, Option<Project>> = HashMap::new();
        for (id, meta) in queued {
            let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            if q.active.contains_key(&id) {
                continue;
            }
            if q.active.len() >= self.cfg.job_limit.max(1) {
                break;
            }
            let project = projects
                .entry(meta.project.clone())
                .or_insert_with(|| self.db.project(&meta.project).ok().flatten())
                .clone();
            let Some(project) = project else {
                drop(q);
                let now = now_ms();
                let why = format!("project {} no longer exists", meta.project);
                self.db
                    .settle_unfinished_jobs(id, Status::Cancelled, &why, now)?;
                self.db.finish_run(id, Status::Cancelled, Some(&why), now)?;
                continue;
            };
            let running_here = q
                .active
                .values()
                .filter(|a| a.project == project.name)
                .count() as i64;
            if project.max_runs > 0 && running_here >= project.max_runs {
                continue;
            }
            if let Some(g) = &meta.group_key
                && q.active.values().any(|a| a.group.as_deref() == Some(g))
            {
                continue;
            }
            let cancel = Cancel::new();
            q.active.insert(
                id,
                Active {
                    project: project.name.clone(),
                    group: meta.group_key.clone(),
                    cancel: cancel.clone(),
                    cancel_reason: None,
                },
            );
            drop(q);
            // Marked running before the dispatcher looks again, so it never starts twice.
            self.db.start_run(id, now_ms())?;
            let app = self.clone();
            self.rt.spawn_blocking(move || {
                app.execute(id, meta, project, cancel);
            });
        }
        Ok(())
    }

    /// The dispatcher: starts runs when woken (new run, finished run) and every second.
    pub(crate) async fn dispatcher(self: Arc<Self>) {
        loop {
            let app = self.clone();
            let r = tokio::task::spawn_blocking(move || app.dispatch()).await;
            match r {
                Ok(Err(e)) => tracing::error!(error = %e, "dispatching runs"),
                Err(e) => tracing::error!(error = %e, "dispatcher task"),
                Ok(Ok(())) => {}
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    fn fail_before_start(&self, run: i64, reason: &str) {
        let now = now_ms();
        let _ =
            self.db
                .settle_unfinished_jobs(run, Status::Skipped, "the run could not start", now);
        let _ = self.db.finish_run(run, Status::Failure, Some(reason), now);
    }

    /// Runs one run to its end on this (blocking) thread.
    fn execute(self: &Arc<Self>, id: i64, meta: RunMeta, project: Project, cancel: Cancel) {
        let outcome = self.execute_inner(id, &meta, &project, &cancel);
        let cancel_reason = {
            let q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            q.active.get(&id).and_then(|a| a.cancel_reason.clone())
        };
        match outcome {
            Ok(()) => {
                if let Some(why) = cancel_reason
                    && let Ok(r) = self.db.run(id)
                    && r.status == Status::Cancelled
                {
                    let (status, why) = if why.starts_with("timed out") {
                        (Status::Failure, why)
                    } else {
                        (Status::Cancelled, why)
                    };
                    let _ = self.db.finish_run(
                        id,
                        status,
                        Some(&why),
                        r.finished_at.unwrap_or_else(now_ms),
                    );
                }
            }
            Err(why) => {
                tracing::warn!(run = id, reason = %why, "run could not start");
                self.fail_before_start(id, &why);
            }
        }
        if let Ok(r) = self.db.run(id) {
            crate::statuses::report(self, &project, id, &r.sha, r.status);
        }
        crate::chains::run_finished(self, id);
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .active
            .remove(&id);
        self.changed();
        self.wake();
    }

    fn execute_inner(
        self: &Arc<Self>,
        id: i64,
        meta: &RunMeta,
        project: &Project,
        cancel: &Cancel,
    ) -> Result<(), String> {
        let run = self.db.run(id).map_err(|e| e.to_string())?;
        let event: Event = serde_json::from_value(run.context.clone())
            .map_err(|e| format!("run {id} has no readable event: {e}"))?;
        crate::statuses::report(self, project, id, &event.sha, Status::Running);
        let extra = event.pull_request.as_ref().map(|pr| {
            (
                project.repo_url.clone(),
                format!("refs/pull/{}/head", pr.number),
            )
        });
        let mirror = self
            .git
            .ensure_commit(
                &project.name,
                &project.repo_url,
                &event.sha,
                extra.as_ref().map(|(u, r)| (u.as_str(), r.as_str())),
            )
            .map_err(|e| e.to_string())?;
        let loaded = self.load_pipeline(project, &event.sha)?;
        let work = self.cfg.data_dir.join("work").join(id.to_string());
        let src = work.join("src");
        GitCache::checkout(&mirror, &event.sha, &src).map_err(|e| e.to_string())?;

        let fork = event.pull_request.as_ref().is_some_and(|p| p.fork);
        let mut secrets = drydock_pipeline::secrets::SecretValues::new();
        if !fork || meta.approved_by.is_some() {
            for (name, sealed, _) in self.db.secrets(project.id).map_err(|e| e.to_string())? {
                match self.seal.open_value(&sealed) {
                    Ok(v) => {
                        secrets.insert(name, Secret::new(v));
                    }
                    Err(e) => return Err(format!("secret {name} cannot be opened: {e}")),
                }
            }
        }
        let mut plan = (*loaded.plan).clone();
        if meta.chain_id.is_some() {
            plan.on = None;
        }
        let app = Arc::downgrade(self);
        let progress = Arc::new(move |e: &RunEvent<'_>| {
            let Some(a) = app.upgrade() else { return };
            if let RunEvent::Log {
                job,
                step,
                stream,
                line,
            } = e
            {
                a.live
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry((id, job.to_string()))
                    .or_default()
                    .push((stream.to_string(), step.map(|s| s as i64), line.to_string()));
            }
            a.changed();
        });
        let timeout = project
            .timeout_minutes
            .filter(|m| *m > 0)
            .map(|m| self.cfg.minute * m as u32);
        let timer = timeout.map(|t| {
            let app = Arc::downgrade(self);
            let minutes = project.timeout_minutes.unwrap_or(0);
            self.rt.spawn(async move {
                tokio::time::sleep(t).await;
                if let Some(a) = app.upgrade() {
                    let unit = if minutes == 1 { "minute" } else { "minutes" };
                    let _ = a.cancel(id, &format!("timed out after {minutes} {unit}"));
                }
            })
        });
        let pr = PipelineRun {
            project: project.name.clone(),
            pipeline: Arc::new(plan),
            event,
            source: src.clone(),
            git_files_only: false,
            secrets,
            only_job: meta.only_job.clone(),
            cause: Some(run.cause.clone()),
            run_id: Some(id),
            progress,
            cancel: cancel.clone(),
        };
        let kept: std::collections::BTreeMap<String, drydock_pipeline::KeptJob> = meta
            .keep_jobs
            .as_deref()
            .and_then(|k| serde_json::from_str(k).ok())
            .unwrap_or_default();
        let result = self.engine.run_keeping(pr, &kept);
        if let Some(t) = timer {
            t.abort();
        }
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(r, _), _| *r != id);
        let _ = std::fs::remove_dir_all(&work);
        match result {
            Ok(r) => {
                // What passed jobs leave for a later "re-run the failed jobs".
                for j in r.jobs.iter().filter(|j| j.status == Status::Success) {
                    let k = kept
                        .get(&j.name)
                        .cloned()
                        .unwrap_or(drydock_pipeline::KeptJob {
                            from_run: id,
                            persisted: j.persisted.clone(),
                            outputs: j.outputs.clone(),
                        });
                    if let Ok(text) = serde_json::to_string(&k) {
                        let _ = self.db.put_job_output(id, &j.name, &text);
                    }
                }
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// After a crash: runs that were running are marked interrupted (with their running jobs
    /// and steps; finished steps and their logs stay as they were) and requeued or failed as
    /// their project says. Returns (interrupted, requeued as) pairs.
    pub fn recover(&self) -> Result<Vec<(i64, Option<i64>)>, ServerError> {
        let now = now_ms();
        let ids = self
            .db
            .interrupt_running("the server stopped while this was running", now)?;
        let mut out = Vec::new();
        let home = self
            .cfg
            .engine_home
            .clone()
            .unwrap_or_else(|| self.cfg.data_dir.clone());
        for id in ids {
            // What the dead process left on disk: the source checkout and the workspaces.
            let _ = std::fs::remove_dir_all(self.cfg.data_dir.join("work").join(id.to_string()));
            let _ = std::fs::remove_dir_all(home.join("runs").join(id.to_string()));
            let run = self.db.run(id)?;
            let meta = self.db.run_meta(id)?;
            let project = self.db.project(&run.project)?;
            let (Some(meta), Some(project)) = (meta, project) else {
                out.push((id, None));
                continue;
            };
            if project.on_interrupt == "fail" {
                self.db.finish_run(
                    id,
                    Status::Failure,
                    Some("interrupted by a server restart (the project fails interrupted runs)"),
                    now,
                )?;
                crate::statuses::report(self, &project, id, &run.sha, Status::Failure);
                crate::chains::run_finished(self, id);
                out.push((id, None));
                continue;
            }
            let event: Event = match serde_json::from_value(run.context.clone()) {
                Ok(e) => e,
                Err(_) => {
                    out.push((id, None));
                    continue;
                }
            };
            let loaded = match self
                .git
                .ensure_commit(&project.name, &project.repo_url, &event.sha, None)
                .map_err(|e| e.to_string())
                .and_then(|_| self.load_pipeline(&project, &event.sha))
            {
                Ok(l) => l,
                Err(e) => {
                    self.db.set_run_reason(
                        id,
                        &format!("interrupted by a server restart; not requeued: {e}"),
                    )?;
                    out.push((id, None));
                    continue;
                }
            };
            let new = self.enqueue(RunRequest {
                project: project.clone(),
                loaded,
                event,
                cause: format!(
                    "requeued: run {id} was interrupted by a server restart ({})",
                    run.cause
                ),
                only_job: meta.only_job.clone(),
                chain: meta.chain_id.zip(meta.chain_step),
                retry_of: Some(id),
                approved_by: meta.approved_by.clone(),
                keep: meta.keep_jobs.clone(),
            })?;
            if let Some(cid) = meta.chain_id {
                crate::chains::run_replaced(self, cid, id, new);
            }
            self.db.set_run_reason(
                id,
                &format!("interrupted by a server restart; requeued as run {new}"),
            )?;
            out.push((id, Some(new)));
        }
        Ok(out)
    }
}
