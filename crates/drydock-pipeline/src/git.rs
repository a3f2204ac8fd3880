//! The event of a local run, derived from a checkout with the `git` CLI (at the edge: nothing
//! else in the engine runs git): branch or tag, sha, default branch, commit time, `git
//! describe`; the caller's overrides (`--event`, `--ref`, `--sha`, `--pr`, `--base`) simulate
//! other events.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::event::{Event, PullRequest};

/// What to simulate instead of what the checkout says.
#[derive(Debug, Clone, Default)]
pub struct EventOverrides {
    /// `push`, `pull_request`, `schedule`, `image`, `manual`.
    pub event: Option<String>,
    /// A full ref (`refs/heads/x`, `refs/tags/v1`) or a branch name.
    pub git_ref: Option<String>,
    pub sha: Option<String>,
    /// A pull request number (implies `pull_request`).
    pub pr: Option<u64>,
    /// The pull request's base branch (default: the default branch).
    pub base: Option<String>,
    /// The pull request comes from a fork.
    pub fork: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot run git in {dir}: {source}")]
    Spawn {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("git {args} in {dir} failed: {stderr}")]
    Failed {
        dir: PathBuf,
        args: String,
        stderr: String,
    },
    #[error("{0}")]
    Invalid(String),
}

fn git(dir: &Path, args: &[&str]) -> Result<String, GitError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .map_err(|source| GitError::Spawn {
            dir: dir.to_path_buf(),
            source,
        })?;
    if !out.status.success() {
        return Err(GitError::Failed {
            dir: dir.to_path_buf(),
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Whether `dir` is inside a git work tree.
pub fn is_repository(dir: &Path) -> bool {
    git(dir, &["rev-parse", "--is-inside-work-tree"]).is_ok_and(|s| s == "true")
}

/// The repository's default branch: `origin/HEAD` when there is a remote, else
/// `init.defaultBranch`, else `main` or `master` when such a branch exists, else the current
/// branch.
pub fn default_branch(dir: &Path) -> Option<String> {
    if let Ok(r) = git(dir, &["symbolic-ref", "-q", "refs/remotes/origin/HEAD"])
        && let Some(b) = r.strip_prefix("refs/remotes/origin/")
    {
        return Some(b.to_string());
    }
    for b in ["main", "master"] {
        if git(
            dir,
            &["show-ref", "--verify", "-q", &format!("refs/heads/{b}")],
        )
        .is_ok()
        {
            return Some(b.to_string());
        }
    }
    if let Ok(b) = git(dir, &["config", "--get", "init.defaultBranch"])
        && !b.is_empty()
    {
        return Some(b);
    }
    git(dir, &["symbolic-ref", "-q", "--short", "HEAD"]).ok()
}

/// Normalises a `--ref` value: full refs are kept, `pull/N` becomes `refs/pull/N/merge`, a name
/// that is a tag (and not a branch) becomes `refs/tags/NAME`, anything else a branch.
fn full_ref(dir: &Path, r: &str) -> String {
    if r.starts_with("refs/") {
        return r.to_string();
    }
    let is_branch = git(
        dir,
        &["show-ref", "--verify", "-q", &format!("refs/heads/{r}")],
    )
    .is_ok();
    let is_tag = git(
        dir,
        &["show-ref", "--verify", "-q", &format!("refs/tags/{r}")],
    )
    .is_ok();
    if is_tag && !is_branch {
        format!("refs/tags/{r}")
    } else {
        format!("refs/heads/{r}")
    }
}

/// The event for the checkout at `dir`, with `over` applied.
pub fn event_from_checkout(dir: &Path, over: &EventOverrides) -> Result<Event, GitError> {
    let sha = match &over.sha {
        Some(s) => {
            // Accept a short sha or a ref name when the repository knows it.
            git(
                dir,
                &["rev-parse", "--verify", "-q", &format!("{s}^{{commit}}")],
            )
            .unwrap_or_else(|_| s.clone())
        }
        None => git(dir, &["rev-parse", "--verify", "-q", "HEAD^{commit}"]).map_err(|_| {
            GitError::Invalid(format!(
                "{} has no commit yet: commit first, or give --sha",
                dir.display()
            ))
        })?,
    };
    if sha.len() != 40 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(GitError::Invalid(format!(
            "--sha {sha}: expected a commit of this repository or 40 hex digits"
        )));
    }
    let default = default_branch(dir);
    let current_branch = git(dir, &["symbolic-ref", "-q", "--short", "HEAD"]).ok();
    let head_ref = match &over.git_ref {
        Some(r) => full_ref(dir, r),
        None => match &current_branch {
            Some(b) => format!("refs/heads/{b}"),
            None => match git(dir, &["describe", "--tags", "--exact-match", &sha]) {
                Ok(t) => format!("refs/tags/{t}"),
                Err(_) => {
                    return Err(GitError::Invalid(format!(
                        "{}: HEAD is detached and no tag points at it: give --ref",
                        dir.display()
                    )));
                }
            },
        },
    };
    let commit_time = git(dir, &["show", "-s", "--format=%ct", &sha])
        .ok()
        .and_then(|s| s.parse::<i64>().ok());
    let describe = git(dir, &["describe", "--tags", "--always", &sha]).ok();
    let repository_url = git(dir, &["config", "--get", "remote.origin.url"]).ok();
    let repository = repository_url
        .as_deref()
        .and_then(repo_name_from_url)
        .or_else(|| {
            git(dir, &["rev-parse", "--show-toplevel"])
                .ok()
                .and_then(|t| {
                    Path::new(&t)
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                })
        });
    let name = match (&over.event, over.pr) {
        (Some(e), _) => e.clone(),
        (None, Some(_)) => "pull_request".to_string(),
        (None, None) => "push".to_string(),
    };
    let mut event = Event {
        name: name.clone(),
        git_ref: head_ref.clone(),
        sha,
        default_branch: default.clone(),
        pull_request: None,
        commit_time,
        describe,
        repository,
        repository_url,
        actor: std::env::var("USER").ok(),
        schedule: None,
        image: None,
    };
    if name == "pull_request" {
        let number = over.pr.ok_or_else(|| {
            GitError::Invalid("--event pull_request needs --pr NUMBER".to_string())
        })?;
        let head_branch = head_ref
            .strip_prefix("refs/heads/")
            .map(str::to_string)
            .or(current_branch)
            .unwrap_or_else(|| event.ref_name().to_string());
        let base = over
            .base
            .clone()
            .or(default)
            .unwrap_or_else(|| "main".to_string());
        event.git_ref = format!("refs/pull/{number}/merge");
        event.pull_request = Some(PullRequest {
            number,
            base_ref: base,
            head_ref: head_branch,
            fork: over.fork,
        });
    } else if over.pr.is_some() {
        return Err(GitError::Invalid(format!(
            "--pr is for pull_request events, not {name}"
        )));
    }
    Ok(event)
}

/// The last commit that changed any of `paths` (relative to `dir`), with its time: the
/// revision of an image built from them. `None` outside a repository or when no commit did.
pub fn last_change(dir: &Path, paths: &[&str]) -> Option<(String, i64)> {
    let mut args = vec!["log", "-1", "--format=%H %ct", "--"];
    args.extend(paths.iter().copied());
    let out = git(dir, &args).ok()?;
    let (sha, time) = out.split_once(' ')?;
    Some((sha.to_string(), time.trim().parse().ok()?))
}

/// `owner/name` from `https://host/owner/name(.git)` or `git@host:owner/name(.git)`.
fn repo_name_from_url(url: &str) -> Option<String> {
    let path = if let Some((_, rest)) = url.split_once("://") {
        rest.split_once('/')?.1
    } else if let Some((_, rest)) = url.split_once(':') {
        rest
    } else {
        url
    };
    let path = path.trim_end_matches('/').trim_end_matches(".git");
    let mut parts: Vec<&str> = path.rsplitn(2, '/').collect();
    parts.reverse();
    match parts.as_slice() {
        [owner, name] if !owner.is_empty() && !name.is_empty() => {
            let owner = owner.rsplit('/').next().unwrap_or(owner);
            Some(format!("{owner}/{name}"))
        }
        [name] if !name.is_empty() => Some((*name).to_string()),
        _ => None,
    }
}

/// The files of a working tree that a workspace copy takes: tracked files (as they are on disk,
/// uncommitted changes included) and untracked files that are not ignored. Paths relative to
/// the top of the work tree, which is returned too.
pub fn working_tree_files(dir: &Path) -> Result<(PathBuf, Vec<PathBuf>), GitError> {
    let top = PathBuf::from(git(dir, &["rev-parse", "--show-toplevel"])?);
    let out = Command::new("git")
        .arg("-C")
        .arg(&top)
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .output()
        .map_err(|source| GitError::Spawn {
            dir: top.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(GitError::Failed {
            dir: top,
            args: "ls-files".into(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    use std::os::unix::ffi::OsStrExt;
    let mut files: Vec<PathBuf> = out
        .stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| PathBuf::from(std::ffi::OsStr::from_bytes(p)))
        .collect();
    files.sort();
    files.dedup();
    Ok((top, files))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_from_urls() {
        assert_eq!(
            repo_name_from_url("https://github.com/acme/app.git").as_deref(),
            Some("acme/app")
        );
        assert_eq!(
            repo_name_from_url("git@github.com:acme/app.git").as_deref(),
            Some("acme/app")
        );
        assert_eq!(
            repo_name_from_url("https://gitlab.example/group/sub/app").as_deref(),
            Some("sub/app")
        );
    }
}
