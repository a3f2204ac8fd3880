//! Fixtures of the engine's tests: a git repository in a temp dir, a DRYDOCK_HOME with the
//! busybox image (drydock-kit), an embedded registry on loopback, and a recorder of progress.
#![allow(dead_code, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use drydock_content::Store;
use drydock_db::{Db, Status};
use drydock_pipeline::git::EventOverrides;
use drydock_pipeline::{
    Cancel, Engine, EngineConfig, ImageBuilder, NoBuilder, PipelineRun, Progress, RunEvent,
    RunResult,
};
use drydock_registry_client::{BlockingClient, ClientOptions};
use drydock_secret::Secret;

pub const INIT: &str = env!("CARGO_BIN_EXE_drydock-pipeline-init");

/// Root, busybox-static and git: what the sandbox tests need (CI must have them).
pub fn sandbox_ready() -> bool {
    drydock_testkit::require_root("running jobs in the sandbox")
        && drydock_testkit::precondition(
            Path::new("/bin/busybox").is_file(),
            "busybox-static is installed (apt-get install busybox-static)",
        )
        && git_ready()
}

pub fn git_ready() -> bool {
    drydock_testkit::require_tool("git", "git").is_some()
}

/// `git -C dir args` with a fixed identity and fixed commit dates; must succeed. Its stdout,
/// trimmed.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let mut cmd = drydock_testkit::git_command(dir);
    cmd.env("GIT_AUTHOR_DATE", "2024-05-01T12:00:00Z")
        .env("GIT_COMMITTER_DATE", "2024-05-01T12:00:00Z")
        .args(args);
    drydock_testkit::run_ok(&mut cmd).trim().to_string()
}

/// A repository with `files`, committed on `main`.
pub fn repo(dir: &Path, files: &[(&str, &str)]) -> PathBuf {
    let r = dir.join("repo");
    std::fs::create_dir_all(&r).unwrap();
    git(&r, &["init", "-q", "-b", "main"]);
    write(&r, files);
    git(&r, &["add", "-A"]);
    git(&r, &["commit", "-q", "-m", "initial"]);
    r
}

pub fn write(dir: &Path, files: &[(&str, &str)]) {
    for (p, c) in files {
        let path = dir.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, c).unwrap();
        if p.ends_with(".sh") {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
}

pub fn commit(dir: &Path, msg: &str) {
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", msg]);
}

/// Collects every progress event as a line.
#[derive(Default)]
pub struct Recorder {
    pub lines: Mutex<Vec<String>>,
}

impl Recorder {
    pub fn text(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }
}

impl Progress for Recorder {
    fn event(&self, e: &RunEvent<'_>) {
        let line = match e {
            RunEvent::RunStarted { run_id, cause } => format!("run {run_id}: {cause}"),
            RunEvent::Job {
                job,
                status,
                reason,
            } => format!("job {job}: {status} {}", reason.unwrap_or("")),
            RunEvent::StepStarted { job, index, name } => format!("step {job}#{index} {name}"),
            RunEvent::StepFinished {
                job,
                index,
                status,
                reason,
                ..
            } => format!("step {job}#{index}: {status} {}", reason.unwrap_or("")),
            RunEvent::Log {
                job, stream, line, ..
            } => format!("{job} | {stream}: {line}"),
            RunEvent::RunFinished { status, .. } => format!("run finished: {status}"),
        };
        self.lines.lock().unwrap().push(line);
    }
}

/// An embedded registry on 127.0.0.1, on its own runtime.
pub struct TestRegistry {
    pub host: String,
    pub registry: drydock_registry_server::Registry,
    _dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    _rt: tokio::runtime::Runtime,
}

impl TestRegistry {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut cfg = drydock_registry_server::RegistryConfig::new(dir.path().join("storage"));
        cfg.gc_interval = None;
        cfg.durable = false;
        let registry = drydock_registry_server::Registry::open(cfg).unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let reg = registry.clone();
        rt.spawn(async move {
            let _ = drydock_registry_server::serve(
                reg,
                listener,
                drydock_registry_server::ServeOptions { tls: None },
                async {
                    let _ = rx.await;
                },
            )
            .await;
        });
        Self {
            host: format!("127.0.0.1:{}", addr.port()),
            registry,
            _dir: dir,
            shutdown: Some(tx),
            _rt: rt,
        }
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub fn client() -> BlockingClient {
    BlockingClient::new(ClientOptions::default()).unwrap()
}

/// A DRYDOCK_HOME with busybox in its store, and an engine over it.
pub struct Home {
    pub dir: tempfile::TempDir,
    pub store: Arc<Store>,
    pub db: Arc<Db>,
}

impl Home {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("drydock-pipeline-test")
            .tempdir()
            .unwrap();
        let store = Arc::new(Store::open(dir.path().join("content")).unwrap());
        let db = Arc::new(Db::open(dir.path().join("drydock.db")).unwrap());
        Self { dir, store, db }
    }

    pub fn with_busybox() -> Self {
        let h = Self::new();
        drydock_kit::busybox(&h.store, &drydock_kit::BusyboxOptions::default()).unwrap();
        h
    }

    pub fn engine(&self, builder: Arc<dyn ImageBuilder>) -> Engine {
        let mut cfg = EngineConfig::new(self.dir.path());
        cfg.init_binary = Some(PathBuf::from(INIT));
        cfg.max_parallel = 4;
        Engine::new(
            cfg,
            self.db.clone(),
            self.store.clone(),
            Arc::new(client()),
            builder,
        )
    }
}

/// One run of `drydock.yml` in `repo`, on the event the checkout gives with `over` applied.
pub struct Run<'a> {
    pub engine: &'a Engine,
    pub repo: &'a Path,
    pub over: EventOverrides,
    pub secrets: Vec<(&'a str, &'a str)>,
    pub only_job: Option<&'a str>,
    pub cancel: Cancel,
}

impl<'a> Run<'a> {
    pub fn new(engine: &'a Engine, repo: &'a Path) -> Self {
        Self {
            engine,
            repo,
            over: EventOverrides::default(),
            secrets: Vec::new(),
            only_job: None,
            cancel: Cancel::new(),
        }
    }

    pub fn go(&self) -> (RunResult, Arc<Recorder>) {
        let src = std::fs::read_to_string(self.repo.join("drydock.yml")).unwrap();
        let pipeline = drydock_pipeline::load("drydock.yml", &src)
            .unwrap_or_else(|e| panic!("drydock.yml does not load:\n{e}"));
        let event =
            drydock_pipeline::git::event_from_checkout(self.repo, &self.over).expect("event");
        let rec = Arc::new(Recorder::default());
        let run = PipelineRun {
            project: "test".into(),
            pipeline: Arc::new(pipeline),
            event,
            source: self.repo.to_path_buf(),
            git_files_only: true,
            secrets: self
                .secrets
                .iter()
                .map(|(k, v)| (k.to_string(), Secret::new(*v)))
                .collect(),
            only_job: self.only_job.map(String::from),
            cause: None,
            run_id: None,
            progress: rec.clone(),
            cancel: self.cancel.clone(),
        };
        let result = self.engine.run(run).expect("the run runs");
        (result, rec)
    }
}

pub fn no_builder() -> Arc<dyn ImageBuilder> {
    Arc::new(NoBuilder)
}

/// Asserts a job's status, printing the run's output when it differs.
#[track_caller]
pub fn assert_job(r: &RunResult, rec: &Recorder, job: &str, status: Status) {
    let j = r
        .job(job)
        .unwrap_or_else(|| panic!("no job {job} in the result:\n{}", rec.text()));
    assert_eq!(
        j.status,
        status,
        "job {job}: {:?}\n--- output:\n{}",
        j.reason,
        rec.text()
    );
}
