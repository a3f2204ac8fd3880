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
    /// Commits known to be in a project's mirror (objects stay in a mirror while it is in
    /// use), and the origin URL each mirror was checked against: no git process for what is
    /// known.
    known: Mutex<std::collections::HashSet<(String, String)>>,
    urls: Mutex<HashMap<String, String>>,
    times: Mutex<HashMap<String, i64>>,
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
            known: Mutex::new(Default::default()),
            urls: Mutex::new(HashMap::new()),
            times: Mutex::new(HashMap::new()),
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
        let key = (project.to_string(), sha.to_string());
        let url_checked = self
            .urls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(project)
            .is_some_and(|u| u == url);
        if url_checked
            && self
                .known
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(&key)
        {
            return Ok(self.mirror_path(project));
        }
        let lock = self.lock(project);
        let _g = lock.lock().unwrap_or_else(|p| p.into_inner());
        let mirror = self.ensure_mirror(project, url)?;
        let r = self.fetch_commit(mirror, url, sha, extra);
        if r.is_ok() {
            self.known
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key);
        }
        r
    }

    fn fetch_commit(
        &self,
        mirror: PathBuf,
        url: &str,
        sha: &str,
        extra: Option<(&str, &str)>,
    ) -> Result<PathBuf, GitError> {
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
            let checked = self
                .urls
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(project)
                == Some(&url.to_string());
            if !checked {
                let current = git(Some(&mirror), &["config", "--get", "remote.origin.url"])
                    .unwrap_or_default();
                if current != url {
                    git(Some(&mirror), &["remote", "set-url", "origin", url])?;
                }
                self.urls
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(project.to_string(), url.to_string());
            }
            return Ok(mirror);
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| GitError {
            args: "clone".into(),
            message: format!("{}: {e}", self.dir.display()),
        })?;
        // A clone of its own name: a clone left by a dead process (or racing in another
        // process on the same data directory) never gets in the way; the first rename wins.
        let tmp = self
            .dir
            .join(format!(".{project}.git.tmp-{}", crate::util::random_hex(6)));
        let tmp_s = tmp.to_string_lossy().into_owned();
        let cloned = git(None, &["clone", "--quiet", "--mirror", url, &tmp_s]);
        if let Err(e) = cloned {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        if let Err(e) = std::fs::rename(&tmp, &mirror) {
            let _ = std::fs::remove_dir_all(&tmp);
            if !mirror.join("HEAD").exists() {
                return Err(GitError {
                    args: "clone".into(),
                    message: format!("{}: {e}", mirror.display()),
                });
            }
        }
        self.urls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(project.to_string(), url.to_string());
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

    /// The commit time (Unix seconds), remembered.
    pub fn commit_time(&self, mirror: &Path, sha: &str) -> Option<i64> {
        if let Some(t) = self
            .times
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(sha)
        {
            return Some(*t);
        }
        let t: i64 = git(Some(mirror), &["show", "-s", "--format=%ct", sha])
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let mut times = self.times.lock().unwrap_or_else(|p| p.into_inner());
        if times.len() > 10_000 {
            times.clear();
        }
        times.insert(sha.to_string(), t);
        Some(t)
    }

    /// Checks `sha` out into `dest`: a repository of its own whose objects come from the
    /// mirror (git's alternates), HEAD detached at the commit, files written by one
    /// `git read-tree -u` (a `git clone --shared` costs several times more).
    pub fn checkout(mirror: &Path, sha: &str, dest: &Path) -> Result<(), GitError> {
        let _ = std::fs::remove_dir_all(dest);
        let io = |e: std::io::Error| GitError {
            args: "checkout".into(),
            message: format!("{}: {e}", dest.display()),
        };
        let dot = dest.join(".git");
        std::fs::create_dir_all(dot.join("objects/info")).map_err(io)?;
        std::fs::create_dir_all(dot.join("refs/heads")).map_err(io)?;
        std::fs::create_dir_all(dot.join("refs/tags")).map_err(io)?;
        let objects = std::fs::canonicalize(mirror)
            .unwrap_or_else(|_| mirror.to_path_buf())
            .join("objects");
        std::fs::write(
            dot.join("objects/info/alternates"),
            format!("{}\n", objects.display()),
        )
        .map_err(io)?;
        std::fs::write(dot.join("HEAD"), format!("{sha}\n")).map_err(io)?;
        std::fs::write(
            dot.join("config"),
            "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n",
        )
        .map_err(io)?;
        let out = Command::new("git")
            .arg("--git-dir")
            .arg(&dot)
            .arg("--work-tree")
            .arg(dest)
            .args(["read-tree", "-u", "--reset", sha])
            .env("GIT_TERMINAL_PROMPT", "0")
            .env_remove("GIT_INDEX_FILE")
            .output()
            .map_err(|e| GitError {
                args: "read-tree".into(),
                message: format!("cannot run git: {e}"),
            })?;
        if !out.status.success() {
            return Err(GitError {
                args: format!("read-tree -u {sha}"),
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(())
    }
}
