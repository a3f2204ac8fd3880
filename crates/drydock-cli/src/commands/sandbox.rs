//! `drydock sandbox run`: an internal command that runs one command in a sandbox, to exercise
//! the sandbox by hand and from scripts (benchmarks). Builds and pipelines call the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use drydock_sandbox::{
    Limits, Mount, NetworkMode, Root, RootMode, SandboxSpec, SecretFile, Stdio, UserNamespace,
};

#[derive(Debug, Parser)]
#[command(
    about = "Internal: run a command in a sandbox (namespaces, overlayfs, cgroups, seccomp)",
    after_help = "This command is internal and may change; `drydock build` and `drydock run` use the same sandbox.\n\n\
Example:\n  drydock sandbox run --rootfs ./rootfs --bind \"$PWD:/src:ro\" --memory 512M -- /bin/sh -c 'ls /src'"
)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// Internal: run one command in a sandbox and exit with its status (128+N when killed by
    /// signal N).
    Run(RunArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Net {
    None,
    Host,
}

#[derive(Debug, Parser)]
struct RunArgs {
    /// A directory holding a whole root file system (never modified).
    #[arg(long, conflicts_with = "layer")]
    rootfs: Option<PathBuf>,
    /// Extracted layer directories, base first (overlayfs whiteouts); repeatable.
    #[arg(long = "layer", alias = "image-layers", num_args = 1..)]
    layer: Vec<PathBuf>,
    /// Where per-run directories go (default: DRYDOCK_HOME/sandbox).
    #[arg(long)]
    state: Option<PathBuf>,
    /// USER[:GROUP], names or ids from the image's /etc/passwd and /etc/group.
    #[arg(long, short)]
    user: Option<String>,
    /// Working directory inside the sandbox.
    #[arg(long, short = 'w')]
    workdir: Option<String>,
    /// KEY=VALUE; repeatable.
    #[arg(long, short)]
    env: Vec<String>,
    #[arg(long, value_enum, default_value = "none")]
    net: Net,
    #[arg(long)]
    hostname: Option<String>,
    /// SRC:DST[:ro]; repeatable.
    #[arg(long)]
    bind: Vec<String>,
    /// A fresh tmpfs at DST; repeatable.
    #[arg(long)]
    tmpfs: Vec<String>,
    /// DST=FILE: the contents of FILE at DST, on a private tmpfs; repeatable.
    #[arg(long)]
    secret: Vec<String>,
    /// Memory limit, e.g. 512M or 2G.
    #[arg(long)]
    memory: Option<String>,
    /// Maximum number of processes.
    #[arg(long)]
    pids: Option<u64>,
    /// CPU limit in CPUs, e.g. 1.5.
    #[arg(long)]
    cpus: Option<f64>,
    /// Wall-clock limit in seconds; the whole process tree is killed when it passes.
    #[arg(long)]
    timeout: Option<f64>,
    /// Use a user namespace with /etc/subuid ranges (the default when not root).
    #[arg(long)]
    rootless: bool,
    /// Copy the root instead of using overlayfs.
    #[arg(long)]
    copy: bool,
    /// Keep the run directory and print the upper dir's path on stderr.
    #[arg(long)]
    keep: bool,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

fn parse_size(s: &str) -> anyhow::Result<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1u64 << 10),
        Some('m' | 'M') => (&s[..s.len() - 1], 1 << 20),
        Some('g' | 'G') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let n: u64 = num
        .parse()
        .with_context(|| format!("--memory {s}: expected a size such as 512M"))?;
    Ok(n * mult)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Sub::Run(a) = args.command;
    let root = match (a.rootfs, a.layer.is_empty()) {
        (Some(r), true) => Root::Rootfs(r),
        (None, false) => Root::Layers(a.layer),
        _ => bail!("give --rootfs DIR or --layer DIR..."),
    };
    let mut spec = SandboxSpec::new(root, a.command);
    spec.state_dir = a
        .state
        .unwrap_or_else(|| crate::home::drydock_home().join("sandbox"));
    spec.user = a.user;
    spec.cwd = a.workdir;
    for kv in a.env {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--env {kv}: expected KEY=VALUE"))?;
        spec.env.push((k.to_string(), v.to_string()));
    }
    spec.network = match a.net {
        Net::None => NetworkMode::None,
        Net::Host => NetworkMode::Host,
    };
    if let Some(h) = a.hostname {
        spec.hostname = h;
    }
    for b in a.bind {
        let parts: Vec<&str> = b.split(':').collect();
        let (source, target, readonly) = match parts.as_slice() {
            [s, t] => (s, t, false),
            [s, t, "ro"] => (s, t, true),
            [s, t, "rw"] => (s, t, false),
            _ => bail!("--bind {b}: expected SRC:DST[:ro]"),
        };
        let source =
            std::fs::canonicalize(source).with_context(|| format!("--bind source {source}"))?;
        spec.mounts.push(Mount::Bind {
            source,
            target: target.to_string(),
            readonly,
        });
    }
    for t in a.tmpfs {
        spec.mounts.push(Mount::Tmpfs {
            target: t,
            size_bytes: None,
            mode: 0o755,
            files: vec![],
        });
    }
    for s in a.secret {
        let (target, file) = s
            .split_once('=')
            .with_context(|| format!("--secret {s}: expected DST=FILE"))?;
        let contents =
            std::fs::read(file).with_context(|| format!("reading secret file {file}"))?;
        spec.mounts.push(Mount::Secret {
            target: target.to_string(),
            file: SecretFile::new("", contents),
        });
    }
    spec.limits = Limits {
        memory_bytes: a.memory.as_deref().map(parse_size).transpose()?,
        pids: a.pids,
        cpu_millis: a.cpus.map(|c| (c * 1000.0).round() as u64),
    };
    spec.timeout = a.timeout.map(Duration::from_secs_f64);
    if a.rootless {
        spec.isolation.user_namespace = UserNamespace::Rootless;
    }
    if a.copy {
        spec.root_mode = RootMode::Copy;
    }
    spec.keep_changes = a.keep;
    spec.stdin = drydock_sandbox::Stdin::Inherit;
    spec.stdout = Stdio::Inherit;
    spec.stderr = Stdio::Inherit;

    let outcome = drydock_sandbox::run(spec);
    // Leave no run directory behind when this process exits.
    drydock_sandbox::wait_for_cleanup(Duration::from_secs(30));
    let outcome = outcome?;
    for w in &outcome.warnings {
        eprintln!("warning: {w}");
    }
    if outcome.timed_out {
        eprintln!("drydock sandbox: timed out; the process tree was killed");
    }
    if let Some(changes) = outcome.changes {
        let dir = changes.keep();
        eprintln!("changes kept in {}", dir.join("upper").display());
    }
    Ok(ExitCode::from(outcome.status.code().clamp(0, 255) as u8))
}
