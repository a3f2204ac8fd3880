//! `write_tree`: a deterministic tar of a directory tree, and the entry emitter shared with the
//! diff functions.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use crate::error::LayerError;
use crate::tarfmt::{self, EntryType, HeaderSpec};
use crate::walk::{self, Node, NodeKind, PathFilter};

/// How [`write_tree`] (and the diff functions) write a tar.
#[derive(Clone, Default)]
pub struct TarOptions {
    /// `SOURCE_DATE_EPOCH`: every mtime becomes `min(mtime, epoch)`. `None` keeps mtimes (whole
    /// seconds either way; sub-second parts are never written).
    pub epoch: Option<i64>,
    /// Leaves out paths for which the filter returns `false` (a directory with its subtree).
    pub filter: Option<PathFilter>,
    /// Do not write xattrs at all. By default every xattr is written as a PAX
    /// `SCHILY.xattr.NAME` record, except overlayfs' own (`trusted.overlay.*`,
    /// `user.overlay.*`) and `security.selinux` (a label of the host's policy, not of the image).
    pub no_xattrs: bool,
}

impl std::fmt::Debug for TarOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TarOptions")
            .field("epoch", &self.epoch)
            .field("filter", &self.filter.as_ref().map(|_| "<fn>"))
            .field("no_xattrs", &self.no_xattrs)
            .finish()
    }
}

impl TarOptions {
    /// Options with mtimes clamped to `epoch`.
    pub fn with_epoch(epoch: i64) -> Self {
        TarOptions {
            epoch: Some(epoch),
            ..Default::default()
        }
    }

    /// Reads `SOURCE_DATE_EPOCH` from the environment (unset or unparsable: `None`).
    pub fn epoch_from_env() -> Option<i64> {
        std::env::var("SOURCE_DATE_EPOCH").ok()?.trim().parse().ok()
    }
}

/// What a tar write produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TarStats {
    /// Entries written (files, dirs, links, devices, fifos, whiteouts).
    pub entries: u64,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub hardlinks: u64,
    /// Character and block devices and fifos.
    pub specials: u64,
    pub whiteouts: u64,
    /// Sockets, which tar cannot hold.
    pub skipped: u64,
    /// Bytes of file content.
    pub content_bytes: u64,
    /// Bytes of tar written, trailer included.
    pub tar_bytes: u64,
}

/// Whether an xattr goes into a layer.
pub(crate) fn xattr_in_layer(name: &[u8]) -> bool {
    !(name.starts_with(b"trusted.overlay.")
        || name.starts_with(b"user.overlay.")
        || name == b"security.selinux")
}

/// Writes a deterministic tar of the tree under `root` (not including `root` itself) to `out`.
///
/// Entries are sorted by path, component by component, each compared by bytes (so a directory's
/// subtree follows it directly, as with `tar --sort=name`); directories end in `/`;
/// modes (with setuid/setgid/sticky), numeric uid/gid, mtimes (clamped to `opts.epoch`), symlink
/// targets, device numbers and xattrs are kept; no uname/gname/atime/ctime. The second and later
/// paths of a hard-linked inode, in sorted order, become hard-link entries to the first. Sockets
/// are skipped. The same tree gives the same bytes on any machine.
pub fn write_tree(root: &Path, out: impl Write, opts: &TarOptions) -> Result<TarStats, LayerError> {
    let nodes = walk::collect(root, opts.filter.as_ref(), !opts.no_xattrs)?;
    let mut em = Emitter::new(out, opts);
    for node in &nodes {
        em.node(node)?;
    }
    em.finish()
}

/// Writes tar entries one at a time, in the order given (the caller sorts).
pub(crate) struct Emitter<W: Write> {
    out: BufWriter<W>,
    epoch: Option<i64>,
    xattrs: bool,
    links: HashMap<(u64, u64), Vec<u8>>,
    buf: Vec<u8>,
    stats: TarStats,
}

const BUF: usize = 256 * 1024;

impl<W: Write> Emitter<W> {
    pub(crate) fn new(out: W, opts: &TarOptions) -> Self {
        Emitter {
            out: BufWriter::with_capacity(BUF, out),
            epoch: opts.epoch,
            xattrs: !opts.no_xattrs,
            links: HashMap::new(),
            buf: vec![0u8; BUF],
            stats: TarStats::default(),
        }
    }

    fn mtime(&self, mtime: i64) -> i64 {
        match self.epoch {
            Some(e) => mtime.min(e),
            None => mtime,
        }
    }

    fn header(&mut self, spec: &HeaderSpec<'_>) -> Result<(), LayerError> {
        let n = tarfmt::write_header(&mut self.out, spec).map_err(LayerError::Write)?;
        self.stats.tar_bytes += n;
        self.stats.entries += 1;
        Ok(())
    }

    /// An empty regular file named `rel` (a whiteout, `.wh.NAME` or `.wh..wh..opq`).
    pub(crate) fn whiteout(&mut self, rel: &[u8]) -> Result<(), LayerError> {
        let spec = HeaderSpec {
            path: rel,
            kind: EntryType::Regular,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: self.mtime(0),
            link: b"",
            dev_major: 0,
            dev_minor: 0,
            xattrs: &[],
        };
        self.header(&spec)?;
        self.stats.whiteouts += 1;
        Ok(())
    }

    pub(crate) fn node(&mut self, node: &Node) -> Result<(), LayerError> {
        let xattrs: Vec<(Vec<u8>, Vec<u8>)> = if self.xattrs {
            node.xattrs
                .iter()
                .filter(|(n, _)| xattr_in_layer(n))
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        let mut path = node.rel.clone();
        let mut link: &[u8] = b"";
        let mut size = 0;
        let kind = match node.kind {
            NodeKind::Socket => {
                self.stats.skipped += 1;
                return Ok(());
            }
            NodeKind::Dir => {
                path.push(b'/');
                self.stats.dirs += 1;
                EntryType::Directory
            }
            NodeKind::Symlink => {
                link = &node.link;
                self.stats.symlinks += 1;
                EntryType::Symlink
            }
            NodeKind::Char => EntryType::Char,
            NodeKind::Block => EntryType::Block,
            NodeKind::Fifo => EntryType::Fifo,
            NodeKind::File => EntryType::Regular,
        };
        let first_link;
        let kind = if node.nlink > 1 && node.kind != NodeKind::Dir {
            match self.links.get(&(node.dev, node.ino)) {
                Some(first) => {
                    first_link = first.clone();
                    link = &first_link;
                    self.stats.hardlinks += 1;
                    EntryType::HardLink
                }
                None => {
                    self.links.insert((node.dev, node.ino), node.rel.clone());
                    kind
                }
            }
        } else {
            kind
        };
        match kind {
            EntryType::Regular => {
                size = node.size;
                self.stats.files += 1;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => self.stats.specials += 1,
            _ => {}
        }
        let spec = HeaderSpec {
            path: &path,
            kind,
            mode: node.mode,
            uid: u64::from(node.uid),
            gid: u64::from(node.gid),
            size,
            mtime: self.mtime(node.mtime),
            link,
            dev_major: rustix::fs::major(node.rdev),
            dev_minor: rustix::fs::minor(node.rdev),
            xattrs: &xattrs,
        };
        self.header(&spec)?;
        if kind == EntryType::Regular {
            self.content(node)?;
        }
        Ok(())
    }

    fn content(&mut self, node: &Node) -> Result<(), LayerError> {
        use rustix::fs::{Mode, OFlags};
        let fd = rustix::fs::open(
            &node.abs,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY,
            Mode::empty(),
        )
        .map_err(|e| LayerError::io(&node.abs, "opening", e.into()))?;
        let mut file = File::from(fd);
        let mut left = node.size;
        while left > 0 {
            let want = left.min(self.buf.len() as u64) as usize;
            let n = match file.read(&mut self.buf[..want]) {
                Ok(0) => {
                    return Err(LayerError::Changed {
                        path: node.abs.clone(),
                        detail: format!(
                            "expected {} bytes, file ended after {}",
                            node.size,
                            node.size - left
                        ),
                    });
                }
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(LayerError::io(&node.abs, "reading", e)),
            };
            self.out
                .write_all(&self.buf[..n])
                .map_err(LayerError::Write)?;
            left -= n as u64;
        }
        // A file that grew would be cut short silently: refuse it instead.
        let mut probe = [0u8; 1];
        loop {
            match file.read(&mut probe) {
                Ok(0) => break,
                Ok(_) => {
                    return Err(LayerError::Changed {
                        path: node.abs.clone(),
                        detail: format!("grew past the {} bytes it had when listed", node.size),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(LayerError::io(&node.abs, "reading", e)),
            }
        }
        let pad = tarfmt::padding(node.size);
        self.out
            .write_all(&tarfmt::ZEROS[..pad])
            .map_err(LayerError::Write)?;
        self.stats.content_bytes += node.size;
        self.stats.tar_bytes += node.size + pad as u64;
        Ok(())
    }

    /// Writes the end-of-archive marker and flushes.
    pub(crate) fn finish(mut self) -> Result<TarStats, LayerError> {
        self.stats.tar_bytes += tarfmt::write_trailer(&mut self.out).map_err(LayerError::Write)?;
        self.out.flush().map_err(LayerError::Write)?;
        Ok(self.stats)
    }
}
