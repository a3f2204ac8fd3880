//! `drydock remote …`: runs on a drydock server: trigger, list, show, follow logs, cancel,
//! re-run (through its API).

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args as ClapArgs, Subcommand};
use serde_json::{Value, json};

use super::server_client::{ApiClient, ServerArgs};

#[derive(Debug, ClapArgs)]
#[command(after_help = "Examples:
  drydock remote trigger app --ref main --follow
  drydock remote runs --project app
  drydock remote logs 42 --follow
  drydock remote cancel 42
  drydock remote rerun 42 --failed")]
pub struct Args {
    #[command(flatten)]
    server: ServerArgs,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Start a manual run of a project.
    Trigger {
        project: String,
        /// Branch or ref (default: the default branch).
        #[arg(long = "ref")]
        git_ref: Option<String>,
        /// Run only this job and what it needs.
        #[arg(long)]
        job: Option<String>,
        /// Follow the run's logs until it ends; exit non-zero when it fails.
        #[arg(long, short)]
        follow: bool,
    },
    /// List runs, newest first.
    Runs {
        #[arg(long)]
        project: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Show a run: jobs, steps, images.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Print a run's logs (all jobs, or --job).
    Logs {
        id: i64,
        #[arg(long)]
        job: Option<String>,
        /// Keep printing until the run ends.
        #[arg(long, short)]
        follow: bool,
    },
    /// Cancel a run.
    Cancel { id: i64 },
    /// Run again (same event and commit).
    Rerun {
        id: i64,
        /// Only the jobs that did not pass; the passed ones are kept with their workspaces.
        #[arg(long)]
        failed: bool,
    },
}

fn follow(c: &ApiClient, id: i64, only: Option<&str>, keep: bool) -> anyhow::Result<String> {
    let mut after: std::collections::BTreeMap<String, i64> = Default::default();
    loop {
        let run = c.call("GET", &format!("/api/runs/{id}"), None)?;
        let w = run["jobs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|j| j["name"].as_str().map(str::len))
            .max()
            .unwrap_or(4);
        for j in run["jobs"].as_array().into_iter().flatten() {
            let name = j["name"].as_str().unwrap_or("").to_string();
            if only.is_some_and(|o| o != name) {
                continue;
            }
            let a = after.entry(name.clone()).or_default();
            let v = c.call(
                "GET",
                &format!("/api/runs/{id}/jobs/{name}/logs?after={a}"),
                None,
            )?;
            for l in v["lines"].as_array().into_iter().flatten() {
                println!("{name:<w$} | {}", l["line"].as_str().unwrap_or(""));
                *a = l["seq"].as_i64().unwrap_or(*a);
            }
        }
        let status = run["status"].as_str().unwrap_or("").to_string();
        if !keep || !matches!(status.as_str(), "queued" | "running") {
            if keep {
                let why = run["reason"]
                    .as_str()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default();
                println!("run {id}: {status}{why}");
            }
            return Ok(status);
        }
        std::thread::sleep(Duration::from_millis(700));
    }
}

fn exit_for(status: &str) -> ExitCode {
    match status {
        "success" | "skipped" => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let c = ApiClient::new(&args.server)?;
    match args.command {
        Cmd::Trigger {
            project,
            git_ref,
            job,
            follow: f,
        } => {
            let v = c.call(
                "POST",
                &format!("/api/projects/{project}/runs"),
                Some(json!({ "ref": git_ref, "job": job })),
            )?;
            let id = v["run"].as_i64().unwrap_or(0);
            println!("run {id}: {}", v["url"].as_str().unwrap_or(""));
            if f {
                return Ok(exit_for(&follow(&c, id, None, true)?));
            }
        }
        Cmd::Runs {
            project,
            limit,
            json,
        } => {
            let mut path = format!("/api/runs?limit={limit}");
            if let Some(p) = project {
                path.push_str(&format!("&project={p}"));
            }
            let v = c.call("GET", &path, None)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v["runs"])?);
            } else {
                for r in v["runs"].as_array().into_iter().flatten() {
                    println!(
                        "{:>6}  {:<12} {:<16} {}",
                        r["id"],
                        r["status"].as_str().unwrap_or(""),
                        r["project"].as_str().unwrap_or(""),
                        r["cause"].as_str().unwrap_or("")
                    );
                }
            }
        }
        Cmd::Show { id, json } => {
            let v = c.call("GET", &format!("/api/runs/{id}"), None)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let s = |v: &Value| v.as_str().unwrap_or("").to_string();
                println!("run {id}: {} {}", s(&v["status"]), s(&v["reason"]));
                println!("  {} · {} · {}", s(&v["cause"]), s(&v["ref"]), s(&v["sha"]));
                for j in v["jobs"].as_array().into_iter().flatten() {
                    println!(
                        "  {:<20} {:<12} {}",
                        s(&j["name"]),
                        s(&j["status"]),
                        s(&j["reason"])
                    );
                }
                for i in v["images"].as_array().into_iter().flatten() {
                    println!(
                        "  image {} {} pushed={}",
                        s(&i["image"]),
                        s(&i["digest"]),
                        i["pushed"]
                    );
                }
            }
        }
        Cmd::Logs { id, job, follow: f } => {
            let st = follow(&c, id, job.as_deref(), f)?;
            if f {
                return Ok(exit_for(&st));
            }
        }
        Cmd::Cancel { id } => {
            c.call("POST", &format!("/api/runs/{id}/cancel"), None)?;
            println!("cancelled run {id}");
        }
        Cmd::Rerun { id, failed } => {
            let v = c.call(
                "POST",
                &format!("/api/runs/{id}/rerun"),
                Some(json!({ "failed_only": failed })),
            )?;
            println!("run {}: {}", v["run"], v["url"].as_str().unwrap_or(""));
        }
    }
    Ok(ExitCode::SUCCESS)
}
