//! Expression contexts (`github`, `env`, `needs`, `images`, `steps`, `secrets`, `job`) and
//! evaluation with errors that point at the expression.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use drydock_expr::{Env, JobStatus, Value};
use sha2::{Digest as _, Sha256};

use crate::images::ImageState;
use crate::plan::{Cond, Text};

#[derive(Debug, Clone, Default)]
pub(crate) struct Contexts {
    pub github: Value,
    pub env: BTreeMap<String, String>,
    pub needs: Value,
    pub images: BTreeMap<String, ImageState>,
    pub steps: BTreeMap<String, Value>,
    pub secrets: BTreeMap<String, String>,
    pub job_status: &'static str,
}

impl Contexts {
    pub(crate) fn value(&self) -> Value {
        let strings = |m: &BTreeMap<String, String>| {
            Value::object(
                m.iter()
                    .map(|(k, v)| (k.clone(), Value::string(v)))
                    .collect(),
            )
        };
        Value::from_pairs([
            ("github", self.github.clone()),
            ("env", strings(&self.env)),
            ("needs", self.needs.clone()),
            (
                "images",
                Value::object(
                    self.images
                        .iter()
                        .map(|(k, v)| (k.clone(), v.to_value()))
                        .collect(),
                ),
            ),
            ("steps", Value::object(self.steps.clone())),
            ("secrets", strings(&self.secrets)),
            (
                "job",
                Value::from_pairs([("status", Value::string(self.job_status))]),
            ),
        ])
    }
}

thread_local! {
    /// The workspace `hashFiles()` reads. Every job runs on a thread of its own, which sets it
    /// for as long as the job runs.
    static WORKSPACE: RefCell<Option<PathBuf>> = const { RefCell::new(None) };
}

/// Sets (or clears) this thread's workspace for `hashFiles()`.
pub(crate) fn set_workspace(dir: Option<PathBuf>) {
    WORKSPACE.with(|w| *w.borrow_mut() = dir);
}

/// `hashFiles(patterns...)`: the SHA-256 of the SHA-256 of every workspace file the patterns
/// match (GitHub's filter patterns, `!` excludes, the last matching pattern decides), in path
/// order; the empty string when nothing matches.
pub(crate) fn hash_files(workspace: &Path, patterns: &[String]) -> Result<String, String> {
    let mut globs = Vec::new();
    for p in patterns {
        let p = p.trim().trim_start_matches("./");
        globs.push(
            drydock_config::glob::Glob::new(p)
                .map_err(|e| format!("hashFiles: pattern {p:?}: {}", e.message))?,
        );
    }
    let mut files = Vec::new();
    let mut stack = vec![(workspace.to_path_buf(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        let rd =
            std::fs::read_dir(&dir).map_err(|e| format!("hashFiles: {}: {e}", dir.display()))?;
        for ent in rd.flatten() {
            let name = ent.file_name().to_string_lossy().into_owned();
            if rel.is_empty() && name == ".git" {
                continue;
            }
            let r = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let Ok(ft) = ent.file_type() else { continue };
            if ft.is_dir() {
                stack.push((ent.path(), r));
            } else if ft.is_file() && drydock_config::glob::list_matches(&globs, &r) {
                files.push((r, ent.path()));
            }
        }
    }
    if files.is_empty() {
        return Ok(String::new());
    }
    files.sort();
    let mut outer = Sha256::new();
    for (r, path) in files {
        let data = std::fs::read(&path).map_err(|e| format!("hashFiles: {r}: {e}"))?;
        outer.update(Sha256::digest(&data));
    }
    Ok(hex::encode(outer.finalize()))
}

fn with_env<T>(ctx: &Value, f: impl FnOnce(&Env<'_>) -> T) -> T {
    let ws = WORKSPACE.with(|w| w.borrow().clone());
    match ws {
        Some(dir) => {
            let hf = move |p: &[String]| hash_files(&dir, p);
            f(&Env::new(ctx).with_hash_files(&hf))
        }
        None => f(&Env::new(ctx)),
    }
}

/// Evaluates a string with `${{ }}` parts.
pub(crate) fn text(t: &Text, ctx: &Value) -> Result<String, String> {
    with_env(ctx, |env| t.template.eval_string(env))
        .map_err(|e| format!("{}: {e} (in `{}`)", t.origin, t.text.trim()))
}

/// Evaluates a value and tells whether it is truthy (an image's `push`, `continue-on-error`).
pub(crate) fn truthy(t: &Text, ctx: &Value) -> Result<bool, String> {
    with_env(ctx, |env| t.template.eval(env))
        .map(|v| v.truthy())
        .map_err(|e| format!("{}: {e} (in `{}`)", t.origin, t.text.trim()))
}

/// Evaluates an `if:`-like condition with the status of what came before.
pub(crate) fn cond(c: &Cond, ctx: &Value, status: JobStatus) -> Result<bool, String> {
    with_env(ctx, |env| c.cond.eval(&env.with_status(status)))
        .map_err(|e| format!("{}: {e} (in `{}`)", c.origin, c.text.trim()))
}

/// Evaluates `(name, value)` pairs in order, each seeing the ones before it in `env`.
pub(crate) fn env_pairs(
    pairs: &[(String, Text)],
    base: &mut Contexts,
) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (k, t) in pairs {
        let v = text(t, &base.value())?;
        base.env.insert(k.clone(), v.clone());
        out.push((k.clone(), v));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_files_matches_githubs_algorithm() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("src/sub")).unwrap();
        std::fs::write(t.path().join("src/a.lock"), "a").unwrap();
        std::fs::write(t.path().join("src/sub/b.lock"), "b").unwrap();
        std::fs::write(t.path().join("c.txt"), "c").unwrap();
        let got = hash_files(t.path(), &["**/*.lock".into()]).unwrap();
        let mut outer = Sha256::new();
        outer.update(Sha256::digest(b"a"));
        outer.update(Sha256::digest(b"b"));
        assert_eq!(got, hex::encode(outer.finalize()));
        let only_a = hash_files(t.path(), &["**/*.lock".into(), "!src/sub/**".into()]).unwrap();
        assert_eq!(only_a, hex::encode(Sha256::digest(Sha256::digest(b"a"))));
        assert_eq!(hash_files(t.path(), &["*.none".into()]).unwrap(), "");
    }
}
