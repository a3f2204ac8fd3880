//! File operations (COPY, ADD, WORKDIR's mkdir, heredoc files, rm) executed in Rust, without a
//! sandbox: they read sources through views and write into a staging upper dir stacked on the
//! base state's snapshots, in overlayfs format (parents copied up with their metadata,
//! deletions as whiteouts), so the layer is the upper dir's diff.
//!
//! The copy semantics follow BuildKit's (fsutil's `copy`): a directory source copies its
//! contents; a file goes into an existing directory destination under its own name; missing
//! destination parents are created 0755 (owned by `--chown`); nested directories and files
//! keep their mode, owner (context files: root) and mtime unless `--chown`/`--chmod` say
//! otherwise; hard links within one source stay links; symlinks are copied as symlinks except
//! a source named directly, which is followed.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use drydock_dockerfile::Dockerignore;
use drydock_plan::{CopyAction, FileAction, Owner};
use drydock_sandbox::users::{parse_group, parse_passwd};
use rustix::fs::{AtFlags, Gid, Mode, Timestamps, Uid, XattrFlags};

use crate::hashcache::Stat;
use crate::perms::{ModeSpec, resolve_owner};
use crate::view::{self, Escape, Found, LayerStack, Tree, ViewError};

/// Why a file operation failed (one line, naming the path).
#[derive(Debug)]
pub struct FileOpError(pub String);

impl std::fmt::Display for FileOpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<ViewError> for FileOpError {
    fn from(e: ViewError) -> Self {
        FileOpError(e.to_string())
    }
}

fn io_err(op: &str, p: &Path, e: impl std::fmt::Display) -> FileOpError {
    FileOpError(format!("{op} {}: {e}", p.display()))
}

/// Where a COPY reads from.
pub struct Source<'a> {
    pub tree: &'a dyn Tree,
    /// Symlinks out of the build context are errors; elsewhere they stay inside the root.
    pub escape: Escape,
    /// Files from the build context belong to root in the image (their host owners mean
    /// nothing there).
    pub reset_owner: bool,
    /// For messages: `the build context`, `stage builder`...
    pub what: String,
}

/// The destination: a staging upper dir over the base state's layers.
pub struct Staging {
    upper: PathBuf,
    view: LayerStack,
    lowers: LayerStack,
    /// Where `--chown` names are looked up when not in the destination (`COPY --link` writes
    /// onto an empty file system; names resolve in the state it is linked onto).
    user_db: Option<LayerStack>,
    /// Directories whose mtime to restore last (children change it), with the time.
    deferred_times: Vec<(PathBuf, i64, i64)>,
    /// Regular files of the current copy not written yet (see [`FileJob`]), and hard links to
    /// them; `pending_dst` holds both kinds' destinations.
    pending: Vec<FileJob>,
    pending_links: Vec<(PathBuf, PathBuf)>,
    pending_dst: HashSet<PathBuf>,
    chown: bool,
    /// Where large copied files are shared between layers (see [`FilePool`]).
    pool: Option<FilePool>,
    /// Opaque markers as `user.overlay.opaque` (see [`Staging::with_userxattr`]).
    userxattr: bool,
}

/// One regular file of a copy, written later together with the others. Creating files is
/// most of a COPY of many small files (inode allocation in the kernel), and it scales across
/// directories, so files are written by several threads once the directories exist; every
/// path is still decided in order, and a destination seen twice flushes first.
#[derive(Debug)]
struct FileJob {
    from: PathBuf,
    to: PathBuf,
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: (i64, i64),
    /// The pool, the destination's path in the layer and the source's identity as the copy
    /// looked it up, when the file may be shared.
    pool: Option<(FilePool, PathBuf, Stat)>,
}

/// Regular files copied into a layer, kept as hard links under `cache/files/` so that the next
/// layer copying the same unchanged source to the same place with the same metadata links
/// the inode instead of creating a file and copying the bytes again (a one-line change in a
/// tree of 20,000 files and 300 MB otherwise rewrites all of it). Snapshots are never written
/// in place (RUN writes through overlayfs, which copies up), so sharing an inode between
/// layers is safe.
///
/// An entry's name hashes what makes its inode right for a destination:
/// - the source's identity and version: device, inode, size, mtime and ctime, as the hash
///   cache trusts them (any write changes the ctime);
/// - the destination's path in the layer, so one merged tree never shows one pooled inode at
///   two paths (a tar of it would turn the second into a hard link);
/// - the destination's owner, mode and mtime (an inode has one of each).
///
/// An entry is made only when the source did not change while it was copied and has no
/// xattrs; a hit is checked against the expected metadata before it is used. `builder prune`
/// removes the entries no snapshot links any more.
#[derive(Debug, Clone)]
pub struct FilePool {
    dir: PathBuf,
}

impl FilePool {
    fn entry(&self, src: &Stat, job: &FileJob, dest: &Path) -> PathBuf {
        let mut key = format!(
            "drydock-file-pool-v1\0{} {} {} {}.{} {}.{}\0",
            src.dev, src.ino, src.size, src.mtime.0, src.mtime.1, src.ctime.0, src.ctime.1
        )
        .into_bytes();
        key.extend_from_slice(dest.as_os_str().as_bytes());
        key.extend_from_slice(
            format!(
                "\0{} {} {:o} {}.{}",
                job.uid, job.gid, job.mode, job.mtime.0, job.mtime.1
            )
            .as_bytes(),
        );
        let hex = drydock_oci::Digest::sha256(&key).hex().to_string();
        self.dir.join(hex)
    }
}

/// Whether a source's last change is old enough that a later write must show in its ctime (a
/// file system with coarse timestamps would give a write in the same tick the same ctime).
fn settled(st: &rustix::fs::Stat) -> bool {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    now - st.st_ctime >= 2
}

/// Whether a file linked from the pool is what the job would have written.
fn pooled_file_matches(st: &rustix::fs::Stat, job: &FileJob, size: u64, chown: bool) -> bool {
    let mut names = [0u8; 256];
    let no_xattrs = match rustix::fs::llistxattr(&job.to, &mut names[..]) {
        Ok(n) => names[..n]
            .split(|&b| b == 0)
            .all(|n| n.is_empty() || !xattr_copyable(n)),
        Err(rustix::io::Errno::NOTSUP) => true,
        Err(_) => false,
    };
    rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile
        && st.st_size as u64 == size
        && st.st_mode & 0o7777 == job.mode & 0o7777
        && (!chown || (st.st_uid == job.uid && st.st_gid == job.gid))
        && (st.st_mtime, st.st_mtime_nsec as i64) == (job.mtime.0, job.mtime.1)
        && no_xattrs
}

/// Fewer files than this are written in the calling thread (threads would cost more).
const PARALLEL_MIN_FILES: usize = 64;

impl FileJob {
    /// Everything after the two opens goes through the descriptors: a path would be walked
    /// again for each of chown, chmod, xattrs and times, which is most of the kernel's work
    /// for a small file. The destination was cleared beforehand, so it is created new, and a
    /// symlink planted there is never followed.
    fn run(&self, chown: bool) -> Result<(), FileOpError> {
        use std::os::unix::fs::OpenOptionsExt;
        let entry = self
            .pool
            .as_ref()
            .map(|(pool, dest, version)| (pool.entry(version, self, dest), *version));
        if let Some((entry, version)) = &entry
            && fs::hard_link(entry, &self.to).is_ok()
        {
            match rustix::fs::lstat(&self.to) {
                Ok(linked) if pooled_file_matches(&linked, self, version.size, chown) => {
                    return Ok(());
                }
                // Changed behind our back: not used again, and this file is copied.
                _ => {
                    let _ = fs::remove_file(entry);
                    fs::remove_file(&self.to).map_err(|e| io_err("remove", &self.to, e))?;
                }
            }
        }
        let nofollow = rustix::fs::OFlags::NOFOLLOW.bits() as i32;
        let mut src = fs::OpenOptions::new()
            .read(true)
            .custom_flags(nofollow)
            .open(&self.from)
            .map_err(|e| io_err("open", &self.from, e))?;
        // The entry is only made for the version the copy looked up, copied whole.
        let pooled = match entry {
            Some((entry, version)) => {
                let st = rustix::fs::fstat(&src).map_err(|e| io_err("stat", &self.from, e))?;
                (Stat::of_stat(&st) == version && settled(&st)).then_some((entry, version))
            }
            None => None,
        };
        let mut dst = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nofollow)
            .open(&self.to)
            .map_err(|e| io_err("create", &self.to, e))?;
        // io::copy between files is copy_file_range (reflinks where the file system has them).
        io::copy(&mut src, &mut dst).map_err(|e| io_err("copy to", &self.to, e))?;
        let err = |op: &'static str| move |e: rustix::io::Errno| io_err(op, &self.to, e);
        if chown {
            rustix::fs::fchown(
                &dst,
                Some(Uid::from_raw(self.uid)),
                Some(Gid::from_raw(self.gid)),
            )
            .map_err(err("chown"))?;
        }
        // After the chown, which clears setuid and setgid bits.
        rustix::fs::fchmod(&dst, Mode::from_raw_mode(self.mode)).map_err(err("chmod"))?;
        let had_xattrs = copy_xattrs_fd(&src, &dst, &self.to)?;
        rustix::fs::futimens(&dst, &ts(self.mtime.0, self.mtime.1)).map_err(err("set times of"))?;
        if let Some((entry, before)) = pooled
            && !had_xattrs
            && rustix::fs::fstat(&src).is_ok_and(|after| Stat::of_stat(&after) == before)
        {
            // Another build may have made the same entry meanwhile: either one will do.
            let _ = fs::hard_link(&self.to, &entry);
        }
        Ok(())
    }
}

/// Writes `jobs`: in order when few, else by up to `available_parallelism` threads, each
/// taking whole directories (files of one directory contend for its lock). The first error
/// wins; the staging dir is thrown away on error, so files already written do not matter.
fn write_files(jobs: &[FileJob], chown: bool) -> Result<(), FileOpError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    if jobs.len() < PARALLEL_MIN_FILES || threads < 2 {
        return jobs.iter().try_for_each(|j| j.run(chown));
    }
    let mut groups: Vec<&[FileJob]> = Vec::new();
    let mut start = 0;
    for i in 1..=jobs.len() {
        if i == jobs.len() || jobs[i].to.parent() != jobs[start].to.parent() {
            groups.push(&jobs[start..i]);
            start = i;
        }
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..threads.min(groups.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(group) = groups.get(i) else { return };
                    if let Err(e) = group.iter().try_for_each(|j| j.run(chown)) {
                        // Stop the others early: no group after this one is taken.
                        next.store(groups.len(), std::sync::atomic::Ordering::Relaxed);
                        let mut f = failed.lock().unwrap_or_else(|p| p.into_inner());
                        f.get_or_insert(e);
                        return;
                    }
                }
            });
        }
    });
    match failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn set_owner_mode(
    abs: &Path,
    chown: bool,
    uid: u32,
    gid: u32,
    mode: Option<u32>,
    symlink: bool,
) -> Result<(), FileOpError> {
    if chown {
        rustix::fs::chownat(
            rustix::fs::CWD,
            abs,
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| io_err("chown", abs, e))?;
    }
    if let Some(m) = mode
        && !symlink
    {
        fs::set_permissions(abs, fs::Permissions::from_mode(m))
            .map_err(|e| io_err("chmod", abs, e))?;
    }
    Ok(())
}

fn set_times(abs: &Path, sec: i64, nsec: i64) -> Result<(), FileOpError> {
    rustix::fs::utimensat(
        rustix::fs::CWD,
        abs,
        &ts(sec, nsec),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| io_err("set times of", abs, e))
}

fn ts(sec: i64, nsec: i64) -> Timestamps {
    let t = rustix::fs::Timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

fn xattr_copyable(name: &[u8]) -> bool {
    !(name.starts_with(b"trusted.overlay.")
        || name.starts_with(b"user.overlay.")
        || name == b"security.selinux")
}

fn copy_xattrs(from: &Path, to: &Path) -> Result<(), FileOpError> {
    copy_xattrs_between(XattrNode::Path(from), XattrNode::Path(to), to).map(|_| ())
}

/// [`copy_xattrs`] between open files; whether the source had any to copy.
fn copy_xattrs_fd(from: &fs::File, to: &fs::File, to_path: &Path) -> Result<bool, FileOpError> {
    copy_xattrs_between(XattrNode::File(from), XattrNode::File(to), to_path)
}

/// Where xattrs are read or written: a path (not following a final symlink) or an open file.
#[derive(Clone, Copy)]
enum XattrNode<'a> {
    Path(&'a Path),
    File(&'a fs::File),
}

impl XattrNode<'_> {
    fn list(self, buf: &mut [u8]) -> rustix::io::Result<usize> {
        match self {
            XattrNode::Path(p) => rustix::fs::llistxattr(p, buf),
            XattrNode::File(f) => rustix::fs::flistxattr(f, buf),
        }
    }

    fn get(self, name: &OsStr, buf: &mut [u8]) -> rustix::io::Result<usize> {
        match self {
            XattrNode::Path(p) => rustix::fs::lgetxattr(p, name, buf),
            XattrNode::File(f) => rustix::fs::fgetxattr(f, name, buf),
        }
    }

    fn set(self, name: &OsStr, value: &[u8]) -> rustix::io::Result<()> {
        match self {
            XattrNode::Path(p) => rustix::fs::lsetxattr(p, name, value, XattrFlags::empty()),
            XattrNode::File(f) => rustix::fs::fsetxattr(f, name, value, XattrFlags::empty()),
        }
    }
}

/// Copies the xattrs a layer may carry; whether the source had any. A target that refuses
/// them (no support, or a user namespace for `trusted.*`) is not an error.
fn copy_xattrs_between(
    from: XattrNode<'_>,
    to: XattrNode<'_>,
    to_path: &Path,
) -> Result<bool, FileOpError> {
    let mut names = vec![0u8; 4096];
    let n = match from.list(&mut names[..]) {
        Ok(n) => n,
        Err(rustix::io::Errno::RANGE) => {
            names = vec![0u8; 65536];
            from.list(&mut names[..]).unwrap_or(0)
        }
        Err(_) => return Ok(false),
    };
    let mut any = false;
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        if !xattr_copyable(name) {
            continue;
        }
        any = true;
        let name_s = OsStr::from_bytes(name);
        let mut val = vec![0u8; 65536];
        let Ok(len) = from.get(name_s, &mut val[..]) else {
            continue;
        };
        match to.set(name_s, &val[..len]) {
            Ok(()) | Err(rustix::io::Errno::NOTSUP) | Err(rustix::io::Errno::PERM) => {}
            Err(e) => return Err(io_err("set xattr on", to_path, e)),
        }
    }
    Ok(any)
}

/// Options of one copy, resolved.
struct CopyCtx<'s> {
    src: &'s Source<'s>,
    owner: Option<(u32, u32)>,
    mode: Option<ModeSpec>,
    excludes: Dockerignore,
    /// Source (dev, inode) -> destination path in the upper dir, for hard links.
    links: HashMap<(u64, u64), PathBuf>,
}

impl Staging {
    /// `upper` must be an empty directory; `lowers` the base state's snapshots, topmost first.
    pub fn new(upper: PathBuf, lowers: Vec<PathBuf>) -> Self {
        let mut all = vec![upper.clone()];
        all.extend(lowers.iter().cloned());
        Self {
            upper,
            view: LayerStack::new(all),
            lowers: LayerStack::new(lowers),
            user_db: None,
            deferred_times: Vec::new(),
            pending: Vec::new(),
            pending_links: Vec::new(),
            pending_dst: HashSet::new(),
            chown: rustix::process::geteuid().is_root(),
            userxattr: !rustix::process::geteuid().is_root(),
            pool: None,
        }
    }

    /// Shares large copied files with earlier layers through hard links in `dir` (see
    /// [`FilePool`]). `dir` must be on the upper dir's file system.
    pub fn with_file_pool(mut self, dir: PathBuf) -> Self {
        // Without the directory nothing is pooled: every link into it fails.
        let _ = fs::create_dir_all(&dir);
        self.pool = Some(FilePool { dir });
        self
    }

    /// Marks opaque directories with `user.overlay.opaque` (for overlayfs mounted with
    /// `userxattr`, as in a user namespace) rather than `trusted.overlay.opaque`.
    pub fn with_userxattr(mut self, userxattr: bool) -> Self {
        self.userxattr = userxattr;
        self
    }

    pub fn upper(&self) -> &Path {
        &self.upper
    }

    /// Looks `--chown` names up in these layers (topmost first) instead of the destination.
    pub fn with_user_db(mut self, layers_topmost_first: Vec<PathBuf>) -> Self {
        self.user_db = Some(LayerStack::new(layers_topmost_first));
        self
    }

    /// The destination as it is now (upper over lowers).
    pub fn view(&self) -> &LayerStack {
        &self.view
    }

    fn abs(&self, rel: &Path) -> PathBuf {
        self.upper.join(rel)
    }

    fn resolve(&self, path: &str, follow_last: bool) -> Result<PathBuf, FileOpError> {
        Ok(view::resolve(&self.view, path, follow_last, Escape::Clamp)?)
    }

    /// Reads a file of the destination (for `/etc/passwd`), `None` when absent.
    fn read_dest_file(&self, path: &str) -> Option<String> {
        let view = self.user_db.as_ref().unwrap_or(&self.view);
        let rel = view::resolve(view, path, true, Escape::Clamp).ok()?;
        let f = view.lookup(&rel).ok()??;
        if !f.meta.is_file() {
            return None;
        }
        fs::read(&f.abs)
            .ok()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    /// `--chown` resolved against the destination's `/etc/passwd` and `/etc/group`.
    pub fn owner_ids(&self, owner: &Option<Owner>) -> Result<Option<(u32, u32)>, FileOpError> {
        let Some(o) = owner else { return Ok(None) };
        let need_files = |s: &str| !s.is_empty() && !s.bytes().all(|b| b.is_ascii_digit());
        let (pw, gr) = if need_files(&o.user) || o.group.as_deref().is_some_and(need_files) {
            (
                parse_passwd(&self.read_dest_file("/etc/passwd").unwrap_or_default()),
                parse_group(&self.read_dest_file("/etc/group").unwrap_or_default()),
            )
        } else {
            (Vec::new(), Vec::new())
        };
        resolve_owner(o, &pw, &gr).map(Some).map_err(FileOpError)
    }

    fn invalidate_under(&self, rel: &Path) {
        self.view.invalidate_under(rel);
        self.lowers.invalidate_under(rel);
    }

    /// Makes sure directory `rel` (a directory in the view) exists in the upper dir, copying it
    /// (and its parents) up with their metadata.
    fn ensure_upper_dir(&self, rel: &Path) -> Result<(), FileOpError> {
        if rel.as_os_str().is_empty() {
            return Ok(());
        }
        let abs = self.abs(rel);
        if let Ok(m) = fs::symlink_metadata(&abs)
            && m.is_dir()
        {
            return Ok(());
        }
        self.ensure_upper_dir(rel.parent().unwrap_or(Path::new("")))?;
        let found = self
            .view
            .lookup(rel)?
            .ok_or_else(|| FileOpError(format!("/{}: no such directory", rel.display())))?;
        if !found.is_dir() {
            return Err(FileOpError(format!("/{}: not a directory", rel.display())));
        }
        fs::create_dir(&abs).map_err(|e| io_err("create directory", &abs, e))?;
        self.apply_meta(
            &abs,
            found.meta.uid(),
            found.meta.gid(),
            Some(found.meta.mode() & 0o7777),
            false,
        )?;
        copy_xattrs(&found.abs, &abs)?;
        self.invalidate_under(rel);
        Ok(())
    }

    fn apply_meta(
        &self,
        abs: &Path,
        uid: u32,
        gid: u32,
        mode: Option<u32>,
        symlink: bool,
    ) -> Result<(), FileOpError> {
        set_owner_mode(abs, self.chown, uid, gid, mode, symlink)
    }

    fn set_mtime(&self, abs: &Path, sec: i64, nsec: i64) -> Result<(), FileOpError> {
        set_times(abs, sec, nsec)
    }

    /// Clears the upper dir at `rel` for a new entry (the parent is ensured). A directory that
    /// replaces a whiteout is made opaque, so lower content does not show through.
    fn clear_for_new(&self, rel: &Path, new_is_dir: bool) -> Result<(), FileOpError> {
        self.ensure_upper_dir(rel.parent().unwrap_or(Path::new("")))?;
        let abs = self.abs(rel);
        let mut was_whiteout = false;
        if let Ok(m) = fs::symlink_metadata(&abs) {
            was_whiteout = view::is_whiteout(&m);
            if m.is_dir() {
                crate::snapshots::remove_tree(&abs).map_err(|e| io_err("remove", &abs, e))?;
                // The lower dirs would show through the removed upper dir.
                was_whiteout = self.lowers.lookup(rel)?.is_some();
            } else {
                fs::remove_file(&abs).map_err(|e| io_err("remove", &abs, e))?;
            }
            self.invalidate_under(rel);
        }
        if new_is_dir && was_whiteout {
            self.pending_opaque(rel);
        }
        Ok(())
    }

    fn pending_opaque(&self, rel: &Path) {
        // Recorded by creating the directory right away and marking it.
        let abs = self.abs(rel);
        if fs::create_dir(&abs).is_ok() {
            let name = if self.is_userxattr() {
                "user.overlay.opaque"
            } else {
                "trusted.overlay.opaque"
            };
            let _ = rustix::fs::lsetxattr(&abs, name, b"y", XattrFlags::empty());
            self.invalidate_under(rel);
        }
    }

    fn is_userxattr(&self) -> bool {
        self.userxattr
    }

    /// Creates `rel` as a new directory (mode, owner) unless the view has one there already.
    fn create_dir(&self, rel: &Path, mode: u32, uid: u32, gid: u32) -> Result<bool, FileOpError> {
        match self.view.lookup(rel)? {
            Some(f) if f.is_dir() => Ok(false),
            Some(_) => Err(FileOpError(format!(
                "cannot create directory /{}: a file is in the way",
                rel.display()
            ))),
            None => {
                self.clear_for_new(rel, true)?;
                let abs = self.abs(rel);
                match fs::create_dir(&abs) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(io_err("create directory", &abs, e)),
                }
                self.apply_meta(&abs, uid, gid, Some(mode), false)?;
                self.invalidate_under(rel);
                Ok(true)
            }
        }
    }

    /// `mkdir -p` inside the root (symlinks resolved inside it): missing directories are made
    /// 0755, owned by `owner` (root by default). Returns the resolved path.
    pub fn mkdir_all(&self, path: &str, owner: Option<(u32, u32)>) -> Result<PathBuf, FileOpError> {
        let rel = self.resolve(path, true)?;
        let (uid, gid) = owner.unwrap_or((0, 0));
        let mut cur = PathBuf::new();
        for c in rel.components() {
            cur.push(c);
            self.create_dir(&cur, 0o755, uid, gid)?;
        }
        Ok(rel)
    }

    /// Runs one action.
    pub fn run(
        &mut self,
        action: &FileAction,
        sources: &HashMap<drydock_plan::OpId, Source<'_>>,
    ) -> Result<(), FileOpError> {
        match action {
            FileAction::Mkdir {
                path,
                mode,
                make_parents,
                owner,
            } => {
                let ids = self.owner_ids(owner)?;
                let (uid, gid) = ids.unwrap_or((0, 0));
                if *make_parents {
                    let rel = self.resolve(path, true)?;
                    let mut cur = PathBuf::new();
                    let n = rel.components().count();
                    for (i, c) in rel.components().enumerate() {
                        cur.push(c);
                        let m = if i + 1 == n { *mode } else { 0o755 };
                        self.create_dir(&cur, m, uid, gid)?;
                    }
                } else {
                    let rel = self.resolve(path, false)?;
                    let parent = rel.parent().unwrap_or(Path::new(""));
                    if !self.view.lookup(parent)?.is_some_and(|f| f.is_dir()) {
                        return Err(FileOpError(format!(
                            "mkdir {path}: parent directory does not exist"
                        )));
                    }
                    self.create_dir(&rel, *mode, uid, gid)?;
                }
                Ok(())
            }
            FileAction::Mkfile {
                path,
                data,
                mode,
                owner,
            } => {
                let (uid, gid) = self.owner_ids(owner)?.unwrap_or((0, 0));
                let rel = self.resolve(path, false)?;
                let parent = rel.parent().unwrap_or(Path::new(""));
                if !self.view.lookup(parent)?.is_some_and(|f| f.is_dir()) {
                    return Err(FileOpError(format!(
                        "write {path}: parent directory does not exist"
                    )));
                }
                if self.view.lookup(&rel)?.is_some_and(|f| f.is_dir()) {
                    return Err(FileOpError(format!(
                        "write {path}: a directory is in the way"
                    )));
                }
                self.clear_for_new(&rel, false)?;
                let abs = self.abs(&rel);
                fs::write(&abs, data.as_bytes()).map_err(|e| io_err("write", &abs, e))?;
                self.apply_meta(&abs, uid, gid, Some(*mode), false)?;
                self.invalidate_under(&rel);
                Ok(())
            }
            FileAction::Rm {
                path,
                allow_not_found,
                allow_wildcard,
            } => {
                let targets = if *allow_wildcard && view::has_wildcard(path) {
                    view::expand_wildcards(&self.view, path, Escape::Clamp)?
                } else {
                    vec![self.resolve(path, false)?]
                };
                if targets.is_empty() && !allow_not_found {
                    return Err(FileOpError(format!("rm {path}: no such file or directory")));
                }
                for rel in targets {
                    self.remove(&rel, *allow_not_found, path)?;
                }
                Ok(())
            }
            FileAction::Copy(c) => {
                let src = sources.get(&c.source).ok_or_else(|| {
                    FileOpError(format!(
                        "internal: the source of {} is not available",
                        c.src
                    ))
                })?;
                self.copy(src, c)
            }
        }
    }

    fn remove(&self, rel: &Path, allow_not_found: bool, shown: &str) -> Result<(), FileOpError> {
        if self.view.lookup(rel)?.is_none() {
            return if allow_not_found {
                Ok(())
            } else {
                Err(FileOpError(format!(
                    "rm {shown}: no such file or directory"
                )))
            };
        }
        self.ensure_upper_dir(rel.parent().unwrap_or(Path::new("")))?;
        let abs = self.abs(rel);
        if let Ok(m) = fs::symlink_metadata(&abs) {
            if m.is_dir() {
                crate::snapshots::remove_tree(&abs).map_err(|e| io_err("remove", &abs, e))?;
            } else {
                fs::remove_file(&abs).map_err(|e| io_err("remove", &abs, e))?;
            }
        }
        if self.lowers.lookup(rel)?.is_some() {
            rustix::fs::mknodat(
                rustix::fs::CWD,
                &abs,
                rustix::fs::FileType::CharacterDevice,
                Mode::from_raw_mode(0o600),
                rustix::fs::makedev(0, 0),
            )
            .map_err(|e| io_err("create whiteout", &abs, e))?;
        }
        self.invalidate_under(rel);
        Ok(())
    }

    /// One COPY/ADD source into its destination.
    pub fn copy(&mut self, src: &Source<'_>, a: &CopyAction) -> Result<(), FileOpError> {
        let owner = self.owner_ids(&a.owner)?;
        let mode = a
            .mode
            .as_deref()
            .map(ModeSpec::parse)
            .transpose()
            .map_err(FileOpError)?;
        let wildcard = a.allow_wildcard && view::has_wildcard(&a.src);
        let matches: Vec<PathBuf> = if wildcard {
            view::expand_wildcards(src.tree, &a.src, src.escape)?
        } else {
            vec![view::components(&a.src).iter().collect()]
        };
        if matches.is_empty() {
            if a.allow_empty_wildcard {
                return Ok(());
            }
            return Err(FileOpError(format!(
                "no source files were specified: {} matches nothing in {}",
                a.src, src.what
            )));
        }
        let mut ctx = CopyCtx {
            src,
            owner,
            mode,
            excludes: Dockerignore::from_patterns(&a.exclude_patterns),
            links: HashMap::new(),
        };
        for m in matches {
            let m_str = format!("/{}", m.display());
            let followed = view::resolve(src.tree, &m_str, a.follow_symlinks, src.escape)?;
            let Some(fi) = src.tree.lookup(&followed)? else {
                let what = if src.reset_owner {
                    format!(
                        "\"{m_str}\" not found in {} (or excluded by .dockerignore)",
                        src.what
                    )
                } else {
                    format!("\"{m_str}\" not found in {}", src.what)
                };
                return Err(FileOpError(what));
            };
            if a.attempt_unpack
                && fi.meta.is_file()
                && let Some(reader) = open_archive(&fi.abs)?
            {
                self.unpack(reader, &a.dest, &ctx, &m_str)?;
                continue;
            }
            if a.parents {
                self.copy_with_parents(&mut ctx, &m, &followed, &fi, a)?;
                continue;
            }
            self.copy_match(&mut ctx, &m, &followed, &fi, a)?;
        }
        self.finish_times()?;
        Ok(())
    }

    fn dest_target(
        &self,
        a: &CopyAction,
        owner: Option<(u32, u32)>,
    ) -> Result<(PathBuf, Option<Found>), FileOpError> {
        let dest = &a.dest;
        let ensure = if dest.ends_with('/') {
            dest.clone()
        } else {
            match dest.rsplit_once('/') {
                Some((p, _)) if !p.is_empty() => p.to_string(),
                _ => "/".into(),
            }
        };
        if a.create_dest_path {
            self.mkdir_all(&ensure, owner)?;
        } else {
            let p = self.resolve(&ensure, true)?;
            if !self.view.lookup(&p)?.is_some_and(|f| f.is_dir()) {
                return Err(FileOpError(format!("{ensure}: no such directory")));
            }
        }
        let rel = self.resolve(dest.trim_end_matches('/'), true)?;
        let found = self.view.lookup(&rel)?;
        Ok((rel, found))
    }

    fn copy_match(
        &mut self,
        ctx: &mut CopyCtx<'_>,
        named: &Path,
        followed: &Path,
        fi: &Found,
        a: &CopyAction,
    ) -> Result<(), FileOpError> {
        let (mut target, fi_dest) = self.dest_target(a, ctx.owner)?;
        let src_dir = fi.is_dir();
        let dest_is_dir = fi_dest.as_ref().is_some_and(|f| f.is_dir());
        if (!a.dir_contents_only && src_dir && fi_dest.is_some()) || (!src_dir && dest_is_dir) {
            let base = named
                .file_name()
                .or_else(|| followed.file_name())
                .map(|b| b.to_os_string())
                .unwrap_or_default();
            target.push(base);
        }
        let parent = if a.dir_contents_only && src_dir && fi_dest.is_none() {
            target.clone()
        } else {
            target.parent().map(Path::to_path_buf).unwrap_or_default()
        };
        let parent_s = format!("/{}", parent.display());
        let parent = self.mkdir_all(&parent_s, ctx.owner)?;
        let target = match target.file_name() {
            Some(n) if target != parent => parent.join(n),
            _ => parent,
        };
        self.copy_entry(ctx, followed, &target, fi, false, Path::new(""))
    }

    /// `--parents`: the source path (below the source root) is recreated under the destination
    /// directory, parents with the source's metadata.
    fn copy_with_parents(
        &mut self,
        ctx: &mut CopyCtx<'_>,
        named: &Path,
        followed: &Path,
        fi: &Found,
        a: &CopyAction,
    ) -> Result<(), FileOpError> {
        let (dest, _) = self.dest_target(
            &CopyAction {
                dest: format!("{}/", a.dest.trim_end_matches('/')),
                ..a.clone()
            },
            ctx.owner,
        )?;
        let mut src_cur = PathBuf::new();
        let mut dst_cur = dest.clone();
        let comps: Vec<_> = named.components().collect();
        // Parents above a `/./` pivot are not recreated (`COPY --parents a/./b/c /d/` gives
        // /d/b/c); a match always keeps at least its own name.
        let skip = parents_pivot_depth(&a.src).min(comps.len().saturating_sub(1));
        for (i, c) in comps.iter().enumerate() {
            src_cur.push(c);
            if i < skip {
                continue;
            }
            dst_cur.push(c);
            if i + 1 == comps.len() {
                break;
            }
            let sf = view::resolve(
                ctx.src.tree,
                &src_cur.to_string_lossy(),
                true,
                ctx.src.escape,
            )?;
            if let Some(pf) = ctx.src.tree.lookup(&sf)?
                && pf.is_dir()
                && self.view.lookup(&dst_cur)?.is_none()
            {
                self.copy_dir_only(ctx, &pf, &dst_cur, false)?;
            }
        }
        let _ = followed;
        self.copy_entry(ctx, followed, &dst_cur, fi, true, Path::new(""))
    }

    /// Creates (or, with `overwrite_meta`, updates) the directory `dst` for source dir `fi`.
    /// Returns whether it was created.
    fn copy_dir_only(
        &mut self,
        ctx: &CopyCtx<'_>,
        fi: &Found,
        dst: &Path,
        overwrite_meta: bool,
    ) -> Result<bool, FileOpError> {
        match self.view.lookup(dst)? {
            Some(f) if f.is_dir() => {
                self.ensure_upper_dir(dst)?;
                if overwrite_meta {
                    let abs = self.abs(dst);
                    let m = self.mode_for(ctx, fi);
                    fs::set_permissions(&abs, fs::Permissions::from_mode(m))
                        .map_err(|e| io_err("chmod", &abs, e))?;
                }
                Ok(false)
            }
            Some(_) => Err(FileOpError(format!(
                "cannot copy to non-directory: /{}",
                dst.display()
            ))),
            None => {
                self.clear_for_new(dst, true)?;
                self.create_copied_dir(ctx, fi, dst)?;
                Ok(true)
            }
        }
    }

    /// Makes directory `dst` for source dir `fi` where nothing is (cleared, or fresh).
    fn create_copied_dir(
        &mut self,
        ctx: &CopyCtx<'_>,
        fi: &Found,
        dst: &Path,
    ) -> Result<(), FileOpError> {
        let abs = self.abs(dst);
        match fs::create_dir(&abs) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err("create directory", &abs, e)),
        }
        self.apply_info(ctx, fi, &abs)?;
        self.invalidate_under(dst);
        Ok(())
    }

    fn mode_for(&self, ctx: &CopyCtx<'_>, fi: &Found) -> u32 {
        let perm = fi.meta.mode() & 0o7777;
        match &ctx.mode {
            Some(m) => m.apply(perm, fi.is_dir()),
            None => perm,
        }
    }

    /// Owner, mode, xattrs and times of a copied entry (a directory's mtime is set last).
    fn apply_info(&mut self, ctx: &CopyCtx<'_>, fi: &Found, abs: &Path) -> Result<(), FileOpError> {
        let (uid, gid) = Self::owner_for(ctx, fi);
        let symlink = fi.is_symlink();
        let mode = self.mode_for(ctx, fi);
        self.apply_meta(abs, uid, gid, Some(mode), symlink)?;
        copy_xattrs(&fi.abs, abs)?;
        if fi.is_dir() {
            self.deferred_times
                .push((abs.to_path_buf(), fi.meta.mtime(), fi.meta.mtime_nsec()));
        } else {
            self.set_mtime(abs, fi.meta.mtime(), fi.meta.mtime_nsec())?;
        }
        Ok(())
    }

    /// The owner a copied entry gets: `--chown`, else root for context files, else its own.
    fn owner_for(ctx: &CopyCtx<'_>, fi: &Found) -> (u32, u32) {
        ctx.owner.unwrap_or(if ctx.src.reset_owner {
            (0, 0)
        } else {
            (fi.meta.uid(), fi.meta.gid())
        })
    }

    /// Writes the pending files, then the hard links to them.
    fn flush_files(&mut self) -> Result<(), FileOpError> {
        let jobs = std::mem::take(&mut self.pending);
        write_files(&jobs, self.chown)?;
        for (first, abs) in std::mem::take(&mut self.pending_links) {
            fs::hard_link(&first, &abs).map_err(|e| io_err("hard link", &abs, e))?;
        }
        self.pending_dst.clear();
        Ok(())
    }

    /// Ends a copy: files written, then directory times (writing files changes them).
    fn finish_times(&mut self) -> Result<(), FileOpError> {
        self.flush_files()?;
        for (p, s, n) in std::mem::take(&mut self.deferred_times).into_iter().rev() {
            self.set_mtime(&p, s, n)?;
        }
        Ok(())
    }

    /// Copies the source entry `src_rel` (metadata `fi`) to `dst` (relative, resolved).
    fn copy_entry(
        &mut self,
        ctx: &mut CopyCtx<'_>,
        src_rel: &Path,
        dst: &Path,
        fi: &Found,
        overwrite_meta: bool,
        comp: &Path,
    ) -> Result<(), FileOpError> {
        self.copy_entry_in(ctx, src_rel, dst, fi, overwrite_meta, comp, false)
    }

    /// [`Staging::copy_entry`]; `fresh`: `dst`'s parent was created by this copy where no
    /// layer had anything, so nothing can be at `dst` (no lookups in the layers, nothing to
    /// clear): most of a COPY of a large tree into a new directory.
    #[allow(clippy::too_many_arguments)]
    fn copy_entry_in(
        &mut self,
        ctx: &mut CopyCtx<'_>,
        src_rel: &Path,
        dst: &Path,
        fi: &Found,
        overwrite_meta: bool,
        comp: &Path,
        fresh: bool,
    ) -> Result<(), FileOpError> {
        if !self.pending_dst.is_empty() && self.pending_dst.contains(&self.abs(dst)) {
            // The same destination twice in one copy: the earlier write must land first.
            self.flush_files()?;
        }
        if !comp.as_os_str().is_empty() && !ctx.excludes.is_empty() {
            let s = comp.to_string_lossy();
            if ctx.excludes.is_excluded(&s)
                && !(fi.is_dir() && ctx.excludes.could_reinclude_under(&s))
            {
                return Ok(());
            }
        }
        let ft = fi.meta.file_type();
        if !ft.is_dir() && !fresh {
            match self.view.lookup(dst)? {
                Some(f) if f.is_dir() => {
                    return Err(FileOpError(format!(
                        "cannot replace directory /{} with a file",
                        dst.display()
                    )));
                }
                _ => self.clear_for_new(dst, false)?,
            }
        }
        if ft.is_dir() {
            let created = if fresh {
                self.create_copied_dir(ctx, fi, dst)?;
                true
            } else {
                self.copy_dir_only(ctx, fi, dst, overwrite_meta)?
            };
            let names = ctx.src.tree.read_dir(src_rel)?.unwrap_or_default();
            for n in names {
                let child_src = src_rel.join(&n);
                let Some(cf) = ctx.src.tree.lookup(&child_src)? else {
                    continue;
                };
                let (child, child_comp) = (dst.join(&n), comp.join(&n));
                self.copy_entry_in(ctx, &child_src, &child, &cf, true, &child_comp, created)?;
            }
            if !created && overwrite_meta {
                let abs = self.abs(dst);
                self.apply_info(ctx, fi, &abs)?;
            }
            return Ok(());
        }
        let abs = self.abs(dst);
        if ft.is_file() {
            let key = (fi.meta.dev(), fi.meta.ino());
            if fi.meta.nlink() > 1
                && let Some(first) = ctx.links.get(&key)
            {
                if self.pending_dst.contains(first) {
                    self.pending_links.push((first.clone(), abs.clone()));
                    self.pending_dst.insert(abs);
                } else {
                    fs::hard_link(first, &abs).map_err(|e| io_err("hard link", &abs, e))?;
                }
                return Ok(());
            }
            if fi.meta.nlink() > 1 {
                ctx.links.insert(key, abs.clone());
            }
            let (uid, gid) = Self::owner_for(ctx, fi);
            self.pending.push(FileJob {
                from: fi.abs.clone(),
                to: abs.clone(),
                uid,
                gid,
                mode: self.mode_for(ctx, fi),
                mtime: (fi.meta.mtime(), fi.meta.mtime_nsec()),
                pool: self
                    .pool
                    .clone()
                    .map(|p| (p, dst.to_path_buf(), Stat::of(&fi.meta))),
            });
            self.pending_dst.insert(abs);
            return Ok(());
        } else if ft.is_symlink() {
            let target = fs::read_link(&fi.abs).map_err(|e| io_err("read link", &fi.abs, e))?;
            std::os::unix::fs::symlink(&target, &abs).map_err(|e| io_err("symlink", &abs, e))?;
        } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
            let kind = if ft.is_char_device() {
                rustix::fs::FileType::CharacterDevice
            } else if ft.is_block_device() {
                rustix::fs::FileType::BlockDevice
            } else {
                rustix::fs::FileType::Fifo
            };
            rustix::fs::mknodat(
                rustix::fs::CWD,
                &abs,
                kind,
                Mode::from_raw_mode(0o600),
                fi.meta.rdev(),
            )
            .map_err(|e| io_err("mknod", &abs, e))?;
        } else {
            // Sockets cannot be copied (nor stored in a tar).
            return Ok(());
        }
        self.apply_info(ctx, fi, &abs)?;
        Ok(())
    }

    /// ADD of a local archive: its entries land in the destination directory, keeping the
    /// archive's owners and modes (BuildKit ignores `--chown` and `--chmod` for archives).
    fn unpack(
        &mut self,
        reader: Box<dyn Read>,
        dest: &str,
        ctx: &CopyCtx<'_>,
        shown: &str,
    ) -> Result<(), FileOpError> {
        // The destination is made as a COPY would (owned by --chown); the entries keep theirs.
        let dest_rel = self.mkdir_all(dest.trim_end_matches('/'), ctx.owner)?;
        let parent = self.upper.parent().unwrap_or(&self.upper).to_path_buf();
        let tmp = tempfile::Builder::new()
            .prefix("unpack-")
            .tempdir_in(&parent)
            .map_err(|e| io_err("create temporary directory in", &parent, e))?;
        drydock_layer::apply(reader, tmp.path(), &drydock_layer::ApplyOptions::default())
            .map_err(|e| FileOpError(format!("ADD {shown}: unpacking the archive: {e}")))?;
        let plain = LayerStack::plain(tmp.path().to_path_buf());
        let src = Source {
            tree: &plain,
            escape: Escape::Clamp,
            reset_owner: false,
            what: format!("the archive {shown}"),
        };
        let mut sub = CopyCtx {
            src: &src,
            owner: None,
            mode: None,
            excludes: Dockerignore::default(),
            links: HashMap::new(),
        };
        for n in plain.read_dir(Path::new(""))?.unwrap_or_default() {
            let child = PathBuf::from(&n);
            let Some(f) = plain.lookup(&child)? else {
                continue;
            };
            self.copy_entry(&mut sub, &child, &dest_rel.join(&n), &f, true, &child)?;
        }
        self.finish_times()?;
        Ok(())
    }
}

/// How many leading components of a `COPY --parents` source sit above its `/./` pivot (0
/// without one; a leading `./` is not a pivot).
fn parents_pivot_depth(src: &str) -> usize {
    let mut rest = src.trim_start_matches('/');
    while let Some(r) = rest.strip_prefix("./") {
        rest = r.trim_start_matches('/');
    }
    match rest.find("/./") {
        Some(at) => view::components(&rest[..at]).len(),
        None => 0,
    }
}

/// The archive reader when `path` is a tar (plain, gzip, zstd, bzip2 or xz), else `None`.
fn open_archive(path: &Path) -> Result<Option<Box<dyn Read>>, FileOpError> {
    let mut head = [0u8; 512];
    let mut f = fs::File::open(path).map_err(|e| io_err("open", path, e))?;
    let n = read_up_to(&mut f, &mut head).map_err(|e| io_err("read", path, e))?;
    let head = &head[..n];
    let external = |tool: &str, args: &[&str]| -> Result<Option<Box<dyn Read>>, FileOpError> {
        let out = std::process::Command::new(tool)
            .args(args)
            .arg(path)
            .output()
            .map_err(|e| {
                FileOpError(format!(
                    "{tool} is needed to unpack {}: {e}",
                    path.display()
                ))
            })?;
        if !out.status.success() || !is_tar(&out.stdout) {
            return Ok(None);
        }
        Ok(Some(Box::new(io::Cursor::new(out.stdout))))
    };
    if head.starts_with(b"BZh") {
        return external("bzip2", &["-dc"]);
    }
    if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        return external("xz", &["-dc"]);
    }
    let f = fs::File::open(path).map_err(|e| io_err("open", path, e))?;
    let (comp, mut dec) =
        drydock_layer::decompress_detect(f).map_err(|e| io_err("read", path, e))?;
    let mut first = vec![0u8; 512];
    let got = match read_up_to(&mut dec, &mut first) {
        Ok(n) => n,
        Err(_) if comp != drydock_layer::Compression::None => return Ok(None),
        Err(e) => return Err(io_err("read", path, e)),
    };
    if !is_tar(&first[..got]) {
        return Ok(None);
    }
    let f = fs::File::open(path).map_err(|e| io_err("open", path, e))?;
    let (_, dec) = drydock_layer::decompress_detect(f).map_err(|e| io_err("read", path, e))?;
    Ok(Some(Box::new(dec)))
}

fn read_up_to(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A tar header: the checksum over the 512-byte block matches (with the checksum field as
/// spaces), as Docker's archive detection checks.
fn is_tar(block: &[u8]) -> bool {
    if block.len() < 512 {
        return false;
    }
    let field = &block[148..156];
    let s: String = field
        .iter()
        .take_while(|&&b| b != 0 && b != b' ')
        .map(|&b| b as char)
        .collect();
    let Ok(want) = u32::from_str_radix(s.trim(), 8) else {
        return false;
    };
    let mut sum: u32 = 0;
    for (i, &b) in block[..512].iter().enumerate() {
        sum += if (148..156).contains(&i) {
            b' ' as u32
        } else {
            b as u32
        };
    }
    sum == want && block.iter().any(|&b| b != 0)
}

#[cfg(test)]
mod tests {
    use super::parents_pivot_depth;

    #[test]
    fn parents_pivot_depth_counts_components_above_the_pivot() {
        for (src, want) in [
            ("x/y/a.txt", 0),
            ("./x/y/a.txt", 0),
            ("./x/./y/*.txt", 1),
            ("/a/b/./c", 2),
            ("a//b/./c/./d", 2),
            ("././a/./b", 1),
            ("a/./", 1),
        ] {
            assert_eq!(parents_pivot_depth(src), want, "{src}");
        }
    }
}
