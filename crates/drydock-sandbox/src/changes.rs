//! A run's file-system changes: the overlayfs upper dir (or, in copy mode, the changed copy and
//! its pristine base), cleaned of the mount points the sandbox itself created.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A mount point the sandbox created because the image lacked it (`/proc`, `/etc/hosts`, a bind
/// target...). Stubs are removed from the changes after the run, so they never reach a layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stub {
    /// Absolute path inside the sandbox, after symlink resolution.
    pub path: String,
    pub kind: StubKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StubKind {
    File,
    Dir,
}

/// The changes of one run. Dropping it deletes the run directory unless [`Changes::keep`] was
/// called.
#[derive(Debug)]
pub struct Changes {
    pub(crate) run_dir: PathBuf,
    pub(crate) upper: PathBuf,
    pub(crate) lowers: Vec<PathBuf>,
    pub(crate) base: Option<PathBuf>,
    pub(crate) userxattr: bool,
    pub(crate) keep: bool,
    pub(crate) remover: Option<Remover>,
}

impl Changes {
    /// The overlayfs upper dir (whiteouts are overlayfs whiteouts: 0/0 character devices and
    /// `trusted.overlay.opaque`, or `user.overlay.*` in a user namespace), or in copy mode the
    /// whole changed tree.
    pub fn upper(&self) -> &Path {
        &self.upper
    }

    /// The lower layer dirs, bottom first (as in [`crate::Root::Layers`]).
    pub fn lowers(&self) -> &[PathBuf] {
        &self.lowers
    }

    /// In copy mode, the unchanged tree to compare [`Changes::upper`] with.
    pub fn base(&self) -> Option<&Path> {
        self.base.as_deref()
    }

    /// Whether [`Changes::upper`] is an overlayfs upper dir (else a full tree: diff against
    /// [`Changes::base`]).
    pub fn is_overlay(&self) -> bool {
        self.base.is_none()
    }

    /// Whether overlayfs used `user.overlay.*` xattrs (rootless).
    pub fn userxattr(&self) -> bool {
        self.userxattr
    }

    /// Writes the changes as an OCI layer tar (uncompressed; wrap `out` in a
    /// [`drydock_layer::LayerWriter`] for a compressed blob with its digests): deletions as
    /// `.wh.` whiteouts, replaced directories as opaque. From overlayfs this reads only the upper
    /// dir ([`drydock_layer::diff_overlay_upper`]); in copy mode it compares the tree with its
    /// base ([`drydock_layer::diff_trees`]). Both give the same tar for the same change.
    pub fn write_layer(
        &self,
        out: impl std::io::Write,
        opts: &drydock_layer::DiffOptions,
    ) -> Result<drydock_layer::TarStats, drydock_layer::LayerError> {
        match &self.base {
            None => {
                let topmost_first: Vec<PathBuf> = self.lowers.iter().rev().cloned().collect();
                drydock_layer::diff_overlay_upper(&self.upper, &topmost_first, out, opts)
            }
            Some(base) => drydock_layer::diff_trees(base, &self.upper, out, opts),
        }
    }

    /// Keeps the run directory on disk and returns its path (upper, work and base live in it).
    pub fn keep(mut self) -> PathBuf {
        self.keep = true;
        self.run_dir.clone()
    }
}

impl Drop for Changes {
    fn drop(&mut self) {
        if !self.keep {
            discard(&self.run_dir, self.remover.clone());
        }
    }
}

/// Run directories queued for deletion and not deleted yet.
static PENDING: (std::sync::Mutex<usize>, std::sync::Condvar) =
    (std::sync::Mutex::new(0), std::sync::Condvar::new());

fn pending_add(delta: isize) {
    let mut n = PENDING.0.lock().unwrap_or_else(|e| e.into_inner());
    *n = n.saturating_add_signed(delta);
    PENDING.1.notify_all();
}

/// Waits (up to `timeout`) until the run directories of finished runs are deleted. Runs hand
/// their directories to a background thread; a process about to exit calls this so it leaves no
/// trash behind (trash that is left is swept by the next process using the same state dir).
/// Returns whether everything was deleted.
pub fn wait_for_cleanup(timeout: std::time::Duration) -> bool {
    let n = PENDING.0.lock().unwrap_or_else(|e| e.into_inner());
    let (n, _) = PENDING
        .1
        .wait_timeout_while(n, timeout, |n| *n > 0)
        .unwrap_or_else(|e| e.into_inner());
    *n == 0
}

/// Throws a run directory away without waiting for the deletion: it is renamed into
/// `<state>/trash/` (one metadata operation) and deleted by a background thread. Trash left by
/// a process that exited first is swept by the next process that discards something there.
pub(crate) fn discard(run_dir: &Path, remover: Option<Remover>) {
    use std::sync::mpsc::{Sender, channel};
    use std::sync::{Mutex, OnceLock};
    type Queue = Sender<(PathBuf, Option<Remover>)>;
    static SWEEPER: OnceLock<Mutex<Queue>> = OnceLock::new();

    let remove = |p: &Path, r: &Option<Remover>| {
        if remove_tree(p).is_err()
            && let Some(r) = r
        {
            let _ = r.remove(p);
        }
    };
    let (Some(parent), Some(name)) = (run_dir.parent(), run_dir.file_name()) else {
        remove(run_dir, &remover);
        return;
    };
    let trash = parent.join("trash");
    let _ = fs::create_dir(&trash);
    let target = trash.join(name);
    if fs::rename(run_dir, &target).is_err() {
        remove(run_dir, &remover);
        return;
    }
    let sender = SWEEPER.get_or_init(|| {
        let (tx, rx) = channel::<(PathBuf, Option<Remover>)>();
        // If no thread can be spawned the receiver is dropped, sends fail, and deletion happens
        // inline below.
        let _ = std::thread::Builder::new()
            .name("drydock-sandbox-sweeper".into())
            .spawn(move || {
                let mut swept: Vec<PathBuf> = Vec::new();
                for (path, remover) in rx {
                    if remove_tree(&path).is_err()
                        && let Some(r) = &remover
                    {
                        let _ = r.remove(&path);
                    }
                    pending_add(-1);
                    // Once per trash dir: what earlier processes left there.
                    if let Some(dir) = path.parent()
                        && !swept.iter().any(|d| d == dir)
                    {
                        swept.push(dir.to_path_buf());
                        if let Ok(rd) = fs::read_dir(dir) {
                            for e in rd.flatten() {
                                let _ = remove_tree(&e.path());
                            }
                        }
                    }
                }
            });
        Mutex::new(tx)
    });
    pending_add(1);
    let sent = sender
        .lock()
        .map(|tx| tx.send((target.clone(), remover.clone())).is_ok())
        .unwrap_or(false);
    if !sent {
        pending_add(-1);
        remove(&target, &remover);
    }
}

/// Deletes trees with files owned by subordinate ids (rootless runs), from inside a user
/// namespace with the run's id maps: the init binary in its removal mode.
#[derive(Debug, Clone)]
pub(crate) struct Remover {
    pub binary: PathBuf,
    pub userns: crate::protocol::UsernsSetup,
}

impl Remover {
    pub(crate) fn remove(&self, path: &Path) -> Result<(), crate::SandboxError> {
        crate::run::remove_in_userns(&self.binary, &self.userns, path)
    }
}

/// Removes a run directory, including overlayfs work dirs left with mode 000.
pub(crate) fn remove_tree(dir: &Path) -> io::Result<()> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(_) => {
            make_writable(dir);
            fs::remove_dir_all(dir)
        }
    }
}

fn make_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(md) = fs::symlink_metadata(dir)
        && md.is_dir()
    {
        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
        if let Ok(rd) = fs::read_dir(dir) {
            for e in rd.flatten() {
                make_writable(&e.path());
            }
        }
    }
}

fn depth(p: &str) -> usize {
    p.split('/').filter(|c| !c.is_empty()).count()
}

fn rel(p: &str) -> &str {
    p.trim_start_matches('/')
}

fn is_opaque(path: &Path) -> bool {
    let mut buf = [0u8; 8];
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|name| rustix::fs::lgetxattr(path, *name, &mut buf[..]).is_ok())
}

fn dir_is_empty(p: &Path) -> bool {
    fs::read_dir(p)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false)
}

/// Removes the stubs from an overlayfs upper dir, and the directories that were copied up only
/// because a stub was created inside them (empty, not opaque, same owner and mode as below).
pub(crate) fn remove_stubs_overlay(upper: &Path, lowers: &[PathBuf], stubs: &[Stub]) {
    let mut stubs: Vec<&Stub> = stubs.iter().collect();
    stubs.sort_by_key(|s| std::cmp::Reverse(depth(&s.path)));
    for s in &stubs {
        remove_stub(&upper.join(rel(&s.path)), s.kind);
    }
    let mut ancestors: Vec<String> = Vec::new();
    for s in &stubs {
        let mut p = Path::new(rel(&s.path)).parent();
        while let Some(a) = p.filter(|a| !a.as_os_str().is_empty()) {
            let a_s = a.to_string_lossy().into_owned();
            if !ancestors.contains(&a_s) {
                ancestors.push(a_s);
            }
            p = a.parent();
        }
    }
    ancestors.sort_by_key(|a| std::cmp::Reverse(depth(a)));
    for a in ancestors {
        let up = upper.join(&a);
        let Ok(md) = fs::symlink_metadata(&up) else {
            continue;
        };
        if !md.is_dir() || !dir_is_empty(&up) || is_opaque(&up) {
            continue;
        }
        let below = lowers
            .iter()
            .rev()
            .find_map(|l| fs::symlink_metadata(l.join(&a)).ok());
        if let Some(b) = below
            && b.is_dir()
            && b.mode() == md.mode()
            && b.uid() == md.uid()
            && b.gid() == md.gid()
        {
            let _ = fs::remove_dir(&up);
        }
    }
}

/// Removes the stubs from a copied tree and restores the times of their parents from `base`.
pub(crate) fn remove_stubs_copy(tree: &Path, base: &Path, stubs: &[Stub]) {
    let mut stubs: Vec<&Stub> = stubs.iter().collect();
    stubs.sort_by_key(|s| std::cmp::Reverse(depth(&s.path)));
    for s in &stubs {
        let p = tree.join(rel(&s.path));
        remove_stub(&p, s.kind);
        if let Some(parent) = Path::new(rel(&s.path)).parent()
            && let Ok(b) = fs::symlink_metadata(base.join(parent))
        {
            let t = fs::FileTimes::new()
                .set_accessed(b.accessed().unwrap_or(std::time::SystemTime::UNIX_EPOCH))
                .set_modified(b.modified().unwrap_or(std::time::SystemTime::UNIX_EPOCH));
            if let Ok(f) = fs::File::open(tree.join(parent)) {
                let _ = f.set_times(t);
            }
        }
    }
}

fn remove_stub(p: &Path, kind: StubKind) {
    let Ok(md) = fs::symlink_metadata(p) else {
        return;
    };
    match kind {
        StubKind::File if md.is_file() && md.len() == 0 => {
            let _ = fs::remove_file(p);
        }
        StubKind::Dir if md.is_dir() => {
            let _ = fs::remove_dir(p);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stubs_and_pure_copy_ups_are_removed_real_changes_stay() {
        let t = tempfile::tempdir().unwrap();
        let lower = t.path().join("lower");
        let upper = t.path().join("upper");
        fs::create_dir_all(lower.join("etc")).unwrap();
        fs::create_dir_all(lower.join("usr/lib")).unwrap();
        // Stub-only changes: etc/hosts (file), proc (dir), and etc copied up for them.
        fs::create_dir_all(upper.join("etc")).unwrap();
        fs::write(upper.join("etc/hosts"), "").unwrap();
        fs::create_dir_all(upper.join("proc")).unwrap();
        // A real change next to a stub: usr/lib/new and a stub in usr/lib.
        fs::create_dir_all(upper.join("usr/lib")).unwrap();
        fs::write(upper.join("usr/lib/new"), "x").unwrap();
        fs::write(upper.join("usr/lib/stub"), "").unwrap();
        // A stub the command filled through a bind would be a different file; here a stub that
        // was replaced by content must stay.
        fs::create_dir_all(upper.join("work")).unwrap();
        fs::write(upper.join("work/file"), "data").unwrap();
        let stubs = vec![
            Stub {
                path: "/etc/hosts".into(),
                kind: StubKind::File,
            },
            Stub {
                path: "/proc".into(),
                kind: StubKind::Dir,
            },
            Stub {
                path: "/usr/lib/stub".into(),
                kind: StubKind::File,
            },
            Stub {
                path: "/work".into(),
                kind: StubKind::Dir,
            },
        ];
        // Make copied-up dirs match the lower ones.
        use std::os::unix::fs::PermissionsExt;
        for d in ["etc", "usr", "usr/lib"] {
            let m = fs::metadata(lower.join(d)).unwrap().permissions().mode();
            fs::set_permissions(upper.join(d), fs::Permissions::from_mode(m)).unwrap();
        }
        remove_stubs_overlay(&upper, std::slice::from_ref(&lower), &stubs);
        assert!(
            !upper.join("etc").exists(),
            "etc was only copied up for a stub"
        );
        assert!(!upper.join("proc").exists());
        assert!(!upper.join("usr/lib/stub").exists());
        assert!(upper.join("usr/lib/new").exists());
        assert!(
            upper.join("work/file").exists(),
            "a non-empty stub dir stays"
        );
    }

    #[test]
    fn changed_mode_keeps_a_copied_up_dir() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let (lower, upper) = (t.path().join("l"), t.path().join("u"));
        fs::create_dir_all(lower.join("etc")).unwrap();
        fs::create_dir_all(upper.join("etc")).unwrap();
        fs::set_permissions(upper.join("etc"), fs::Permissions::from_mode(0o700)).unwrap();
        fs::set_permissions(lower.join("etc"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(upper.join("etc/hosts"), "").unwrap();
        remove_stubs_overlay(
            &upper,
            &[lower],
            &[Stub {
                path: "/etc/hosts".into(),
                kind: StubKind::File,
            }],
        );
        assert!(upper.join("etc").is_dir());
        assert!(!upper.join("etc/hosts").exists());
    }
}
