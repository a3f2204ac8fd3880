//! Steps in a host shell: the process runs in its own process group with a marker in its
//! environment; when it ends (or times out, or the run is cancelled) the whole group is killed
//! and so is every process still carrying the marker (one that moved to a new session), so
//! nothing a step started outlives it.

use std::io::{self, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
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

enum Msg {
    Out(usize, Vec<u8>),
    Eof,
    Exited(std::process::ExitStatus),
    WaitFailed(io::Error),
    Cancel,
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

/// Kills every process whose environment carries `MARKER=token`.
pub(crate) fn kill_marked(token: &str) -> usize {
    let needle = format!("{MARKER}={token}");
    let needle = needle.as_bytes();
    let me = std::process::id();
    let mut killed = 0;
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return 0;
    };
    for ent in rd.flatten() {
        let name = ent.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if pid as u32 == me {
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

fn kill_all(pgid: Option<Pid>, token: &str) {
    if let Some(g) = pgid {
        let _ = rustix::process::kill_process_group(g, Signal::KILL);
    }
    kill_marked(token);
}

/// Runs a command to its end, streaming its output into `out` and `err`.
pub(crate) fn run(
    cmd: HostCommand,
    out: &mut StreamLog,
    err: &mut StreamLog,
    cancel: &Cancel,
) -> io::Result<ProcOutcome> {
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
    let pgid = Pid::from_raw(child.id() as i32);
    let (tx, rx) = mpsc::channel::<Msg>();
    let pipes: [Option<Box<dyn Read + Send>>; 2] = [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    ];
    let mut open = 0;
    for (i, pipe) in pipes.into_iter().enumerate() {
        let Some(mut pipe) = pipe else { continue };
        open += 1;
        let tx = tx.clone();
        std::thread::Builder::new()
            .name("step-output".into())
            .spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match pipe.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            if tx.send(Msg::Out(i, buf[..n].to_vec())).is_err() {
                                return;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
                let _ = tx.send(Msg::Eof);
            })?;
    }
    {
        let tx = tx.clone();
        std::thread::Builder::new()
            .name("step-wait".into())
            .spawn(move || {
                let _ = match child.wait() {
                    Ok(s) => tx.send(Msg::Exited(s)),
                    Err(e) => tx.send(Msg::WaitFailed(e)),
                };
            })?;
    }
    let cancel_tx = std::sync::Mutex::new(tx.clone());
    let _guard = cancel.on_cancel(move || {
        let _ = cancel_tx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(Msg::Cancel);
    });
    drop(tx);

    let started = Instant::now();
    let deadline = cmd.timeout.map(|t| started + t);
    let mut timed_out = false;
    let mut cancelled = false;
    let mut status: Option<std::process::ExitStatus> = None;
    let mut drain_until: Option<Instant> = None;
    loop {
        if status.is_some() && open == 0 {
            break;
        }
        let wait_until = match (drain_until, deadline, timed_out || cancelled) {
            (Some(d), _, _) => Some(d),
            (None, Some(d), false) => Some(d),
            _ => None,
        };
        let msg = match wait_until {
            Some(d) => match rx.recv_timeout(d.saturating_duration_since(Instant::now())) {
                Ok(m) => m,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if drain_until.is_some() {
                        break;
                    }
                    timed_out = true;
                    kill_all(pgid, &token);
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            },
            None => match rx.recv() {
                Ok(m) => m,
                Err(_) => break,
            },
        };
        match msg {
            Msg::Out(0, b) => out.push(&b),
            Msg::Out(_, b) => err.push(&b),
            Msg::Eof => open -= 1,
            Msg::Exited(s) => {
                status = Some(s);
                // Whatever the step left behind dies with it.
                kill_all(pgid, &token);
                drain_until = Some(Instant::now() + DRAIN);
            }
            Msg::WaitFailed(e) => {
                kill_all(pgid, &token);
                return Err(e);
            }
            Msg::Cancel => {
                if !cancelled {
                    cancelled = true;
                    kill_all(pgid, &token);
                }
            }
        }
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
