//! Manual and test front end: `run` (one sandboxed command, or `--bench N` of them) and `probe`
//! (prints what a process can see of its own privileges; copied into test root file systems).

use std::path::PathBuf;
use std::time::Duration;

use drydock_sandbox::{
    Isolation, Limits, Mount, NetworkMode, Root, RootMode, SandboxSpec, SecretFile, Stdio,
    UserNamespace, run,
};

const USAGE: &str = "\
usage: drydock-sandbox-init run (--rootfs DIR | --layer DIR...) [options] -- CMD [ARGS...]
       drydock-sandbox-init probe
       drydock-sandbox-init time N -- CMD [ARGS...]

run options:
  --state DIR          per-run directories (default: $TMPDIR/drydock-sandbox)
  --user USER[:GROUP]  name or id from the image's /etc/passwd and /etc/group
  --cwd DIR            working directory      --hostname NAME
  --env KEY=VALUE      environment (repeatable)
  --net host|none      network (default none)
  --bind SRC:DST[:ro]  bind mount (repeatable) --tmpfs DST   --secret DST=VALUE
  --memory BYTES  --pids N  --cpu MILLICPUS  --timeout SECONDS
  --rootless           user namespace with /etc/subuid ranges
  --copy               copy mode instead of overlayfs
  --no-seccomp  --no-nnp  --keep (print the upper dir)  --quiet (discard output)
  --bench N            run N times, print one duration (microseconds) per line
";

pub fn main(args: Vec<String>) -> i32 {
    match args.first().map(String::as_str) {
        Some("run") => match run_cmd(&args[1..]) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("drydock-sandbox-init: {e}");
                125
            }
        },
        Some("probe") => probe(),
        Some("time") => time(&args[1..]),
        _ => {
            eprint!("{USAGE}");
            2
        }
    }
}

/// `time N -- CMD ARGS...`: runs CMD N times, one after the other, printing each wall-clock
/// duration in microseconds (for benchmarks: no shell or `date` overhead in the numbers).
fn time(args: &[String]) -> i32 {
    let (Some(n), Some("--")) = (
        args.first().and_then(|n| n.parse::<usize>().ok()),
        args.get(1).map(String::as_str),
    ) else {
        eprintln!("usage: drydock-sandbox-init time N -- CMD [ARGS...]");
        return 2;
    };
    let Some((cmd, rest)) = args[2..].split_first() else {
        eprintln!("time: no command");
        return 2;
    };
    for _ in 0..n {
        let t = std::time::Instant::now();
        let st = std::process::Command::new(cmd)
            .args(rest)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .status();
        let us = t.elapsed().as_micros();
        match st {
            Ok(s) if s.success() => println!("{us}"),
            Ok(s) => {
                eprintln!("time: {cmd} failed: {s}");
                return 1;
            }
            Err(e) => {
                eprintln!("time: {cmd}: {e}");
                return 1;
            }
        }
    }
    0
}

fn probe() -> i32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    for key in [
        "Uid",
        "Gid",
        "Groups",
        "CapInh",
        "CapPrm",
        "CapEff",
        "CapBnd",
        "CapAmb",
        "NoNewPrivs",
        "Seccomp",
    ] {
        if let Some(line) = status.lines().find(|l| l.starts_with(&format!("{key}:"))) {
            println!("{}", line.split_whitespace().collect::<Vec<_>>().join(" "));
        }
    }
    0
}

fn run_cmd(args: &[String]) -> Result<i32, String> {
    let mut layers = Vec::new();
    let mut rootfs = None;
    let mut spec_mounts = Vec::new();
    let mut env = Vec::new();
    let (mut user, mut cwd, mut hostname, mut state) = (None, None, None, None);
    let mut network = NetworkMode::None;
    let mut limits = Limits::default();
    let mut timeout = None;
    let mut isolation = Isolation::default();
    let (mut copy, mut keep, mut quiet, mut bench) = (false, false, false, None);
    let mut layer_out: Option<PathBuf> = None;
    let mut i = 0;
    let mut argv = Vec::new();
    let next = |i: &mut usize| -> Result<String, String> {
        *i += 1;
        args.get(*i)
            .cloned()
            .ok_or_else(|| format!("{} needs a value", args[*i - 1]))
    };
    while i < args.len() {
        match args[i].as_str() {
            "--" => {
                argv = args[i + 1..].to_vec();
                break;
            }
            "--rootfs" => rootfs = Some(PathBuf::from(next(&mut i)?)),
            "--layer" => layers.push(PathBuf::from(next(&mut i)?)),
            "--state" => state = Some(PathBuf::from(next(&mut i)?)),
            "--user" => user = Some(next(&mut i)?),
            "--cwd" => cwd = Some(next(&mut i)?),
            "--hostname" => hostname = Some(next(&mut i)?),
            "--env" => {
                let kv = next(&mut i)?;
                let (k, v) = kv.split_once('=').ok_or("--env needs KEY=VALUE")?;
                env.push((k.to_string(), v.to_string()));
            }
            "--net" => {
                network = match next(&mut i)?.as_str() {
                    "host" => NetworkMode::Host,
                    "none" => NetworkMode::None,
                    n => return Err(format!("--net {n}: expected host or none")),
                }
            }
            "--bind" => {
                let b = next(&mut i)?;
                let parts: Vec<&str> = b.split(':').collect();
                if parts.len() < 2 {
                    return Err("--bind needs SRC:DST[:ro]".into());
                }
                spec_mounts.push(Mount::Bind {
                    source: PathBuf::from(parts[0]),
                    target: parts[1].to_string(),
                    readonly: parts.get(2) == Some(&"ro"),
                });
            }
            "--tmpfs" => spec_mounts.push(Mount::Tmpfs {
                target: next(&mut i)?,
                size_bytes: None,
                mode: 0o755,
                files: vec![],
            }),
            "--secret" => {
                let s = next(&mut i)?;
                let (t, v) = s.split_once('=').ok_or("--secret needs DST=VALUE")?;
                spec_mounts.push(Mount::Secret {
                    target: t.to_string(),
                    file: SecretFile::new("", v),
                });
            }
            "--memory" => {
                limits.memory_bytes = Some(next(&mut i)?.parse().map_err(|_| "--memory: bytes")?)
            }
            "--pids" => limits.pids = Some(next(&mut i)?.parse().map_err(|_| "--pids: a number")?),
            "--cpu" => {
                limits.cpu_millis = Some(next(&mut i)?.parse().map_err(|_| "--cpu: millicpus")?)
            }
            "--timeout" => {
                timeout = Some(Duration::from_secs_f64(
                    next(&mut i)?.parse().map_err(|_| "--timeout: seconds")?,
                ))
            }
            "--rootless" => isolation.user_namespace = UserNamespace::Rootless,
            "--no-seccomp" => isolation.seccomp = false,
            "--no-nnp" => isolation.no_new_privileges = false,
            "--copy" => copy = true,
            "--keep" => keep = true,
            "--layer-out" => layer_out = Some(PathBuf::from(next(&mut i)?)),
            "--quiet" => quiet = true,
            "--bench" => {
                bench = Some(
                    next(&mut i)?
                        .parse::<usize>()
                        .map_err(|_| "--bench: a count")?,
                )
            }
            o => return Err(format!("unknown option {o}\n{USAGE}")),
        }
        i += 1;
    }
    if argv.is_empty() {
        return Err(format!("no command given\n{USAGE}"));
    }
    let root = match (rootfs, layers.is_empty()) {
        (Some(r), true) => Root::Rootfs(r),
        (None, false) => Root::Layers(layers),
        _ => return Err("give either --rootfs or --layer".into()),
    };
    let make = || {
        let mut spec = SandboxSpec::new(root.clone(), argv.clone());
        spec.mounts = spec_mounts.clone();
        spec.env = env.clone();
        spec.user = user.clone();
        spec.cwd = cwd.clone();
        if let Some(h) = &hostname {
            spec.hostname = h.clone();
        }
        if let Some(s) = &state {
            spec.state_dir = s.clone();
        }
        spec.network = network;
        spec.limits = limits.clone();
        spec.timeout = timeout;
        spec.isolation = isolation.clone();
        spec.root_mode = if copy { RootMode::Copy } else { RootMode::Auto };
        spec.keep_changes = keep || layer_out.is_some();
        spec.init_binary = std::env::var_os("DRYDOCK_SANDBOX_INIT")
            .map(PathBuf::from)
            .or_else(|| std::env::current_exe().ok());
        if quiet {
            spec.stdout = Stdio::Null;
            spec.stderr = Stdio::Null;
        }
        spec
    };
    if let Some(n) = bench {
        // DRYDOCK_SANDBOX_BENCH_INITS=A:B alternates the init binary run by run (interleaved,
        // so load changes on a shared machine hit both alike) and labels each line.
        let inits: Vec<PathBuf> = std::env::var("DRYDOCK_SANDBOX_BENCH_INITS")
            .map(|v| v.split(':').map(PathBuf::from).collect())
            .unwrap_or_default();
        for i in 0..n {
            let mut spec = make();
            let label = if inits.is_empty() {
                String::new()
            } else {
                let init = &inits[i % inits.len()];
                spec.init_binary = Some(init.clone());
                format!("{} ", init.display())
            };
            let t = std::time::Instant::now();
            let o = run(spec).map_err(|e| e.to_string())?;
            let us = t.elapsed().as_micros();
            if !o.status.success() {
                return Err(format!("benchmark command failed: {}", o.status));
            }
            println!("{label}{us}");
        }
        return Ok(0);
    }
    let outcome = run(make()).map_err(|e| e.to_string())?;
    if std::env::var_os("DRYDOCK_SANDBOX_TIMINGS").is_some() {
        for (what, at) in &outcome.timings {
            eprintln!("{:>9.3} ms  {what}", at.as_secs_f64() * 1000.0);
        }
    }
    for w in &outcome.warnings {
        eprintln!("warning: {w}");
    }
    if outcome.timed_out {
        eprintln!("drydock-sandbox-init: timed out");
    }
    if let (Some(c), Some(path)) = (&outcome.changes, &layer_out) {
        // The layer tar and its diff ID, computed in one pass.
        let t = std::time::Instant::now();
        let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut out = Tee {
            file: std::io::BufWriter::new(file),
            hasher: drydock_oci::Algorithm::Sha256.hasher(),
        };
        let stats = c
            .write_layer(&mut out, &Default::default())
            .map_err(|e| e.to_string())?;
        use std::io::Write;
        out.file.flush().map_err(|e| e.to_string())?;
        eprintln!(
            "command {} ms; layer {} ms ({stats:?}, diff id {})",
            outcome.duration.as_millis(),
            t.elapsed().as_millis(),
            out.hasher.finish()
        );
    }
    if let Some(c) = outcome.changes
        && keep
    {
        println!("{}", c.keep().join("upper").display());
    }
    Ok(outcome.status.code())
}

struct Tee {
    file: std::io::BufWriter<std::fs::File>,
    hasher: drydock_oci::Hasher,
}

impl std::io::Write for Tee {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}
