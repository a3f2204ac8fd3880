//! `apply`: extract a layer tar onto an existing tree, with OCI whiteouts, never writing outside
//! the target.
//!
//! Path rules: a leading `/` is stripped (as Docker and containerd do), `.` and empty components
//! are dropped, and any `..` component refuses the entry. Every parent directory is opened through
//! [`crate::resolve`], so symlinks (including ones this layer just made) resolve inside the
//! target; the last component is never followed: an existing file, symlink or directory there is
//! replaced (a directory with its subtree, unless the new entry is a directory too), and files are
//! created with `O_EXCL | O_NOFOLLOW`. Symlink targets are stored as they are (they are data).

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Timestamps, Uid, XattrFlags};
use rustix::io::Errno;

use crate::error::{LayerError, Reject};
use crate::resolve::{ResolveError, Root, SymlinkPolicy, join};
use crate::tarread::{RawEntry, TarReader};

/// Entry kinds apply deals with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum T {
    Regular,
    Link,
    Symlink,
    Char,
    Block,
    Directory,
    Fifo,
}

/// What [`apply`] does with OCI whiteouts (`.wh.NAME`, `.wh..wh..opq`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Whiteouts {
    /// Apply them: remove what they hide from the target (extracting onto a lower tree).
    #[default]
    Apply,
    /// Record them in overlayfs format, for a layer extracted on its own into an empty directory
    /// that becomes an overlayfs lower dir: `.wh.NAME` becomes a character device 0/0 named
    /// `NAME`, `.wh..wh..opq` the xattr `trusted.overlay.opaque=y` on its directory (with
    /// `userxattr`, `user.overlay.opaque=y`, as a rootless overlayfs mount reads it). A directory
    /// this layer writes where it also whited out the old path is made opaque.
    Overlay { userxattr: bool },
}

/// How [`apply`] extracts.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Apply whiteouts, or keep them in overlayfs format.
    pub whiteouts: Whiteouts,
    /// Create character and block devices (otherwise they refuse the layer). Fifos are always
    /// allowed.
    pub allow_devices: bool,
    /// With `allow_devices` off: leave character and block devices out (their paths are listed
    /// in [`ApplyStats::skipped_devices`]) instead of refusing the layer. For extraction where
    /// devices cannot be made (a user namespace) and the caller warns about what is missing.
    pub skip_devices: bool,
    /// Restore numeric uid/gid: `Some(true)` always, `Some(false)` never, `None` when running as
    /// root.
    pub chown: Option<bool>,
    /// Do not restore xattrs. Otherwise PAX `SCHILY.xattr.*` records are set on files and
    /// directories (not on symlinks, devices or fifos), except overlayfs' own
    /// (`trusted.overlay.*`, `user.overlay.*`), which a layer must not be able to plant.
    pub no_xattrs: bool,
    /// What to do with symlinks in parent paths that point outside the target.
    pub symlinks: SymlinkPolicy,
    /// Resolve paths component by component even where `openat2` exists (the fallback path; for
    /// tests).
    #[doc(hidden)]
    pub portable_resolver: bool,
}

/// What an apply did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyStats {
    pub entries: u64,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub hardlinks: u64,
    /// Devices and fifos.
    pub specials: u64,
    /// `.wh.NAME` entries.
    pub whiteouts: u64,
    /// `.wh..wh..opq` entries.
    pub opaques: u64,
    /// Entries with nothing to do: the root directory, aufs metadata (`.wh..wh.*`), PAX global
    /// headers.
    pub skipped: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Devices left out under [`ApplyOptions::skip_devices`] (entry paths as in the tar).
    pub skipped_devices: Vec<String>,
}

const WH_PREFIX: &[u8] = b".wh.";
const WH_OPAQUE: &[u8] = b".wh..wh..opq";
const WH_META: &[u8] = b".wh..wh.";

/// Splits an entry path into components: leading `/`, `.` and empty components dropped, `..`
/// refused.
pub(crate) fn components(raw: &[u8]) -> Result<Vec<&[u8]>, Reject> {
    if raw.contains(&0) {
        return Err(Reject::Nul);
    }
    let mut out = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err(Reject::DotDot),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Metadata of one entry, with PAX overrides applied.
struct Meta {
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: i64,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

fn timestamps(mtime: i64) -> Timestamps {
    let t = rustix::fs::Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

struct Applier<'o> {
    root: Root,
    opts: &'o ApplyOptions,
    chown: bool,
    /// Paths written by this layer, and all their ancestors.
    written: HashSet<Vec<u8>>,
    /// Overlay mode: paths this layer whited out (a directory written there becomes opaque).
    whited: HashSet<Vec<u8>>,
    /// Directory modes and mtimes, set at the end (children change mtimes; read-only modes would
    /// stop non-root writers).
    deferred: Vec<(Vec<u8>, u32, i64)>,
    /// The last parent directory opened, by path.
    cache: Option<(Vec<u8>, OwnedFd)>,
    buf: Vec<u8>,
    stats: ApplyStats,
}

/// Extracts the uncompressed layer tar `reader` onto the existing directory `target`.
///
/// OCI whiteouts: `.wh.NAME` removes `NAME` as it was before this layer (a `NAME` written by this
/// layer itself stays), `.wh..wh..opq` removes everything in its directory that this layer did not
/// write; `.wh..wh.*` (aufs metadata) is ignored. Replacing a file by a directory and vice versa
/// works. Modes, mtimes, xattrs and (see [`ApplyOptions::chown`]) ownership are restored;
/// directory modes and mtimes at the end.
///
/// Refused, with [`LayerError::Rejected`] naming the entry, and nothing written for it: `..`
/// components, whiteouts of `.`/`..`, hard links to missing targets or directories, devices unless
/// allowed, entries below a non-directory, and under [`SymlinkPolicy::RejectEscapes`] parents
/// that go through an escaping symlink. Entries before the refused one stay applied: apply into a
/// fresh directory when all-or-nothing matters.
pub fn apply(
    reader: impl Read,
    target: &Path,
    opts: &ApplyOptions,
) -> Result<ApplyStats, LayerError> {
    let root = Root::open(target, opts.symlinks, opts.portable_resolver)
        .map_err(|e| LayerError::io(target, "opening the apply target", e))?;
    let mut a = Applier {
        root,
        opts,
        chown: opts
            .chown
            .unwrap_or_else(|| rustix::process::geteuid().is_root()),
        written: HashSet::new(),
        whited: HashSet::new(),
        deferred: Vec::new(),
        cache: None,
        buf: vec![0u8; 256 * 1024],
        stats: ApplyStats::default(),
    };
    let mut tr = TarReader::new(reader);
    let mut last: Option<String> = None;
    loop {
        let e = tr.next_entry().map_err(|e| LayerError::Read {
            entry: last.as_ref().map(|l| format!("after {l}")),
            source: e,
        })?;
        let Some(e) = e else { break };
        let name = String::from_utf8_lossy(&e.path).into_owned();
        a.entry(e, &mut tr, &name)?;
        last = Some(name);
    }
    a.finish()?;
    Ok(a.stats)
}

fn meta_of(e: &RawEntry) -> Meta {
    let mut xattrs = e.xattrs.clone();
    xattrs
        .retain(|(n, _)| !(n.starts_with(b"trusted.overlay.") || n.starts_with(b"user.overlay.")));
    Meta {
        mode: e.mode,
        uid: e.uid,
        gid: e.gid,
        mtime: e.mtime,
        xattrs,
    }
}

fn stat_leaf(dir: BorrowedFd<'_>, leaf: &[u8]) -> io::Result<Option<FileType>> {
    match rustix::fs::statat(dir, leaf, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(FileType::from_raw_mode(st.st_mode))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Removes `name` in `dir`, a directory with everything below it. Never follows symlinks.
pub(crate) fn remove_all_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => return Ok(()),
        Err(Errno::ISDIR) | Err(Errno::PERM) => {}
        Err(e) => return Err(e.into()),
    }
    let sub = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    for child in list_dir(sub.as_fd())? {
        remove_all_at(sub.as_fd(), &child)?;
    }
    match rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Names in a directory (readable fd), without `.` and `..`.
pub(crate) fn list_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for ent in rustix::fs::Dir::read_from(dir)? {
        let ent = ent?;
        let n = ent.file_name().to_bytes();
        if n != b"." && n != b".." {
            out.push(n.to_vec());
        }
    }
    Ok(out)
}

impl Applier<'_> {
    fn mark_written(&mut self, comps: &[&[u8]]) {
        for i in (1..=comps.len()).rev() {
            if !self.written.insert(join(&comps[..i])) {
                break;
            }
        }
    }

    fn resolve_err(&self, entry: &str, e: ResolveError) -> LayerError {
        match e {
            ResolveError::Escape => LayerError::Rejected {
                entry: entry.to_string(),
                reason: Reject::SymlinkEscape,
            },
            ResolveError::NotDir => LayerError::Rejected {
                entry: entry.to_string(),
                reason: Reject::ParentNotDirectory,
            },
            ResolveError::NotFound => LayerError::Apply {
                entry: entry.to_string(),
                op: "opening parent directory",
                source: Errno::NOENT.into(),
            },
            ResolveError::Io(source) => LayerError::Apply {
                entry: entry.to_string(),
                op: "opening parent directory",
                source,
            },
        }
    }

    /// Opens (creating missing directories, 0755 root-owned like tar does) the parent `comps`.
    fn parent(&mut self, comps: &[&[u8]], entry: &str) -> Result<OwnedFd, LayerError> {
        let key = join(comps);
        if let Some((k, fd)) = &self.cache
            && *k == key
        {
            return fd.try_clone().map_err(|e| LayerError::Apply {
                entry: entry.into(),
                op: "dup",
                source: e,
            });
        }
        let fd = match self.root.open_dir(comps, false) {
            Ok(fd) => fd,
            Err(ResolveError::NotFound) => {
                let mut fd = self
                    .root
                    .open_dir(&[], false)
                    .map_err(|e| self.resolve_err(entry, e))?;
                for i in 0..comps.len() {
                    fd = match self.root.open_dir(&comps[..=i], false) {
                        Ok(f) => f,
                        Err(ResolveError::NotFound) => {
                            match rustix::fs::mkdirat(&fd, comps[i], Mode::from_raw_mode(0o755)) {
                                Ok(()) | Err(Errno::EXIST) => {}
                                Err(e) => {
                                    return Err(LayerError::Apply {
                                        entry: entry.into(),
                                        op: "creating parent directory",
                                        source: e.into(),
                                    });
                                }
                            }
                            self.root
                                .open_dir(&comps[..=i], false)
                                .map_err(|e| self.resolve_err(entry, e))?
                        }
                        Err(e) => return Err(self.resolve_err(entry, e)),
                    };
                }
                fd
            }
            Err(e) => return Err(self.resolve_err(entry, e)),
        };
        let keep = fd.try_clone().map_err(|e| LayerError::Apply {
            entry: entry.into(),
            op: "dup",
            source: e,
        })?;
        self.cache = Some((key, keep));
        Ok(fd)
    }

    fn entry<R: Read>(
        &mut self,
        e: RawEntry,
        data: &mut TarReader<R>,
        name: &str,
    ) -> Result<(), LayerError> {
        self.stats.entries += 1;
        let rejected = |reason| LayerError::Rejected {
            entry: name.to_string(),
            reason,
        };
        let kind = match e.typeflag {
            b'0' | b'\0' | b'7' => T::Regular,
            b'1' => T::Link,
            b'2' => T::Symlink,
            b'3' => T::Char,
            b'4' => T::Block,
            b'5' => T::Directory,
            b'6' => T::Fifo,
            other => return Err(rejected(Reject::UnsupportedType(other))),
        };
        let comps = components(&e.path).map_err(rejected)?;
        let Some((&leaf, parent)) = comps.split_last() else {
            self.stats.skipped += 1;
            return Ok(());
        };
        if let Some(wh) = leaf.strip_prefix(WH_PREFIX) {
            return self.whiteout(parent, leaf, wh, name);
        }
        // Validate what can be validated before touching the filesystem.
        let link = match kind {
            T::Link => {
                let lc: Vec<Vec<u8>> = components(&e.link)
                    .map_err(rejected)?
                    .into_iter()
                    .map(|c| c.to_vec())
                    .collect();
                Some(lc)
            }
            T::Char | T::Block if !self.opts.allow_devices && self.opts.skip_devices => {
                self.stats.skipped_devices.push(name.to_string());
                return Ok(());
            }
            T::Char | T::Block if !self.opts.allow_devices => return Err(rejected(Reject::Device)),
            _ => None,
        };
        let meta = meta_of(&e);
        let dir = self.parent(parent, name)?;
        let dir = dir.as_fd();
        let apply_err = |op: &'static str, e: io::Error| LayerError::Apply {
            entry: name.to_string(),
            op,
            source: e,
        };
        let existing = stat_leaf(dir, leaf).map_err(|e| apply_err("stat", e))?;
        // Clear the way: anything but a directory where a directory goes.
        let is_dir = kind == T::Directory;
        if let Some(ft) = existing
            && !(is_dir && ft == FileType::Directory)
            && kind != T::Link
        {
            remove_all_at(dir, leaf).map_err(|e| apply_err("removing what was there", e))?;
        }
        match kind {
            T::Directory => {
                if existing != Some(FileType::Directory) {
                    rustix::fs::mkdirat(dir, leaf, Mode::from_raw_mode(0o700))
                        .map_err(|e| apply_err("mkdir", e.into()))?;
                }
                let fd = rustix::fs::openat(
                    dir,
                    leaf,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| apply_err("opening directory", e.into()))?;
                if existing == Some(FileType::Directory) && !self.opts.no_xattrs {
                    drop_stale_xattrs(fd.as_fd(), &meta.xattrs)
                        .map_err(|e| apply_err("removing an xattr", e))?;
                }
                self.owner_xattrs(fd.as_fd(), &meta, name)?;
                if self.whited.contains(&join(&comps)) {
                    self.set_opaque(fd.as_fd(), name)?;
                }
                self.deferred.push((join(&comps), meta.mode, meta.mtime));
                self.stats.dirs += 1;
            }
            T::Regular => {
                let fd = rustix::fs::openat(
                    dir,
                    leaf,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| apply_err("creating file", e.into()))?;
                let mut file = File::from(fd);
                loop {
                    let n = match data.read(&mut self.buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            return Err(LayerError::Read {
                                entry: Some(name.to_string()),
                                source: e,
                            });
                        }
                    };
                    file.write_all(&self.buf[..n])
                        .map_err(|e| apply_err("writing file", e))?;
                    self.stats.bytes += n as u64;
                }
                self.owner_xattrs(file.as_fd(), &meta, name)?;
                rustix::fs::fchmod(&file, Mode::from_raw_mode(meta.mode))
                    .map_err(|e| apply_err("chmod", e.into()))?;
                // chown (which clears setuid bits and capabilities) came first, then xattrs;
                // chmod keeps capabilities.
                rustix::fs::futimens(&file, &timestamps(meta.mtime))
                    .map_err(|e| apply_err("setting mtime", e.into()))?;
                self.stats.files += 1;
            }
            T::Symlink => {
                let target = &e.link;
                if target.contains(&0) {
                    return Err(rejected(Reject::Nul));
                }
                rustix::fs::symlinkat(target.as_slice(), dir, leaf)
                    .map_err(|e| apply_err("creating symlink", e.into()))?;
                self.leaf_meta(dir, leaf, &meta, false, name)?;
                self.stats.symlinks += 1;
            }
            T::Link => {
                let lc = link.expect("link components");
                let lc: Vec<&[u8]> = lc.iter().map(|c| c.as_slice()).collect();
                let target_name = String::from_utf8_lossy(&join(&lc)).into_owned();
                let Some((&tleaf, tparent)) = lc.split_last() else {
                    return Err(rejected(Reject::HardlinkToDirectory(target_name)));
                };
                let tdir = match self.root.open_dir(tparent, false) {
                    Ok(fd) => fd,
                    Err(ResolveError::NotFound) | Err(ResolveError::NotDir) => {
                        return Err(rejected(Reject::HardlinkTargetMissing(target_name)));
                    }
                    Err(e) => return Err(self.resolve_err(name, e)),
                };
                let tst = match rustix::fs::statat(&tdir, tleaf, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => st,
                    Err(Errno::NOENT) => {
                        return Err(rejected(Reject::HardlinkTargetMissing(target_name)));
                    }
                    Err(e) => return Err(apply_err("stat of hard link target", e.into())),
                };
                if FileType::from_raw_mode(tst.st_mode) == FileType::Directory {
                    return Err(rejected(Reject::HardlinkToDirectory(target_name)));
                }
                if existing.is_some() {
                    let same = rustix::fs::statat(dir, leaf, AtFlags::SYMLINK_NOFOLLOW)
                        .map(|st| st.st_ino == tst.st_ino && st.st_dev == tst.st_dev)
                        .unwrap_or(false);
                    if !same {
                        remove_all_at(dir, leaf)
                            .map_err(|e| apply_err("removing what was there", e))?;
                        rustix::fs::linkat(&tdir, tleaf, dir, leaf, AtFlags::empty())
                            .map_err(|e| apply_err("creating hard link", e.into()))?;
                    }
                } else {
                    rustix::fs::linkat(&tdir, tleaf, dir, leaf, AtFlags::empty())
                        .map_err(|e| apply_err("creating hard link", e.into()))?;
                }
                self.stats.hardlinks += 1;
            }
            T::Char | T::Block | T::Fifo => {
                let (ft, dev) = if kind == T::Fifo {
                    (FileType::Fifo, 0)
                } else {
                    let (major, minor) = (e.dev_major, e.dev_minor);
                    let ft = if kind == T::Char {
                        FileType::CharacterDevice
                    } else {
                        FileType::BlockDevice
                    };
                    (ft, rustix::fs::makedev(major, minor))
                };
                rustix::fs::mknodat(dir, leaf, ft, Mode::from_raw_mode(0o600), dev)
                    .map_err(|e| apply_err("mknod", e.into()))?;
                self.leaf_meta(dir, leaf, &meta, true, name)?;
                self.stats.specials += 1;
            }
        }
        self.mark_written(&comps);
        Ok(())
    }

    /// chown (when enabled) then xattrs, on an open file or directory.
    fn owner_xattrs(&self, fd: BorrowedFd<'_>, meta: &Meta, name: &str) -> Result<(), LayerError> {
        let apply_err = |op: &'static str, e: Errno| LayerError::Apply {
            entry: name.to_string(),
            op,
            source: e.into(),
        };
        if self.chown {
            rustix::fs::fchown(
                fd,
                Some(Uid::from_raw(meta.uid as u32)),
                Some(Gid::from_raw(meta.gid as u32)),
            )
            .map_err(|e| apply_err("chown", e))?;
        }
        if !self.opts.no_xattrs {
            for (k, v) in &meta.xattrs {
                match rustix::fs::fsetxattr(fd, k.as_slice(), v, XattrFlags::empty()) {
                    Ok(()) => {}
                    Err(Errno::NOTSUP) => {}
                    Err(e) => return Err(apply_err("setting xattr", e)),
                }
            }
        }
        Ok(())
    }

    /// Owner, mode (unless a symlink) and mtime of a leaf that cannot be opened.
    fn leaf_meta(
        &self,
        dir: BorrowedFd<'_>,
        leaf: &[u8],
        meta: &Meta,
        chmod: bool,
        name: &str,
    ) -> Result<(), LayerError> {
        let apply_err = |op: &'static str, e: Errno| LayerError::Apply {
            entry: name.to_string(),
            op,
            source: e.into(),
        };
        if self.chown {
            rustix::fs::chownat(
                dir,
                leaf,
                Some(Uid::from_raw(meta.uid as u32)),
                Some(Gid::from_raw(meta.gid as u32)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| apply_err("chown", e))?;
        }
        if chmod {
            rustix::fs::chmodat(dir, leaf, Mode::from_raw_mode(meta.mode), AtFlags::empty())
                .map_err(|e| apply_err("chmod", e))?;
        }
        rustix::fs::utimensat(
            dir,
            leaf,
            &timestamps(meta.mtime),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| apply_err("setting mtime", e))?;
        Ok(())
    }

    fn whiteout(
        &mut self,
        parent: &[&[u8]],
        leaf: &[u8],
        wh: &[u8],
        name: &str,
    ) -> Result<(), LayerError> {
        let apply_err = |op: &'static str, e: io::Error| LayerError::Apply {
            entry: name.to_string(),
            op,
            source: e,
        };
        self.cache = None;
        if let Whiteouts::Overlay { .. } = self.opts.whiteouts {
            return self.overlay_whiteout(parent, leaf, wh, name);
        }
        if leaf == WH_OPAQUE {
            self.stats.opaques += 1;
            let dir = match self.root.open_dir(parent, true) {
                Ok(fd) => fd,
                Err(ResolveError::NotFound) => return Ok(()),
                Err(e) => return Err(self.resolve_err(name, e)),
            };
            let mut path = join(parent);
            self.clear_unwritten(dir.as_fd(), &mut path)
                .map_err(|e| apply_err("making directory opaque", e))?;
            self.mark_written(parent);
            return Ok(());
        }
        if leaf.starts_with(WH_META) {
            self.stats.skipped += 1;
            return Ok(());
        }
        if wh.is_empty() || wh == b"." || wh == b".." {
            return Err(LayerError::Rejected {
                entry: name.to_string(),
                reason: Reject::BadWhiteout,
            });
        }
        self.stats.whiteouts += 1;
        let mut victim: Vec<&[u8]> = parent.to_vec();
        victim.push(wh);
        if self.written.contains(&join(&victim)) {
            // Whiteouts hide lower layers only.
            return Ok(());
        }
        let dir = match self.root.open_dir(parent, false) {
            Ok(fd) => fd,
            Err(ResolveError::NotFound) | Err(ResolveError::NotDir) => return Ok(()),
            Err(e) => return Err(self.resolve_err(name, e)),
        };
        remove_all_at(dir.as_fd(), wh).map_err(|e| apply_err("removing whited-out path", e))
    }

    /// The xattr name that marks an opaque directory for the configured overlayfs flavour.
    fn opaque_xattr(&self) -> &'static str {
        match self.opts.whiteouts {
            Whiteouts::Overlay { userxattr: true } => "user.overlay.opaque",
            _ => "trusted.overlay.opaque",
        }
    }

    fn set_opaque(&self, dir: BorrowedFd<'_>, name: &str) -> Result<(), LayerError> {
        let err = |e: Errno| LayerError::Apply {
            entry: name.to_string(),
            op: "setting the overlayfs opaque xattr",
            source: e.into(),
        };
        // `dir` may be an O_PATH descriptor, which xattr calls refuse: reopen it.
        let fd = rustix::fs::openat(
            dir,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(err)?;
        rustix::fs::fsetxattr(&fd, self.opaque_xattr(), b"y", XattrFlags::empty()).map_err(err)
    }

    /// Overlay mode: a whiteout becomes a 0/0 character device, an opaque marker an xattr.
    fn overlay_whiteout(
        &mut self,
        parent: &[&[u8]],
        leaf: &[u8],
        wh: &[u8],
        name: &str,
    ) -> Result<(), LayerError> {
        let apply_err = |op: &'static str, e: io::Error| LayerError::Apply {
            entry: name.to_string(),
            op,
            source: e,
        };
        if leaf == WH_OPAQUE {
            self.stats.opaques += 1;
            let dir = self.parent(parent, name)?;
            self.cache = None;
            if !parent.is_empty() {
                self.set_opaque(dir.as_fd(), name)?;
            }
            self.mark_written(parent);
            return Ok(());
        }
        if leaf.starts_with(WH_META) {
            self.stats.skipped += 1;
            return Ok(());
        }
        if wh.is_empty() || wh == b"." || wh == b".." {
            return Err(LayerError::Rejected {
                entry: name.to_string(),
                reason: Reject::BadWhiteout,
            });
        }
        self.stats.whiteouts += 1;
        let mut victim: Vec<&[u8]> = parent.to_vec();
        victim.push(wh);
        let key = join(&victim);
        let dir = self.parent(parent, name)?;
        self.cache = None;
        match stat_leaf(dir.as_fd(), wh).map_err(|e| apply_err("stat", e))? {
            // This layer wrote a directory there: it replaces the lower one entirely.
            Some(FileType::Directory) if self.written.contains(&key) => {
                let sub = rustix::fs::openat(
                    dir.as_fd(),
                    wh,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| apply_err("opening directory", e.into()))?;
                self.set_opaque(sub.as_fd(), name)?;
            }
            // Anything else this layer wrote hides the lower path by itself.
            Some(_) if self.written.contains(&key) => {}
            existing => {
                if existing.is_some() {
                    remove_all_at(dir.as_fd(), wh)
                        .map_err(|e| apply_err("removing what was there", e))?;
                }
                rustix::fs::mknodat(
                    dir.as_fd(),
                    wh,
                    FileType::CharacterDevice,
                    Mode::from_raw_mode(0o600),
                    rustix::fs::makedev(0, 0),
                )
                .map_err(|e| apply_err("creating an overlayfs whiteout", e.into()))?;
                self.whited.insert(key);
            }
        }
        Ok(())
    }

    /// Removes everything below `dir` (at `path`) that this layer did not write.
    fn clear_unwritten(&self, dir: BorrowedFd<'_>, path: &mut Vec<u8>) -> io::Result<()> {
        for child in list_dir(dir)? {
            let len = path.len();
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(&child);
            if !self.written.contains(path.as_slice()) {
                remove_all_at(dir, &child)?;
            } else if stat_leaf(dir, &child)? == Some(FileType::Directory) {
                let sub = rustix::fs::openat(
                    dir,
                    child.as_slice(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                self.clear_unwritten(sub.as_fd(), path)?;
            }
            path.truncate(len);
        }
        Ok(())
    }

    /// Directory modes and mtimes, last.
    fn finish(&mut self) -> Result<(), LayerError> {
        self.cache = None;
        let deferred = std::mem::take(&mut self.deferred);
        for (path, mode, mtime) in deferred {
            let comps: Vec<&[u8]> = path.split(|&b| b == b'/').collect();
            let (leaf, parent) = comps.split_last().expect("non-empty");
            let Ok(dir) = self.root.open_dir(parent, false) else {
                continue;
            };
            let Ok(fd) = rustix::fs::openat(
                &dir,
                *leaf,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ) else {
                continue;
            };
            let name = String::from_utf8_lossy(&path).into_owned();
            let apply_err = |op: &'static str, e: Errno| LayerError::Apply {
                entry: name.clone(),
                op,
                source: e.into(),
            };
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))
                .map_err(|e| apply_err("chmod", e))?;
            rustix::fs::futimens(&fd, &timestamps(mtime))
                .map_err(|e| apply_err("setting mtime", e))?;
        }
        Ok(())
    }
}

/// A directory entry describes the directory's whole metadata, but an existing directory is
/// kept rather than recreated (its children stay): so the xattrs a layer would carry and this
/// entry does not are removed, or a directory that lost an xattr in the upper tree would keep it
/// after apply. Overlayfs' own and SELinux xattrs are not layer content and are left alone.
fn drop_stale_xattrs(dir: BorrowedFd<'_>, keep: &[(Vec<u8>, Vec<u8>)]) -> io::Result<()> {
    let names = crate::walk::xattr_names(|buf| rustix::fs::flistxattr(dir, buf))?;
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        if crate::write::xattr_in_layer(name) && !keep.iter().any(|(k, _)| k == name) {
            match rustix::fs::fremovexattr(dir, name) {
                Ok(()) | Err(Errno::NODATA) | Err(Errno::NOTSUP) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}
