//! Steps in a host shell: the process runs in its own process group with a marker in its
//! environment; when it ends (or times out, or the run is cancelled) the whole group is killed
//! and so is every process still carrying the marker (one that moved to a new session), so
//! nothing a step started outlives it.

use std::io::{self, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

use crate::cancel::Cancel;
use crate::logs::StreamLog;

/// The environment variable that marks a step's processes.
pub(crate) const MARKER: &str = "DRYDOCK_STEP_TOKEN";

/// How long output may keep arriving after the step's process exited and its leftovers were
/// killed (a pipe held open by something we could not find).
const DRAIN: Duration = Duration::from_secs(2);

pub(crate) struct HostCommand {
    pub argv: Vec<String>,
    /// The environment, exactly.
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct ProcOutcome {
    /// The exit code, or 128 + signal.
    pub code: i32,
    pub timed_out: bool,
    pub cancelled: bool,
}

static TOKENS: AtomicU64 = AtomicU64::new(0);

fn token() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}-{}-{nanos:x}",
        std::process::id(),
        TOKENS.fetch_add(1, Ordering::Relaxed)
    )
}

/// The start time of a process (clock ticks since boot, field 22 of `/proc/PID/stat`).
fn start_time(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Kills every process whose environment carries `MARKER=token`. Only processes started at or
/// after `since` (a start time, see [`start_time`]) are looked at: a step's processes cannot be
/// older than its shell, and reading `stat` is much cheaper than reading `environ`.
pub(crate) fn kill_marked(token: &str, since: Option<u64>) -> usize {
    let needle = format!("{MARKER}={token}");
    let needle = needle.as_bytes();
    let me = std::process::id();
    let mut killed = 0;
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return 0;
    };
    for ent in rd.flatten() {
        let name = ent.file_name();
        let Some(name) = name.to_str() else { continue };
        let Ok(pid) = name.parse::<i32>() else {
            continue;
        };
        if pid as u32 == me {
            continue;
        }
        if let Some(since) = since
            && start_time(name).is_none_or(|t| t < since)
        {
            continue;
        }
        let Ok(environ) = std::fs::read(ent.path().join("environ")) else {
            continue;
        };
        if environ.split(|b| *b == 0).any(|v| v == needle)
            && let Some(p) = Pid::from_raw(pid)
            && rustix::process::kill_process(p, Signal::KILL).is_ok()
        {
            killed += 1;
        }
    }
    killed
}

fn kill_all(pgid: Option<Pid>, token: &str, since: Option<u64>) {
    if let Some(g) = pgid {
        let _ = rustix::process::kill_process_group(g, Signal::KILL);
    }
    kill_marked(token, since);
}

fn timespec(d: Duration) -> rustix::event::Timespec {
    rustix::event::Timespec {
        tv_sec: d.as_secs() as i64,
        tv_nsec: d.subsec_nanos() as i64,
    }
}

/// Runs a command to its end, streaming its output into `out` and `err`.
///
/// One thread does it all (no helper threads, so no hand-offs between them): `poll` on the
/// two output pipes, a pidfd of the shell and the cancel pipe.
pub(crate) fn run(
    cmd: HostCommand,
    out: &mut StreamLog,
    err: &mut StreamLog,
    cancel: &Cancel,
) -> io::Result<ProcOutcome> {
    use rustix::event::{PollFd, PollFlags};
    let Some((program, args)) = cmd.argv.split_first() else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty command"));
    };
    let token = token();
    let mut c = Command::new(program);
    c.args(args)
        .env_clear()
        .envs(cmd.env.iter().map(|(k, v)| (k, v)))
        .env(MARKER, &token)
        .current_dir(&cmd.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = c.spawn()?;
    let pid = Pid::from_raw(child.id() as i32);
    // Everything the step starts is at least as young as its shell.
    let since = start_time(&child.id().to_string());
    let pidfd = match pid {
        Some(p) => Some(rustix::process::pidfd_open(
            p,
            rustix::process::PidfdFlags::empty(),
        )?),
        None => None,
    };
    let (cancel_r, cancel_w) = rustix::pipe::pipe_with(
        rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK,
    )?;
    let cancel_w = std::sync::Arc::new(cancel_w);
    let _guard = {
        let w = cancel_w.clone();
        cancel.on_cancel(move || {
            let _ = rustix::io::write(&*w, b"x");
        })
    };
    let mut pipes: [Option<Box<dyn ReadFd>>; 2] = [
        child.stdout.take().map(|p| Box::new(p) as Box<dyn ReadFd>),
        child.stderr.take().map(|p| Box::new(p) as Box<dyn ReadFd>),
    ];

    let started = Instant::now();
    let deadline = cmd.timeout.map(|t| started + t);
    let mut timed_out = false;
    let mut cancelled = false;
    let mut status: Option<std::process::ExitStatus> = None;
    let mut drain_until: Option<Instant> = None;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if status.is_some() && pipes.iter().all(Option::is_none) {
            break;
        }
        let wait_until = match (drain_until, deadline, timed_out || cancelled) {
            (Some(d), _, _) => Some(d),
            (None, Some(d), false) => Some(d),
            _ => None,
        };
        let timeout = wait_until.map(|d| timespec(d.saturating_duration_since(Instant::now())));
        let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(4);
        let mut which: Vec<usize> = Vec::with_capacity(4);
        for (i, p) in pipes.iter().enumerate() {
            if let Some(p) = p {
                fds.push(PollFd::from_borrowed_fd(p.fd(), PollFlags::IN));
                which.push(i);
            }
        }
        if status.is_none()
            && let Some(fd) = &pidfd
        {
            fds.push(PollFd::new(fd, PollFlags::IN));
            which.push(2);
        }
        fds.push(PollFd::new(&cancel_r, PollFlags::IN));
        which.push(3);
        let n = match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                kill_all(pid, &token, since);
                return Err(e.into());
            }
        };
        if n == 0 {
            // The poll timed out.
            if drain_until.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            if !timed_out && deadline.is_some_and(|d| Instant::now() >= d) {
                timed_out = true;
                kill_all(pid, &token, since);
            }
            continue;
        }
        let ready: Vec<(usize, PollFlags)> = fds
            .iter()
            .zip(&which)
            .filter(|(f, _)| !f.revents().is_empty())
            .map(|(f, w)| (*w, f.revents()))
            .collect();
        drop(fds);
        for (w, _flags) in ready {
            match w {
                0 | 1 => {
                    let Some(p) = pipes[w].as_mut() else { continue };
                    match p.read(&mut buf) {
                        Ok(0) => pipes[w] = None,
                        Ok(n) => {
                            if w == 0 {
                                out.push(&buf[..n]);
                            } else {
                                err.push(&buf[..n]);
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => pipes[w] = None,
                    }
                }
                2 => {
                    let s = child.wait()?;
                    status = Some(s);
                    // Whatever the step left behind dies with it.
                    kill_all(pid, &token, since);
                    drain_until = Some(Instant::now() + DRAIN);
                }
                _ => {
                    let mut b = [0u8; 16];
                    let _ = rustix::io::read(&cancel_r, &mut b);
                    if !cancelled {
                        cancelled = true;
                        kill_all(pid, &token, since);
                    }
                }
            }
        }
    }
    if status.is_none() {
        // No pidfd (or the loop ended early): reap the shell.
        kill_all(pid, &token, since);
        status = child.wait().ok();
    }
    out.finish();
    err.finish();
    let code = match status {
        Some(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(9)),
        None => 137,
    };
    Ok(ProcOutcome {
        code,
        timed_out,
        cancelled,
    })
}

/// A readable pipe end we can poll.
trait ReadFd: Read {
    fn fd(&self) -> std::os::fd::BorrowedFd<'_>;
}

impl<T: Read + std::os::fd::AsFd> ReadFd for T {
    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.as_fd()
    }
}
