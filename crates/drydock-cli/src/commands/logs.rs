//! `drydock logs RUN [JOB]`: the recorded output of a run (secrets were masked before they
//! were stored), job by job, with step headers.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use clap::Args as ClapArgs;
use drydock_db::{Db, Job, Step};

use super::runs::open_db;

#[derive(Debug, ClapArgs)]
#[command(
    after_help = "Prints the logs of a run recorded by `drydock run` (see `drydock runs` for ids).

Examples:
  drydock logs 12
  drydock logs 12 test
  drydock logs 12 --follow
  drydock logs 12 publish --json"
)]
pub struct Args {
    /// The run id.
    run: i64,
    /// Only this job.
    job: Option<String>,
    /// Keep printing new lines until the run ends.
    #[arg(long, short = 'f')]
    follow: bool,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

struct Cursor {
    job: Job,
    after: i64,
    step: Option<i64>,
}

fn print_lines(
    db: &Db,
    c: &mut Cursor,
    steps: &[Step],
    prefix: &str,
    json: bool,
) -> anyhow::Result<()> {
    loop {
        let lines = db.logs(c.job.id, c.after, 1000)?;
        if lines.is_empty() {
            return Ok(());
        }
        for l in &lines {
            c.after = l.seq;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "job": c.job.name, "step": l.step_idx, "stream": l.stream,
                        "ts": l.ts, "line": l.line,
                    })
                );
                continue;
            }
            if l.step_idx != c.step {
                c.step = l.step_idx;
                if let Some(i) = l.step_idx {
                    let name = steps
                        .iter()
                        .find(|s| s.idx == i)
                        .map(|s| s.name.as_str())
                        .unwrap_or("");
                    println!("{prefix}--- step {}: {name}", i + 1);
                }
            }
            println!("{prefix}{}", l.line);
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let db = open_db()?;
    let run = db.run(args.run)?;
    let mut jobs = db.jobs(run.id)?;
    if let Some(name) = &args.job {
        jobs.retain(|j| &j.name == name);
        if jobs.is_empty() {
            let names: Vec<String> = db.jobs(run.id)?.into_iter().map(|j| j.name).collect();
            bail!(
                "run {} has no job {name} (jobs: {})",
                run.id,
                names.join(", ")
            );
        }
    }
    let many = args.job.is_none();
    let width = jobs.iter().map(|j| j.name.len()).max().unwrap_or(0);
    let mut cursors: Vec<Cursor> = jobs
        .into_iter()
        .map(|job| Cursor {
            job,
            after: 0,
            step: None,
        })
        .collect();
    loop {
        let finished = db.run(run.id)?.status.is_finished();
        for c in cursors.iter_mut() {
            c.job = db.job_by_name(run.id, &c.job.name)?;
            let steps = db.steps(c.job.id)?;
            let prefix = if many {
                format!("{:<width$} | ", c.job.name)
            } else {
                String::new()
            };
            print_lines(&db, c, &steps, &prefix, args.json)?;
        }
        if !args.follow || finished {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    if !args.json {
        for c in &cursors {
            let why = c
                .job
                .reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            println!("==> {}: {}{why}", c.job.name, c.job.status);
        }
    }
    Ok(ExitCode::SUCCESS)
}
