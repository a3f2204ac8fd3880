//! Repositories fetched with the git CLI at the exact commit of an event, cached between runs
//! as one bare mirror per project (`<data>/git/<project>.git`, every ref of the origin,
//! pull-request refs included). A run's source is a shared clone of the mirror checked out at
//! the commit (detached), removed after the run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
#[error("git {args}: {message}")]
pub struct GitError {
    pub args: String,
    pub message: String,
}

#[derive(Debug)]
pub struct GitCache {
    dir: PathBuf,
    locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

fn git(dir: Option<&Path>, args: &[&str]) -> Result<String, GitError> {
    let mut cmd = Command::new("git");
    if let Some(d) = dir {
        cmd.arg("-C").arg(d);
    }
    cmd.args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "true")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE");
    let out = cmd.output().map_err(|e| GitError {
        args: args.join(" "),
        message: format!("cannot run git: {e}"),
    })?;
    if !out.status.success() {
        return Err(GitError {
            args: args.join(" "),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
}

impl GitCache {
    pub fn new(dir: impl Into<PathBuf>) -> GitCache {
        GitCache {
            dir: dir.into(),
            locks: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self, project: &str) -> Arc<Mutex<()>> {
        self.locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(project.to_string())
            .or_default()
            .clone()
    }

    pub fn mirror_path(&self, project: &str) -> PathBuf {
        self.dir.join(format!("{project}.git"))
    }

    fn has_commit(mirror: &Path, sha: &str) -> bool {
        git(
            Some(mirror),
            &["cat-file", "-e", &format!("{sha}^{{commit}}")],
        )
        .is_ok()
    }

    /// Makes sure the mirror of `project` has `sha` (cloning or fetching as needed; `extra`
    /// is another repository and ref to fetch it from, such as a fork's branch). Returns the
    /// mirror's path.
    pub fn ensure_commit(
        &self,
        project: &str,
        url: &str,
        sha: &str,
        extra: Option<(&str, &str)>,
    ) -> Result<PathBuf, GitError> {
        let lock = self.lock(project);
        let _g = lock.lock().unwrap_or_else(|p| p.into_inner());
        let mirror = self.ensure_mirror(project, url)?;
        if Self::has_commit(&mirror, sha) {
            return Ok(mirror);
        }
        git(Some(&mirror), &["fetch", "--quiet", "--prune", "origin"])?;
        if Self::has_commit(&mirror, sha) {
            return Ok(mirror);
        }
        if let Some((url, r)) = extra {
            let dst = format!("+{r}:refs/drydock/fetched/{sha}");
            git(Some(&mirror), &["fetch", "--quiet", url, &dst])?;
            if Self::has_commit(&mirror, sha) {
                return Ok(mirror);
            }
        }
        // Some servers allow fetching a commit by id.
        let _ = git(
            Some(&mirror),
            &[
                "fetch",
                "--quiet",
                "origin",
                &format!("+{sha}:refs/drydock/fetched/{sha}"),
            ],
        );
        if Self::has_commit(&mirror, sha) {
            return Ok(mirror);
        }
        Err(GitError {
            args: format!("fetch {url}"),
            message: format!("commit {sha} is not in the repository"),
        })
    }

    fn ensure_mirror(&self, project: &str, url: &str) -> Result<PathBuf, GitError> {
        let mirror = self.mirror_path(project);
        if mirror.join("HEAD").exists() {
            let current =
                git(Some(&mirror), &["config", "--get", "remote.origin.url"]).unwrap_or_default();
            if current != url {
                git(Some(&mirror), &["remote", "set-url", "origin", url])?;
            }
            return Ok(mirror);
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| GitError {
            args: "clone".into(),
            message: format!("{}: {e}", self.dir.display()),
        })?;
        let tmp = self.dir.join(format!(".{project}.git.tmp"));
        let _ = std::fs::remove_dir_all(&tmp);
        let tmp_s = tmp.to_string_lossy().into_owned();
        git(None, &["clone", "--quiet", "--mirror", url, &tmp_s])?;
        std::fs::rename(&tmp, &mirror).map_err(|e| GitError {
            args: "clone".into(),
            message: format!("{}: {e}", mirror.display()),
        })?;
        Ok(mirror)
    }

    /// The commit a ref of the mirror points at (after fetching the origin).
    pub fn resolve_ref(&self, project: &str, url: &str, git_ref: &str) -> Result<String, GitError> {
        let lock = self.lock(project);
        let _g = lock.lock().unwrap_or_else(|p| p.into_inner());
        let mirror = self.ensure_mirror(project, url)?;
        git(Some(&mirror), &["fetch", "--quiet", "--prune", "origin"])?;
        git(
            Some(&mirror),
            &["rev-parse", "--verify", &format!("{git_ref}^{{commit}}")],
        )
    }

    /// A file of a commit (`None` when the commit has no such file).
    pub fn read_file(mirror: &Path, sha: &str, path: &str) -> Result<Option<String>, GitError> {
        match git(
            Some(mirror),
            &["cat-file", "blob", &format!("{sha}:{path}")],
        ) {
            Ok(s) => Ok(Some(s)),
            Err(e)
                if e.message.contains("does not exist")
                    || e.message.contains("Not a valid object")
                    || e.message.contains("bad file")
                    || e.message.contains("not a valid") =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The commit time (Unix seconds).
    pub fn commit_time(mirror: &Path, sha: &str) -> Option<i64> {
        git(Some(mirror), &["show", "-s", "--format=%ct", sha])
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Checks `sha` out into `dest` (a shared clone of the mirror, detached at the commit).
    pub fn checkout(mirror: &Path, sha: &str, dest: &Path) -> Result<(), GitError> {
        let _ = std::fs::remove_dir_all(dest);
        if let Some(p) = dest.parent() {
            let _ = std::fs::create_dir_all(p);
        }
        let m = mirror.to_string_lossy().into_owned();
        let d = dest.to_string_lossy().into_owned();
        git(
            None,
            &["clone", "--quiet", "--shared", "--no-checkout", &m, &d],
        )?;
        git(Some(dest), &["checkout", "--quiet", "--detach", sha])?;
        Ok(())
    }
}
