//! `drydock project …`: register and configure projects on a drydock server (through its API).

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args as ClapArgs, Subcommand};
use serde_json::{Map, Value, json};

use super::server_client::{ApiClient, ServerArgs};

#[derive(Debug, ClapArgs)]
#[command(after_help = "Examples:
  drydock project add app --repo https://github.com/acme/app.git --webhook-secret-file hook.secret
  drydock project add app --repo file:///srv/git/app.git --forge gitea --concurrency ref --cancel-in-progress
  drydock project set app --status-token-file gh.token --status-repo acme/app
  echo -n hunter2 | drydock project secret set app DOCKERHUB_TOKEN
  drydock project list --json")]
pub struct Args {
    #[command(flatten)]
    server: ServerArgs,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Register a project.
    Add(Settings),
    /// Change a project's settings.
    Set(Settings),
    /// List projects.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show a project (secrets by name only).
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove a project.
    Rm { name: String },
    /// Project secrets (stored encrypted; values are never shown).
    Secret {
        #[command(subcommand)]
        command: SecretCmd,
    },
}

#[derive(Debug, Subcommand)]
enum SecretCmd {
    /// Set a secret; the value is read from standard input.
    Set { project: String, key: String },
    /// Remove a secret.
    Rm { project: String, key: String },
    /// List secret names.
    List { project: String },
}

#[derive(Debug, ClapArgs)]
struct Settings {
    name: String,
    /// Clone URL (https://, ssh, file://).
    #[arg(long)]
    repo: Option<String>,
    /// Default branch.
    #[arg(long)]
    branch: Option<String>,
    /// Pipeline file in the repository.
    #[arg(long)]
    pipeline_file: Option<String>,
    /// Webhook secret (prefer --webhook-secret-file).
    #[arg(long)]
    webhook_secret: Option<String>,
    #[arg(long, value_name = "FILE")]
    webhook_secret_file: Option<PathBuf>,
    /// github, gitea, forgejo, gitlab or generic.
    #[arg(long)]
    forge: Option<String>,
    /// Forge API base for commit statuses (default https://api.github.com, https://gitlab.com).
    #[arg(long)]
    status_api: Option<String>,
    /// owner/name (GitLab: project path or id) for commit statuses.
    #[arg(long)]
    status_repo: Option<String>,
    /// A token allowed to set commit statuses, from a file.
    #[arg(long, value_name = "FILE")]
    status_token_file: Option<PathBuf>,
    /// Runs of this project at once (0: no limit of its own).
    #[arg(long)]
    max_runs: Option<i64>,
    /// Concurrency groups: none, ref or project.
    #[arg(long)]
    concurrency: Option<String>,
    /// A new run cancels older runs of its group.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    cancel_in_progress: Option<bool>,
    /// After a crash: requeue or fail interrupted runs.
    #[arg(long)]
    on_interrupt: Option<String>,
    /// Cancel runs after this many minutes (0: never).
    #[arg(long)]
    timeout: Option<i64>,
}

fn read_secret_file(p: &PathBuf) -> anyhow::Result<String> {
    Ok(std::fs::read_to_string(p)
        .with_context(|| format!("reading {}", p.display()))?
        .trim_end_matches(['\n', '\r'])
        .to_string())
}

fn body(s: &Settings, with_name: bool) -> anyhow::Result<Value> {
    let mut m = Map::new();
    if with_name {
        m.insert("name".into(), json!(s.name));
    }
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            m.insert(k.into(), v);
        }
    };
    put("repo_url", s.repo.clone().map(Value::from));
    put("default_branch", s.branch.clone().map(Value::from));
    put("pipeline_file", s.pipeline_file.clone().map(Value::from));
    let hook = match (&s.webhook_secret, &s.webhook_secret_file) {
        (Some(v), _) => Some(v.clone()),
        (None, Some(f)) => Some(read_secret_file(f)?),
        _ => None,
    };
    put("webhook_secret", hook.map(Value::from));
    put("forge", s.forge.clone().map(Value::from));
    put("status_api", s.status_api.clone().map(Value::from));
    put("status_repo", s.status_repo.clone().map(Value::from));
    let tok = match &s.status_token_file {
        Some(f) => Some(read_secret_file(f)?),
        None => None,
    };
    put("status_token", tok.map(Value::from));
    put("max_runs", s.max_runs.map(Value::from));
    put("concurrency", s.concurrency.clone().map(Value::from));
    put("cancel_in_progress", s.cancel_in_progress.map(Value::from));
    put("on_interrupt", s.on_interrupt.clone().map(Value::from));
    put("timeout_minutes", s.timeout.map(Value::from));
    Ok(Value::Object(m))
}

fn show(p: &Value) {
    let g = |k: &str| {
        p.get(k)
            .map(|v| match v {
                Value::String(s) => s.clone(),
                Value::Null => "-".into(),
                v => v.to_string(),
            })
            .unwrap_or_default()
    };
    println!("{}", g("name"));
    for k in [
        "repo_url",
        "default_branch",
        "pipeline_file",
        "forge",
        "webhook_url",
        "has_webhook_secret",
        "status_repo",
        "has_status_token",
        "concurrency",
        "cancel_in_progress",
        "max_runs",
        "on_interrupt",
        "timeout_minutes",
    ] {
        println!("  {k:<20} {}", g(k));
    }
    let secrets: Vec<String> = p
        .get("secrets")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.get("name")?.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    println!("  {:<20} {}", "secrets", secrets.join(", "));
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let c = ApiClient::new(&args.server)?;
    match args.command {
        Cmd::Add(s) => {
            if s.repo.is_none() {
                bail!("--repo URL is required");
            }
            let p = c.call("POST", "/api/projects", Some(body(&s, true)?))?;
            show(&p);
        }
        Cmd::Set(s) => {
            let p = c.call(
                "PATCH",
                &format!("/api/projects/{}", s.name),
                Some(body(&s, false)?),
            )?;
            show(&p);
        }
        Cmd::List { json } => {
            let v = c.call("GET", "/api/projects", None)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v["projects"])?);
            } else {
                for p in v["projects"].as_array().into_iter().flatten() {
                    println!(
                        "{:<24} {}",
                        p["name"].as_str().unwrap_or(""),
                        p["repo_url"].as_str().unwrap_or("")
                    );
                }
            }
        }
        Cmd::Show { name, json } => {
            let p = c.call("GET", &format!("/api/projects/{name}"), None)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&p)?);
            } else {
                show(&p);
            }
        }
        Cmd::Rm { name } => {
            c.call("DELETE", &format!("/api/projects/{name}"), None)?;
            println!("removed {name}");
        }
        Cmd::Secret { command } => match command {
            SecretCmd::Set { project, key } => {
                let mut v = String::new();
                std::io::stdin()
                    .read_to_string(&mut v)
                    .context("reading the value from standard input")?;
                let v = v.trim_end_matches(['\n', '\r']);
                c.call(
                    "PUT",
                    &format!("/api/projects/{project}/secrets/{key}"),
                    Some(json!({ "value": v })),
                )?;
                println!("set {key} for {project}");
            }
            SecretCmd::Rm { project, key } => {
                c.call(
                    "DELETE",
                    &format!("/api/projects/{project}/secrets/{key}"),
                    None,
                )?;
                println!("removed {key} from {project}");
            }
            SecretCmd::List { project } => {
                let v = c.call("GET", &format!("/api/projects/{project}/secrets"), None)?;
                for s in v["secrets"].as_array().into_iter().flatten() {
                    println!("{}", s["name"].as_str().unwrap_or(""));
                }
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}
