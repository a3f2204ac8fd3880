//! Test support for drydock's integration tests, which run against real peers rather than mocks.
//!
//! - [`require_tool`] / [`require_root`]: a missing precondition fails the test when `CI` is
//!   set (so CI can never pass by skipping), and skips it with a printed reason otherwise.
//! - [`Docker`]: Debian's Docker engine (`/usr/bin/docker` + `/usr/sbin/dockerd`), started once
//!   in the background and shared by all tests.
//! - [`ReferenceRegistry`]: Debian's `docker-registry` (the CNCF reference registry) on a free
//!   loopback port with its own storage, stopped when dropped.
//! - [`users`]: unprivileged host users with (or without) subordinate ids, for rootless tests.
//! - [`git`], [`git_command`]: git with a fixed identity, for repositories made by tests.
//! - [`free_port`], [`run`]: small helpers.

// Test support reports skips on stderr by design.
#![allow(clippy::print_stderr)]

pub mod users;

use std::fs::{File, OpenOptions};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false")
}

/// Handles a missing precondition: panics in CI, returns `false` (skip) locally.
pub fn precondition(ok: bool, what: &str) -> bool {
    if ok {
        return true;
    }
    if in_ci() {
        panic!("precondition failed in CI: {what} (.ci/run must provide it)");
    }
    eprintln!("SKIP: {what}");
    false
}

/// Finds an executable on `PATH` or at an absolute path.
pub fn which(tool: &str) -> Option<PathBuf> {
    let p = Path::new(tool);
    if p.is_absolute() {
        return p.is_file().then(|| p.to_path_buf());
    }
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(tool))
        .find(|c| c.is_file())
}

/// The tool's path, or `None` when the test should be skipped (never in CI).
pub fn require_tool(tool: &str, package: &str) -> Option<PathBuf> {
    let found = which(tool);
    precondition(
        found.is_some(),
        &format!("{tool} not found (apt-get install {package})"),
    )
    .then(|| found.expect("checked"))
}

/// Whether the effective uid is 0 (also as root of a user namespace).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

pub fn require_root(what: &str) -> bool {
    precondition(is_root(), &format!("{what} needs root"))
}

/// A free TCP port on 127.0.0.1 (racy by nature; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// Runs a command, returning its output; panics with stderr when it cannot start.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs a command that must succeed and returns its stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}:\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `git -C dir` as author and committer `t <t@example.invalid>`: add the arguments (and any
/// environment, such as fixed dates) and run it.
pub fn git_command(dir: &Path) -> Command {
    let mut c = Command::new("git");
    c.arg("-C")
        .arg(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid");
    c
}

/// Runs `git -C dir args` (see [`git_command`]), which must succeed; returns its stdout,
/// trimmed.
pub fn git(dir: &Path, args: &[&str]) -> String {
    run_ok(git_command(dir).args(args)).trim().to_string()
}

/// Debian's Docker engine. `/usr/local/bin/docker` on these machines is an unrelated client, so
/// the absolute path matters.
#[derive(Debug, Clone)]
pub struct Docker {
    pub client: PathBuf,
}

impl Docker {
    pub const CLIENT: &'static str = "/usr/bin/docker";
    pub const DAEMON: &'static str = "/usr/sbin/dockerd";

    /// Starts `dockerd` if it is not running (once, under a lock shared by test processes).
    pub fn ensure() -> Option<Docker> {
        if !precondition(
            Path::new(Self::CLIENT).is_file() && Path::new(Self::DAEMON).is_file(),
            "Debian's docker.io is not installed (apt-get install docker.io)",
        ) || !require_root("the Docker engine")
        {
            return None;
        }
        let docker = Docker {
            client: PathBuf::from(Self::CLIENT),
        };
        if docker.ping() {
            return Some(docker);
        }
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open("/tmp/drydock-test-dockerd.lock")
            .expect("lock file");
        lock.lock().expect("lock");
        if !docker.ping() {
            let log = File::create("/tmp/drydock-test-dockerd.log").expect("dockerd log");
            // Deliberately detached: one engine serves every test process and outlives them.
            #[allow(clippy::zombie_processes)]
            Command::new(Self::DAEMON)
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .stdin(Stdio::null())
                .spawn()
                .expect("start dockerd");
            let deadline = Instant::now() + Duration::from_secs(60);
            while !docker.ping() {
                assert!(
                    Instant::now() < deadline,
                    "dockerd did not start in 60 s; see /tmp/drydock-test-dockerd.log"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        Some(docker)
    }

    fn ping(&self) -> bool {
        Command::new(&self.client)
            .args(["version", "--format", "{{.Server.Version}}"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    pub fn cmd(&self) -> Command {
        Command::new(&self.client)
    }
}

/// Debian's `docker-registry` serving on a free loopback port; killed on drop.
#[derive(Debug)]
pub struct ReferenceRegistry {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl ReferenceRegistry {
    pub const BIN: &'static str = "/usr/bin/docker-registry";

    /// Starts an anonymous registry; `extra_config` is appended to the YAML config (for `auth:`).
    pub fn start(extra_config: &str) -> Option<Self> {
        require_tool(Self::BIN, "docker-registry")?;
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{extra_config}",
            dir.path().join("data").display()
        );
        let cfg = dir.path().join("config.yml");
        std::fs::write(&cfg, config).expect("write registry config");
        let log = File::create(dir.path().join("registry.log")).expect("log");
        let child = Command::new(Self::BIN)
            .arg("serve")
            .arg(&cfg)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let reg = ReferenceRegistry {
            port,
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(reg)
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for ReferenceRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
