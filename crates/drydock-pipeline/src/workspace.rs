//! Workspaces: the copy of the source each job works in, and the files jobs hand each other
//! (`persist` stores paths as one tar in the content store, named by its digest; `attach`
//! restores them byte for byte in a job that needs the persisting job).

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use drydock_content::Store;
use drydock_oci::Digest;
use serde::{Deserialize, Serialize};

/// What a job persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Persisted {
    pub job: String,
    /// The paths as written in `persist`.
    pub paths: Vec<String>,
    /// The tar in the content store.
    pub digest: Digest,
    pub size: u64,
}

/// A relative path in normal form (`dist/`, `./dist` and `dist` are all `dist`); `None` when
/// it is absolute or leaves the workspace.
pub fn normalize(path: &str) -> Option<String> {
    let p = Path::new(path);
    let mut parts: Vec<String> = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::CurDir => {}
            _ => return None,
        }
    }
    if parts.is_empty() {
        // "." persists the whole workspace.
        return Some(String::new());
    }
    Some(parts.join("/"))
}

/// Whether `inner` is `outer` or below it (normalised paths; "" is the whole workspace).
fn covers(outer: &str, inner: &str) -> bool {
    outer.is_empty()
        || inner == outer
        || (inner.starts_with(outer) && inner.as_bytes().get(outer.len()) == Some(&b'/'))
}

/// Copies a directory tree (files, directories, symlinks; modes and mtimes kept). `.git` at
/// the top is left out when `skip_git`.
pub fn copy_tree(src: &Path, dst: &Path, skip_git: bool) -> io::Result<()> {
    fs::create_dir_all(dst)?;
    let mut stack = vec![(src.to_path_buf(), dst.to_path_buf(), true)];
    while let Some((from, to, top)) = stack.pop() {
        for ent in fs::read_dir(&from)? {
            let ent = ent?;
            let name = ent.file_name();
            if top && skip_git && name == ".git" {
                continue;
            }
            let s = ent.path();
            let d = to.join(&name);
            let md = fs::symlink_metadata(&s)?;
            copy_entry(&s, &d, &md)?;
            if md.is_dir() {
                stack.push((s, d, false));
            }
        }
    }
    Ok(())
}

fn copy_entry(s: &Path, d: &Path, md: &fs::Metadata) -> io::Result<()> {
    let ft = md.file_type();
    if ft.is_symlink() {
        let target = fs::read_link(s)?;
        std::os::unix::fs::symlink(target, d)?;
    } else if ft.is_dir() {
        fs::create_dir_all(d)?;
        fs::set_permissions(d, fs::Permissions::from_mode(md.mode() & 0o7777))?;
    } else if ft.is_file() {
        fs::copy(s, d)?;
        if let Ok(mtime) = md.modified() {
            let f = fs::File::options().write(true).open(d)?;
            let _ = f.set_modified(mtime);
        }
    }
    // Sockets, fifos and devices have no place in a workspace.
    Ok(())
}

/// Copies the listed files (relative to `top`) into `dst`, creating parents. Files listed but
/// missing (deleted, not yet committed) are skipped.
pub fn copy_files(top: &Path, files: &[PathBuf], dst: &Path) -> io::Result<()> {
    fs::create_dir_all(dst)?;
    for rel in files {
        let s = top.join(rel);
        let Ok(md) = fs::symlink_metadata(&s) else {
            continue;
        };
        let d = dst.join(rel);
        if let Some(parent) = d.parent() {
            fs::create_dir_all(parent)?;
        }
        if md.is_dir() {
            // A submodule or nested repository: copy it whole.
            copy_tree(&s, &d, true)?;
        } else {
            copy_entry(&s, &d, &md)?;
        }
    }
    Ok(())
}

/// Stores `paths` of `workspace` as one tar in the content store.
pub fn persist(
    store: &Store,
    workspace: &Path,
    job: &str,
    paths: &[String],
) -> Result<Persisted, String> {
    let mut norm = Vec::new();
    for p in paths {
        let n = normalize(p).ok_or_else(|| {
            format!("persist: {p:?} is not a path inside the workspace (absolute, or with ..)")
        })?;
        if !workspace.join(&n).exists() && fs::symlink_metadata(workspace.join(&n)).is_err() {
            return Err(format!(
                "persist: {p} does not exist in the workspace of job {job}"
            ));
        }
        norm.push(n);
    }
    let wanted: Arc<Vec<String>> = Arc::new(norm);
    let w = wanted.clone();
    let filter: drydock_layer::PathFilter = Arc::new(move |rel: &Path, _md: &fs::Metadata| {
        let rel = rel.to_string_lossy();
        w.iter().any(|p| covers(p, &rel) || covers(&rel, p))
    });
    let opts = drydock_layer::TarOptions {
        filter: Some(filter),
        ..Default::default()
    };
    let mut writer = store
        .writer()
        .map_err(|e| format!("persist: cannot write to the content store: {e}"))?;
    drydock_layer::write_tree(workspace, &mut writer, &opts)
        .map_err(|e| format!("persist: {e}"))?;
    let (digest, size) = writer
        .commit()
        .map_err(|e| format!("persist: storing the tar: {e}"))?;
    Ok(Persisted {
        job: job.to_string(),
        paths: paths.to_vec(),
        digest,
        size,
    })
}

/// Which persisted tars an `attach` restores: all of them, or those covering each path asked
/// for. A path nobody persisted is an error naming it.
pub fn select<'a>(
    available: &'a [Persisted],
    wanted: Option<&[String]>,
    needs: &[String],
) -> Result<Vec<&'a Persisted>, String> {
    let needs_list = if needs.is_empty() {
        "this job needs no job".to_string()
    } else {
        format!("needs: {}", needs.join(", "))
    };
    let persisted_list = || {
        if available.is_empty() {
            "nothing was persisted".to_string()
        } else {
            let items: Vec<String> = available
                .iter()
                .map(|p| format!("{} (by {})", p.paths.join(", "), p.job))
                .collect();
            format!("persisted: {}", items.join("; "))
        }
    };
    let Some(wanted) = wanted else {
        if available.is_empty() {
            return Err(format!(
                "attach: none of the jobs this one needs persisted anything ({needs_list})"
            ));
        }
        return Ok(available.iter().collect());
    };
    let mut out: Vec<&Persisted> = Vec::new();
    for w in wanted {
        let n = normalize(w).ok_or_else(|| format!("attach: {w:?} is not a workspace path"))?;
        let by: Vec<&Persisted> = available
            .iter()
            .filter(|p| {
                p.paths
                    .iter()
                    .filter_map(|q| normalize(q))
                    .any(|q| covers(&q, &n))
            })
            .collect();
        if by.is_empty() {
            return Err(format!(
                "attach: {w} was not persisted by any job this one needs ({needs_list}; {})",
                persisted_list()
            ));
        }
        for p in by {
            if !out.iter().any(|o| o.digest == p.digest && o.job == p.job) {
                out.push(p);
            }
        }
    }
    Ok(out)
}

/// What `attach: [JOB...]` restores: each job must be one this job needs and must have
/// persisted something.
pub fn select_jobs<'a>(
    available: &'a [Persisted],
    jobs: &[String],
    needs: &[String],
) -> Result<Vec<&'a Persisted>, String> {
    let mut out = Vec::new();
    for j in jobs {
        match available.iter().find(|p| &p.job == j) {
            Some(p) => out.push(p),
            None if needs.contains(j) => {
                return Err(format!(
                    "attach: job {j} persisted nothing (give it `persist: [PATH...]`)"
                ));
            }
            None => {
                return Err(format!(
                    "attach: job {j} is not one this job needs (needs: {}); add it to needs",
                    if needs.is_empty() {
                        "none".to_string()
                    } else {
                        needs.join(", ")
                    }
                ));
            }
        }
    }
    Ok(out)
}

/// Restores a persisted tar into `workspace`.
pub fn restore(store: &Store, persisted: &Persisted, workspace: &Path) -> Result<(), String> {
    let blob = store.open_blob(&persisted.digest).map_err(|e| {
        format!(
            "attach: files of job {} ({}): {e}",
            persisted.job, persisted.digest
        )
    })?;
    let opts = drydock_layer::ApplyOptions::default();
    drydock_layer::apply(io::BufReader::new(blob), workspace, &opts).map_err(|e| {
        format!(
            "attach: restoring the files of job {} ({}): {e}",
            persisted.job, persisted.digest
        )
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_paths() {
        assert_eq!(normalize("dist/").as_deref(), Some("dist"));
        assert_eq!(normalize("./dist/app.tar").as_deref(), Some("dist/app.tar"));
        assert_eq!(normalize(".").as_deref(), Some(""));
        assert_eq!(normalize("/etc"), None);
        assert_eq!(normalize("../x"), None);
        assert!(covers("dist", "dist/a"));
        assert!(!covers("dist", "distx"));
        assert!(covers("", "anything"));
    }

    #[test]
    fn persist_and_restore_round_trip() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(t.path().join("store")).unwrap();
        let ws = t.path().join("ws");
        fs::create_dir_all(ws.join("dist/sub")).unwrap();
        fs::write(ws.join("dist/a.bin"), [0u8, 1, 2, 255]).unwrap();
        fs::write(ws.join("dist/sub/b.txt"), "b\n").unwrap();
        fs::set_permissions(ws.join("dist/a.bin"), fs::Permissions::from_mode(0o751)).unwrap();
        fs::write(ws.join("notes.txt"), "n").unwrap();
        fs::write(ws.join("other.txt"), "o").unwrap();
        let p = persist(&store, &ws, "build", &["dist/".into(), "notes.txt".into()]).unwrap();
        let again = persist(&store, &ws, "build", &["dist/".into(), "notes.txt".into()]).unwrap();
        assert_eq!(p.digest, again.digest, "the tar is deterministic");

        let ws2 = t.path().join("ws2");
        fs::create_dir_all(&ws2).unwrap();
        let chosen = select(
            std::slice::from_ref(&p),
            Some(&["dist/a.bin".into()]),
            &["build".into()],
        )
        .unwrap();
        restore(&store, chosen[0], &ws2).unwrap();
        assert_eq!(fs::read(ws2.join("dist/a.bin")).unwrap(), [0u8, 1, 2, 255]);
        assert_eq!(
            fs::read_to_string(ws2.join("dist/sub/b.txt")).unwrap(),
            "b\n"
        );
        assert_eq!(fs::read_to_string(ws2.join("notes.txt")).unwrap(), "n");
        assert!(!ws2.join("other.txt").exists());
        assert_eq!(
            fs::metadata(ws2.join("dist/a.bin"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o751
        );
    }

    #[test]
    fn attaching_what_nobody_persisted_names_it() {
        let p = Persisted {
            job: "build".into(),
            paths: vec!["dist/".into()],
            digest: Digest::sha256(b"x"),
            size: 1,
        };
        let err = select(&[p], Some(&["out/app.tar".into()]), &["build".into()]).unwrap_err();
        assert!(err.contains("out/app.tar was not persisted"), "{err}");
        assert!(err.contains("dist/ (by build)"), "{err}");
        let err = select(&[], None, &["build".into()]).unwrap_err();
        assert!(err.contains("none of the jobs"), "{err}");
        let missing = tempfile::tempdir().unwrap();
        let store = Store::open(missing.path().join("s")).unwrap();
        let err = persist(&store, missing.path(), "a", &["nope/".into()]).unwrap_err();
        assert!(err.contains("nope/ does not exist"), "{err}");
    }
}
