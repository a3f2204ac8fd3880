//! Services: containers a job talks to (a database, an HTTP server), started from their images
//! before the steps, checked for readiness, and torn down after the job.
//!
//! Networking: the sandbox offers the host's network or a private one per sandbox, and a job
//! and its services are separate sandboxes, so they share the host's network: services listen
//! on the host's loopback and every sandbox of the job gets `/etc/hosts` entries mapping the
//! service names to 127.0.0.1. A job in a host shell reaches its services at `localhost` (host
//! names cannot be added to the host). Two jobs running at once whose services use the same
//! port collide; run them one after the other (`needs`) or use different ports.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use drydock_sandbox::{CancelToken, HostEntry, NetworkMode, Root, SandboxSpec, Stdio};

use crate::cancel::Cancel;
use crate::images::RootImage;
use crate::logs::JobLog;

/// What the engine needs to start sandboxes.
#[derive(Debug, Clone)]
pub(crate) struct SandboxEnv {
    pub state_dir: PathBuf,
    pub init_binary: Option<PathBuf>,
}

/// A service to start, everything evaluated.
pub(crate) struct ServiceSpec {
    pub name: String,
    pub image: RootImage,
    pub env: Vec<(String, String)>,
    pub command: Option<Vec<String>>,
    pub ready: Option<String>,
    pub ready_timeout: Duration,
}

pub(crate) struct Running {
    pub name: String,
    token: CancelToken,
    exited: Arc<AtomicBool>,
    thread: Option<JoinHandle<String>>,
}

impl Running {
    /// Stops the service and returns how it ended.
    pub(crate) fn stop(mut self) -> String {
        self.token.cancel();
        self.thread
            .take()
            .map(|t| t.join().unwrap_or_else(|_| "panicked".to_string()))
            .unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.token.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The `/etc/hosts` entries of a job with these services.
pub(crate) fn host_entries(names: &[String]) -> Vec<HostEntry> {
    if names.is_empty() {
        return Vec::new();
    }
    vec![HostEntry {
        ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        names: names.to_vec(),
    }]
}

fn base_env(image: &RootImage, extra: &[(String, String)]) -> Vec<(String, String)> {
    let mut env = image.env.clone();
    for (k, v) in extra {
        env.retain(|(ek, _)| ek != k);
        env.push((k.clone(), v.clone()));
    }
    env
}

/// Starts the services in order, each waited for (ready check) before the next. On error the
/// ones already started are stopped (dropping them does).
pub(crate) fn start(
    specs: Vec<ServiceSpec>,
    all_names: &[String],
    sbx: &SandboxEnv,
    log: &Arc<JobLog>,
    cancel: &Cancel,
) -> Result<Vec<Running>, String> {
    let mut running = Vec::new();
    for spec in specs {
        let argv = match &spec.command {
            Some(c) if !c.is_empty() => c.clone(),
            _ => {
                let mut a = spec.image.entrypoint.clone();
                a.extend(spec.image.cmd.iter().cloned());
                a
            }
        };
        if argv.is_empty() {
            return Err(format!(
                "service {}: the image has no entrypoint or command; give the service a command",
                spec.name
            ));
        }
        log.system(
            None,
            format!("service {}: starting {}", spec.name, argv.join(" ")),
        );
        let token = CancelToken::new().map_err(|e| format!("service {}: {e}", spec.name))?;
        let mut s = SandboxSpec::new(Root::Layers(spec.image.layers.clone()), argv);
        s.env = base_env(&spec.image, &spec.env);
        s.cwd = spec.image.workdir.clone();
        s.user = spec.image.user.clone();
        s.hostname = spec.name.clone();
        s.network = NetworkMode::Host;
        s.extra_hosts = host_entries(all_names);
        s.state_dir = sbx.state_dir.clone();
        s.init_binary = sbx.init_binary.clone();
        s.cancel = Some(token.clone());
        let prefix = format!("{} | ", spec.name);
        let mut out = log.stream_prefixed(None, "system", prefix.clone());
        let mut err = log.stream_prefixed(None, "system", prefix);
        s.stdout = Stdio::Stream(Box::new(move |b| out.push(b)));
        s.stderr = Stdio::Stream(Box::new(move |b| err.push(b)));
        let exited = Arc::new(AtomicBool::new(false));
        let done = exited.clone();
        let name = spec.name.clone();
        let thread = std::thread::Builder::new()
            .name(format!("service-{name}"))
            .spawn(move || {
                let r = match drydock_sandbox::run(s) {
                    Ok(o) if o.cancelled => "stopped".to_string(),
                    Ok(o) => format!("exited ({})", o.status),
                    Err(e) => format!("failed to start: {e}"),
                };
                done.store(true, Ordering::SeqCst);
                r
            })
            .map_err(|e| format!("service {}: {e}", spec.name))?;
        let svc = Running {
            name: spec.name.clone(),
            token,
            exited,
            thread: Some(thread),
        };
        wait_ready(&spec, svc, all_names, sbx, log, cancel).map(|svc| running.push(svc))?;
    }
    Ok(running)
}

fn wait_ready(
    spec: &ServiceSpec,
    svc: Running,
    all_names: &[String],
    sbx: &SandboxEnv,
    log: &Arc<JobLog>,
    cancel: &Cancel,
) -> Result<Running, String> {
    let Some(check) = &spec.ready else {
        log.system(
            None,
            format!("service {}: started (no ready check)", spec.name),
        );
        return Ok(svc);
    };
    let started = Instant::now();
    let deadline = started + spec.ready_timeout;
    let mut last = String::new();
    loop {
        if svc.exited.load(Ordering::SeqCst) {
            let how = svc.stop();
            return Err(format!("service {} {how} before it was ready", spec.name));
        }
        if cancel.is_cancelled() {
            return Err("cancelled".to_string());
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            let secs = spec.ready_timeout.as_secs_f64();
            let mut msg = format!(
                "service {} did not become ready within {secs:.0}s: `{check}` never succeeded",
                spec.name
            );
            if !last.is_empty() {
                msg.push_str(&format!(" (last: {last})"));
            }
            return Err(msg);
        }
        let mut s = SandboxSpec::new(
            Root::Layers(spec.image.layers.clone()),
            ["/bin/sh", "-c", check.as_str()],
        );
        s.env = base_env(&spec.image, &spec.env);
        s.network = NetworkMode::Host;
        s.extra_hosts = host_entries(all_names);
        s.state_dir = sbx.state_dir.clone();
        s.init_binary = sbx.init_binary.clone();
        s.stdout = Stdio::Capture;
        s.stderr = Stdio::Capture;
        s.timeout = Some(remaining.min(Duration::from_secs(10)));
        match drydock_sandbox::run(s) {
            Ok(o) if o.status.success() => {
                log.system(
                    None,
                    format!(
                        "service {}: ready after {:.1}s",
                        spec.name,
                        started.elapsed().as_secs_f64()
                    ),
                );
                return Ok(svc);
            }
            Ok(o) => {
                let mut out = String::from_utf8_lossy(&o.stdout).into_owned();
                out.push_str(&String::from_utf8_lossy(&o.stderr));
                let tail: String = out
                    .trim()
                    .lines()
                    .last()
                    .unwrap_or("")
                    .chars()
                    .take(200)
                    .collect();
                last = if tail.is_empty() {
                    format!("{}", o.status)
                } else {
                    format!("{}: {tail}", o.status)
                };
            }
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(
            Duration::from_millis(250).min(deadline.saturating_duration_since(Instant::now())),
        );
    }
}
