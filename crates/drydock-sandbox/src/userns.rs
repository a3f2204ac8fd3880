//! Running a whole drydock process inside a user namespace (buildah's "unshare" model), for work
//! that must own files as many ids while started by one unprivileged user: rootless builds
//! (layer extraction with the layers' owners, `COPY --chown`, reading upper dirs back into
//! layers) and deleting what they left (snapshots owned by subordinate ids).
//!
//! The unprivileged process calls [`reexec_in_user_namespace`]: it re-executes its own binary
//! with the same arguments and waits for it. The new process calls
//! [`enter_if_reexecuted`] before it starts any thread: it unshares a user namespace, the parent
//! writes its id maps with `newuidmap`/`newgidmap` (inside 0 = the user, 1.. = the user's
//! `/etc/subuid`/`/etc/subgid` ranges, as the rootless sandbox maps them), then it becomes root
//! of that namespace and unshares a mount namespace. Inside, [`in_user_namespace`] tells code
//! that euid 0 is not the host's root: overlayfs needs `userxattr`, opaque directories are
//! `user.overlay.opaque`, device nodes cannot be made, cgroups cannot be created.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicI32, Ordering};

use crate::error::SandboxError;
use crate::idmap::{self, IdRange};
use crate::protocol::{self, FromInit, ToInit, UsernsSetup};
use crate::sys::{Linux, Sys};

/// Set (to a descriptor number) in the environment of the re-executed process.
pub const REEXEC_ENV: &str = "_DRYDOCK_USERNS_SOCKET";

const CLONE_NEWNS: u32 = 0x0002_0000;
const CLONE_NEWUSER: u32 = 0x1000_0000;

/// Whether `uid_map` (the text of `/proc/self/uid_map`) is the initial user namespace's: the
/// whole id space mapped onto itself.
pub fn is_initial_map(uid_map: &str) -> bool {
    let lines: Vec<Vec<&str>> = uid_map
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| !f.is_empty())
        .collect();
    lines.len() == 1 && lines[0] == ["0", "0", "4294967295"]
}

/// Whether this process runs in a user namespace other than the initial one (root here is not
/// the host's root).
pub fn in_user_namespace() -> bool {
    fs::read_to_string("/proc/self/uid_map").is_ok_and(|t| !is_initial_map(&t))
}

/// Parses `/proc/PID/uid_map` text.
pub fn parse_map(text: &str) -> Vec<IdRange> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace().map(|x| x.parse::<u32>());
            Some(IdRange {
                inside: f.next()?.ok()?,
                outside: f.next()?.ok()?,
                count: f.next()?.ok()?,
            })
        })
        .collect()
}

pub(crate) fn user_name(uid: u32) -> Option<String> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    crate::users::parse_passwd(&passwd)
        .into_iter()
        .find(|p| p.uid == uid)
        .map(|p| p.name)
}

/// The rootless id maps of the calling user: inside 0 = its euid/egid, inside 1.. = its
/// `/etc/subuid` and `/etc/subgid` ranges (only 0 when it has none).
pub(crate) fn caller_maps() -> (Vec<IdRange>, Vec<IdRange>) {
    let uid = rustix::process::geteuid().as_raw();
    let gid = rustix::process::getegid().as_raw();
    let name = user_name(uid);
    let subuid = idmap::parse_subid(
        &fs::read_to_string("/etc/subuid").unwrap_or_default(),
        name.as_deref(),
        uid,
    );
    let subgid = idmap::parse_subid(
        &fs::read_to_string("/etc/subgid").unwrap_or_default(),
        name.as_deref(),
        uid,
    );
    (
        idmap::rootless_map(uid, &subuid),
        idmap::rootless_map(gid, &subgid),
    )
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .unwrap_or_else(|| OsString::from("/usr/local/bin:/usr/bin:/bin"))
        .to_str()
        .unwrap_or("")
        .split(':')
        .any(|d| !d.is_empty() && PathBuf::from(d).join(tool).is_file())
}

fn needs(message: String, hint: String) -> SandboxError {
    SandboxError::UserNamespace { message, hint }
}

/// Checks that the calling user can get a user namespace with its subordinate ids: `newuidmap`
/// and `newgidmap` on `PATH`, ranges in `/etc/subuid` and `/etc/subgid`. The error says what to
/// install or configure (its text ends with a `hint:` line). `what` names the work ("drydock
/// build").
pub fn check_subordinate_ids(what: &str) -> Result<(), SandboxError> {
    setup_for(what).map(|_| ())
}

fn setup_for(what: &str) -> Result<UsernsSetup, SandboxError> {
    let uid = rustix::process::geteuid().as_raw();
    let who = match user_name(uid) {
        Some(n) => format!("user {n} (uid {uid})"),
        None => format!("uid {uid}"),
    };
    let name = user_name(uid).unwrap_or_else(|| uid.to_string());
    for tool in ["newuidmap", "newgidmap"] {
        if !on_path(tool) {
            return Err(needs(
                format!(
                    "{what} as {who} needs a user namespace with subordinate ids, but {tool} is not installed (not found on PATH)"
                ),
                "install newuidmap and newgidmap (Debian/Ubuntu: apt-get install uidmap; Fedora: dnf install shadow-utils), or run as root".into(),
            ));
        }
    }
    let (uid_map, gid_map) = caller_maps();
    for (file, map) in [("/etc/subuid", &uid_map), ("/etc/subgid", &gid_map)] {
        if map.len() < 2 {
            return Err(needs(
                format!(
                    "{what} as {who} needs subordinate ids for the image's users, but {file} has no range for {name}"
                ),
                format!(
                    "as root, give {name} a free range of 65536 ids in /etc/subuid and /etc/subgid, e.g. `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {name}`"
                ),
            ));
        }
    }
    Ok(UsernsSetup::ByCaller { uid_map, gid_map })
}

/// Re-executes the current binary (`/proc/self/exe`, same arguments, the environment plus
/// `env`) inside a new user and mount namespace with the caller's subordinate ids mapped, and
/// waits for it. Returns its exit code (128 + signal number when a signal ended it). The new
/// process must call [`enter_if_reexecuted`] first thing. `what` names the work in errors
/// ("drydock build").
///
/// While it waits, this process passes SIGINT, SIGTERM, SIGQUIT and SIGHUP on to the child, and
/// the child gets SIGTERM if this process dies anyway.
pub fn reexec_in_user_namespace(
    what: &str,
    env: &[(OsString, OsString)],
) -> Result<i32, SandboxError> {
    let setup = setup_for(what)?;
    let binary = PathBuf::from("/proc/self/exe");
    let spawn_err = |e: io::Error| SandboxError::Spawn {
        binary: binary.clone(),
        source: e,
    };
    let (ours, theirs) = protocol::pair().map_err(spawn_err)?;
    // The child's end is inherited (no close-on-exec); its number travels in the environment.
    rustix::io::fcntl_setfd(&theirs, rustix::io::FdFlags::empty())
        .map_err(|e| spawn_err(e.into()))?;
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| OsString::from("drydock"));
    let mut child = Command::new(&binary)
        .arg0(arg0)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env(REEXEC_ENV, theirs.as_raw_fd().to_string())
        .spawn()
        .map_err(spawn_err)?;
    drop(theirs);
    let child_pid = child.id() as i32;
    forward_signals_to(child_pid);
    let mut result = Ok(());
    while let Ok(Some(msg)) = protocol::recv::<FromInit>(ours.as_fd()) {
        match msg {
            FromInit::NeedIdMap { pid } if pid == child_pid => {
                if let Err(e) = crate::run::write_id_maps(pid, &setup) {
                    result = Err(e);
                    break;
                }
                let _ = protocol::send(ours.as_fd(), &ToInit::Continue);
            }
            _ => break,
        }
    }
    drop(ours);
    if let Err(e) = result {
        let _ = child.kill();
        let _ = child.wait();
        let hint = "check that newuidmap/newgidmap are setuid root (or have cap_setuid/cap_setgid) and that the ranges in /etc/subuid and /etc/subgid belong to this user and do not overlap its own id".to_string();
        return Err(needs(format!("{what}: mapping ids failed: {e}"), hint));
    }
    let status = child
        .wait()
        .map_err(|e| SandboxError::io("wait for", &binary, e))?;
    use std::os::unix::process::ExitStatusExt;
    Ok(status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1))
}

/// The re-executed child, for the signal handler below.
static CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward_signal(sig: libc::c_int) {
    let pid = CHILD.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe; it only sends `sig` to our own child.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// Passes SIGINT, SIGTERM, SIGQUIT and SIGHUP on to the child instead of dying of them: the
/// child decides (it is the one holding sandboxes and locks), this process exits when it does.
fn forward_signals_to(child: i32) {
    CHILD.store(child, Ordering::Relaxed);
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGQUIT, libc::SIGHUP] {
        // SAFETY: `sa` is zeroed plain data (an empty mask, no flags) with a handler that only
        // calls the async-signal-safe kill(2); only this process's disposition changes (the
        // child was spawned before, with default dispositions).
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = forward_signal as *const () as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// In a process started by [`reexec_in_user_namespace`]: enters the user namespace (the parent
/// writes the id maps), becomes its root and unshares a mount namespace; returns `Ok(true)`.
/// Otherwise returns `Ok(false)` at once. Must be called before the process starts any thread
/// (unshare of a user namespace needs a single-threaded process).
pub fn enter_if_reexecuted() -> Result<bool, SandboxError> {
    let Some(fd) = std::env::var_os(REEXEC_ENV) else {
        return Ok(false);
    };
    // SAFETY: the caller guarantees this runs before any other thread exists, so nothing reads
    // the environment concurrently.
    unsafe { std::env::remove_var(REEXEC_ENV) };
    let fail = |stage: &str, e: io::Error| SandboxError::Setup {
        stage: format!("entering the user namespace: {stage}"),
        errno: e.raw_os_error(),
        message: e.to_string(),
    };
    let n: i32 = fd
        .to_str()
        .and_then(|s| s.parse().ok())
        .filter(|n| *n > 2)
        .ok_or_else(|| {
            fail(
                "socket",
                io::Error::other(format!("{REEXEC_ENV}={fd:?} is not a descriptor")),
            )
        })?;
    // SAFETY: only borrowed for the duration of the fcntl call, which validates the number.
    let valid = rustix::io::fcntl_getfd(unsafe { std::os::fd::BorrowedFd::borrow_raw(n) }).is_ok();
    if !valid {
        return Err(fail(
            "socket",
            io::Error::other(format!("descriptor {n} is not open")),
        ));
    }
    // SAFETY: the descriptor is open (checked) and was handed to this process for this purpose
    // by its parent; nothing else in the process uses it.
    let sock = unsafe { OwnedFd::from_raw_fd(n) };
    let _ = rustix::io::fcntl_setfd(&sock, rustix::io::FdFlags::CLOEXEC);
    let parent = rustix::process::getppid();
    let sys = Linux;
    sys.unshare(CLONE_NEWUSER)
        .map_err(|e| fail("unshare(CLONE_NEWUSER)", e))?;
    let pid = rustix::process::getpid().as_raw_nonzero().get();
    protocol::send(sock.as_fd(), &FromInit::NeedIdMap { pid })
        .map_err(|e| fail("asking for id maps", e))?;
    match protocol::recv::<ToInit>(sock.as_fd()) {
        Ok(Some(ToInit::Continue)) => {}
        _ => {
            return Err(fail(
                "waiting for id maps",
                io::Error::other("the parent process did not write them"),
            ));
        }
    }
    drop(sock);
    let _ = sys.set_groups(&[]);
    sys.set_gid(0).map_err(|e| fail("setresgid(0)", e))?;
    sys.set_uid(0).map_err(|e| fail("setresuid(0)", e))?;
    sys.unshare(CLONE_NEWNS)
        .map_err(|e| fail("unshare(CLONE_NEWNS)", e))?;
    // Credential changes reset the parent-death signal: set it now, then make sure the parent
    // did not die before.
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM));
    if rustix::process::getppid() != parent {
        return Err(fail(
            "parent",
            io::Error::other("the parent process exited"),
        ));
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_initial_namespace_maps_everything_onto_itself() {
        assert!(is_initial_map("         0          0 4294967295\n"));
        assert!(!is_initial_map("0 1000 1\n1 100000 65536\n"));
        assert!(!is_initial_map("0 0 65536\n"));
        assert!(!is_initial_map(""));
    }

    #[test]
    fn proc_maps_parse() {
        assert_eq!(
            parse_map("         0       1000          1\n         1     100000      65536\n"),
            vec![
                IdRange {
                    inside: 0,
                    outside: 1000,
                    count: 1
                },
                IdRange {
                    inside: 1,
                    outside: 100000,
                    count: 65536
                }
            ]
        );
    }
}
