//! `drydock run [DIR]`: runs the pipeline of DIR/drydock.yml locally, as the server would: the
//! event from git (or the flags), the job DAG in host shells and sandboxes, images built, tagged
//! and pushed where the rules say, every run recorded under DRYDOCK_HOME.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args as ClapArgs;
use drydock_db::{Db, Status};
use drydock_pipeline::git::{self, EventOverrides};
use drydock_pipeline::{
    Cancel, Engine, EngineConfig, PipelineRun, Progress, RunEvent, RunResult, secrets,
};

#[derive(Debug, ClapArgs)]
#[command(
    after_help = "Runs DIR/drydock.yml for the event the checkout gives (branch or tag, HEAD, the default
branch), or for the event the flags describe. Each job works in its own copy of the working tree
(uncommitted changes included). Secrets come from --secret-file (KEY=value lines) or the
environment. The run is recorded under DRYDOCK_HOME: see `drydock runs` and `drydock logs`.

Examples:
  drydock run
  drydock run ../service --job test
  drydock run --ref main --secret-file .secrets
  drydock run --pr 7 --base main --json
  drydock run --event schedule --ref main"
)]
pub struct Args {
    /// The repository (or directory) holding drydock.yml.
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// The pipeline file (default: DIR/drydock.yml).
    #[arg(long, short = 'f')]
    file: Option<PathBuf>,
    /// Event: push, pull_request, schedule, image, manual (default: push, or pull_request with --pr).
    #[arg(long)]
    event: Option<String>,
    /// Git ref (refs/heads/B, refs/tags/T; a bare name is a branch, or a tag when only a tag has it).
    #[arg(long = "ref")]
    git_ref: Option<String>,
    /// Commit (default: HEAD).
    #[arg(long)]
    sha: Option<String>,
    /// Pull request number (implies --event pull_request).
    #[arg(long)]
    pr: Option<u64>,
    /// Pull request base branch (default: the default branch).
    #[arg(long)]
    base: Option<String>,
    /// The pull request comes from a fork (it gets no secrets).
    #[arg(long)]
    fork: bool,
    /// Run only this job and the jobs it needs.
    #[arg(long = "job", value_name = "NAME")]
    job: Option<String>,
    /// Jobs running at once (default: the number of CPUs).
    #[arg(long, short = 'j', value_name = "N")]
    jobs: Option<usize>,
    /// KEY=value lines with secret values (repeatable; later files win).
    #[arg(long = "secret-file", value_name = "FILE")]
    secret_file: Vec<PathBuf>,
    /// Project name for the run record (default: the repository's name).
    #[arg(long)]
    project: Option<String>,
    /// Keep each job's workspace under DRYDOCK_HOME/runs/ID/ (for debugging).
    #[arg(long)]
    keep_workspaces: bool,
    /// Print the summary as JSON on stdout (progress goes to stderr).
    #[arg(long)]
    json: bool,
}

/// Prints progress: one line per job state change, step logs prefixed by the job's name.
struct Printer {
    to_stderr: bool,
    width: usize,
    started: Mutex<BTreeMap<String, Instant>>,
}

impl Printer {
    fn out(&self, line: &str) {
        if self.to_stderr {
            let mut e = std::io::stderr().lock();
            let _ = writeln!(e, "{line}");
        } else {
            let mut o = std::io::stdout().lock();
            let _ = writeln!(o, "{line}");
        }
    }
}

impl Progress for Printer {
    fn event(&self, e: &RunEvent<'_>) {
        let w = self.width;
        match e {
            RunEvent::RunStarted { run_id, cause } => self.out(&format!("run {run_id}: {cause}")),
            RunEvent::Job {
                job,
                status,
                reason,
            } => {
                let mut started = self.started.lock().unwrap_or_else(|p| p.into_inner());
                let took = match status {
                    Status::Running => {
                        started.insert(job.to_string(), Instant::now());
                        String::new()
                    }
                    _ => started
                        .get(*job)
                        .map(|t| format!(" in {:.1}s", t.elapsed().as_secs_f64()))
                        .unwrap_or_default(),
                };
                let why = reason.map(|r| format!(": {r}")).unwrap_or_default();
                self.out(&format!("==> {job}: {status}{took}{why}"));
            }
            RunEvent::StepStarted { job, index, name } => {
                self.out(&format!("{job:<w$} | --- step {}: {name}", index + 1));
            }
            RunEvent::StepFinished {
                job,
                index,
                status,
                reason,
                name,
                ..
            } => {
                // Failures have their own log line; say why a step did not run.
                if matches!(status, Status::Skipped | Status::Cancelled) {
                    let why = reason.map(|r| format!(": {r}")).unwrap_or_default();
                    self.out(&format!(
                        "{job:<w$} | --- step {} ({name}) {status}{why}",
                        index + 1
                    ));
                }
            }
            RunEvent::Log { job, line, .. } => self.out(&format!("{job:<w$} | {line}")),
            RunEvent::RunFinished { .. } => {}
        }
    }
}

fn summary(r: &RunResult) -> String {
    let mut s = String::new();
    let why = r
        .reason
        .as_deref()
        .map(|w| format!(" ({w})"))
        .unwrap_or_default();
    s.push_str(&format!(
        "\nrun {}: {}{why} in {:.1}s\n",
        r.run_id,
        r.status,
        r.duration_ms as f64 / 1000.0
    ));
    let w = r.jobs.iter().map(|j| j.name.len()).max().unwrap_or(0);
    for j in &r.jobs {
        let reason = j.reason.as_deref().unwrap_or("");
        let line = format!(
            "  {:<w$}  {:<9} {:>6.1}s  {reason}",
            j.name,
            j.status.as_str(),
            j.duration_ms as f64 / 1000.0
        );
        s.push_str(line.trim_end());
        s.push('\n');
    }
    if !r.images.is_empty() {
        s.push_str("images:\n");
        for i in &r.images {
            let what = if i.pushed {
                format!("pushed {}", i.tags.join(", "))
            } else {
                let tags = if i.tags.is_empty() {
                    String::new()
                } else {
                    format!(" (tags: {})", i.tags.join(", "))
                };
                format!("{}{tags}", i.reason.as_deref().unwrap_or("not pushed"))
            };
            let cached = if i.cached { " (cached)" } else { "" };
            s.push_str(&format!("  {}  {}{cached}  {what}\n", i.image, i.digest));
        }
    }
    s
}

/// Cancels the run on the first Ctrl-C; a second one exits at once.
///
/// Re-executed in a user namespace (a non-root user's run), one Ctrl-C in a terminal arrives
/// twice: from the terminal and passed on by the parent outside. A SIGINT within a second of the
/// one that cancelled counts as the same one there, so the run still cleans up after itself.
fn cancel_on_ctrl_c(cancel: Cancel) {
    let same_press = if super::rootless::reexecuted() {
        Duration::from_secs(1)
    } else {
        Duration::ZERO
    };
    let _ = std::thread::Builder::new()
        .name("ctrl-c".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                use tokio::signal::unix::{SignalKind, signal};
                let Ok(mut sigint) = signal(SignalKind::interrupt()) else {
                    return;
                };
                let mut first: Option<Instant> = None;
                while sigint.recv().await.is_some() {
                    match first {
                        Some(t) if t.elapsed() < same_press => continue,
                        Some(_) => std::process::exit(130),
                        None => {}
                    }
                    first = Some(Instant::now());
                    eprintln!("cancelling the run (Ctrl-C again to quit at once)");
                    cancel.cancel();
                }
            });
        });
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let dir = std::fs::canonicalize(&args.dir)
        .with_context(|| format!("{}: no such directory", args.dir.display()))?;
    let file = args.file.clone().unwrap_or_else(|| dir.join("drydock.yml"));
    let src = std::fs::read_to_string(&file)
        .with_context(|| format!("reading the pipeline file {}", file.display()))?;
    let shown = file
        .strip_prefix(std::env::current_dir().unwrap_or_default())
        .unwrap_or(&file)
        .display()
        .to_string();
    let pipeline = match drydock_pipeline::load(&shown, &src) {
        Ok(p) => p,
        Err(rendered) => {
            eprint!("{rendered}");
            bail!("{shown} is not valid (see above)");
        }
    };

    let is_repo = git::is_repository(&dir);
    let over = EventOverrides {
        event: args.event.clone(),
        git_ref: args.git_ref.clone(),
        sha: args.sha.clone(),
        pr: args.pr,
        base: args.base.clone(),
        fork: args.fork,
    };
    if !is_repo {
        bail!(
            "{} is not in a git repository: drydock run takes the event (branch, sha) from git; run `git init` and commit first",
            dir.display()
        );
    }
    let event = git::event_from_checkout(&dir, &over)?;
    let project = args
        .project
        .clone()
        .or_else(|| event.repository.clone())
        .or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "local".into());

    // Secrets: files first (later files win), then the environment.
    let mut from_files = secrets::SecretValues::new();
    for f in &args.secret_file {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("reading the secret file {}", f.display()))?;
        let values =
            drydock_secret::dotenv(&text).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
        from_files.extend(values);
    }
    let secret_values = secrets::gather(&pipeline, Some(&from_files), |k| std::env::var(k).ok());

    let home = crate::home::drydock_home();
    let db = Arc::new(
        Db::open(home.join("drydock.db"))
            .with_context(|| format!("opening the run database under {}", home.display()))?,
    );
    let store = Arc::new(crate::home::open_store()?);
    let registry = Arc::new(super::remote::client(true)?);
    let builder =
        Arc::new(drydock_builder::Builder::new(&home).map_err(|e| anyhow::anyhow!("{e}"))?);
    let mut cfg = EngineConfig::new(&home);
    if let Some(n) = args.jobs {
        cfg.max_parallel = n.max(1);
    }
    cfg.keep_workspaces = args.keep_workspaces;
    cfg.drydock_binary = std::env::current_exe().ok();
    let engine = Engine::new(cfg, db, store, registry, builder);

    let width = pipeline
        .jobs
        .iter()
        .map(|j| j.name.len())
        .max()
        .unwrap_or(4);
    let printer = Arc::new(Printer {
        to_stderr: args.json,
        width,
        started: Mutex::new(BTreeMap::new()),
    });
    let cancel = Cancel::new();
    cancel_on_ctrl_c(cancel.clone());
    let run = PipelineRun {
        project,
        pipeline: Arc::new(pipeline),
        event,
        source: dir,
        git_files_only: true,
        secrets: secret_values,
        only_job: args.job.clone(),
        cause: None,
        run_id: None,
        progress: printer,
        cancel,
    };
    let result = engine.run(run)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        print!("{}", summary(&result));
    }
    Ok(match result.status {
        Status::Success | Status::Skipped => ExitCode::SUCCESS,
        Status::Cancelled => ExitCode::from(130),
        _ => ExitCode::FAILURE,
    })
}
