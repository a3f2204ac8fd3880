//! Diffs into layers: two trees compared file by file, or an overlayfs upper directory.
//!
//! Both produce a layer that, applied onto the lower tree, gives the upper tree. A changed or new
//! path is written with all its parent directories (with their upper metadata, so directory
//! modes and owners come along and plain `tar -x` works too); a deleted path becomes `.wh.NAME`
//! in its parent; a directory replaced by a non-directory (or the other way round) is just the new
//! entry, which [`crate::apply`] (like every OCI extractor) puts in place of the old one.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::LayerError;
use crate::walk::{self, Node, NodeKind};
use crate::write::{Emitter, TarOptions, TarStats, xattr_in_layer};

/// How the diff functions compare and write.
#[derive(Debug, Clone, Default)]
pub struct DiffOptions {
    /// How to write the tar (epoch, filter, xattrs).
    pub tar: TarOptions,
    /// Count a different mtime alone as a change. Off by default: content, mode, owner, xattrs,
    /// link target and device numbers decide.
    pub compare_mtime: bool,
}

fn same_xattrs(a: &Node, b: &Node) -> bool {
    let f = |n: &Node| -> Vec<(Vec<u8>, Vec<u8>)> {
        n.xattrs
            .iter()
            .filter(|(k, _)| xattr_in_layer(k))
            .cloned()
            .collect()
    };
    f(a) == f(b)
}

fn same_content(a: &Path, b: &Path) -> Result<bool, LayerError> {
    let mut fa = File::open(a).map_err(|e| LayerError::io(a, "opening", e))?;
    let mut fb = File::open(b).map_err(|e| LayerError::io(b, "opening", e))?;
    let mut ba = vec![0u8; 128 * 1024];
    let mut bb = vec![0u8; 128 * 1024];
    loop {
        let na = read_full(&mut fa, &mut ba).map_err(|e| LayerError::io(a, "reading", e))?;
        let nb = read_full(&mut fb, &mut bb).map_err(|e| LayerError::io(b, "reading", e))?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

fn read_full(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Whether `upper` is the same as `lower` for a layer.
fn unchanged(lower: &Node, upper: &Node, opts: &DiffOptions) -> Result<bool, LayerError> {
    if lower.kind != upper.kind
        || lower.mode != upper.mode
        || lower.uid != upper.uid
        || lower.gid != upper.gid
        || (opts.compare_mtime && lower.mtime != upper.mtime)
        || (!opts.tar.no_xattrs && !same_xattrs(lower, upper))
    {
        return Ok(false);
    }
    Ok(match upper.kind {
        NodeKind::File => lower.size == upper.size && same_content(&lower.abs, &upper.abs)?,
        NodeKind::Symlink => lower.link == upper.link,
        NodeKind::Char | NodeKind::Block => lower.rdev == upper.rdev,
        NodeKind::Dir | NodeKind::Fifo | NodeKind::Socket => true,
    })
}

fn parent_of(rel: &[u8]) -> &[u8] {
    match rel.iter().rposition(|&b| b == b'/') {
        Some(i) => &rel[..i],
        None => b"",
    }
}

fn child(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = parent.to_vec();
    if !p.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// Writes the upper nodes marked in `emit` plus `markers` (whiteout files), each with its parent
/// directories, sorted by path.
fn write_plan(
    upper: &[Node],
    mut emit: Vec<bool>,
    markers: Vec<Vec<u8>>,
    out: impl Write,
    opts: &DiffOptions,
) -> Result<TarStats, LayerError> {
    let index: HashMap<&[u8], usize> = upper
        .iter()
        .enumerate()
        .map(|(i, n)| (n.rel.as_slice(), i))
        .collect();
    // Hard-link groups travel together so links stay links.
    let mut groups: HashMap<(u64, u64), Vec<usize>> = HashMap::new();
    for (i, n) in upper.iter().enumerate() {
        if n.nlink > 1 && n.kind != NodeKind::Dir {
            groups.entry((n.dev, n.ino)).or_default().push(i);
        }
    }
    for members in groups.values() {
        if members.iter().any(|&i| emit[i]) {
            for &i in members {
                emit[i] = true;
            }
        }
    }
    let mut with_parents = emit.clone();
    let mark_parents = |rel: &[u8], with_parents: &mut Vec<bool>| {
        let mut p = parent_of(rel);
        while !p.is_empty() {
            match index.get(p) {
                Some(&i) if !with_parents[i] => with_parents[i] = true,
                _ => break,
            }
            p = parent_of(p);
        }
    };
    for (i, n) in upper.iter().enumerate() {
        if emit[i] {
            mark_parents(&n.rel, &mut with_parents);
        }
    }
    for m in &markers {
        mark_parents(m, &mut with_parents);
    }
    enum Item<'a> {
        Node(&'a Node),
        Marker(&'a [u8]),
    }
    let mut items: Vec<(&[u8], Item<'_>)> = upper
        .iter()
        .zip(&with_parents)
        .filter(|(_, e)| **e)
        .map(|(n, _)| (n.rel.as_slice(), Item::Node(n)))
        .collect();
    items.extend(markers.iter().map(|m| (m.as_slice(), Item::Marker(m))));
    items.sort_by(|a, b| walk::path_cmp(a.0, b.0));
    let mut em = Emitter::new(out, &opts.tar);
    for (_, item) in items {
        match item {
            Item::Node(n) => em.node(n)?,
            Item::Marker(m) => em.whiteout(m)?,
        }
    }
    em.finish()
}

/// Writes a layer tar of the changes from `lower` to `upper` (both plain directory trees): new and
/// changed paths, `.wh.NAME` for deleted ones. Applying it onto `lower` gives `upper` (minus
/// what `opts.tar.filter` leaves out).
pub fn diff_trees(
    lower: &Path,
    upper: &Path,
    out: impl Write,
    opts: &DiffOptions,
) -> Result<TarStats, LayerError> {
    let read_xattrs = !opts.tar.no_xattrs;
    let lower_nodes = walk::collect(lower, opts.tar.filter.as_ref(), read_xattrs)?;
    let upper_nodes = walk::collect(upper, opts.tar.filter.as_ref(), read_xattrs)?;
    let lower_map: HashMap<&[u8], &Node> =
        lower_nodes.iter().map(|n| (n.rel.as_slice(), n)).collect();
    let upper_kind: HashMap<&[u8], NodeKind> = upper_nodes
        .iter()
        .map(|n| (n.rel.as_slice(), n.kind))
        .collect();
    let mut emit = Vec::with_capacity(upper_nodes.len());
    for u in &upper_nodes {
        emit.push(match lower_map.get(u.rel.as_slice()) {
            None => true,
            Some(l) => !unchanged(l, u, opts)?,
        });
    }
    let mut markers = Vec::new();
    for l in &lower_nodes {
        if upper_kind.contains_key(l.rel.as_slice()) {
            continue;
        }
        let parent = parent_of(&l.rel);
        // Only the top of a deleted subtree, and not below something that is no longer a dir.
        if parent.is_empty() || upper_kind.get(parent) == Some(&NodeKind::Dir) {
            let name = &l.rel[parent.len() + usize::from(!parent.is_empty())..];
            let mut wh = b".wh.".to_vec();
            wh.extend_from_slice(name);
            markers.push(child(parent, &wh));
        }
    }
    write_plan(&upper_nodes, emit, markers, out, opts)
}

fn is_opaque(dir: &Path) -> bool {
    let mut buf = [0u8; 1];
    ["trusted.overlay.opaque", "user.overlay.opaque"].iter().any(|name| {
        matches!(rustix::fs::lgetxattr(dir, *name, &mut buf[..]), Ok(1) if buf[0] == b'y')
    })
}

/// The path as overlayfs shows it through `lowers` (topmost first, as in `lowerdir=`), or
/// `None` when it is absent there: no lower has it, or a higher lower hides it with a whiteout
/// (character device 0/0), a non-directory ancestor, or an opaque ancestor directory.
fn find_lower(
    lowers: &[PathBuf],
    rel: &[u8],
    read_xattrs: bool,
) -> Result<Option<Node>, LayerError> {
    use std::os::unix::ffi::OsStrExt;
    let comps: Vec<&[u8]> = rel.split(|&b| b == b'/').collect();
    for lower in lowers {
        let mut dir = lower.clone();
        let mut hides_below = false;
        for (i, c) in comps.iter().enumerate() {
            dir.push(std::ffi::OsStr::from_bytes(c));
            let meta = match fs::symlink_metadata(&dir) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) => return Err(LayerError::io(dir, "lstat", e)),
            };
            let whiteout = meta.file_type().is_char_device() && meta.rdev() == 0;
            if whiteout {
                return Ok(None);
            }
            if i + 1 == comps.len() {
                return Node::from_path(rel.to_vec(), dir, &meta, read_xattrs).map(Some);
            }
            if !meta.is_dir() {
                // A file where a parent should be: nothing below it, here or further down.
                return Ok(None);
            }
            hides_below |= is_opaque(&dir);
        }
        if hides_below {
            return Ok(None);
        }
    }
    Ok(None)
}

/// Writes a layer tar of an overlayfs upper directory: whiteouts (char device 0/0) become
/// `.wh.NAME`, opaque directories (xattr `trusted.overlay.opaque=y` or `user.overlay.opaque=y`)
/// get a `.wh..wh..opq`, and overlayfs' own xattrs are left out.
///
/// `lowers` (topmost first) are used only to leave out copied-up files and directories that did
/// not change (same content, mode, owner, xattrs; mtime if `opts.compare_mtime`); pass `&[]` to
/// write everything in `upper`. Lowers are read the way overlayfs reads them: whiteout devices,
/// opaque directories and non-directory parents hide what is below them. The upper must come from a mount without `redirect_dir` and
/// `metacopy` (the sandbox mounts that way): a redirect or metacopy xattr is an error.
pub fn diff_overlay_upper(
    upper: &Path,
    lowers: &[PathBuf],
    out: impl Write,
    opts: &DiffOptions,
) -> Result<TarStats, LayerError> {
    let nodes = walk::collect(upper, opts.tar.filter.as_ref(), true)?;
    let mut emit = Vec::with_capacity(nodes.len());
    let mut markers = Vec::new();
    let mut absent_dirs: std::collections::HashSet<&[u8]> = std::collections::HashSet::new();
    for n in &nodes {
        for prefix in [&b"trusted.overlay."[..], b"user.overlay."] {
            for what in [&b"redirect"[..], b"metacopy"] {
                let mut key = prefix.to_vec();
                key.extend_from_slice(what);
                if n.xattr(&key).is_some() {
                    return Err(LayerError::Unsupported {
                        path: n.abs.clone(),
                        reason: format!(
                            "overlayfs {} xattr: mount without redirect_dir/metacopy",
                            String::from_utf8_lossy(what)
                        ),
                    });
                }
            }
        }
        if n.kind == NodeKind::Char && n.rdev == 0 {
            let parent = parent_of(&n.rel);
            let name = &n.rel[parent.len() + usize::from(!parent.is_empty())..];
            let mut wh = b".wh.".to_vec();
            wh.extend_from_slice(name);
            markers.push(child(parent, &wh));
            emit.push(false);
            continue;
        }
        let opaque = n.kind == NodeKind::Dir
            && (n.xattr(b"trusted.overlay.opaque") == Some(b"y")
                || n.xattr(b"user.overlay.opaque") == Some(b"y"));
        if opaque {
            markers.push(child(&n.rel, b".wh..wh..opq"));
            emit.push(true);
            // What is below hides the lowers, so it goes in even where a lower has its twin.
            absent_dirs.insert(n.rel.as_slice());
            continue;
        }
        // Nodes come parents first: below a directory no lower shows, no lower shows anything,
        // so a new tree (a COPY into a new directory) costs no lookups in the lowers.
        let lower = if absent_dirs.contains(parent_of(&n.rel)) {
            None
        } else {
            find_lower(lowers, &n.rel, !opts.tar.no_xattrs)?
        };
        let changed = match lower {
            None => {
                if n.kind == NodeKind::Dir {
                    absent_dirs.insert(n.rel.as_slice());
                }
                true
            }
            Some(l) => !unchanged(&l, n, opts)?,
        };
        emit.push(changed);
    }
    write_plan(&nodes, emit, markers, out, opts)
}
