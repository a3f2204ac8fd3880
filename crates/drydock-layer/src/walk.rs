//! Reading a directory tree into a sorted list of nodes: lstat, link targets and xattrs.

use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::LayerError;

/// Decides whether a path goes into a layer: called with the path relative to the tree's root
/// (no leading `/`) and its `lstat` metadata. Returning `false` for a directory leaves out its
/// whole subtree.
pub type PathFilter = Arc<dyn Fn(&Path, &fs::Metadata) -> bool + Send + Sync>;

/// Extended attributes as (name, value) pairs.
pub(crate) type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeKind {
    File,
    Dir,
    Symlink,
    Char,
    Block,
    Fifo,
    Socket,
}

/// One filesystem object of a tree.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    /// Path relative to the root, `/`-separated, no leading or trailing `/`.
    pub rel: Vec<u8>,
    pub abs: PathBuf,
    pub kind: NodeKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: i64,
    pub rdev: u64,
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
    /// Symlink target (empty otherwise).
    pub link: Vec<u8>,
    /// All xattrs, sorted by name (policy about which go into a layer is the writer's).
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Node {
    pub(crate) fn from_path(
        rel: Vec<u8>,
        abs: PathBuf,
        meta: &fs::Metadata,
        read_xattrs: bool,
    ) -> Result<Self, LayerError> {
        let ft = meta.file_type();
        let kind = if ft.is_file() {
            NodeKind::File
        } else if ft.is_dir() {
            NodeKind::Dir
        } else if ft.is_symlink() {
            NodeKind::Symlink
        } else if ft.is_char_device() {
            NodeKind::Char
        } else if ft.is_block_device() {
            NodeKind::Block
        } else if ft.is_fifo() {
            NodeKind::Fifo
        } else {
            NodeKind::Socket
        };
        let link = if kind == NodeKind::Symlink {
            fs::read_link(&abs)
                .map_err(|e| LayerError::io(&abs, "reading symlink", e))?
                .into_os_string()
                .into_vec()
        } else {
            Vec::new()
        };
        let xattrs = if read_xattrs && kind != NodeKind::Socket {
            read_xattrs_of(&abs)?
        } else {
            Vec::new()
        };
        Ok(Node {
            rel,
            kind,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            size: if kind == NodeKind::File {
                meta.size()
            } else {
                0
            },
            mtime: meta.mtime(),
            rdev: meta.rdev(),
            dev: meta.dev(),
            ino: meta.ino(),
            nlink: meta.nlink(),
            link,
            xattrs,
            abs,
        })
    }

    pub(crate) fn xattr(&self, name: &[u8]) -> Option<&[u8]> {
        self.xattrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
}

use std::os::unix::ffi::OsStringExt;

fn unsupported(e: &rustix::io::Errno) -> bool {
    *e == rustix::io::Errno::NOTSUP || *e == rustix::io::Errno::OPNOTSUPP
}

/// The xattr names `list` (a `llistxattr` or `flistxattr` of one file) gives, NUL-separated,
/// the buffer grown until they fit; empty where the file system has no xattrs.
pub(crate) fn xattr_names(
    list: impl Fn(&mut [u8]) -> rustix::io::Result<usize>,
) -> rustix::io::Result<Vec<u8>> {
    let mut names = vec![0u8; 256];
    loop {
        match list(&mut names[..]) {
            Ok(n) => {
                names.truncate(n);
                return Ok(names);
            }
            Err(e) if unsupported(&e) => return Ok(Vec::new()),
            Err(rustix::io::Errno::RANGE) => {
                // An empty buffer asks for the size the list needs now.
                let want = list(&mut [])?;
                names.resize(want.max(names.len() * 2), 0);
            }
            Err(e) => return Err(e),
        }
    }
}

/// All xattrs of `path` (not following a final symlink), sorted by name.
pub(crate) fn read_xattrs_of(path: &Path) -> Result<Xattrs, LayerError> {
    let err = |e: rustix::io::Errno| LayerError::io(path, "reading xattrs", e.into());
    let names = xattr_names(|buf| rustix::fs::llistxattr(path, buf)).map_err(err)?;
    let mut out = Vec::new();
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name_os = std::ffi::OsStr::from_bytes(name);
        let mut value = vec![0u8; 256];
        let vlen = loop {
            match rustix::fs::lgetxattr(path, name_os, &mut value[..]) {
                Ok(n) => break Some(n),
                // Removed between list and get.
                Err(rustix::io::Errno::NODATA) => break None,
                Err(rustix::io::Errno::RANGE) => {
                    let want = rustix::fs::lgetxattr_query(path, name_os).map_err(err)?;
                    value.resize(want.max(value.len() * 2), 0);
                }
                Err(e) => return Err(err(e)),
            }
        };
        if let Some(vlen) = vlen {
            value.truncate(vlen);
            out.push((name.to_vec(), value));
        }
    }
    out.sort();
    Ok(out)
}

/// Walks `root` and returns every object below it (not `root` itself), sorted by [`path_cmp`], so
/// parents come before their children.
pub(crate) fn collect(
    root: &Path,
    filter: Option<&PathFilter>,
    read_xattrs: bool,
) -> Result<Vec<Node>, LayerError> {
    let meta = fs::symlink_metadata(root).map_err(|e| LayerError::io(root, "reading", e))?;
    if !meta.is_dir() {
        return Err(LayerError::io(
            root,
            "reading",
            io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
        ));
    }
    let mut nodes = Vec::new();
    let mut stack: Vec<(PathBuf, Vec<u8>)> = vec![(root.to_path_buf(), Vec::new())];
    while let Some((dir, rel_dir)) = stack.pop() {
        let rd = fs::read_dir(&dir).map_err(|e| LayerError::io(&dir, "listing directory", e))?;
        for ent in rd {
            let ent = ent.map_err(|e| LayerError::io(&dir, "listing directory", e))?;
            let name = ent.file_name();
            let abs = dir.join(&name);
            let mut rel = rel_dir.clone();
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(name.as_bytes());
            let meta = fs::symlink_metadata(&abs).map_err(|e| LayerError::io(&abs, "lstat", e))?;
            if let Some(f) = filter
                && !f(Path::new(std::ffi::OsStr::from_bytes(&rel)), &meta)
            {
                continue;
            }
            let node = Node::from_path(rel, abs, &meta, read_xattrs)?;
            if node.kind == NodeKind::Dir {
                stack.push((node.abs.clone(), node.rel.clone()));
            }
            nodes.push(node);
        }
    }
    nodes.sort_by(|a, b| path_cmp(&a.rel, &b.rel));
    Ok(nodes)
}

/// Path order: component by component, each compared by bytes (like `tar --sort=name`). A
/// directory's subtree comes right after it, before any sibling that sorts after it.
pub(crate) fn path_cmp(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let key = |c: &u8| if *c == b'/' { 0 } else { *c };
    a.iter().map(key).cmp(b.iter().map(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// More names than the first 256-byte buffer holds: the list is read again, larger.
    #[test]
    fn xattr_names_longer_than_the_first_buffer_are_all_read() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        std::fs::write(&f, b"").unwrap();
        let names: Vec<String> = (0..20)
            .map(|i| format!("user.a-rather-long-name-{i:02}"))
            .collect();
        for n in &names {
            rustix::fs::lsetxattr(&f, n.as_str(), b"v", rustix::fs::XattrFlags::empty()).unwrap();
        }
        let got: Vec<String> = read_xattrs_of(&f)
            .unwrap()
            .into_iter()
            .map(|(k, _)| String::from_utf8(k).unwrap())
            .collect();
        assert_eq!(got, names);
    }
}
