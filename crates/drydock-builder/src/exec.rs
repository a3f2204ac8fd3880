//! RUN steps: an `Exec` op in the sandbox, on its parent's snapshots, with its mounts (bind,
//! cache, tmpfs, secret, ssh), streaming its output to the progress callback with secrets masked.

use std::collections::VecDeque;
use std::fs;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use drydock_plan::{CacheSharing, ExecOp, MountKind, Network, Security};
use drydock_sandbox::{Isolation, Mount, NetworkMode, Root, SandboxSpec, SecretFile, Stdio};

use crate::error::{BuildError, IoCtx};
use crate::progress::{Event, Progress, Stream};
use crate::request::Secrets;

/// An input of a mount, materialised as a host directory.
#[derive(Debug, Clone)]
pub struct MountSource {
    /// The directory holding the input's root file system.
    pub dir: PathBuf,
}

/// Everything a RUN needs from the build besides the op.
pub struct ExecEnv<'a> {
    pub state_dir: PathBuf,
    pub mounts_dir: PathBuf,
    pub secrets: &'a Secrets,
    /// SSH agent sockets by id (`default` for `--ssh default`).
    pub ssh: &'a [(String, PathBuf)],
    pub allow_insecure: bool,
    pub progress: Progress,
    pub step: usize,
    pub cancel: Option<drydock_sandbox::CancelToken>,
    pub init_binary: Option<PathBuf>,
}

/// A failed RUN: its status and the last lines it printed.
#[derive(Debug)]
pub struct ExecFailure {
    pub message: String,
    pub exit_code: Option<i32>,
    pub tail: Vec<String>,
}

/// Keeps the last lines of output, masking secret values.
struct Tail {
    lines: VecDeque<String>,
    partial: [Vec<u8>; 2],
    masks: Vec<Vec<u8>>,
}

const TAIL_LINES: usize = 30;

fn mask(line: &[u8], masks: &[Vec<u8>]) -> Vec<u8> {
    let mut out = line.to_vec();
    for m in masks {
        if m.is_empty() {
            continue;
        }
        let mut i = 0;
        let mut res = Vec::with_capacity(out.len());
        while i < out.len() {
            if out[i..].starts_with(m) {
                res.extend_from_slice(b"****");
                i += m.len();
            } else {
                res.push(out[i]);
                i += 1;
            }
        }
        out = res;
    }
    out
}

impl Tail {
    /// Takes a chunk, returns the complete lines it finished (masked).
    fn push(&mut self, stream: usize, data: &[u8]) -> Vec<u8> {
        let buf = &mut self.partial[stream];
        buf.extend_from_slice(data);
        let Some(last_nl) = buf.iter().rposition(|&b| b == b'\n') else {
            // Long lines without a newline are flushed in pieces.
            if buf.len() > 64 * 1024 {
                let chunk = std::mem::take(buf);
                return self.record(&chunk);
            }
            return Vec::new();
        };
        let rest = buf.split_off(last_nl + 1);
        let complete = std::mem::replace(buf, rest);
        self.record(&complete)
    }

    fn record(&mut self, complete: &[u8]) -> Vec<u8> {
        let masked = mask(complete, &self.masks);
        for line in masked.split(|&b| b == b'\n') {
            if line.is_empty() {
                continue;
            }
            self.lines
                .push_back(String::from_utf8_lossy(line).trim_end().to_string());
            if self.lines.len() > TAIL_LINES {
                self.lines.pop_front();
            }
        }
        masked
    }

    fn flush(&mut self, stream: usize) -> Vec<u8> {
        let rest = std::mem::take(&mut self.partial[stream]);
        if rest.is_empty() {
            return rest;
        }
        self.record(&rest)
    }
}

/// Runs `op` on `lowers` (bottom first) with `mounts` (already resolved to host directories,
/// in the op's order; `None` for kinds that need none). Returns the sandbox's changes.
pub fn run(
    op: &ExecOp,
    lowers: Vec<PathBuf>,
    mount_sources: &[Option<MountSource>],
    env: &ExecEnv<'_>,
) -> Result<Result<drydock_sandbox::Changes, ExecFailure>, BuildError> {
    let mut spec = SandboxSpec::new(Root::Layers(lowers), op.args.clone());
    spec.state_dir = env.state_dir.clone();
    spec.keep_changes = true;
    spec.hostname = "buildkitsandbox".into();
    spec.init_binary = env.init_binary.clone();
    spec.cancel = env.cancel.clone();
    spec.cwd = Some(if op.cwd.is_empty() {
        "/".into()
    } else {
        op.cwd.clone()
    });
    spec.user = (!op.user.is_empty()).then(|| op.user.clone());
    spec.network = match op.network {
        Network::None => NetworkMode::None,
        Network::Sandbox | Network::Host => NetworkMode::Host,
    };
    // A rootless build runs as root of its own user namespace (the CLI re-executed itself
    // there): the sandbox sees that and creates no other one (`UserNamespace::Auto`).
    if op.security == Security::Insecure {
        if !env.allow_insecure {
            return Err(BuildError::Request(
                "RUN --security=insecure needs the security.insecure entitlement (--allow security.insecure)".into(),
            ));
        }
        spec.isolation = Isolation {
            capabilities: Some(vec!["ALL".into()]),
            seccomp: false,
            no_new_privileges: false,
            ..spec.isolation
        };
    }
    let mut envs: Vec<(String, String)> = op
        .env
        .iter()
        .map(|e| match e.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (e.clone(), String::new()),
        })
        .collect();
    for (k, v) in &op.proxy_env {
        envs.retain(|(ek, _)| ek != k);
        envs.push((k.clone(), v.clone()));
    }
    let mut masks: Vec<Vec<u8>> = Vec::new();
    let mut locks: Vec<fs::File> = Vec::new();
    let mut temp_caches: Vec<tempfile::TempDir> = Vec::new();
    let mut ssh_n = 0;
    for (m, src) in op.mounts.iter().zip(mount_sources) {
        let target = m.target.clone().unwrap_or_default();
        let target = if target.len() > 1 {
            target.trim_end_matches('/').to_string()
        } else {
            target
        };
        match &m.kind {
            MountKind::Bind { readonly, .. } => {
                let Some(src) = src else {
                    return Err(BuildError::Unsupported(format!(
                        "bind mount at {target} without a source"
                    )));
                };
                spec.mounts.push(Mount::Bind {
                    source: src.dir.clone(),
                    target,
                    readonly: *readonly,
                });
            }
            MountKind::Cache {
                id,
                sharing,
                readonly,
                mode,
                uid,
                gid,
                ..
            } => {
                let key = drydock_oci::Digest::sha256(id.as_bytes());
                let dir = env.mounts_dir.join(key.hex());
                let lock_path = env.mounts_dir.join(format!("{}.lock", key.hex()));
                fs::create_dir_all(&env.mounts_dir).ctx("create directory", &env.mounts_dir)?;
                let lock = fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&lock_path)
                    .ctx("open", &lock_path)?;
                let mut dir_used = dir.clone();
                match sharing {
                    CacheSharing::Shared => {}
                    CacheSharing::Locked => {
                        rustix::fs::flock(lock.as_fd(), rustix::fs::FlockOperation::LockExclusive)
                            .map_err(std::io::Error::from)
                            .ctx("lock", &lock_path)?;
                        locks.push(lock);
                    }
                    CacheSharing::Private => {
                        if rustix::fs::flock(
                            lock.as_fd(),
                            rustix::fs::FlockOperation::NonBlockingLockExclusive,
                        )
                        .is_ok()
                        {
                            locks.push(lock);
                        } else {
                            let t = tempfile::Builder::new()
                                .prefix("private-cache-")
                                .tempdir_in(&env.mounts_dir)
                                .ctx("create temporary directory in", &env.mounts_dir)?;
                            dir_used = t.path().join("d");
                            temp_caches.push(t);
                        }
                    }
                }
                if !dir_used.is_dir() {
                    let tmp = dir_used.with_extension(format!("new-{}", std::process::id()));
                    let _ = crate::snapshots::remove_tree(&tmp);
                    match src {
                        Some(seed) => copy_dir(&seed.dir, &tmp)?,
                        None => fs::create_dir_all(&tmp).ctx("create directory", &tmp)?,
                    }
                    use std::os::unix::fs::PermissionsExt;
                    fs::set_permissions(&tmp, fs::Permissions::from_mode(*mode))
                        .ctx("chmod", &tmp)?;
                    if rustix::process::geteuid().is_root() {
                        rustix::fs::chown(
                            &tmp,
                            Some(rustix::fs::Uid::from_raw(*uid)),
                            Some(rustix::fs::Gid::from_raw(*gid)),
                        )
                        .map_err(std::io::Error::from)
                        .ctx("chown", &tmp)?;
                    }
                    if fs::rename(&tmp, &dir_used).is_err() {
                        let _ = crate::snapshots::remove_tree(&tmp);
                    }
                }
                spec.mounts.push(if *readonly {
                    Mount::Bind {
                        source: dir_used,
                        target,
                        readonly: true,
                    }
                } else {
                    Mount::Cache {
                        source: dir_used,
                        target,
                    }
                });
            }
            MountKind::Tmpfs { size } => spec.mounts.push(Mount::Tmpfs {
                target,
                size_bytes: *size,
                mode: 0o1777,
                files: Vec::new(),
            }),
            MountKind::Secret {
                id,
                env: env_name,
                required,
                mode,
                uid,
                gid,
            } => {
                let value = match env.secrets.get(id)? {
                    Some(v) => v,
                    None if *required => {
                        return Err(BuildError::Secret {
                            id: id.clone(),
                            message: "required by RUN --mount=type=secret but not given (use --secret id=ID,src=FILE or env=VAR)".into(),
                        });
                    }
                    None => continue,
                };
                if !value.is_empty() {
                    masks.push(value.clone());
                }
                if let Some(name) = env_name {
                    envs.retain(|(k, _)| k != name);
                    envs.push((name.clone(), String::from_utf8_lossy(&value).into_owned()));
                }
                if m.target.is_some() {
                    spec.mounts.push(Mount::Secret {
                        target,
                        file: SecretFile {
                            path: String::new(),
                            contents: value,
                            mode: *mode,
                            uid: *uid,
                            gid: *gid,
                        },
                    });
                }
            }
            MountKind::Ssh { id, required, .. } => {
                let sock = env
                    .ssh
                    .iter()
                    .find(|(i, _)| i == id)
                    .map(|(_, p)| p.clone());
                let Some(sock) = sock else {
                    if *required {
                        return Err(BuildError::Request(format!(
                            "RUN --mount=type=ssh,id={id}: no SSH agent given; pass --ssh {id} (with SSH_AUTH_SOCK set) or --ssh {id}=/path/to/agent.sock"
                        )));
                    }
                    continue;
                };
                ssh_n += 1;
                let target = if target.is_empty() {
                    format!("/run/buildkit/ssh_agent.{}", ssh_n - 1)
                } else {
                    target
                };
                if ssh_n == 1 {
                    envs.retain(|(k, _)| k != "SSH_AUTH_SOCK");
                    envs.push(("SSH_AUTH_SOCK".into(), target.clone()));
                }
                spec.mounts.push(Mount::Bind {
                    source: sock,
                    target,
                    readonly: false,
                });
            }
        }
    }
    spec.env = envs;
    let tail = Arc::new(Mutex::new(Tail {
        lines: VecDeque::new(),
        partial: [Vec::new(), Vec::new()],
        masks,
    }));
    for (i, stream) in [Stream::Stdout, Stream::Stderr].into_iter().enumerate() {
        let tail = tail.clone();
        let progress = env.progress.clone();
        let step = env.step;
        let cb = Box::new(move |data: &[u8]| {
            let out = tail.lock().map(|mut t| t.push(i, data)).unwrap_or_default();
            if !out.is_empty() {
                progress.emit(&Event::Log {
                    step,
                    stream,
                    data: out,
                });
            }
        });
        if i == 0 {
            spec.stdout = Stdio::Stream(cb);
        } else {
            spec.stderr = Stdio::Stream(cb);
        }
    }
    let outcome = drydock_sandbox::run(spec)?;
    drop(locks);
    drop(temp_caches);
    let mut t = tail
        .lock()
        .map_err(|_| BuildError::Cache("output lock".into()))?;
    for (i, stream) in [Stream::Stdout, Stream::Stderr].into_iter().enumerate() {
        let rest = t.flush(i);
        if !rest.is_empty() {
            env.progress.emit(&Event::Log {
                step: env.step,
                stream,
                data: rest,
            });
        }
    }
    if outcome.cancelled {
        return Err(BuildError::Cancelled);
    }
    if !outcome.status.success() {
        let message = format!(
            "process \"{}\" did not complete successfully: {}",
            mask(op.args.join(" ").as_bytes(), &t.masks).escape_ascii(),
            outcome.status
        );
        return Ok(Err(ExecFailure {
            message,
            exit_code: Some(outcome.status.code()),
            tail: t.lines.iter().cloned().collect(),
        }));
    }
    let changes = outcome.changes.ok_or_else(|| {
        BuildError::Cache("the sandbox returned no changes for a RUN step".into())
    })?;
    Ok(Ok(changes))
}

/// Copies a directory tree (for seeding cache mounts and writable bind mounts), keeping
/// modes, owners, symlinks and times.
pub fn copy_dir(from: &Path, to: &Path) -> Result<(), BuildError> {
    let mut tar = Vec::new();
    drydock_layer::write_tree(from, &mut tar, &drydock_layer::TarOptions::default())?;
    fs::create_dir_all(to).ctx("create directory", to)?;
    drydock_layer::apply(&tar[..], to, &drydock_layer::ApplyOptions::default())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_masks_secrets_across_chunks() {
        let mut t = Tail {
            lines: VecDeque::new(),
            partial: [Vec::new(), Vec::new()],
            masks: vec![b"hunter2".to_vec()],
        };
        assert!(t.push(0, b"the pass is hun").is_empty());
        let out = t.push(0, b"ter2!\nnext");
        assert_eq!(out, b"the pass is ****!\n");
        assert_eq!(t.flush(0), b"next");
        assert_eq!(
            t.lines.iter().cloned().collect::<Vec<_>>(),
            ["the pass is ****!", "next"]
        );
    }
}
