//! The caller's side of a run: prepare directories, cgroups and the init config, spawn the init
//! binary, answer its requests, stream the output, enforce the timeout, clean up.

use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::cgroup;
use crate::changes::{self, Changes, Stub};
use crate::error::SandboxError;
use crate::etcfiles;
use crate::idmap;
use crate::init::INIT_ARG;
use crate::mounts::{Inputs, RootSetup};
use crate::outcome::{ExitStatus, Outcome};
use crate::protocol::{self, FromInit, InitConfig, ToInit, UsernsSetup};
use crate::spec::{Root, RootMode, SandboxSpec, Stdin, Stdio, UserNamespace};

/// Stops a run from another thread: the process tree is killed and [`run`] returns with
/// [`Outcome::cancelled`] set.
#[derive(Debug, Clone)]
pub struct CancelToken(Arc<(OwnedFd, OwnedFd)>);

impl CancelToken {
    pub fn new() -> io::Result<Self> {
        let (r, w) = rustix::pipe::pipe_with(
            rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK,
        )?;
        Ok(Self(Arc::new((r, w))))
    }

    pub fn cancel(&self) {
        let _ = rustix::io::write(&self.0.1, b"x");
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.0.0.as_fd()
    }
}

static RUNS: AtomicU64 = AtomicU64::new(0);

fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}-{}-{:x}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

fn spec_err(field: &'static str, message: impl Into<String>) -> SandboxError {
    SandboxError::Spec {
        field,
        message: message.into(),
    }
}

/// Where captured or streamed output goes in the event loop.
enum Sink {
    Capture(Vec<u8>),
    Stream(crate::spec::OutputCallback),
}

impl Sink {
    fn push(&mut self, data: &[u8]) {
        match self {
            Sink::Capture(v) => v.extend_from_slice(data),
            Sink::Stream(f) => f(data),
        }
    }
}

fn output_fd(
    stdio: Stdio,
    inherit: BorrowedFd<'_>,
) -> Result<(OwnedFd, Option<(OwnedFd, Sink)>), SandboxError> {
    let io = |e: io::Error| SandboxError::io("prepare stdio", "/dev/null", e);
    Ok(match stdio {
        Stdio::Inherit => (
            rustix::io::fcntl_dupfd_cloexec(inherit, 3).map_err(|e| io(e.into()))?,
            None,
        ),
        Stdio::Null => (
            fs::OpenOptions::new()
                .write(true)
                .open("/dev/null")
                .map_err(io)?
                .into(),
            None,
        ),
        Stdio::Fd(fd) => (fd, None),
        Stdio::Capture | Stdio::Stream(_) => {
            let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
                .map_err(|e| io(e.into()))?;
            let sink = match stdio {
                Stdio::Stream(f) => Sink::Stream(f),
                _ => Sink::Capture(Vec::new()),
            };
            (w, Some((r, sink)))
        }
    })
}

fn overlay_usable(state_dir: &Path) -> bool {
    let known = fs::read_to_string("/proc/filesystems")
        .is_ok_and(|s| s.lines().any(|l| l.ends_with("\toverlay")));
    // An upper dir cannot live on overlayfs itself.
    const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;
    let on_overlay = rustix::fs::statfs(state_dir).is_ok_and(|s| s.f_type == OVERLAYFS_SUPER_MAGIC);
    known && !on_overlay
}

/// Runs one command in a sandbox and waits for it. See [`SandboxSpec`].
pub fn run(spec: SandboxSpec) -> Result<Outcome, SandboxError> {
    let started = Instant::now();
    let SandboxSpec {
        root,
        root_mode,
        mounts,
        argv,
        env,
        user,
        cwd,
        hostname,
        network,
        extra_hosts,
        resolv_conf,
        limits,
        rlimits,
        timeout,
        stdin,
        stdout,
        stderr,
        isolation,
        state_dir,
        keep_changes,
        init_binary,
        cancel,
    } = spec;

    if argv.is_empty() {
        return Err(spec_err("argv", "the command is empty"));
    }
    if !etcfiles::valid_hostname(&hostname) {
        return Err(spec_err(
            "hostname",
            format!("{hostname:?} is not a valid hostname"),
        ));
    }
    let cwd = cwd.unwrap_or_else(|| "/".to_string());
    if !cwd.starts_with('/') {
        return Err(spec_err("cwd", format!("{cwd:?} must be an absolute path")));
    }
    let caps = crate::caps::effective_set(isolation.capabilities.as_deref())
        .map_err(|e| spec_err("capabilities", e.to_string()))?;
    let rootless = match isolation.user_namespace {
        UserNamespace::Off if !rustix::process::geteuid().is_root() => {
            return Err(spec_err(
                "isolation.user_namespace",
                "running without a user namespace needs root",
            ));
        }
        UserNamespace::Off => false,
        UserNamespace::Auto => !rustix::process::geteuid().is_root(),
        UserNamespace::Rootless => true,
    };
    // Already root of a user namespace (a rootless build re-executes drydock inside one): no new
    // one, but overlayfs needs `userxattr` and cgroups belong to the host's root.
    let nested = !rootless && crate::userns::in_user_namespace();
    let userxattr = rootless || nested;
    let lowers_bottom_first: Vec<PathBuf> = match &root {
        Root::Layers(l) if l.is_empty() => return Err(spec_err("root", "no layers")),
        Root::Layers(l) => l.clone(),
        Root::Rootfs(d) => vec![d.clone()],
    };
    for l in &lowers_bottom_first {
        if !l.is_dir() {
            return Err(SandboxError::io(
                "open root layer",
                l.clone(),
                io::Error::from(io::ErrorKind::NotFound),
            ));
        }
    }

    // Per-run directories.
    fs::create_dir_all(&state_dir)
        .map_err(|e| SandboxError::io("create state directory", &state_dir, e))?;
    let state_dir = fs::canonicalize(&state_dir)
        .map_err(|e| SandboxError::io("resolve state directory", &state_dir, e))?;
    let id = run_id();
    let run_dir = state_dir.join(format!("run-{id}"));
    let mut guard = RunDirGuard {
        dir: Some(run_dir.clone()),
        remover: None,
    };
    let mkdir =
        |p: &Path| fs::create_dir_all(p).map_err(|e| SandboxError::io("create directory", p, e));
    let (merged, stage) = (run_dir.join("merged"), run_dir.join("stage"));
    mkdir(&merged)?;
    mkdir(&stage)?;
    let use_overlay = match root_mode {
        RootMode::Overlay => true,
        RootMode::Copy => false,
        RootMode::Auto => overlay_usable(&state_dir),
    };
    let (root_setup, upper, base) = if use_overlay {
        let (upper, work) = (run_dir.join("upper"), run_dir.join("work"));
        mkdir(&upper)?;
        mkdir(&work)?;
        let lowers = lowers_bottom_first.iter().rev().cloned().collect();
        (
            RootSetup::Overlay {
                lowers,
                upper: upper.clone(),
                work,
                userxattr,
            },
            upper,
            None,
        )
    } else {
        let (base, tree) = (run_dir.join("base"), run_dir.join("tree"));
        crate::copytree::merge_layers(&lowers_bottom_first, &base)
            .map_err(|e| SandboxError::io("merge layers into", &base, e))?;
        crate::copytree::copy_tree(&base, &tree)
            .map_err(|e| SandboxError::io("copy root into", &tree, e))?;
        (RootSetup::Copy { dir: tree.clone() }, tree, Some(base))
    };

    // Ids.
    let (userns, tty_gid_mapped, setgroups) = if rootless {
        let (uid_map, gid_map) = crate::userns::caller_maps();
        let tty = idmap::is_mapped(&gid_map, 5);
        let setgroups = gid_map.len() > 1;
        (UsernsSetup::ByCaller { uid_map, gid_map }, tty, setgroups)
    } else if nested {
        let gid_map =
            crate::userns::parse_map(&fs::read_to_string("/proc/self/gid_map").unwrap_or_default());
        (UsernsSetup::Off, idmap::is_mapped(&gid_map, 5), true)
    } else {
        (UsernsSetup::Off, true, true)
    };
    // cgroups.
    let mut warnings = Vec::new();
    let mut cg_plan = cgroup::Plan::default();
    if limits != crate::spec::Limits::default() {
        if (rootless && !rustix::process::geteuid().is_root()) || nested {
            warnings.push("cgroup limits are not enforced in a rootless sandbox".to_string());
        } else {
            let h = cgroup::locate(
                &fs::read_to_string("/proc/self/mountinfo").unwrap_or_default(),
                &fs::read_to_string("/proc/self/cgroup").unwrap_or_default(),
            );
            let v2_ctrl =
                h.v2.as_ref()
                    .and_then(|(m, own)| {
                        fs::read_to_string(
                            m.join(own.trim_start_matches('/'))
                                .join("cgroup.controllers"),
                        )
                        .ok()
                    })
                    .unwrap_or_default();
            cg_plan = cgroup::plan(&h, &id, &limits, &v2_ctrl);
            warnings.extend(
                cg_plan
                    .unenforced
                    .iter()
                    .map(|w| format!("{w} is not enforced: no cgroup controller for it")),
            );
            cgroup::create(&cg_plan).map_err(|(path, e)| SandboxError::Cgroup {
                path,
                message: e.to_string(),
            })?;
        }
    }
    let cg_guard = CgroupGuard(cg_plan);

    let hosts = etcfiles::hosts(
        network,
        fs::read_to_string("/etc/hosts").ok().as_deref(),
        &hostname,
        &extra_hosts,
    );
    let resolv = etcfiles::resolv_conf(
        network,
        resolv_conf.as_deref(),
        fs::read_to_string("/etc/resolv.conf").ok().as_deref(),
    );
    let cfg = InitConfig {
        mounts: Inputs {
            root: root_setup,
            merged,
            stage,
            mounts,
            hosts,
            resolv_conf: resolv,
            hostname: etcfiles::hostname(&hostname),
            network,
            tty_gid_mapped,
        },
        userns,
        network_none: network == crate::spec::NetworkMode::None,
        hostname,
        argv,
        env,
        user,
        cwd,
        caps,
        no_new_privs: isolation.no_new_privileges,
        seccomp: isolation.seccomp,
        rlimits,
        cgroup_procs: cgroup::procs_files(&cg_guard.0),
        binfmt_dir: PathBuf::from("/proc/sys/fs/binfmt_misc"),
        setgroups,
    };

    // stdio for the command.
    let stdin_fd: OwnedFd = match stdin {
        Stdin::Null => fs::File::open("/dev/null")
            .map_err(|e| SandboxError::io("open", "/dev/null", e))?
            .into(),
        Stdin::Inherit => rustix::io::fcntl_dupfd_cloexec(std::io::stdin().as_fd(), 3)
            .map_err(|e| SandboxError::io("duplicate stdin", "/dev/stdin", e.into()))?,
        Stdin::Fd(fd) => fd,
    };
    let (stdout_fd, out_sink) = output_fd(stdout, std::io::stdout().as_fd())?;
    let (stderr_fd, err_sink) = output_fd(stderr, std::io::stderr().as_fd())?;

    // Spawn the init.
    let binary = init_binary
        .or_else(|| std::env::var_os("DRYDOCK_SANDBOX_INIT").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/proc/self/exe"));
    if rootless {
        guard.remover = Some(changes::Remover {
            binary: binary.clone(),
            userns: cfg.userns.clone(),
        });
    }
    let (ours, theirs) = protocol::pair().map_err(|e| SandboxError::Spawn {
        binary: binary.clone(),
        source: e,
    })?;
    let debug = std::env::var_os("DRYDOCK_SANDBOX_DEBUG").is_some();
    let mut child = Command::new(&binary)
        .arg(INIT_ARG)
        .env_clear()
        .stdin(std::process::Stdio::from(theirs))
        .stdout(std::process::Stdio::null())
        .stderr(if debug {
            std::process::Stdio::inherit()
        } else {
            std::process::Stdio::null()
        })
        .spawn()
        .map_err(|e| SandboxError::Spawn {
            binary: binary.clone(),
            source: e,
        })?;
    let sent = protocol::send_config(
        ours.as_fd(),
        &cfg,
        [stdin_fd.as_fd(), stdout_fd.as_fd(), stderr_fd.as_fd()],
    );
    drop((stdin_fd, stdout_fd, stderr_fd));
    if let Err(e) = sent {
        let _ = child.kill();
        let _ = child.wait();
        return Err(SandboxError::Protocol(format!(
            "sending the config to {}: {e}",
            binary.display()
        )));
    }

    let mut ev = EventLoop {
        sock: Some(ours),
        outs: [out_sink, err_sink],
        finished: [None, None],
        started,
        timings: Vec::new(),
        deadline: timeout.map(|t| Instant::now() + t),
        cancel,
        status: None,
        error: None,
        stubs: Vec::new(),
        timed_out: false,
        cancelled: false,
        killed_at: None,
        cfg: &cfg,
    };
    ev.mark("init spawned, config sent");
    let loop_result = ev.run(&mut child);
    let helper_status = child.wait();
    ev.mark("init reaped");
    let EventLoop {
        mut timings,
        finished,
        status,
        error,
        stubs,
        timed_out,
        cancelled,
        ..
    } = ev;
    loop_result?;

    // Nothing may outlive the run: kill leftovers in the cgroups and remove them.
    for (path, e) in cgroup::remove(&cg_guard.0) {
        warnings.push(format!("could not remove cgroup {}: {e}", path.display()));
    }
    std::mem::forget(cg_guard);

    if let Some(FromInit::Error {
        stage,
        message,
        errno,
        foreign_arch,
    }) = error
    {
        return Err(if foreign_arch {
            SandboxError::ForeignArchitecture(message)
        } else {
            SandboxError::Setup {
                stage,
                message,
                errno,
            }
        });
    }
    let status = match (status, helper_status) {
        (Some(s), _) => s,
        (None, _) if timed_out || cancelled => ExitStatus::Signaled(libc::SIGKILL),
        (None, st) => {
            return Err(SandboxError::Protocol(format!(
                "the sandbox init ({}) ended without reporting the command's status ({st:?})",
                binary.display()
            )));
        }
    };

    let [out_sink, err_sink] = finished;
    let take = |s: Option<Sink>| match s {
        Some(Sink::Capture(v)) => v,
        _ => Vec::new(),
    };
    let changes = if keep_changes {
        match &base {
            None => changes::remove_stubs_overlay(&upper, &lowers_bottom_first, &stubs),
            Some(b) => changes::remove_stubs_copy(&upper, b, &stubs),
        }
        guard.dir = None;
        Some(Changes {
            run_dir,
            upper,
            lowers: lowers_bottom_first,
            base,
            userxattr,
            keep: false,
            remover: guard.remover.clone(),
        })
    } else {
        None
    };
    drop(guard);
    timings.push(("cleaned up", started.elapsed()));
    Ok(Outcome {
        status,
        timed_out,
        cancelled,
        stdout: take(out_sink),
        stderr: take(err_sink),
        changes,
        warnings,
        duration: started.elapsed(),
        run_id: id,
        timings,
    })
}

struct RunDirGuard {
    dir: Option<PathBuf>,
    remover: Option<changes::Remover>,
}

impl Drop for RunDirGuard {
    fn drop(&mut self) {
        if let Some(d) = &self.dir {
            changes::discard(d, self.remover.clone());
        }
    }
}

struct CgroupGuard(cgroup::Plan);

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        let _ = cgroup::remove(&self.0);
    }
}

struct EventLoop<'a> {
    sock: Option<OwnedFd>,
    outs: [Option<(OwnedFd, Sink)>; 2],
    started: Instant,
    timings: Vec<(&'static str, Duration)>,
    /// Sinks whose pipe reached end of file.
    finished: [Option<Sink>; 2],
    deadline: Option<Instant>,
    cancel: Option<crate::run::CancelToken>,
    status: Option<ExitStatus>,
    error: Option<FromInit>,
    stubs: Vec<Stub>,
    timed_out: bool,
    cancelled: bool,
    killed_at: Option<Instant>,
    cfg: &'a InitConfig,
}

/// How long the init gets to report after a kill before it is killed itself.
const KILL_GRACE: Duration = Duration::from_secs(10);

impl EventLoop<'_> {
    fn mark(&mut self, what: &'static str) {
        self.timings.push((what, self.started.elapsed()));
    }

    fn close_out(&mut self, i: usize) {
        if let Some((_, sink)) = self.outs[i].take() {
            self.finished[i] = Some(sink);
        }
    }

    fn kill(&mut self) {
        if let Some(s) = &self.sock {
            let _ = protocol::send(s.as_fd(), &ToInit::Kill);
        }
        self.killed_at.get_or_insert_with(Instant::now);
    }

    fn run(&mut self, child: &mut std::process::Child) -> Result<(), SandboxError> {
        use rustix::event::{PollFd, PollFlags, poll};
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let open_outs: Vec<usize> = (0..2).filter(|i| self.outs[*i].is_some()).collect();
            if self.sock.is_none() && open_outs.is_empty() {
                return Ok(());
            }
            let now = Instant::now();
            if let Some(d) = self.deadline
                && now >= d
                && self.killed_at.is_none()
            {
                self.timed_out = true;
                self.kill();
            }
            if let Some(k) = self.killed_at
                && now >= k + KILL_GRACE
            {
                // The init did not obey: kill it (its pid 1 dies with it, by PDEATHSIG).
                let _ = child.kill();
                self.sock = None;
                for i in 0..2 {
                    self.close_out(i);
                }
                return Ok(());
            }
            let wait_until = match (
                self.deadline.filter(|_| self.killed_at.is_none()),
                self.killed_at,
            ) {
                (Some(d), _) => Some(d),
                (None, Some(k)) => Some(k + KILL_GRACE),
                (None, None) => None,
            };
            let timeout = wait_until.map(|w| {
                let d = w.saturating_duration_since(now);
                rustix::event::Timespec {
                    tv_sec: d.as_secs() as i64,
                    tv_nsec: i64::from(d.subsec_nanos()),
                }
            });

            let mut fds: Vec<PollFd<'_>> = Vec::new();
            if let Some(s) = &self.sock {
                fds.push(PollFd::new(s, PollFlags::IN));
            }
            for i in &open_outs {
                fds.push(PollFd::new(
                    &self.outs[*i].as_ref().expect("open").0,
                    PollFlags::IN,
                ));
            }
            let cancel = self.cancel.clone().filter(|_| self.killed_at.is_none());
            let cancel_fd = cancel.as_ref().map(|c| c.fd());
            if let Some(c) = &cancel_fd {
                fds.push(PollFd::new(c, PollFlags::IN));
            }
            match poll(&mut fds, timeout.as_ref()) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(SandboxError::Protocol(format!("poll: {e}"))),
            }
            let ready: Vec<bool> = fds.iter().map(|f| !f.revents().is_empty()).collect();
            drop(fds);
            let mut idx = 0;
            if self.sock.is_some() {
                if ready[idx] {
                    self.on_message()?;
                }
                idx += 1;
            }
            for i in open_outs {
                if ready[idx] {
                    let fd = &self.outs[i].as_ref().expect("open").0;
                    match rustix::io::read(fd, &mut buf) {
                        Ok(0) | Err(_) => self.close_out(i),
                        Ok(n) => self.outs[i].as_mut().expect("open").1.push(&buf[..n]),
                    }
                }
                idx += 1;
            }
            if cancel_fd.is_some() && ready[idx] {
                self.cancelled = true;
                self.kill();
            }
        }
    }

    fn on_message(&mut self) -> Result<(), SandboxError> {
        let sock = self.sock.as_ref().expect("open");
        let msg = match protocol::recv::<FromInit>(sock.as_fd()) {
            Ok(Some(m)) => m,
            Ok(None) | Err(_) => {
                self.mark("init closed the protocol socket");
                self.sock = None;
                return Ok(());
            }
        };
        match msg {
            FromInit::NeedIdMap { pid } => {
                let r = write_id_maps(pid, &self.cfg.userns);
                if let Err(e) = r {
                    self.kill();
                    return Err(e);
                }
                let _ = protocol::send(sock.as_fd(), &ToInit::Continue);
            }
            FromInit::Started { .. } => self.mark("pid 1 forked"),
            FromInit::Stubs(s) => {
                self.mark("root file system mounted");
                self.stubs = s;
            }
            FromInit::Exited(s) => {
                self.mark("command exited");
                self.status.get_or_insert(s);
            }
            e @ FromInit::Error { .. } => {
                self.error.get_or_insert(e);
            }
        }
        Ok(())
    }
}

/// Removes `path` from inside a user namespace with the given id maps (files owned by
/// subordinate ids cannot be deleted from outside it).
pub(crate) fn remove_in_userns(
    binary: &Path,
    userns: &UsernsSetup,
    path: &Path,
) -> Result<(), SandboxError> {
    let (ours, theirs) = protocol::pair().map_err(|e| SandboxError::Spawn {
        binary: binary.to_path_buf(),
        source: e,
    })?;
    let mut child = Command::new(binary)
        .arg(INIT_ARG)
        .arg(crate::init::REMOVE_ARG)
        .arg(path)
        .env_clear()
        .stdin(std::process::Stdio::from(theirs))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| SandboxError::Spawn {
            binary: binary.to_path_buf(),
            source: e,
        })?;
    while let Ok(Some(msg)) = protocol::recv::<FromInit>(ours.as_fd()) {
        if let FromInit::NeedIdMap { pid } = msg {
            if let Err(e) = write_id_maps(pid, userns) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
            let _ = protocol::send(ours.as_fd(), &ToInit::Continue);
        }
    }
    let st = child
        .wait()
        .map_err(|e| SandboxError::io("wait for", binary, e))?;
    if st.success() {
        Ok(())
    } else {
        Err(SandboxError::io(
            "remove in user namespace",
            path,
            io::Error::other(format!("{st}")),
        ))
    }
}

/// Writes a rootless sandbox's id maps: through newuidmap/newgidmap when there are subordinate
/// ranges, else directly (only one id mapped, setgroups denied).
pub(crate) fn write_id_maps(pid: i32, setup: &UsernsSetup) -> Result<(), SandboxError> {
    let UsernsSetup::ByCaller { uid_map, gid_map } = setup else {
        return Ok(());
    };
    if uid_map.len() == 1 && gid_map.len() == 1 {
        let proc = PathBuf::from(format!("/proc/{pid}"));
        let w = |f: &str, s: &str| {
            fs::write(proc.join(f), s)
                .map_err(|e| SandboxError::Rootless(format!("writing {}/{f}: {e}", proc.display())))
        };
        w("uid_map", &idmap::map_text(uid_map))?;
        w("setgroups", "deny")?;
        return w("gid_map", &idmap::map_text(gid_map));
    }
    for (tool, map) in [("newuidmap", uid_map), ("newgidmap", gid_map)] {
        let out = Command::new(tool)
            .arg(pid.to_string())
            .args(idmap::helper_args(map))
            .output()
            .map_err(|e| {
                SandboxError::Rootless(format!("{tool} (package uidmap) could not run: {e}"))
            })?;
        if !out.status.success() {
            return Err(SandboxError::Rootless(format!(
                "{tool} {pid} {} failed: {}",
                idmap::helper_args(map).join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
    }
    Ok(())
}
