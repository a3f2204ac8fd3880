//! `drydock build`: for now only `--check` (parse, lint and plan a Dockerfile without running
//! anything); image building arrives with the builder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args as ClapArgs;
use drydock_diagnostics::{LineIndex, Severity, render};
use drydock_dockerfile::Dockerignore;
use drydock_frontend::BuildOptions;
use drydock_oci::{Platform, Reference};

#[derive(Debug, ClapArgs)]
#[command(after_help = "Examples:
  drydock build --check .
  drydock build --check -f docker/app.Dockerfile --build-arg VERSION=1.2 --target runtime .
  drydock build --check --platform linux/arm64 --json .")]
pub struct Args {
    /// The build context directory.
    #[arg(default_value = ".")]
    context: PathBuf,
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
    /// The platform to build for, such as linux/amd64 (default: this machine's).
    #[arg(long)]
    platform: Option<String>,
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
        eprintln!("drydock build: image building is not available yet; use --check");
        return Ok(ExitCode::from(2));
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
    if args.context.is_dir() {
        opts.context_files = Some(list_context(&args.context, &opts.dockerignore));
    }
    let report = drydock_frontend::check(&source, &opts);
    let errors = report.diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = report.diagnostics.len() - errors;

    if args.json {
        let index = LineIndex::new(&source);
        let diags: Vec<serde_json::Value> = report
            .diagnostics
            .iter()
            .map(|d| {
                let start = index.line_col(&source, d.span.start);
                let end = index.line_col(&source, d.span.end);
                serde_json::json!({
                    "severity": d.severity.as_str(),
                    "code": d.code,
                    "message": d.message,
                    "file": display,
                    "line": start.line,
                    "column": start.col,
                    "end_line": end.line,
                    "end_column": end.col,
                    "label": d.label,
                    "hints": d.hints,
                })
            })
            .collect();
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
    let (display, source, file_path) = match &args.file {
        Some(f) if f.as_os_str() == "-" => {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                .context("reading the Dockerfile from standard input")?;
            ("Dockerfile".to_string(), s, None)
        }
        Some(f) => (f.display().to_string(), read_text(f)?, Some(f.clone())),
        None => {
            let f = args.context.join("Dockerfile");
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
        let p = args.context.join(".dockerignore");
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
