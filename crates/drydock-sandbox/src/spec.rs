//! What the caller asks for: [`SandboxSpec`] and its parts.

use std::fmt;
use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::run::CancelToken;

/// One sandboxed command.
///
/// ```no_run
/// use drydock_sandbox::{run, Root, SandboxSpec, Stdio};
/// let mut spec = SandboxSpec::new(Root::Rootfs("/tmp/rootfs".into()), ["/bin/sh", "-c", "echo hi"]);
/// spec.state_dir = "/var/lib/drydock/sandbox".into();
/// spec.stdout = Stdio::Capture;
/// let outcome = run(spec).unwrap();
/// assert_eq!(outcome.stdout, b"hi\n");
/// ```
#[derive(Debug)]
pub struct SandboxSpec {
    /// The root file system.
    pub root: Root,
    /// How the root is made writable: overlayfs, or a copy when overlayfs is unavailable.
    pub root_mode: RootMode,
    /// Extra mounts, applied in order after the standard ones (`/proc`, `/dev`, `/etc/hosts`...).
    pub mounts: Vec<Mount>,
    /// The command; `argv[0]` without a `/` is looked up in the `PATH` of `env` inside the root.
    pub argv: Vec<String>,
    /// The environment, exactly (`PATH`, `HOME` and `HOSTNAME` are added when absent).
    pub env: Vec<(String, String)>,
    /// `name|uid[:name|gid]`, resolved against the image's `/etc/passwd` and `/etc/group`;
    /// `None` is root.
    pub user: Option<String>,
    /// Working directory inside the root (created if missing, like Docker's `WORKDIR`).
    pub cwd: Option<String>,
    pub hostname: String,
    pub network: NetworkMode,
    /// Extra `/etc/hosts` lines (service names of a pipeline job).
    pub extra_hosts: Vec<HostEntry>,
    /// `/etc/resolv.conf` contents; `None` copies the host's.
    pub resolv_conf: Option<String>,
    pub limits: Limits,
    pub rlimits: Vec<Rlimit>,
    /// Wall-clock limit; when it passes the whole process tree is killed.
    pub timeout: Option<Duration>,
    pub stdin: Stdin,
    pub stdout: Stdio,
    pub stderr: Stdio,
    pub isolation: Isolation,
    /// Where per-run directories (upper, work, mount points) are created. Must be on a file
    /// system that can hold an overlayfs upper dir (not overlayfs itself).
    pub state_dir: PathBuf,
    /// Keep the upper directory after the run and return it in [`crate::Outcome::changes`].
    pub keep_changes: bool,
    /// The binary re-executed as the sandbox init. `None`: `$DRYDOCK_SANDBOX_INIT`, else the
    /// current executable (which must call [`crate::maybe_run_init`] first thing in `main`).
    pub init_binary: Option<PathBuf>,
    /// Lets another thread stop the run (the process tree is killed, as on timeout).
    pub cancel: Option<CancelToken>,
}

impl SandboxSpec {
    /// A spec with Docker-like defaults: root user, `/` as working directory, no network,
    /// inherited stdio, no limits, state under the system temp dir.
    pub fn new<I, S>(root: Root, argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            root,
            root_mode: RootMode::Auto,
            mounts: Vec::new(),
            argv: argv.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            user: None,
            cwd: None,
            hostname: "drydock".to_string(),
            network: NetworkMode::None,
            extra_hosts: Vec::new(),
            resolv_conf: None,
            limits: Limits::default(),
            rlimits: Vec::new(),
            timeout: None,
            stdin: Stdin::Null,
            stdout: Stdio::Inherit,
            stderr: Stdio::Inherit,
            isolation: Isolation::default(),
            state_dir: std::env::temp_dir().join("drydock-sandbox"),
            keep_changes: false,
            init_binary: None,
            cancel: None,
        }
    }
}

/// The root file system of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    /// Extracted layer directories, bottom (base image) first, as in a manifest. Whiteouts in
    /// them are in overlayfs format (see [`crate::SnapshotCache`]).
    Layers(Vec<PathBuf>),
    /// One directory holding a whole root file system; it is never modified.
    Rootfs(PathBuf),
}

/// How the root is made writable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum RootMode {
    /// overlayfs when it can be mounted here, else [`RootMode::Copy`].
    #[default]
    Auto,
    /// overlayfs with a fresh upper dir; fails when it cannot be mounted.
    Overlay,
    /// Copy the lower layers into a fresh tree and diff it afterwards (slow, works anywhere).
    Copy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum NetworkMode {
    /// The host's network stack.
    Host,
    /// A new network namespace with only a loopback interface (up).
    #[default]
    None,
}

/// One `/etc/hosts` line: `ip name...`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostEntry {
    pub ip: IpAddr,
    pub names: Vec<String>,
}

/// A mount added to the sandbox.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mount {
    /// A host directory or file at `target`. Symlinks inside the source resolve inside the
    /// sandbox, never on the host.
    Bind {
        source: PathBuf,
        target: String,
        readonly: bool,
    },
    /// A cache directory shared between runs: like a read-write bind, but the source is created
    /// when missing.
    Cache { source: PathBuf, target: String },
    /// A fresh tmpfs at `target`, with `files` written into it before the command starts (for
    /// secrets: nothing in it ever reaches the upper dir or the disk).
    Tmpfs {
        target: String,
        size_bytes: Option<u64>,
        mode: u32,
        files: Vec<SecretFile>,
    },
    /// One file at `target` whose contents live on a private tmpfs (a secret).
    Secret { target: String, file: SecretFile },
}

impl fmt::Debug for Mount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mount::Bind {
                source,
                target,
                readonly,
            } => f
                .debug_struct("Bind")
                .field("source", source)
                .field("target", target)
                .field("readonly", readonly)
                .finish(),
            Mount::Cache { source, target } => f
                .debug_struct("Cache")
                .field("source", source)
                .field("target", target)
                .finish(),
            Mount::Tmpfs {
                target,
                size_bytes,
                mode,
                files,
            } => f
                .debug_struct("Tmpfs")
                .field("target", target)
                .field("size_bytes", size_bytes)
                .field("mode", &format_args!("{mode:o}"))
                .field("files", files)
                .finish(),
            Mount::Secret { target, file } => f
                .debug_struct("Secret")
                .field("target", target)
                .field("file", file)
                .finish(),
        }
    }
}

/// A file written into a tmpfs mount. Its contents never appear in `Debug` output.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretFile {
    /// Path relative to the tmpfs root (for [`Mount::Tmpfs`]); ignored for [`Mount::Secret`].
    pub path: String,
    pub contents: Vec<u8>,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

impl SecretFile {
    pub fn new(path: impl Into<String>, contents: impl Into<Vec<u8>>) -> Self {
        Self {
            path: path.into(),
            contents: contents.into(),
            mode: 0o400,
            uid: 0,
            gid: 0,
        }
    }
}

impl fmt::Debug for SecretFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretFile")
            .field("path", &self.path)
            .field(
                "contents",
                &format_args!("<{} bytes redacted>", self.contents.len()),
            )
            .field("mode", &format_args!("{:o}", self.mode))
            .field("uid", &self.uid)
            .field("gid", &self.gid)
            .finish()
    }
}

/// cgroup limits; `None` means unlimited. Enforced where the machine allows (cgroup v1 or v2,
/// as root); a limit that cannot be enforced is reported in [`crate::Outcome::warnings`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub memory_bytes: Option<u64>,
    pub pids: Option<u64>,
    /// CPU bandwidth in thousandths of a CPU (1500 = 1.5 CPUs).
    pub cpu_millis: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RlimitResource {
    Core,
    Cpu,
    Data,
    Fsize,
    Nofile,
    Nproc,
    Stack,
    Memlock,
    As,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    pub resource: RlimitResource,
    pub soft: u64,
    pub hard: u64,
}

/// Where the command's standard input comes from.
#[derive(Debug, Default)]
pub enum Stdin {
    #[default]
    Null,
    Inherit,
    Fd(OwnedFd),
}

/// A live-output callback.
pub type OutputCallback = Box<dyn FnMut(&[u8]) + Send>;

/// Where standard output or error goes.
#[derive(Default)]
pub enum Stdio {
    #[default]
    Inherit,
    Null,
    /// Collected into [`crate::Outcome::stdout`] / `stderr`.
    Capture,
    /// A caller-supplied descriptor (a file, a pipe, a pty).
    Fd(OwnedFd),
    /// Called with each chunk as it arrives (live log streaming), on the calling thread.
    Stream(OutputCallback),
}

impl fmt::Debug for Stdio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stdio::Inherit => f.write_str("Inherit"),
            Stdio::Null => f.write_str("Null"),
            Stdio::Capture => f.write_str("Capture"),
            Stdio::Fd(fd) => write!(f, "Fd({fd:?})"),
            Stdio::Stream(_) => f.write_str("Stream(..)"),
        }
    }
}

/// Privilege settings. The defaults match Docker's: its default capability set, no new
/// privileges, its default seccomp profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Isolation {
    pub user_namespace: UserNamespace,
    /// Capability names (`CAP_CHOWN` or `chown`); `None` is Docker's default set.
    pub capabilities: Option<Vec<String>>,
    pub no_new_privileges: bool,
    /// Apply the default seccomp filter (see [`crate::seccomp`]).
    pub seccomp: bool,
}

impl Default for Isolation {
    fn default() -> Self {
        Self {
            user_namespace: UserNamespace::Auto,
            capabilities: None,
            no_new_privileges: true,
            seccomp: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum UserNamespace {
    /// None as root; rootless (below) otherwise.
    #[default]
    Auto,
    /// No user namespace (needs root).
    Off,
    /// A user namespace mapping container root to the calling user and the rest of the ids to
    /// the caller's `/etc/subuid` and `/etc/subgid` ranges (through `newuidmap`/`newgidmap`).
    Rootless,
}
