//! `drydock tags`: the tags and labels a run would push (from git or a given event), and
//! `drydock tags list REPO`: the tags of a repository in a registry.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context as _, bail};
use clap::{Args as ClapArgs, Subcommand};
use drydock_config::{Event, EventKind, GitInfo, ImageSpec, Pipeline};
use drydock_expr::{Env, Value};
use drydock_oci::Reference;

#[derive(Debug, ClapArgs)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Computes the tags and OCI labels a run would push for an image of DIR/drydock.yml (or, for a\nrepository the file does not name, with metadata-action's default tags). Without flags the\nevent comes from git: the branch or tag checked out, HEAD, its commit time and `git describe`.\n\nExamples:\n  drydock tags --image app\n  drydock tags --image app --ref refs/tags/v1.2.3\n  drydock tags --image app --pr 7 --base main --json\n  drydock tags ../service --image registry.example.com/acme/web\n  drydock tags list localhost:5000/acme/app"
)]
pub struct Args {
    #[command(subcommand)]
    command: Option<TagsCommand>,
    #[command(flatten)]
    compute: ComputeArgs,
}

#[derive(Debug, Subcommand)]
enum TagsCommand {
    /// List the tags of a repository in a registry.
    List(ListArgs),
}

#[derive(Debug, ClapArgs)]
struct ListArgs {
    /// Repository, without tag (`docker://` optional).
    repository: String,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, ClapArgs)]
struct ComputeArgs {
    /// Repository checkout holding drydock.yml.
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// An image of drydock.yml (`images.NAME`), or a repository to tag with the default rules.
    #[arg(long)]
    image: Option<String>,
    /// Event: push, pull_request, schedule, manual (default: push, or pull_request with --pr).
    #[arg(long)]
    event: Option<String>,
    /// Git ref (refs/heads/B, refs/tags/T; a bare name is taken as a branch).
    #[arg(long = "ref")]
    git_ref: Option<String>,
    /// Commit SHA (default: HEAD).
    #[arg(long)]
    sha: Option<String>,
    /// Pull request number (implies --event pull_request).
    #[arg(long)]
    pr: Option<u64>,
    /// Pull request base branch (default: the default branch).
    #[arg(long)]
    base: Option<String>,
    /// Pull request head branch (default: the current branch).
    #[arg(long)]
    head: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Some(TagsCommand::List(a)) => list(a),
        None => compute(args.compute),
    }
}

fn list(a: ListArgs) -> anyhow::Result<ExitCode> {
    let repo = Reference::parse_repository(
        a.repository
            .strip_prefix("docker://")
            .unwrap_or(&a.repository),
    )?;
    let client = super::remote::client(true)?;
    let tags = client.tags(&repo)?;
    if a.json {
        println!(
            "{}",
            serde_json::json!({"repository": repo.name(), "tags": tags})
        );
    } else {
        for t in tags {
            println!("{t}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs git in `dir`; `None` when it fails (not a repository, no such ref, ...).
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// Drops `user:password@` from a remote URL.
fn strip_credentials(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((_, host)) = rest.split_once('@')
    {
        return format!("{scheme}://{host}");
    }
    url.to_string()
}

struct Checkout {
    git: GitInfo,
    /// refs/heads/B or refs/tags/T of HEAD.
    head_ref: Option<String>,
}

fn read_git(dir: &Path) -> Checkout {
    let sha = git(dir, &["rev-parse", "HEAD"]).unwrap_or_default();
    let branch_ref = git(dir, &["symbolic-ref", "-q", "HEAD"]);
    let head_ref = branch_ref.or_else(|| {
        // Detached: a tag pointing at HEAD (highest version first).
        git(
            dir,
            &["tag", "--points-at", "HEAD", "--sort=-version:refname"],
        )
        .and_then(|t| t.lines().next().map(|t| format!("refs/tags/{t}")))
    });
    let default_branch = git(
        dir,
        &["symbolic-ref", "-q", "--short", "refs/remotes/origin/HEAD"],
    )
    .map(|b| b.trim_start_matches("origin/").to_string())
    .or_else(|| {
        ["main", "master"]
            .iter()
            .find(|b| {
                git(
                    dir,
                    &["rev-parse", "-q", "--verify", &format!("refs/heads/{b}")],
                )
                .is_some()
            })
            .map(|b| b.to_string())
    })
    .or_else(|| git(dir, &["config", "init.defaultBranch"]))
    .or_else(|| {
        head_ref
            .as_deref()
            .and_then(|r| r.strip_prefix("refs/heads/"))
            .map(str::to_string)
    });
    let repo_url =
        git(dir, &["config", "--get", "remote.origin.url"]).map(|u| strip_credentials(&u));
    let top = git(dir, &["rev-parse", "--show-toplevel"])
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.to_path_buf());
    let repo_name = repo_url
        .as_deref()
        .and_then(|u| {
            u.trim_end_matches('/')
                .rsplit(['/', ':'])
                .next()
                .map(|n| n.trim_end_matches(".git").to_string())
        })
        .or_else(|| {
            std::fs::canonicalize(&top)
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
        });
    Checkout {
        git: GitInfo {
            sha,
            default_branch,
            commit_time: git(dir, &["show", "-s", "--format=%ct", "HEAD"])
                .and_then(|t| t.parse().ok()),
            describe: git(dir, &["describe", "--tags", "--always"]),
            repo_url,
            repo_name,
        },
        head_ref,
    }
}

fn full_ref(r: &str) -> String {
    if r.starts_with("refs/") {
        r.to_string()
    } else {
        format!("refs/heads/{r}")
    }
}

/// The event from the flags, falling back to the checkout.
fn event(a: &ComputeArgs, co: &Checkout) -> anyhow::Result<Event> {
    let name = a.event.clone().unwrap_or_else(|| {
        if a.pr.is_some() {
            "pull_request".into()
        } else {
            "push".into()
        }
    });
    let git_ref = a
        .git_ref
        .as_deref()
        .map(full_ref)
        .or_else(|| co.head_ref.clone());
    let current_branch = co
        .head_ref
        .as_deref()
        .and_then(|r| r.strip_prefix("refs/heads/"))
        .map(str::to_string);
    let need_ref = || {
        git_ref
            .clone()
            .context("no ref: HEAD is detached and not tagged, and --ref was not given")
    };
    Ok(match name.as_str() {
        "push" => Event::push(need_ref()?),
        "pull_request" | "pull_request_target" => {
            let number = a.pr.context("a pull_request event needs --pr N")?;
            let base = a
                .base
                .clone()
                .or_else(|| co.git.default_branch.clone())
                .context("a pull_request event needs --base BRANCH")?;
            let head = a
                .head
                .clone()
                .or_else(|| {
                    git_ref
                        .as_deref()
                        .and_then(|r| r.strip_prefix("refs/heads/"))
                        .map(str::to_string)
                })
                .or(current_branch)
                .unwrap_or_default();
            Event::pull_request(number, base, head, false)
        }
        "schedule" => Event {
            kind: EventKind::Schedule { cron: None },
            git_ref: need_ref()?,
            changed_paths: None,
        },
        "manual" | "workflow_dispatch" => Event {
            kind: EventKind::Manual,
            git_ref: need_ref()?,
            changed_paths: None,
        },
        "image" => Event {
            kind: EventKind::Image {
                reference: String::new(),
            },
            git_ref: need_ref()?,
            changed_paths: None,
        },
        other => bail!("unknown event {other:?} (push, pull_request, schedule, manual, image)"),
    })
}

/// The top-level `env` of the pipeline, evaluated with the `github` context.
fn env_context(p: Option<&Pipeline>, github: &Value) -> anyhow::Result<Value> {
    let mut env = std::collections::BTreeMap::new();
    if let Some(p) = p {
        let ctx = Value::from_pairs([("github", github.clone())]);
        for (k, e) in &p.env {
            let v = e
                .template
                .eval_string(&Env::new(&ctx))
                .map_err(|err| anyhow::anyhow!("env.{}: {}", k.value, err.message))?;
            env.insert(k.value.clone(), Value::String(v));
        }
    }
    Ok(Value::object(env))
}

fn compute(a: ComputeArgs) -> anyhow::Result<ExitCode> {
    let Some(image) = a.image.clone() else {
        bail!(
            "--image NAME is required (an image of drydock.yml or a repository); `drydock tags list REPO` lists a registry's tags"
        );
    };
    let file = super::validate::pipeline_path(&a.dir);
    let pipeline = match std::fs::read_to_string(&file) {
        Ok(src) => match drydock_config::parse(&src) {
            Ok(p) => Some(p),
            Err(diags) => {
                eprint!(
                    "{}",
                    drydock_diagnostics::render_all(&file.display().to_string(), &src, &diags)
                );
                bail!("{} is not valid (see above)", file.display());
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
    };
    let mut co = read_git(&a.dir);
    if let Some(s) = &a.sha {
        co.git.sha = s.clone();
    }
    if co.git.sha.is_empty() {
        bail!(
            "no commit: {} is not a git checkout with commits, and --sha was not given",
            a.dir.display()
        );
    }
    let ev = event(&a, &co)?;
    let spec: ImageSpec = match pipeline.as_ref().and_then(|p| p.image(&image)) {
        Some(s) => s.clone(),
        None => {
            if Reference::parse_repository(&image.to_lowercase()).is_err() {
                let known: Vec<&str> = pipeline
                    .iter()
                    .flat_map(|p| p.images.iter().map(|i| i.name.value.as_str()))
                    .collect();
                bail!(
                    "{image:?} is neither an image of {} ({}) nor a repository name",
                    file.display(),
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                );
            }
            ImageSpec::for_repository(&image)
        }
    };
    let github = ev.github_context(&co.git);
    let env = env_context(pipeline.as_ref(), &github)?;
    let contexts = Value::from_pairs([("github", github), ("env", env)]);
    // `{{date}}` renders the time of a schedule's tick; other events use the commit time.
    let now = matches!(ev.kind, EventKind::Schedule { .. })
        .then(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .ok()
        })
        .flatten();
    let tag_event = ev.tag_event(&co.git, now);
    let out = match spec.compute_tags(&contexts, &tag_event) {
        Ok(o) => o,
        Err(diags) => {
            if let Ok(src) = std::fs::read_to_string(&file) {
                eprint!(
                    "{}",
                    drydock_diagnostics::render_all(&file.display().to_string(), &src, &diags)
                );
            }
            bail!("computing the tags of {image} failed (see above)");
        }
    };
    let push = match spec.push_decision(&contexts) {
        Ok(p) => p,
        Err(d) => bail!("images.{}.push: {}", spec.name.value, d.message),
    };
    if a.json {
        let v = serde_json::json!({
            "image": image,
            "event": { "name": ev.name(), "ref": ev.git_ref, "sha": co.git.sha },
            "version": out.version,
            "tags": out.tags,
            "refs": out.refs,
            "labels": out.labels,
            "push": push.is_none(),
            "not_pushed_because": push,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        let short: String = co.git.sha.chars().take(12).collect();
        println!("event: {} {} ({short})", ev.name(), ev.git_ref);
        println!("tags:");
        if out.refs.is_empty() {
            println!("  (none)");
        }
        for r in &out.refs {
            println!("  {r}");
        }
        println!("labels:");
        for (k, v) in &out.labels {
            println!("  {k}={v}");
        }
        match push {
            None => println!("push: yes"),
            Some(why) => println!("push: no ({why})"),
        }
    }
    Ok(ExitCode::SUCCESS)
}
