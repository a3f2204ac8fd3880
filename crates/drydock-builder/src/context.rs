//! The build context: where it comes from (a directory read in place, a git URL, a tarball),
//! the view COPY reads it through (`.dockerignore` applied, symlinks never leaving it), and the
//! content digest of the files a `Local` source provides (the cache key's input).

use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use drydock_dockerfile::Dockerignore;
use drydock_oci::{Algorithm, Digest};

use crate::error::{BuildError, IoCtx};
use crate::hashcache::HashCache;
use crate::view::{self, Escape, Found, LayerStack, Tree, ViewError};

/// Where the build context comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContextSource {
    /// A local directory, read in place.
    Dir(PathBuf),
    /// A git repository, `URL[#REF][:SUBDIR]` (the git CLI clones it).
    Git(String),
    /// A tar archive (plain, gzip or zstd) holding the context.
    Tarball(PathBuf),
    /// No context at all (a Dockerfile given on standard input).
    Empty,
}

impl ContextSource {
    /// Classifies a command-line context argument: git URLs, archives, directories.
    pub fn from_arg(arg: &str) -> ContextSource {
        let base = arg.split('#').next().unwrap_or(arg);
        let is_git = arg.starts_with("git://")
            || arg.starts_with("git@")
            || arg.starts_with("ssh://")
            || arg.starts_with("github.com/")
            || ((arg.starts_with("https://") || arg.starts_with("http://"))
                && (base.ends_with(".git") || arg.contains(".git#")))
            || (arg.starts_with("file://") && !Path::new(&arg[7..]).is_file());
        if is_git {
            return ContextSource::Git(arg.to_string());
        }
        let p = PathBuf::from(arg);
        if p.is_file() {
            ContextSource::Tarball(p)
        } else {
            ContextSource::Dir(p)
        }
    }
}

/// A context ready to read.
#[derive(Debug)]
pub struct Context {
    /// The directory files are read from (canonical).
    pub dir: PathBuf,
    /// The commit time of the context's git checkout, when it is one (for SOURCE_DATE_EPOCH).
    pub commit_time: Option<i64>,
    _temp: Option<tempfile::TempDir>,
}

impl Context {
    /// Makes `source` readable: a directory is used in place, a git URL is cloned and a tarball
    /// unpacked into a temporary directory under `tmp`.
    pub fn prepare(source: &ContextSource, tmp: &Path) -> Result<Context, BuildError> {
        fs::create_dir_all(tmp).ctx("create directory", tmp)?;
        match source {
            ContextSource::Dir(d) => {
                let md = fs::metadata(d).map_err(|e| BuildError::Context {
                    path: d.display().to_string(),
                    message: e.to_string(),
                })?;
                if !md.is_dir() {
                    return Err(BuildError::Context {
                        path: d.display().to_string(),
                        message: "not a directory".into(),
                    });
                }
                let dir = fs::canonicalize(d).ctx("resolve", d)?;
                let commit_time = git_commit_time(&dir);
                Ok(Context {
                    dir,
                    commit_time,
                    _temp: None,
                })
            }
            ContextSource::Empty => {
                let t = tempfile::Builder::new()
                    .prefix("context-")
                    .tempdir_in(tmp)
                    .ctx("create temporary directory in", tmp)?;
                Ok(Context {
                    dir: t.path().to_path_buf(),
                    commit_time: None,
                    _temp: Some(t),
                })
            }
            ContextSource::Tarball(file) => {
                let t = tempfile::Builder::new()
                    .prefix("context-")
                    .tempdir_in(tmp)
                    .ctx("create temporary directory in", tmp)?;
                let f = fs::File::open(file).ctx("open", file)?;
                let (_, reader) = drydock_layer::decompress_detect(f).ctx("read", file)?;
                drydock_layer::apply(
                    reader,
                    t.path(),
                    &drydock_layer::ApplyOptions {
                        chown: Some(false),
                        ..Default::default()
                    },
                )
                .map_err(|e| BuildError::Context {
                    path: file.display().to_string(),
                    message: format!("not a usable tar archive: {e}"),
                })?;
                Ok(Context {
                    dir: t.path().to_path_buf(),
                    commit_time: None,
                    _temp: Some(t),
                })
            }
            ContextSource::Git(url) => {
                let t = tempfile::Builder::new()
                    .prefix("context-git-")
                    .tempdir_in(tmp)
                    .ctx("create temporary directory in", tmp)?;
                let spec = GitUrl::parse(url);
                let checkout = t.path().join("checkout");
                git_checkout(&spec.remote, spec.reference.as_deref(), &checkout, true).map_err(
                    |message| BuildError::Context {
                        path: url.clone(),
                        message,
                    },
                )?;
                let commit_time = git_commit_time(&checkout);
                let _ = fs::remove_dir_all(checkout.join(".git"));
                let dir = match &spec.subdir {
                    Some(s) => {
                        let d = checkout.join(s.trim_matches('/'));
                        if !d.is_dir() {
                            return Err(BuildError::Context {
                                path: url.clone(),
                                message: format!("subdirectory {s:?} not found in the repository"),
                            });
                        }
                        d
                    }
                    None => checkout,
                };
                Ok(Context {
                    dir,
                    commit_time,
                    _temp: Some(t),
                })
            }
        }
    }
}

/// `URL#REF:SUBDIR` split up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitUrl {
    pub remote: String,
    pub reference: Option<String>,
    pub subdir: Option<String>,
}

impl GitUrl {
    pub fn parse(url: &str) -> GitUrl {
        let (remote, frag) = match url.split_once('#') {
            Some((r, f)) => (r.to_string(), Some(f)),
            None => (url.to_string(), None),
        };
        let remote = if remote.starts_with("github.com/") {
            format!("https://{remote}")
        } else {
            remote
        };
        let (reference, subdir) = match frag {
            Some(f) => match f.split_once(':') {
                Some((r, s)) => (
                    Some(r.to_string()).filter(|r| !r.is_empty()),
                    Some(s.to_string()).filter(|s| !s.is_empty()),
                ),
                None => (Some(f.to_string()).filter(|r| !r.is_empty()), None),
            },
            None => (None, None),
        };
        GitUrl {
            remote,
            reference,
            subdir,
        }
    }
}

fn git(args: &[&str], dir: Option<&Path>) -> Result<String, String> {
    let mut c = Command::new("git");
    if let Some(d) = dir {
        c.arg("-C").arg(d);
    }
    c.args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(std::process::Stdio::null());
    let out = c
        .output()
        .map_err(|e| format!("cannot run git (install the git package): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Checks `reference` (branch, tag, commit; default HEAD) of `remote` out into `dir`. Returns
/// the commit id.
pub fn git_checkout(
    remote: &str,
    reference: Option<&str>,
    dir: &Path,
    keep_git_dir: bool,
) -> Result<String, String> {
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    git(&["init", "-q"], Some(dir))?;
    let want = reference.unwrap_or("HEAD");
    let shallow = git(&["fetch", "-q", "--depth", "1", remote, want], Some(dir));
    if shallow.is_err() {
        // Servers that refuse fetching a commit by id: fetch everything, then look it up.
        git(
            &[
                "fetch",
                "-q",
                remote,
                "+refs/heads/*:refs/remotes/origin/*",
                "+refs/tags/*:refs/tags/*",
            ],
            Some(dir),
        )?;
        let commit = git(
            &["rev-parse", "--verify", &format!("{want}^{{commit}}")],
            Some(dir),
        )
        .or_else(|_| {
            git(
                &[
                    "rev-parse",
                    "--verify",
                    &format!("origin/{want}^{{commit}}"),
                ],
                Some(dir),
            )
        })
        .map_err(|_| format!("{remote}: reference {want:?} not found"))?;
        git(&["checkout", "-q", &commit], Some(dir))?;
    } else {
        git(&["checkout", "-q", "FETCH_HEAD"], Some(dir))?;
    }
    let commit = git(&["rev-parse", "HEAD"], Some(dir))?;
    let _ = git(
        &[
            "submodule",
            "update",
            "--init",
            "--recursive",
            "--depth",
            "1",
        ],
        Some(dir),
    );
    if !keep_git_dir {
        let _ = fs::remove_dir_all(dir.join(".git"));
    }
    Ok(commit)
}

/// The commit time of the checkout `dir` is in, if any.
pub fn git_commit_time(dir: &Path) -> Option<i64> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["log", "-1", "--format=%ct"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// The build context as COPY sees it: `.dockerignore`d paths are absent, and a path or symlink
/// that would leave the context is an error.
pub struct ContextTree {
    stack: LayerStack,
    ignore: Dockerignore,
}

impl std::fmt::Debug for ContextTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContextTree")
            .field("dir", &self.stack.layers())
            .finish()
    }
}

impl ContextTree {
    pub fn new(dir: PathBuf, exclude_patterns: &[String]) -> Self {
        Self {
            stack: LayerStack::plain(dir),
            ignore: Dockerignore::from_patterns(exclude_patterns),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.stack.layers()[0]
    }

    fn hidden(&self, rel: &Path, is_dir: bool) -> bool {
        if self.ignore.is_empty() || rel.as_os_str().is_empty() {
            return false;
        }
        let s = rel.to_string_lossy();
        self.ignore.is_excluded(&s) && !(is_dir && self.ignore.could_reinclude_under(&s))
    }
}

impl Tree for ContextTree {
    fn lookup(&self, rel: &Path) -> Result<Option<Found>, ViewError> {
        match self.stack.lookup(rel)? {
            Some(f) if self.hidden(rel, f.is_dir()) => Ok(None),
            other => Ok(other),
        }
    }

    fn read_dir(&self, rel: &Path) -> Result<Option<Vec<OsString>>, ViewError> {
        let Some(names) = self.stack.read_dir(rel)? else {
            return Ok(None);
        };
        if self.ignore.is_empty() {
            return Ok(Some(names));
        }
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            let child = rel.join(&n);
            let s = child.to_string_lossy();
            let visible = !self.ignore.is_excluded(&s)
                || (self.ignore.could_reinclude_under(&s)
                    && self.stack.lookup(&child)?.is_some_and(|f| f.is_dir()));
            if visible {
                out.push(n);
            }
        }
        Ok(Some(out))
    }
}

fn view_err(e: ViewError) -> BuildError {
    BuildError::Context {
        path: String::new(),
        message: e.to_string(),
    }
}

/// The content digest of what a `Local` source with `follow_paths` provides: every selected
/// path (wildcards expanded, symlinks on the way resolved inside the context) and, below it,
/// each entry's relative path, type, permission bits, size, symlink target and content digest.
/// Owners and mtimes are not part of it (COPY from the context resets both).
pub fn content_digest(
    tree: &ContextTree,
    follow_paths: &[String],
    hashes: &HashCache,
) -> Result<Digest, BuildError> {
    let mut h = Algorithm::Sha256.hasher();
    let mut put = |b: &[u8]| {
        h.update(&(b.len() as u64).to_le_bytes());
        h.update(b);
    };
    let whole = [".".to_string()];
    let paths: &[String] = if follow_paths.is_empty() {
        &whole
    } else {
        follow_paths
    };
    let mut sorted: Vec<&String> = paths.iter().collect();
    sorted.sort();
    sorted.dedup();
    for p in sorted {
        put(format!("follow {p}").as_bytes());
        let matches = if view::has_wildcard(p) {
            view::expand_wildcards(tree, p, Escape::Refuse).map_err(view_err)?
        } else {
            vec![PathBuf::from(p)]
        };
        for m in matches {
            let resolved = view::resolve(tree, &m.to_string_lossy(), true, Escape::Refuse)
                .map_err(view_err)?;
            put(format!("match {} -> {}", m.display(), resolved.display()).as_bytes());
            let Some(found) = tree.lookup(&resolved).map_err(view_err)? else {
                put(b"missing");
                continue;
            };
            hash_entry(tree, &resolved, Path::new(""), &found, hashes, &mut put)?;
        }
    }
    Ok(h.finish())
}

fn hash_entry(
    tree: &ContextTree,
    abs_rel: &Path,
    shown: &Path,
    found: &Found,
    hashes: &HashCache,
    put: &mut dyn FnMut(&[u8]),
) -> Result<(), BuildError> {
    let m = &found.meta;
    let perm = m.permissions().mode() & 0o7777;
    let ft = m.file_type();
    put(shown.as_os_str().as_bytes());
    if ft.is_dir() {
        put(format!("d {perm:o}").as_bytes());
        let names = tree
            .read_dir(abs_rel)
            .map_err(view_err)?
            .unwrap_or_default();
        for n in names {
            let child = abs_rel.join(&n);
            let Some(f) = tree.lookup(&child).map_err(view_err)? else {
                continue;
            };
            hash_entry(tree, &child, &shown.join(&n), &f, hashes, put)?;
        }
    } else if ft.is_symlink() {
        let target = fs::read_link(&found.abs).ctx("read link", &found.abs)?;
        put(b"l");
        put(target.as_os_str().as_bytes());
    } else if ft.is_file() {
        let d = hashes.digest(&found.abs, m).ctx("read", &found.abs)?;
        put(format!("f {perm:o} {} {}", m.size(), d.hex()).as_bytes());
        if m.nlink() > 1 {
            // Hard links inside a copied tree stay links: the grouping is content too.
            put(format!("ino {}", m.ino()).as_bytes());
        }
    } else {
        put(format!("s {perm:o} {:o} {}", m.mode(), m.rdev()).as_bytes());
    }
    Ok(())
}

/// Reads a whole small file from the context (`Dockerfile`, `.dockerignore`).
pub fn read_small(path: &Path) -> Result<String, BuildError> {
    let mut s = Vec::new();
    fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut s))
        .ctx("read", path)?;
    Ok(String::from_utf8_lossy(&s).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_urls() {
        assert_eq!(
            GitUrl::parse("https://x.test/r.git#v1:sub/dir"),
            GitUrl {
                remote: "https://x.test/r.git".into(),
                reference: Some("v1".into()),
                subdir: Some("sub/dir".into())
            }
        );
        assert_eq!(
            GitUrl::parse("github.com/a/b").remote,
            "https://github.com/a/b"
        );
        assert_eq!(GitUrl::parse("git://h/r#:d").reference, None);
        assert!(matches!(
            ContextSource::from_arg("https://h/r.git#main"),
            ContextSource::Git(_)
        ));
    }

    #[test]
    fn content_digest_follows_contents_not_mtimes_and_honours_ignores() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        fs::create_dir(d.join("src")).unwrap();
        fs::write(d.join("src/a.go"), "package a").unwrap();
        fs::write(d.join("src/b.txt"), "b").unwrap();
        fs::write(d.join("ignored.log"), "log").unwrap();
        let hc = HashCache::load(d.join("hc"));
        let tree = ContextTree::new(d.to_path_buf(), &["*.log".into()]);
        let all = content_digest(&tree, &[], &hc).unwrap();
        let src = content_digest(&tree, &["src".into()], &hc).unwrap();
        // Touching without changing content changes nothing.
        fs::File::options()
            .write(true)
            .open(d.join("src/a.go"))
            .unwrap()
            .set_modified(std::time::SystemTime::UNIX_EPOCH)
            .unwrap();
        assert_eq!(content_digest(&tree, &["src".into()], &hc).unwrap(), src);
        // Ignored files are not part of it.
        fs::write(d.join("ignored.log"), "other").unwrap();
        assert_eq!(content_digest(&tree, &[], &hc).unwrap(), all);
        // A change outside the followed path does not matter to it, a change inside does.
        fs::write(d.join("other"), "x").unwrap();
        assert_eq!(content_digest(&tree, &["src".into()], &hc).unwrap(), src);
        fs::write(d.join("src/b.txt"), "B").unwrap();
        assert_ne!(content_digest(&tree, &["src".into()], &hc).unwrap(), src);
        let go = content_digest(&tree, &["src/*.go".into()], &hc).unwrap();
        fs::write(d.join("src/b.txt"), "BB").unwrap();
        assert_eq!(
            content_digest(&tree, &["src/*.go".into()], &hc).unwrap(),
            go
        );
    }

    #[test]
    fn symlinks_out_of_the_context_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("ctx");
        fs::create_dir(&d).unwrap();
        std::os::unix::fs::symlink("../outside", d.join("up")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.join("abs")).unwrap();
        let hc = HashCache::load(t.path().join("hc"));
        let tree = ContextTree::new(d.clone(), &[]);
        for p in ["up", "abs"] {
            let e = content_digest(&tree, &[p.into()], &hc)
                .unwrap_err()
                .to_string();
            assert!(e.contains("outside the build context"), "{e}");
        }
    }
}
