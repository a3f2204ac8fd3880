//! The sandbox init: the code that runs in the freshly exec'd, single-threaded helper process.
//!
//! Process tree of one run:
//!
//! ```text
//! caller (drydock, many threads)
//!  └─ helper   = this binary with INIT_ARG; joins cgroups, enters the user namespace, unshares
//!     │          mount/PID/UTS/IPC/cgroup(/net) namespaces, relays Kill, reports pid 1's fate
//!     └─ pid 1 = sandbox init: mounts the root, pivots, forks the command, reaps zombies,
//!        │       forwards signals, kills the rest when the command exits
//!        └─ command: stdio, rlimits, user, capabilities, no_new_privs, seccomp, execve
//! ```
//!
//! The caller never forks into a namespace itself: it only spawns this binary (posix_spawn),
//! so nothing here depends on the state of the caller's other threads.

use std::ffi::{CString, OsStr};
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::binfmt;
use crate::changes::Stub;
use crate::mounts::{self, At, Create, Op};
use crate::outcome::ExitStatus;
use crate::protocol::{self, FromInit, InitConfig, ToInit, UsernsSetup};
use crate::sys::{Linux, Sys};
use crate::users;

/// The argument (argv[1]) that turns a binary into the sandbox init.
pub const INIT_ARG: &str = "__drydock-sandbox-init";

const CLONE_NEWNS: u32 = 0x0002_0000;
const CLONE_NEWCGROUP: u32 = 0x0200_0000;
const CLONE_NEWUTS: u32 = 0x0400_0000;
const CLONE_NEWIPC: u32 = 0x0800_0000;
const CLONE_NEWUSER: u32 = 0x1000_0000;
const CLONE_NEWPID: u32 = 0x2000_0000;
const CLONE_NEWNET: u32 = 0x4000_0000;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Call first thing in `main`: when this process was started as the sandbox init, runs it and
/// exits; otherwise returns at once. Must run before any thread is spawned.
pub fn maybe_run_init() {
    let mut args = std::env::args_os();
    let _ = args.next();
    if args.next().as_deref() != Some(OsStr::new(INIT_ARG)) {
        return;
    }
    let rest: Vec<std::ffi::OsString> = args.collect();
    let code = if rest.first().map(|a| a.as_os_str()) == Some(OsStr::new(REMOVE_ARG)) {
        remove_main(&rest[1..])
    } else {
        helper_main()
    };
    std::process::exit(code);
}

/// A failure inside the sandbox before the command ran.
#[derive(Debug)]
pub(crate) struct Failure {
    stage: String,
    err: io::Error,
    foreign_arch: bool,
}

fn fail(stage: impl Into<String>) -> impl FnOnce(io::Error) -> Failure {
    let stage = stage.into();
    move |err| Failure {
        stage,
        err,
        foreign_arch: false,
    }
}

fn report(sock: BorrowedFd<'_>, f: Failure) {
    let _ = protocol::send(
        sock,
        &FromInit::Error {
            stage: f.stage,
            message: f.err.to_string(),
            errno: f.err.raw_os_error(),
            foreign_arch: f.foreign_arch,
        },
    );
}

/// argv[2] for the rootless removal mode: `INIT_ARG rm PATH...`.
pub(crate) const REMOVE_ARG: &str = "rm";

/// Deletes trees holding files owned by subordinate ids: enters a user namespace (the caller
/// writes the maps), becomes its root, removes the paths.
fn remove_main(paths: &[std::ffi::OsString]) -> i32 {
    let Some(sock) = take_socket() else {
        return 125;
    };
    let sys = Linux;
    let pid = rustix::process::getpid().as_raw_nonzero().get();
    if sys.unshare(CLONE_NEWUSER).is_err()
        || protocol::send(sock.as_fd(), &FromInit::NeedIdMap { pid }).is_err()
        || !matches!(
            protocol::recv::<ToInit>(sock.as_fd()),
            Ok(Some(ToInit::Continue))
        )
        || sys.set_gid(0).is_err()
        || sys.set_uid(0).is_err()
    {
        return 125;
    }
    let mut code = 0;
    for p in paths {
        if crate::changes::remove_tree(Path::new(p)).is_err() {
            code = 1;
        }
    }
    code
}

/// The protocol socket arrives as stdin; move it out of the way (close-on-exec) and put
/// /dev/null in its place.
fn take_socket() -> Option<OwnedFd> {
    let sock = rustix::io::fcntl_dupfd_cloexec(std::io::stdin().as_fd(), 3).ok()?;
    if let Ok(null) = rustix::fs::open(
        "/dev/null",
        rustix::fs::OFlags::RDWR,
        rustix::fs::Mode::empty(),
    ) {
        let mut stdin = std::mem::ManuallyDrop::new(
            // SAFETY: fd 0 is open (it was our stdin); ManuallyDrop keeps it from being closed here.
            unsafe { OwnedFd::from_raw_fd(0) },
        );
        let _ = rustix::io::dup2(&null, &mut stdin);
    }
    Some(sock)
}

fn helper_main() -> i32 {
    let Some(sock) = take_socket() else {
        return 125;
    };
    // Die with the caller's thread (run() blocks that thread until we exit).
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    if rustix::process::getppid().is_none() {
        return 125;
    }
    let (cfg, stdio) = match protocol::recv_config(sock.as_fd()) {
        Ok(c) => c,
        Err(_) => return 125,
    };
    match helper(&cfg, stdio, &sock) {
        Ok(()) => 0,
        Err(f) => {
            report(sock.as_fd(), f);
            1
        }
    }
}

fn helper(cfg: &InitConfig, stdio: Vec<OwnedFd>, sock: &OwnedFd) -> Result<(), Failure> {
    let sys = Linux;
    let pid = rustix::process::getpid().as_raw_nonzero().get();
    for procs in &cfg.cgroup_procs {
        std::fs::write(procs, pid.to_string())
            .map_err(fail(format!("joining cgroup {}", procs.display())))?;
    }
    if let UsernsSetup::ByCaller { .. } = cfg.userns {
        sys.unshare(CLONE_NEWUSER)
            .map_err(fail("creating the user namespace"))?;
        protocol::send(sock.as_fd(), &FromInit::NeedIdMap { pid }).map_err(fail("protocol"))?;
        match protocol::recv::<ToInit>(sock.as_fd()).map_err(fail("protocol"))? {
            Some(ToInit::Continue) => {}
            _ => {
                return Err(fail("waiting for id maps")(io::Error::other(
                    "caller went away",
                )));
            }
        }
        sys.set_gid(0)
            .map_err(fail("becoming root in the user namespace"))?;
        sys.set_uid(0)
            .map_err(fail("becoming root in the user namespace"))?;
    }
    let mut flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWCGROUP;
    if cfg.network_none {
        flags |= CLONE_NEWNET;
    }
    sys.unshare(flags).map_err(fail("creating namespaces"))?;

    // SAFETY: this process is single-threaded (a fresh exec of the init binary that spawned no
    // threads), so the child may use any function, including the allocator.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err(fail("fork of the sandbox pid 1")(io::Error::last_os_error()));
    }
    if child == 0 {
        let code = match pid1(cfg, stdio, sock) {
            Ok(code) => code,
            Err(f) => {
                report(sock.as_fd(), f);
                1
            }
        };
        // SAFETY: _exit is always safe; skipping atexit handlers is intended in a forked child.
        unsafe { libc::_exit(code) };
    }
    drop(stdio);
    let child_pid = rustix::process::Pid::from_raw(child)
        .ok_or_else(|| fail("fork")(io::Error::other("bad pid")))?;
    let _ = protocol::send(sock.as_fd(), &FromInit::Started { pid: child });
    relay(sock, child_pid)
}

/// Waits for pid 1, killing it when the caller says so or goes away.
fn relay(sock: &OwnedFd, child: rustix::process::Pid) -> Result<(), Failure> {
    use rustix::event::{PollFd, PollFlags, poll};
    let pidfd = rustix::process::pidfd_open(child, rustix::process::PidfdFlags::empty())
        .map_err(|e| fail("pidfd_open")(e.into()))?;
    let mut sock_open = true;
    loop {
        let mut fds = vec![PollFd::new(&pidfd, PollFlags::IN)];
        if sock_open {
            fds.push(PollFd::new(sock, PollFlags::IN));
        }
        match poll(&mut fds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(fail("poll")(e.into())),
        }
        let child_done = !fds[0].revents().is_empty();
        let sock_ready = sock_open && !fds[1].revents().is_empty();
        if sock_ready {
            match protocol::recv::<ToInit>(sock.as_fd()) {
                Ok(Some(ToInit::Kill)) => {
                    let _ =
                        rustix::process::pidfd_send_signal(&pidfd, rustix::process::Signal::KILL);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => {
                    // The caller is gone: nobody wants the result; stop everything.
                    sock_open = false;
                    let _ =
                        rustix::process::pidfd_send_signal(&pidfd, rustix::process::Signal::KILL);
                }
            }
        }
        if child_done {
            let status =
                rustix::process::waitpid(Some(child), rustix::process::WaitOptions::empty())
                    .map_err(|e| fail("waitpid")(e.into()))?;
            if let Some((_, st)) = status
                && let Some(sig) = st.terminating_signal()
            {
                let _ = protocol::send(sock.as_fd(), &FromInit::Exited(ExitStatus::Signaled(sig)));
            }
            return Ok(());
        }
    }
}

/// PID 1 of the sandbox. Returns the exit code of pid 1 itself.
fn pid1(cfg: &InitConfig, stdio: Vec<OwnedFd>, sock: &OwnedFd) -> Result<i32, Failure> {
    let sys = Linux;
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    sys.sethostname(&cfg.hostname)
        .map_err(fail("setting the hostname"))?;
    if cfg.network_none {
        sys.loopback_up()
            .map_err(fail("bringing up the loopback interface"))?;
    }
    let ops = mounts::plan(&cfg.mounts).map_err(|e| fail("mount plan")(io::Error::other(e)))?;
    let merged = cfg.mounts.merged.clone();
    // Everything up to the pivot happens with the host's /proc and binfmt_misc still visible.
    let (pre, pivot) = ops.split_at(ops.len() - 1);
    let mut stubs = Vec::new();
    apply_mounts(&sys, pre, &merged, &mut stubs)?;
    let _ = protocol::send(sock.as_fd(), &FromInit::Stubs(stubs.clone()));
    check_architecture(&sys, cfg, &merged)?;
    apply_mounts(&sys, pivot, &merged, &mut stubs)?;

    // From here on the command exists: it must not be able to ptrace us, read our memory or open
    // /proc/1/exe (our binary on the host). Set before the fork; the command's execve makes it
    // dumpable again for itself.
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
    // Block every signal: pid 1 takes them with sigwaitinfo and forwards them.
    // SAFETY: sigset_t is plain data and the pointers are valid for the calls.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: see above.
    unsafe {
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
    }
    // SAFETY: single-threaded process (see `helper`).
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err(fail("fork of the command")(io::Error::last_os_error()));
    }
    if child == 0 {
        let f = command(cfg, stdio, &sys);
        report(sock.as_fd(), f);
        // SAFETY: _exit is always safe.
        unsafe { libc::_exit(127) };
    }
    drop(stdio);
    let status = reap(child);
    let _ = protocol::send(sock.as_fd(), &FromInit::Exited(status));
    Ok(0)
}

/// Reaps zombies and forwards signals until the command exits; then kills what is left.
fn reap(child: libc::pid_t) -> ExitStatus {
    // SAFETY: sigset_t is plain data; every pointer below is valid for its call.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: see above.
    unsafe { libc::sigfillset(&mut all) };
    let mut status = None;
    loop {
        // Reap everything that is ready.
        loop {
            let mut st = 0;
            // SAFETY: `st` is a valid out-pointer.
            let pid = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) };
            if pid <= 0 {
                break;
            }
            if pid == child {
                status = Some(if libc::WIFSIGNALED(st) {
                    ExitStatus::Signaled(libc::WTERMSIG(st))
                } else {
                    ExitStatus::Exited(libc::WEXITSTATUS(st))
                });
            }
        }
        if let Some(s) = status {
            // The command is done: stop its leftovers (as a container stops), then reap them.
            // SAFETY: kill(-1) in a PID namespace signals every process in it except pid 1.
            unsafe { libc::kill(-1, libc::SIGKILL) };
            // SAFETY: a null status pointer is allowed.
            while unsafe { libc::waitpid(-1, std::ptr::null_mut(), 0) } > 0 {}
            return s;
        }
        // SAFETY: siginfo_t is plain data; `all` is a valid set.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointers for the call.
        let sig = unsafe { libc::sigwaitinfo(&all, &mut info) };
        if sig > 0 && sig != libc::SIGCHLD {
            // SAFETY: plain kill to our own child.
            unsafe { libc::kill(child, sig) };
        }
    }
}

/// Executes mount operations against the root at `merged`.
pub(crate) fn apply_mounts(
    sys: &dyn Sys,
    ops: &[Op],
    merged: &Path,
    stubs: &mut Vec<Stub>,
) -> Result<(), Failure> {
    use mounts::{
        MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_PRIVATE, MS_RDONLY, MS_REC, MS_REMOUNT,
    };
    for op in ops {
        match op {
            Op::MakeRootPrivate => sys
                .mount(None, Path::new("/"), None, MS_REC | MS_PRIVATE, None)
                .map_err(fail("making / private"))?,
            Op::Overlay {
                at,
                lowers,
                upper,
                work,
                userxattr,
            } => sys
                .mount_overlay(at, lowers, upper, work, *userxattr)
                .map_err(fail(format!(
                    "mounting overlayfs ({} lower dirs) at {}",
                    lowers.len(),
                    at.display()
                )))?,
            Op::BindRoot { dir } => sys
                .mount(
                    Some(&dir.to_string_lossy()),
                    merged,
                    None,
                    MS_BIND | MS_REC,
                    None,
                )
                .map_err(fail(format!("binding the root {}", dir.display())))?,
            Op::Mount {
                source,
                at,
                fstype,
                flags,
                data,
            } => {
                let stage = format!("mounting {fstype} at {}", at_name(at));
                let target = resolve(sys, merged, at, stubs).map_err(fail(stage.clone()))?;
                let Some(target) = target else { continue };
                let r = sys.mount(Some(source), &target, Some(fstype), *flags, Some(data));
                match r {
                    Err(e) if fstype == "sysfs" && e.raw_os_error() == Some(libc::EPERM) => {
                        // Not the owner of the network namespace (rootless, host network): bind
                        // the host's /sys read-only instead.
                        sys.mount(Some("/sys"), &target, None, MS_BIND | MS_REC, None)
                            .map_err(fail(stage.clone()))?;
                        // `target` (a /proc/self/fd path) names the directory under the new
                        // mount; the remount needs the mount's root: resolve again.
                        let target =
                            resolve(sys, merged, at, stubs).map_err(fail(stage.clone()))?;
                        let Some(target) = target else { continue };
                        let locked = sys.mount_flags(&target).unwrap_or(0);
                        sys.mount(
                            None,
                            &target,
                            None,
                            MS_BIND | MS_REMOUNT | MS_RDONLY | locked,
                            None,
                        )
                        .map_err(fail(stage))?;
                    }
                    Err(e)
                        if fstype == "devpts"
                            && data.contains(",gid=5")
                            && e.raw_os_error() == Some(libc::EINVAL) =>
                    {
                        sys.mount(
                            Some(source),
                            &target,
                            Some(fstype),
                            *flags,
                            Some(&data.replace(",gid=5", "")),
                        )
                        .map_err(fail(stage))?;
                    }
                    r => r.map_err(fail(stage))?,
                }
            }
            Op::Bind {
                from,
                at,
                recursive,
                readonly,
            } => {
                let stage = format!("binding {} at {}", from.display(), at_name(at));
                let target = resolve(sys, merged, at, stubs).map_err(fail(stage.clone()))?;
                let Some(target) = target else { continue };
                let rec = if *recursive { MS_REC } else { 0 };
                sys.mount(
                    Some(&from.to_string_lossy()),
                    &target,
                    None,
                    MS_BIND | rec,
                    None,
                )
                .map_err(fail(stage.clone()))?;
                if *readonly {
                    let target = resolve(sys, merged, at, stubs).map_err(fail(stage.clone()))?;
                    let Some(target) = target else { continue };
                    let locked = sys.mount_flags(&target).unwrap_or(0);
                    sys.mount(
                        None,
                        &target,
                        None,
                        MS_BIND | MS_REMOUNT | MS_RDONLY | locked,
                        None,
                    )
                    .map_err(fail(format!("{stage} (read-only)")))?;
                }
            }
            Op::WriteFile {
                at,
                contents,
                mode,
                uid,
                gid,
            } => {
                let stage = format!("writing {}", at_name(at));
                let target = resolve(sys, merged, at, stubs).map_err(fail(stage.clone()))?;
                let Some(target) = target else { continue };
                sys.write_file(&target, contents, *mode, *uid, *gid)
                    .map_err(fail(stage))?;
            }
            Op::Symlink { at, to } => sys
                .symlink_in_root(merged, at, to, stubs)
                .map_err(fail(format!("creating symlink {at}")))?,
            Op::Mask { path } => {
                let stage = format!("masking {path}");
                let Some(t) = sys
                    .open_in_root(merged, path, Create::Existing, stubs)
                    .map_err(fail(stage.clone()))?
                else {
                    continue;
                };
                if t.is_dir {
                    sys.mount(
                        Some("tmpfs"),
                        t.path(),
                        Some("tmpfs"),
                        MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                        Some("size=0"),
                    )
                } else {
                    sys.mount(Some("/dev/null"), t.path(), None, MS_BIND, None)
                }
                .map_err(fail(stage))?;
            }
            Op::ReadOnly { path } => {
                let stage = format!("making {path} read-only");
                let Some(t) = sys
                    .open_in_root(merged, path, Create::Existing, stubs)
                    .map_err(fail(stage.clone()))?
                else {
                    continue;
                };
                sys.mount(
                    Some(&t.path().to_string_lossy()),
                    t.path(),
                    None,
                    MS_BIND | MS_REC,
                    None,
                )
                .map_err(fail(stage.clone()))?;
                let Some(t) = sys
                    .open_in_root(merged, path, Create::Existing, stubs)
                    .map_err(fail(stage.clone()))?
                else {
                    continue;
                };
                let locked = sys.mount_flags(t.path()).unwrap_or(0);
                sys.mount(
                    None,
                    t.path(),
                    None,
                    MS_BIND | MS_REMOUNT | MS_RDONLY | locked,
                    None,
                )
                .map_err(fail(stage))?;
            }
            Op::PivotRoot { root } => sys.pivot_root(root).map_err(fail("pivot_root"))?,
        }
    }
    Ok(())
}

fn at_name(at: &At) -> String {
    match at {
        At::Host(p) => p.display().to_string(),
        At::Root { path, .. } => path.clone(),
    }
}

/// A path for `mount(2)`: host paths as they are, root paths resolved (and kept open by the
/// returned guard's path being `/proc/self/fd/N`).
fn resolve(
    sys: &dyn Sys,
    merged: &Path,
    at: &At,
    stubs: &mut Vec<Stub>,
) -> io::Result<Option<PathBuf>> {
    match at {
        At::Host(p) => Ok(Some(p.clone())),
        At::Root { path, create } => {
            // The target's descriptor must stay open while it is used: leak it into a holder
            // that lives until the init execs or exits (a handful of descriptors per run).
            let t = sys.open_in_root(merged, path, *create, stubs)?;
            Ok(t.map(|t| {
                let p = t.path().to_path_buf();
                HELD.with(|h| h.borrow_mut().push(t));
                p
            }))
        }
    }
}

thread_local! {
    static HELD: std::cell::RefCell<Vec<crate::sys::Target>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn env_get<'a>(env: &'a [(String, String)], key: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Where `argv0` is in the root at `root` (pre-pivot: `merged`; post-pivot: `/`).
fn find_program(
    sys: &dyn Sys,
    root: &Path,
    argv0: &str,
    path_var: &str,
    cwd: &str,
) -> Option<PathBuf> {
    let candidates: Vec<String> = if argv0.contains('/') {
        vec![if argv0.starts_with('/') {
            argv0.to_string()
        } else {
            format!("{cwd}/{argv0}")
        }]
    } else {
        path_var
            .split(':')
            .filter(|d| !d.is_empty())
            .map(|d| format!("{d}/{argv0}"))
            .collect()
    };
    let mut ignored = Vec::new();
    candidates.into_iter().find_map(|c| {
        let t = sys
            .open_in_root(root, &c, Create::Existing, &mut ignored)
            .ok()??;
        if t.is_dir {
            return None;
        }
        let p = t.path().to_path_buf();
        HELD.with(|h| h.borrow_mut().push(t));
        Some(p)
    })
}

fn read_header(path: &Path) -> Option<Vec<u8>> {
    let mut f = std::fs::File::open(path).ok()?;
    let mut buf = vec![0u8; 256];
    let n = f.read(&mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

/// Refuses, with a message naming the missing binfmt_misc handler, a command built for an
/// architecture this host cannot run.
fn check_architecture(sys: &dyn Sys, cfg: &InitConfig, merged: &Path) -> Result<(), Failure> {
    let Some(argv0) = cfg.argv.first() else {
        return Ok(());
    };
    let path_var = env_get(&cfg.env, "PATH").unwrap_or(DEFAULT_PATH);
    let Some(prog) = find_program(sys, merged, argv0, path_var, &cfg.cwd) else {
        return Ok(());
    };
    let Some(mut header) = read_header(&prog) else {
        return Ok(());
    };
    let mut name = argv0.clone();
    if let Some(interp) = binfmt::shebang_interpreter(&header) {
        let Some(ip) = find_program(sys, merged, &interp, path_var, &cfg.cwd) else {
            return Ok(());
        };
        let Some(h) = read_header(&ip) else {
            return Ok(());
        };
        header = h;
        name = interp;
    }
    if binfmt::elf_info(&header).is_none_or(|i| binfmt::native_machines().contains(&i.machine)) {
        return Ok(());
    }
    let (handlers, mounted) = binfmt::host_handlers(&cfg.binfmt_dir);
    binfmt::check(&name, &header, &handlers, mounted)
        .map(|_| ())
        .map_err(|msg| Failure {
            stage: "checking the command's architecture".into(),
            err: io::Error::other(msg),
            foreign_arch: true,
        })
}

/// The command process: never returns on success (execve).
fn command(cfg: &InitConfig, stdio: Vec<OwnedFd>, sys: &dyn Sys) -> Failure {
    match command_setup(cfg, stdio, sys) {
        Ok(never) => match never {},
        Err(f) => f,
    }
}

enum Never {}

fn command_setup(cfg: &InitConfig, stdio: Vec<OwnedFd>, sys: &dyn Sys) -> Result<Never, Failure> {
    // Default dispositions and an empty mask (the Rust runtime of this binary ignores SIGPIPE).
    // SAFETY: plain libc signal calls with valid arguments.
    unsafe {
        for sig in 1..libc::SIGRTMIN() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    }
    let _ = rustix::process::setsid();
    for (i, fd) in stdio.iter().enumerate().take(3) {
        // SAFETY: fds 0..2 exist (the helper made 0 /dev/null; 1 and 2 were inherited) and are
        // only replaced, never closed, here.
        let mut target = std::mem::ManuallyDrop::new(unsafe { OwnedFd::from_raw_fd(i as i32) });
        rustix::io::dup2(fd, &mut target).map_err(|e| fail("setting up stdio")(e.into()))?;
    }
    drop(stdio);
    // Everything above 2 closes at exec (the protocol socket stays usable until then).
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };

    for r in &cfg.rlimits {
        sys.setrlimit(r.resource, r.soft, r.hard)
            .map_err(fail(format!("setting rlimit {:?}", r.resource)))?;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let user = users::resolve(
        cfg.user.as_deref(),
        &users::parse_passwd(&passwd),
        &users::parse_group(&group),
    )
    .map_err(|e| fail("resolving the user")(io::Error::other(e)))?;

    let mut env = cfg.env.clone();
    for (k, v) in [
        ("PATH", DEFAULT_PATH.to_string()),
        ("HOSTNAME", cfg.hostname.clone()),
        ("HOME", user.home.clone()),
    ] {
        if env_get(&env, k).is_none() {
            env.push((k.to_string(), v));
        }
    }
    if !Path::new(&cfg.cwd).is_dir() {
        std::fs::create_dir_all(&cfg.cwd)
            .map_err(fail(format!("creating working directory {}", cfg.cwd)))?;
    }
    sys.chdir(&cfg.cwd)
        .map_err(fail(format!("changing to working directory {}", cfg.cwd)))?;

    let path_var = env_get(&env, "PATH").unwrap_or(DEFAULT_PATH).to_string();
    let argv0 = cfg
        .argv
        .first()
        .ok_or_else(|| fail("exec")(io::Error::other("empty argv")))?;
    let program = lookup_in_path(argv0, &path_var)
        .ok_or_else(|| fail(format!("exec {argv0}"))(io::Error::from_raw_os_error(libc::ENOENT)))?;

    let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40);
    let prog = cfg
        .seccomp
        .then(|| crate::seccomp::compile(&crate::seccomp::default_profile()));
    apply_identity(
        sys,
        &user,
        cfg.caps,
        last_cap,
        cfg.no_new_privs,
        cfg.setgroups,
        prog.as_deref(),
    )
    .map_err(|(stage, e)| fail(stage)(e))?;

    let to_c = |s: &str| {
        CString::new(s).map_err(|_| fail("exec")(io::Error::other(format!("NUL byte in {s:?}"))))
    };
    let c_prog = CString::new(program.as_os_str().as_encoded_bytes())
        .map_err(|_| fail("exec")(io::Error::other("NUL in path")))?;
    let c_argv = cfg
        .argv
        .iter()
        .map(|a| to_c(a))
        .collect::<Result<Vec<_>, _>>()?;
    let c_env = env
        .iter()
        .map(|(k, v)| to_c(&format!("{k}={v}")))
        .collect::<Result<Vec<_>, _>>()?;
    let mut argv_ptrs: Vec<*const libc::c_char> = c_argv.iter().map(|c| c.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut env_ptrs: Vec<*const libc::c_char> = c_env.iter().map(|c| c.as_ptr()).collect();
    env_ptrs.push(std::ptr::null());
    // SAFETY: NUL-terminated strings and NULL-terminated pointer arrays that outlive the call.
    unsafe { libc::execve(c_prog.as_ptr(), argv_ptrs.as_ptr(), env_ptrs.as_ptr()) };
    let err = io::Error::last_os_error();
    Err(fail(format!("exec {}", program.display()))(err))
}

fn lookup_in_path(argv0: &str, path_var: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    if argv0.contains('/') {
        return Some(PathBuf::from(argv0));
    }
    path_var
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(argv0))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Drops to the command's identity: bounding set, groups, gid, uid (keeping capabilities across
/// the uid change), the capability sets, no ambient capabilities, no_new_privs, seccomp.
pub(crate) fn apply_identity(
    sys: &dyn Sys,
    user: &users::ResolvedUser,
    caps: u64,
    last_cap: u8,
    nnp: bool,
    setgroups: bool,
    seccomp: Option<&[crate::seccomp::Insn]>,
) -> Result<(), (String, io::Error)> {
    let st = |s: &str| {
        let s = s.to_string();
        move |e| (s, e)
    };
    // Without no_new_privs the filter can only be installed while CAP_SYS_ADMIN is held: first
    // (everything below is allowed by it). With no_new_privs: last, as late as possible.
    if !nnp && let Some(prog) = seccomp {
        sys.seccomp(prog)
            .map_err(st("installing the seccomp filter"))?;
    }
    for cap in crate::caps::to_drop(caps, last_cap) {
        sys.drop_bounding_cap(cap)
            .map_err(st("dropping capabilities from the bounding set"))?;
    }
    if setgroups {
        sys.set_groups(&user.groups)
            .map_err(st("setting supplementary groups"))?;
    }
    sys.set_gid(user.gid).map_err(st("setting the group id"))?;
    sys.keep_caps(true).map_err(st("keeping capabilities"))?;
    sys.set_uid(user.uid).map_err(st("setting the user id"))?;
    sys.keep_caps(false).map_err(st("keeping capabilities"))?;
    sys.set_caps(caps, caps, 0)
        .map_err(st("setting capabilities"))?;
    sys.clear_ambient_caps()
        .map_err(st("clearing ambient capabilities"))?;
    if nnp {
        sys.no_new_privs().map_err(st("setting no_new_privs"))?;
    }
    if nnp && let Some(prog) = seccomp {
        sys.seccomp(prog)
            .map_err(st("installing the seccomp filter"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mounts::{Inputs, RootSetup};
    use crate::spec::{Mount, NetworkMode, SecretFile};
    use crate::sys::Recorder;

    #[test]
    fn identity_order_drops_bounding_first_and_seccomp_last() {
        let r = Recorder::default();
        let user = users::ResolvedUser {
            uid: 1000,
            gid: 100,
            groups: vec![999],
            home: "/".into(),
            name: None,
        };
        let caps = crate::caps::effective_set(None).unwrap();
        let prog = crate::seccomp::compile(&crate::seccomp::default_profile());
        apply_identity(&r, &user, caps, 40, true, true, Some(&prog)).unwrap();
        let calls = r.take();
        let drops = calls
            .iter()
            .filter(|c| c.starts_with("capbset_drop"))
            .count();
        assert_eq!(drops, 41 - 14);
        let rest: Vec<&str> = calls[drops..].iter().map(String::as_str).collect();
        assert_eq!(
            rest[..7],
            [
                "setgroups [999]",
                "setresgid 100",
                "keepcaps true",
                "setresuid 1000",
                "keepcaps false",
                &format!("capset e={caps:#x} p={caps:#x} i=0x0"),
                "ambient clear"
            ]
        );
        assert_eq!(rest[7], "no_new_privs");
        assert!(rest[8].starts_with("seccomp "));
    }

    #[test]
    fn mount_plan_executes_with_stubs_for_missing_targets() {
        let r = Recorder {
            existing: vec![
                "/proc".into(),
                "/etc/hosts".into(),
                "/proc/kcore".into(),
                "/proc/sys".into(),
            ],
            ..Default::default()
        };
        let inputs = Inputs {
            root: RootSetup::Overlay {
                lowers: vec!["/l".into()],
                upper: "/u".into(),
                work: "/w".into(),
                userxattr: false,
            },
            merged: "/m".into(),
            stage: "/s".into(),
            mounts: vec![Mount::Secret {
                target: "/run/secrets/t".into(),
                file: SecretFile::new("", "pw"),
            }],
            hosts: "h".into(),
            resolv_conf: "r".into(),
            hostname: "n".into(),
            network: NetworkMode::None,
            tty_gid_mapped: true,
        };
        let ops = mounts::plan(&inputs).unwrap();
        let mut stubs = Vec::new();
        apply_mounts(&r, &ops, Path::new("/m"), &mut stubs).unwrap();
        let calls = r.take();
        assert_eq!(calls[0], "mount - / - 0x44000 ");
        assert!(
            calls
                .iter()
                .any(|c| c == "overlay /m lowers=1 userxattr=false")
        );
        assert!(calls.iter().any(|c| c == "write /s/secret-0 2B 400 0:0"));
        assert!(
            calls
                .iter()
                .any(|c| c.starts_with("mount /s/secret-0 /m/run/secrets/t - 0x1000"))
        );
        assert!(
            calls
                .iter()
                .any(|c| c.starts_with("mount /dev/null /m/proc/kcore"))
        );
        assert_eq!(calls.last().unwrap(), "pivot_root /m");
        let stub_paths: Vec<&str> = stubs.iter().map(|s| s.path.as_str()).collect();
        assert!(stub_paths.contains(&"/run/secrets/t") && stub_paths.contains(&"/etc/resolv.conf"));
        assert!(!stub_paths.contains(&"/etc/hosts") && !stub_paths.contains(&"/proc"));
        // Masks of absent /proc entries are skipped, not created.
        assert!(!stub_paths.iter().any(|p| p.starts_with("/proc/")));
    }

    #[test]
    fn program_lookup_in_path() {
        assert_eq!(lookup_in_path("/bin/x", ""), Some(PathBuf::from("/bin/x")));
        assert_eq!(
            lookup_in_path("sh", "/nonexistent:/bin"),
            Some(PathBuf::from("/bin/sh"))
        );
        assert_eq!(lookup_in_path("no-such-program-here", "/bin"), None);
    }
}
