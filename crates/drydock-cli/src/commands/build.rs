//! `drydock build`: a daemonless `docker build` (the builder crate does the work), and
//! `--check` (parse, lint and plan a Dockerfile without running anything).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write as _};
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args as ClapArgs;
use drydock_builder::{
    BuildError, BuildRequest, Builder, ContextSource, DockerfileSource, Event, Output, Progress,
    PullPolicy, Secrets, Stream,
};
use drydock_diagnostics::{Severity, render};
use drydock_dockerfile::Dockerignore;
use drydock_frontend::BuildOptions;
use drydock_oci::{Platform, Reference};

use crate::progress_view::TtyView;

#[derive(Debug, ClapArgs)]
#[command(after_help = "Examples:
  drydock build -t app:dev .
  drydock build -f docker/app.Dockerfile --build-arg VERSION=1.2 --target runtime -t registry.example.com/app:1.2 --push .
  drydock build --secret id=npmrc,src=$HOME/.npmrc -o type=oci,dest=out/ .
  drydock build https://github.com/acme/app.git#main:docker
  tar -c . | drydock build -t app -
  drydock build --check --json .")]
pub struct Args {
    /// The build context: a directory, a git URL (URL#REF:SUBDIR), a tarball, or - (a tar or a
    /// Dockerfile on standard input).
    #[arg(default_value = ".")]
    context: String,
    /// The Dockerfile (default: CONTEXT/Dockerfile; `-` reads standard input).
    #[arg(short = 'f', long = "file")]
    file: Option<PathBuf>,
    /// Name and tag for the image (repeatable).
    #[arg(short = 't', long = "tag")]
    tags: Vec<String>,
    /// A build argument, `KEY=VALUE` (or `KEY` to take the value from the environment).
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    build_args: Vec<String>,
    /// The stage to build (default: the last one).
    #[arg(long)]
    target: Option<String>,
    /// The platform(s) to build for, such as linux/amd64 (comma-separated; default: this
    /// machine's).
    #[arg(long)]
    platform: Option<String>,
    /// A secret for RUN --mount=type=secret: id=ID,src=FILE or id=ID,env=VAR (repeatable).
    #[arg(long = "secret", value_name = "id=ID,src=FILE|env=VAR")]
    secrets: Vec<String>,
    /// An SSH agent for RUN --mount=type=ssh: default, ID, or ID=SOCKET (repeatable).
    #[arg(long = "ssh", value_name = "ID[=SOCKET]")]
    ssh: Vec<String>,
    /// Do not use the build cache.
    #[arg(long)]
    no_cache: bool,
    /// Do not use the build cache for the steps of these stages (repeatable).
    #[arg(long = "no-cache-filter", value_name = "STAGE")]
    no_cache_filter: Vec<String>,
    /// When to pull base images: always, missing (default) or never. `--pull` alone: always.
    #[arg(long, value_name = "POLICY", num_args = 0..=1, default_missing_value = "always")]
    pull: Option<String>,
    /// A label for the image, KEY=VALUE (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Write the image ID (config digest) to this file.
    #[arg(long)]
    iidfile: Option<PathBuf>,
    /// Write the build's digests as JSON (buildx keys) to this file.
    #[arg(long = "metadata-file")]
    metadata_file: Option<PathBuf>,
    /// Layer compression: gzip (default) or zstd.
    #[arg(long, default_value = "gzip")]
    compression: String,
    /// Compression level: gzip 0-9 (default 1), zstd 1-19 (default 3).
    #[arg(long = "compression-level")]
    compression_level: Option<i32>,
    /// Output: type=oci|docker|local|tar,dest=PATH (repeatable; default: the local store).
    #[arg(short = 'o', long = "output", value_name = "type=TYPE,dest=PATH")]
    outputs: Vec<String>,
    /// Push the image to every -t name.
    #[arg(long)]
    push: bool,
    /// Also keep the image in the local store when -o is given.
    #[arg(long)]
    load: bool,
    /// Timestamps in the image (default: $SOURCE_DATE_EPOCH, else the context's git commit
    /// time, else 0).
    #[arg(long = "source-date-epoch", env = "SOURCE_DATE_EPOCH")]
    source_date_epoch: Option<i64>,
    /// Progress output: auto (tty on a terminal, else plain), plain, tty or json.
    #[arg(long, default_value = "auto")]
    progress: String,
    /// Print only the image ID.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Entitlements: security.insecure allows RUN --security=insecure.
    #[arg(long = "allow", value_name = "ENTITLEMENT")]
    allow: Vec<String>,
    /// Parse, run the build checks and plan the build, without running anything.
    #[arg(long)]
    check: bool,
    /// With --check: print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    for t in &args.tags {
        Reference::parse(t).with_context(|| format!("--tag {t:?}"))?;
    }
    if !args.check {
        return build(args);
    }
    let (display, source, ignore_text) = read_inputs(&args)?;
    let mut opts = BuildOptions::new(match &args.platform {
        Some(p) => Platform::parse(p).with_context(|| format!("--platform {p:?}"))?,
        None => Platform::host(),
    });
    opts.build_platform = Platform::host();
    opts.file_name = display.clone();
    opts.target = args.target.clone();
    opts.build_args = parse_build_args(&args.build_args)?;
    if let Some(text) = &ignore_text {
        opts.dockerignore = Dockerignore::parse(text);
    }
    if Path::new(&args.context).is_dir() {
        opts.context_files = Some(list_context(Path::new(&args.context), &opts.dockerignore));
    }
    let report = drydock_frontend::check(&source, &opts);
    let errors = report.diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = report.diagnostics.len() - errors;

    if args.json {
        let diags = super::validate::diagnostics_json(&display, &source, &report.diagnostics);
        let images: Vec<serde_json::Value> = report
            .images
            .iter()
            .map(|i| serde_json::json!({"reference": i.reference.to_string(), "platform": i.platform.to_string(), "line": i.line}))
            .collect();
        let out = serde_json::json!({
            "file": display,
            "ok": errors == 0,
            "errors": errors,
            "warnings": warnings,
            "diagnostics": diags,
            "images": images,
            "plan": report.plan.as_ref().map(|p| serde_json::json!({
                "platform": p.platform,
                "ops": p.ops.len(),
                "digest": p.digest().to_string(),
            })),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for d in &report.diagnostics {
            eprint!("{}", render(&display, &source, d));
            eprintln!();
        }
        let stages = report
            .dockerfile
            .instructions
            .iter()
            .filter(|i| i.keyword == drydock_dockerfile::Keyword::From)
            .count();
        let plan = match &report.plan {
            Some(p) => format!("plan: {} operations for {}", p.ops.len(), p.platform),
            None => "no plan".to_string(),
        };
        let images: Vec<String> = report
            .images
            .iter()
            .map(|i| i.reference.familiar())
            .collect();
        println!(
            "{display}: {} instructions in {stages} stage(s), {errors} error(s), {warnings} warning(s); {plan}{}",
            report.dockerfile.instructions.len(),
            if images.is_empty() {
                String::new()
            } else {
                format!("; images: {}", images.join(", "))
            }
        );
    }
    let promoted = report.check_config.error
        && report.diagnostics.iter().any(|d| {
            d.severity == Severity::Error
                && d.code
                    .as_deref()
                    .is_some_and(|c| drydock_dockerfile::Rule::by_name(c).is_some())
        });
    Ok(if errors > 0 || promoted {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The Dockerfile's display name and text, and the ignore file's text: `<Dockerfile>.dockerignore`
/// beside the Dockerfile wins over `CONTEXT/.dockerignore`, as in BuildKit.
fn read_inputs(args: &Args) -> anyhow::Result<(String, String, Option<String>)> {
    let context = PathBuf::from(&args.context);
    let (display, source, file_path) = match &args.file {
        Some(f) if f.as_os_str() == "-" => {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                .context("reading the Dockerfile from standard input")?;
            ("Dockerfile".to_string(), s, None)
        }
        Some(f) => (f.display().to_string(), read_text(f)?, Some(f.clone())),
        None => {
            let f = context.join("Dockerfile");
            let shown = f.strip_prefix(".").unwrap_or(&f).display().to_string();
            (shown, read_text(&f)?, Some(f))
        }
    };
    let mut ignore = None;
    if let Some(f) = &file_path {
        let mut name = f.as_os_str().to_owned();
        name.push(".dockerignore");
        let specific = PathBuf::from(name);
        if specific.is_file() {
            ignore = Some(read_text(&specific)?);
        }
    }
    if ignore.is_none() {
        let p = context.join(".dockerignore");
        if p.is_file() {
            ignore = Some(read_text(&p)?);
        }
    }
    Ok((display, source, ignore))
}

fn read_text(p: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn parse_build_args(list: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for a in list {
        match a.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                out.insert(k.to_string(), v.to_string());
            }
            Some(_) => anyhow::bail!("--build-arg {a:?}: expected KEY=VALUE"),
            None => {
                // `--build-arg KEY` takes the value from the environment, if set.
                if let Ok(v) = std::env::var(a) {
                    out.insert(a.clone(), v);
                }
            }
        }
    }
    Ok(out)
}

/// Every file of the context (relative, `/`-separated), skipping ignored directories that no
/// exception pattern can reach into. Bounded, so a huge context does not stall a check.
fn list_context(root: &Path, ignore: &Dockerignore) -> Vec<String> {
    const MAX_FILES: usize = 200_000;
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(root.join(&rel)) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            let name = e.file_name().to_string_lossy().into_owned();
            let path = if rel.as_os_str().is_empty() {
                PathBuf::from(&name)
            } else {
                rel.join(&name)
            };
            let key = path.to_string_lossy().replace('\\', "/");
            if ft.is_dir() {
                // Nothing under an excluded directory can be copied unless an exception
                // pattern reaches into it; a source path naming it is caught by its parent.
                if ignore.is_excluded(&key) && !ignore.could_reinclude_under(&key) {
                    continue;
                }
                stack.push(path);
            } else {
                out.push(key);
            }
            if out.len() >= MAX_FILES {
                return out;
            }
        }
    }
    out.sort();
    out
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Plain,
    Tty,
    Json,
    Quiet,
}

struct Printer {
    mode: Mode,
    start: Instant,
    names: BTreeMap<usize, String>,
    view: TtyView,
}

impl Printer {
    fn event(&mut self, e: &Event) {
        let mut err = std::io::stderr().lock();
        let t = self.start.elapsed().as_secs_f64();
        match self.mode {
            Mode::Quiet => {}
            Mode::Json => {
                let v = match e {
                    Event::Message(m) => serde_json::json!({"event": "message", "message": m}),
                    Event::Started(s) => {
                        serde_json::json!({"event": "started", "step": s.id, "name": s.name})
                    }
                    Event::Cached(s) => {
                        serde_json::json!({"event": "cached", "step": s.id, "name": s.name})
                    }
                    Event::Done(s, d) => serde_json::json!({"event": "done", "step": s.id,
                        "name": s.name, "seconds": d.as_secs_f64()}),
                    Event::Failed(s, d) => serde_json::json!({"event": "failed", "step": s.id,
                        "name": s.name, "seconds": d.as_secs_f64()}),
                    Event::Log { step, stream, data } => serde_json::json!({"event": "log",
                        "step": step, "stream": if *stream == Stream::Stdout { "stdout" } else { "stderr" },
                        "data": String::from_utf8_lossy(data)}),
                    Event::Warning(w) => serde_json::json!({"event": "warning", "message": w}),
                };
                let _ = writeln!(err, "{v}");
            }
            Mode::Plain => match e {
                Event::Message(m) => {
                    let _ = writeln!(err, "#0 {m}");
                }
                Event::Started(s) => {
                    self.names.insert(s.id, s.name.clone());
                    let _ = writeln!(err, "#{} {}", s.id, s.name);
                }
                Event::Cached(s) => {
                    let _ = writeln!(err, "#{} {}\n#{} CACHED", s.id, s.name, s.id);
                }
                Event::Done(s, d) => {
                    let _ = writeln!(err, "#{} DONE {:.1}s", s.id, d.as_secs_f64());
                }
                Event::Failed(s, d) => {
                    let _ = writeln!(err, "#{} ERROR {:.1}s", s.id, d.as_secs_f64());
                }
                Event::Log { step, data, .. } => {
                    for line in String::from_utf8_lossy(data).lines() {
                        let _ = writeln!(err, "#{step} {t:.3} {line}");
                    }
                }
                Event::Warning(w) => {
                    let _ = write!(err, "{w}");
                }
            },
            Mode::Tty => self.view.apply(e, self.start.elapsed()),
        }
    }
}

/// `--progress tty`: the view ([`TtyView`]) redrawn in place every 100 ms by a thread of its
/// own while the build runs; when it ends, the final frame (every step) is drawn once and stays,
/// followed by the warnings.
struct LiveView {
    printer: Arc<Mutex<Printer>>,
    stop: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<usize>,
}

impl LiveView {
    fn start(printer: Arc<Mutex<Printer>>) -> LiveView {
        let (stop, stopped) = mpsc::channel::<()>();
        let p = printer.clone();
        let thread = std::thread::spawn(move || {
            let mut term = Terminal::query();
            let mut drawn = 0;
            while let Err(mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(Duration::from_millis(100))
            {
                if term.queried.elapsed() >= Duration::from_secs(1) {
                    term = Terminal::query();
                }
                let frame = match p.lock() {
                    // One line is left for the cursor, so the frame never scrolls.
                    Ok(p) => p.view.render_fit(
                        p.start.elapsed(),
                        term.width,
                        term.height.saturating_sub(1),
                        term.color,
                    ),
                    Err(_) => break,
                };
                drawn = draw(drawn, &frame);
            }
            drawn
        });
        LiveView {
            printer,
            stop,
            thread,
        }
    }

    fn finish(self, ok: bool) {
        drop(self.stop);
        let drawn = self.thread.join().unwrap_or(0);
        let term = Terminal::query();
        let Ok(mut p) = self.printer.lock() else {
            return;
        };
        let now = p.start.elapsed();
        p.view.finish(now, ok);
        draw(drawn, &p.view.render(now, term.width, term.color));
        // As BuildKit: the warnings once, after the final frame.
        let warnings = p.view.warnings();
        if warnings.is_empty() {
            return;
        }
        let (on, off) = if term.color {
            ("\x1b[33m", "\x1b[0m")
        } else {
            ("", "")
        };
        let mut text = format!(
            "\n{on}{} warning{} found:{off}\n",
            warnings.len(),
            if warnings.len() == 1 { "" } else { "s" }
        );
        for w in warnings {
            text.push_str(&format!("{on}{}{off}\n\n", w.trim_end()));
        }
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}

/// Moves the cursor up over the previous frame (`drawn` lines), draws `frame` over it in one
/// write and clears what is left below; returns the new frame's height.
fn draw(drawn: usize, frame: &[String]) -> usize {
    let mut s = String::new();
    if drawn > 0 {
        s.push_str(&format!("\x1b[{drawn}A"));
    }
    for line in frame {
        s.push_str("\r\x1b[2K");
        s.push_str(line);
        s.push('\n');
    }
    s.push_str("\x1b[J");
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(s.as_bytes());
    let _ = err.flush();
    frame.len()
}

/// The terminal's size (`COLUMNS`/`LINES`, else `stty size` on standard error, else 80
/// columns and no height limit) and whether to color (unless `NO_COLOR`).
struct Terminal {
    width: usize,
    height: usize,
    color: bool,
    queried: Instant,
}

impl Terminal {
    fn query() -> Terminal {
        let env = |k: &str| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .filter(|n| *n > 0)
        };
        let (mut width, mut height) = (env("COLUMNS"), env("LINES"));
        if (width.is_none() || height.is_none())
            && std::io::stderr().is_terminal()
            && let Some((rows, cols)) = stty_size()
        {
            width = width.or(Some(cols));
            height = height.or(Some(rows));
        }
        Terminal {
            width: width.unwrap_or(80),
            height: height.unwrap_or(usize::MAX),
            color: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
            queried: Instant::now(),
        }
    }
}

/// `stty size` on standard error's terminal: (rows, columns).
fn stty_size() -> Option<(usize, usize)> {
    let fd = std::io::stderr().as_fd().try_clone_to_owned().ok()?;
    let out = std::process::Command::new("stty")
        .arg("size")
        .stdin(std::process::Stdio::from(fd))
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let mut n = text
        .split_whitespace()
        .map(|n| n.parse::<usize>().ok().filter(|n| *n > 0));
    Some((n.next()??, n.next()??))
}

fn pull_policy(p: Option<&str>) -> anyhow::Result<PullPolicy> {
    Ok(match p {
        None | Some("missing") => PullPolicy::Missing,
        Some("always") | Some("true") => PullPolicy::Always,
        Some("never") | Some("false") => PullPolicy::Never,
        Some(other) => anyhow::bail!("--pull {other:?}: expected always, missing or never"),
    })
}

/// Standard input as a context: a tar archive (plain or compressed), or a Dockerfile.
fn stdin_context(tmp: &Path) -> anyhow::Result<(ContextSource, Option<String>)> {
    let mut data = Vec::new();
    std::io::Read::read_to_end(&mut std::io::stdin(), &mut data)
        .context("reading standard input")?;
    let compressed = data.starts_with(&[0x1f, 0x8b]) || data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]);
    let tar = data.len() >= 512 && &data[257..262] == b"ustar";
    if compressed || tar {
        std::fs::create_dir_all(tmp)?;
        let f = tmp.join(format!("stdin-context-{}.tar", std::process::id()));
        std::fs::write(&f, &data).with_context(|| format!("writing {}", f.display()))?;
        return Ok((ContextSource::Tarball(f), None));
    }
    Ok((
        ContextSource::Empty,
        Some(String::from_utf8_lossy(&data).into_owned()),
    ))
}

fn build(args: Args) -> anyhow::Result<ExitCode> {
    let home = crate::home::drydock_home();
    let builder = Builder::new(&home).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mode = if args.quiet {
        Mode::Quiet
    } else {
        match args.progress.as_str() {
            "plain" => Mode::Plain,
            "tty" => Mode::Tty,
            "json" | "rawjson" => Mode::Json,
            "auto" if std::io::stderr().is_terminal() && std::env::var_os("CI").is_none() => {
                Mode::Tty
            }
            "auto" => Mode::Plain,
            other => anyhow::bail!("--progress {other:?}: expected auto, plain, tty or json"),
        }
    };
    let mut req = BuildRequest::default();
    let tmp = builder.cache().tmp_dir();
    let mut stdin_file = None;
    let mut stdin_dockerfile = None;
    req.context = if args.context == "-" {
        let (c, df) = stdin_context(&tmp)?;
        if let ContextSource::Tarball(f) = &c {
            stdin_file = Some(f.clone());
        }
        stdin_dockerfile = df;
        c
    } else {
        ContextSource::from_arg(&args.context)
    };
    req.dockerfile = match (&args.file, stdin_dockerfile) {
        (_, Some(text)) => DockerfileSource::Inline {
            name: "Dockerfile".into(),
            text,
        },
        (Some(f), None) if f.as_os_str() == "-" => {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                .context("reading the Dockerfile from standard input")?;
            DockerfileSource::Inline {
                name: "Dockerfile".into(),
                text: s,
            }
        }
        // For a git context, -f names a file inside it.
        (Some(f), None) if matches!(req.context, ContextSource::Git(_)) => {
            DockerfileSource::InContext(f.display().to_string())
        }
        (Some(f), None) => DockerfileSource::Path(f.clone()),
        (None, None) => DockerfileSource::default(),
    };
    req.target = args.target.clone();
    req.build_args = parse_build_args(&args.build_args)?;
    if let Some(p) = &args.platform {
        for part in p.split(',').filter(|s| !s.trim().is_empty()) {
            req.platforms.push(
                Platform::parse(part.trim()).with_context(|| format!("--platform {part:?}"))?,
            );
        }
    }
    for t in &args.tags {
        req.tags.push(Reference::parse(t)?);
    }
    req.labels = drydock_builder::parse_labels(&args.labels)?;
    let mut secrets = Secrets::new();
    for s in &args.secrets {
        secrets.parse_flag(s)?;
    }
    req.secrets = secrets;
    for s in &args.ssh {
        let (id, sock) = match s.split_once('=') {
            Some((id, sock)) => (id.to_string(), PathBuf::from(sock)),
            None => match std::env::var_os("SSH_AUTH_SOCK") {
                Some(sock) => (s.clone(), PathBuf::from(sock)),
                None => anyhow::bail!(
                    "--ssh {s}: SSH_AUTH_SOCK is not set; give --ssh {s}=/path/to/agent.sock"
                ),
            },
        };
        req.ssh.push((id, sock));
    }
    req.no_cache = args.no_cache;
    req.no_cache_filter = args.no_cache_filter.clone();
    req.pull = pull_policy(args.pull.as_deref())?;
    req.source_date_epoch = args.source_date_epoch;
    req.compression = match args.compression.as_str() {
        "gzip" => drydock_oci::media_type::Compression::Gzip,
        "zstd" => drydock_oci::media_type::Compression::Zstd,
        "uncompressed" | "none" => drydock_oci::media_type::Compression::None,
        other => anyhow::bail!("--compression {other:?}: expected gzip or zstd"),
    };
    req.compression_level = args.compression_level;
    let mut outputs = Vec::new();
    for o in &args.outputs {
        outputs.push(Output::parse(o)?);
    }
    if outputs.is_empty() || args.load {
        outputs.insert(0, Output::Store);
    }
    req.outputs = outputs;
    req.push = args.push;
    req.allow_insecure = args.allow.iter().any(|a| a == "security.insecure");
    let printer = Arc::new(Mutex::new(Printer {
        mode,
        start: Instant::now(),
        names: BTreeMap::new(),
        view: TtyView::new(),
    }));
    let p2 = printer.clone();
    req.progress = Progress::new(move |e| {
        if let Ok(mut p) = p2.lock() {
            p.event(e);
        }
    });
    let started = Instant::now();
    let live = (mode == Mode::Tty).then(|| LiveView::start(printer.clone()));
    let result = builder.build(req);
    if let Some(live) = live {
        live.finish(result.is_ok());
    }
    if let Some(f) = stdin_file {
        let _ = std::fs::remove_file(f);
    }
    let out = match result {
        Ok(o) => o,
        Err(e) => {
            report_error(&e);
            return Ok(ExitCode::FAILURE);
        }
    };
    let id = out.config_digest.to_string();
    if let Some(f) = &args.iidfile {
        std::fs::write(f, &id).with_context(|| format!("writing {}", f.display()))?;
    }
    if let Some(f) = &args.metadata_file {
        let names: Vec<String> = out.tags.iter().map(|t| t.to_string()).collect();
        let mut md = serde_json::json!({
            "containerimage.config.digest": id,
            "containerimage.digest": out.descriptor.digest().to_string(),
            "containerimage.descriptor": {
                "mediaType": out.descriptor.media_type().to_string(),
                "digest": out.descriptor.digest().to_string(),
                "size": out.descriptor.size(),
            },
        });
        if !names.is_empty() {
            md["image.name"] = serde_json::Value::from(names.join(","));
        }
        std::fs::write(f, serde_json::to_vec_pretty(&md)?)
            .with_context(|| format!("writing {}", f.display()))?;
    }
    if mode == Mode::Quiet {
        println!("{id}");
    } else {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "built {} in {:.1}s ({} steps run, {} cached)",
            id,
            started.elapsed().as_secs_f64(),
            out.stats.executed,
            out.stats.cached
        );
        let _ = writeln!(err, "manifest {}", out.descriptor.digest());
        for t in &out.tags {
            let _ = writeln!(err, "named {}", t.familiar());
        }
        for (r, d) in &out.pushed {
            let _ = writeln!(err, "pushed {} ({d})", r.familiar());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn report_error(e: &BuildError) {
    let mut err = std::io::stderr().lock();
    match e {
        BuildError::Dockerfile {
            source_text,
            diagnostics,
        } => {
            for d in diagnostics {
                let _ = write!(err, "{}", render(&source_text.name, &source_text.text, d));
                let _ = writeln!(err);
            }
            let _ = writeln!(err, "error: {e}");
        }
        BuildError::Step(f, src) => {
            if !f.output_tail.is_empty() {
                let _ = writeln!(err, "------");
                for l in &f.output_tail {
                    let _ = writeln!(err, " > {l}");
                }
                let _ = writeln!(err, "------");
            }
            if let (Some(d), Some(s)) = (&f.diagnostic, src) {
                let _ = write!(err, "{}", render(&s.name, &s.text, d));
            }
            let _ = writeln!(err, "error: {} failed: {}", f.step, f.message);
        }
        other => {
            let top = other.to_string();
            let _ = writeln!(err, "error: {top}");
            let mut src = std::error::Error::source(other);
            while let Some(s) = src {
                let text = s.to_string();
                if !top.contains(&text) {
                    let _ = writeln!(err, "  caused by: {text}");
                }
                src = s.source();
            }
        }
    }
}
