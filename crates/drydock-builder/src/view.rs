//! Read-only views of file-system states without mounting anything.
//!
//! A [`LayerStack`] is what overlayfs would show for a list of directories (topmost first):
//! lookups and listings honour whiteouts (0/0 character devices) and opaque directories
//! (`trusted.overlay.opaque` / `user.overlay.opaque`), the format the snapshot cache and staging
//! upper dirs use. The same type views the build context (one directory, no whiteouts).
//!
//! Paths are relative (`usr/bin/env`, empty for the root). [`resolve`] follows symlinks the way
//! a process inside the root would, never leaving it: `..` stops at the root and absolute
//! targets start from it; with [`Escape::Refuse`] either is an error instead (the build context).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

/// An entry found in a view: where its bytes live, and its metadata (`lstat`).
#[derive(Debug, Clone)]
pub struct Found {
    pub abs: PathBuf,
    pub meta: fs::Metadata,
    /// Index of the directory (in the stack) it came from.
    pub layer: usize,
}

impl Found {
    pub fn is_dir(&self) -> bool {
        self.meta.is_dir()
    }
    pub fn is_symlink(&self) -> bool {
        self.meta.file_type().is_symlink()
    }
}

/// Why a path could not be resolved.
#[derive(Debug)]
pub enum ViewError {
    /// A symlink (or `..`) would leave the root and the view refuses that.
    Escape {
        path: String,
        link: String,
    },
    /// Too many symlinks.
    Loop(String),
    /// A path goes through something that is not a directory.
    NotDir(String),
    Io(PathBuf, io::Error),
}

impl std::fmt::Display for ViewError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ViewError::Escape { path, link } => write!(
                f,
                "{path}: the symlink {link} points outside the build context"
            ),
            ViewError::Loop(p) => write!(f, "{p}: too many levels of symbolic links"),
            ViewError::NotDir(p) => write!(f, "{p}: not a directory"),
            ViewError::Io(p, e) => write!(f, "{}: {e}", p.display()),
        }
    }
}

/// What to do when a path would leave the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// Stay inside, as a process in a chroot would (`..` at the root is the root).
    Clamp,
    /// Refuse (the build context: a symlink out of it is an error).
    Refuse,
}

/// Whether `meta` is an overlayfs whiteout.
pub fn is_whiteout(meta: &fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// Whether the directory at `path` is marked opaque for overlayfs.
pub fn is_opaque(path: &Path) -> bool {
    let mut buf = [0u8; 4];
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|name| {
            rustix::fs::lgetxattr(path, *name, &mut buf[..]).is_ok_and(|n| buf[..n] == *b"y")
        })
}

fn lstat(p: &Path) -> io::Result<Option<fs::Metadata>> {
    match fs::symlink_metadata(p) {
        Ok(m) => Ok(Some(m)),
        Err(e)
            if e.kind() == io::ErrorKind::NotFound
                || e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error()) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Something paths can be looked up and listed in.
pub trait Tree {
    /// `lstat` of `rel` (no symlink following); `None` when it does not exist.
    fn lookup(&self, rel: &Path) -> Result<Option<Found>, ViewError>;
    /// The names in directory `rel`, sorted by bytes; `None` when it is not a directory.
    fn read_dir(&self, rel: &Path) -> Result<Option<Vec<OsString>>, ViewError>;
}

impl Tree for LayerStack {
    fn lookup(&self, rel: &Path) -> Result<Option<Found>, ViewError> {
        LayerStack::lookup(self, rel)
    }
    fn read_dir(&self, rel: &Path) -> Result<Option<Vec<OsString>>, ViewError> {
        LayerStack::read_dir(self, rel)
    }
}

/// Directories stacked like overlayfs lower dirs, topmost first.
pub struct LayerStack {
    layers: Vec<PathBuf>,
    /// Whether whiteouts and opaque markers mean anything (not for the build context).
    overlay: bool,
    /// Directory -> the layers that contribute to it (topmost first); `None`: not a directory.
    memo: RefCell<HashMap<PathBuf, Option<Rc<Vec<usize>>>>>,
}

impl std::fmt::Debug for LayerStack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayerStack")
            .field("layers", &self.layers)
            .finish()
    }
}

impl LayerStack {
    /// A view of overlayfs-format layer dirs, topmost first.
    pub fn new(layers_topmost_first: Vec<PathBuf>) -> Self {
        Self {
            layers: layers_topmost_first,
            overlay: true,
            memo: RefCell::new(HashMap::new()),
        }
    }

    /// A plain directory (no whiteout semantics).
    pub fn plain(dir: PathBuf) -> Self {
        Self {
            layers: vec![dir],
            overlay: false,
            memo: RefCell::new(HashMap::new()),
        }
    }

    pub fn layers(&self) -> &[PathBuf] {
        &self.layers
    }

    /// Forgets cached directory lookups (after the top layer changed).
    pub fn invalidate(&self) {
        self.memo.borrow_mut().clear();
    }

    /// Forgets cached lookups of `rel` and everything below it (after a directory appeared or
    /// disappeared there).
    pub fn invalidate_under(&self, rel: &Path) {
        if rel.as_os_str().is_empty() {
            return self.invalidate();
        }
        self.memo.borrow_mut().retain(|k, _| !k.starts_with(rel));
    }

    fn dir_layers(&self, rel: &Path) -> Result<Option<Rc<Vec<usize>>>, ViewError> {
        if rel.as_os_str().is_empty() {
            return Ok(Some(Rc::new((0..self.layers.len()).collect())));
        }
        if let Some(v) = self.memo.borrow().get(rel) {
            return Ok(v.clone());
        }
        let parent = rel.parent().unwrap_or(Path::new(""));
        let result = match self.dir_layers(parent)? {
            None => None,
            Some(candidates) => {
                let mut found = Vec::new();
                for &l in candidates.iter() {
                    let abs = self.layers[l].join(rel);
                    match lstat(&abs).map_err(|e| ViewError::Io(abs.clone(), e))? {
                        None => continue,
                        Some(m) if self.overlay && is_whiteout(&m) => break,
                        Some(m) if m.is_dir() => {
                            found.push(l);
                            if self.overlay && is_opaque(&abs) {
                                break;
                            }
                        }
                        Some(_) => break,
                    }
                }
                (!found.is_empty()).then(|| Rc::new(found))
            }
        };
        self.memo
            .borrow_mut()
            .insert(rel.to_path_buf(), result.clone());
        Ok(result)
    }

    /// `lstat` through the stack: the topmost entry at `rel`, or `None`.
    pub fn lookup(&self, rel: &Path) -> Result<Option<Found>, ViewError> {
        if rel.as_os_str().is_empty() {
            let abs = self.layers[0].clone();
            let meta = fs::symlink_metadata(&abs).map_err(|e| ViewError::Io(abs.clone(), e))?;
            return Ok(Some(Found {
                abs,
                meta,
                layer: 0,
            }));
        }
        let parent = rel.parent().unwrap_or(Path::new(""));
        let Some(cands) = self.dir_layers(parent)? else {
            return Ok(None);
        };
        for &l in cands.iter() {
            let abs = self.layers[l].join(rel);
            match lstat(&abs).map_err(|e| ViewError::Io(abs.clone(), e))? {
                None => continue,
                Some(m) if self.overlay && is_whiteout(&m) => return Ok(None),
                Some(meta) => {
                    return Ok(Some(Found {
                        abs,
                        meta,
                        layer: l,
                    }));
                }
            }
        }
        Ok(None)
    }

    /// The names in directory `rel`, sorted by bytes; `None` when it is not a directory.
    pub fn read_dir(&self, rel: &Path) -> Result<Option<Vec<OsString>>, ViewError> {
        let Some(layers) = self.dir_layers(rel)? else {
            return Ok(None);
        };
        let mut names: BTreeMap<Vec<u8>, bool> = BTreeMap::new();
        for &l in layers.iter() {
            let dir = self.layers[l].join(rel);
            let rd = match fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(ViewError::Io(dir, e)),
            };
            for e in rd {
                let e = e.map_err(|e| ViewError::Io(dir.clone(), e))?;
                let name = e.file_name().as_bytes().to_vec();
                if names.contains_key(&name) {
                    continue;
                }
                let visible = if self.overlay {
                    let ft = e.file_type().map_err(|err| ViewError::Io(e.path(), err))?;
                    !(ft.is_char_device()
                        && e.metadata()
                            .map_err(|err| ViewError::Io(e.path(), err))?
                            .rdev()
                            == 0)
                } else {
                    true
                };
                names.insert(name, visible);
            }
        }
        Ok(Some(
            names
                .into_iter()
                .filter(|(_, v)| *v)
                .map(|(n, _)| OsStr::from_bytes(&n).to_os_string())
                .collect(),
        ))
    }
}

/// Splits a path (absolute or relative, possibly with `.`/`..`) into normal components.
pub fn components(p: &str) -> Vec<OsString> {
    Path::new(p)
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

/// Resolves `path` in `view` following symlinks (the last component only when `follow_last`),
/// never leaving the root. Returns the canonical relative path; components that do not exist
/// are kept as they are.
pub fn resolve(
    view: &dyn Tree,
    path: &str,
    follow_last: bool,
    escape: Escape,
) -> Result<PathBuf, ViewError> {
    let mut queue: std::collections::VecDeque<OsString> = components(path).into();
    let mut stack: Vec<OsString> = Vec::new();
    let mut links = 0;
    let show = |stack: &[OsString], rest: &std::collections::VecDeque<OsString>| {
        let mut p = PathBuf::from("/");
        for c in stack.iter().chain(rest.iter()) {
            p.push(c);
        }
        p.display().to_string()
    };
    while let Some(c) = queue.pop_front() {
        if c == ".." {
            if stack.pop().is_none() && escape == Escape::Refuse {
                return Err(ViewError::Escape {
                    path: path.to_string(),
                    link: "..".into(),
                });
            }
            continue;
        }
        let mut cand: PathBuf = stack.iter().collect();
        cand.push(&c);
        if queue.is_empty() && !follow_last {
            stack.push(c);
            break;
        }
        match view.lookup(&cand)? {
            None => {
                // Missing: the rest cannot exist either; keep the names.
                stack.push(c);
                stack.extend(queue.drain(..).filter(|c| c != ".."));
                break;
            }
            Some(f) if f.is_symlink() => {
                links += 1;
                if links > 40 {
                    return Err(ViewError::Loop(path.to_string()));
                }
                let target = fs::read_link(&f.abs).map_err(|e| ViewError::Io(f.abs.clone(), e))?;
                let tb = target.as_os_str().as_bytes();
                if tb.starts_with(b"/") {
                    if escape == Escape::Refuse {
                        return Err(ViewError::Escape {
                            path: path.to_string(),
                            link: format!("{} -> {}", show(&stack, &[c].into()), target.display()),
                        });
                    }
                    stack.clear();
                }
                let before = stack.len();
                let mut parts = components(&target.to_string_lossy());
                if escape == Escape::Refuse {
                    // `..` beyond the root through this link is an escape.
                    let mut depth = before as isize;
                    for p in &parts {
                        if p == ".." {
                            depth -= 1;
                            if depth < 0 {
                                return Err(ViewError::Escape {
                                    path: path.to_string(),
                                    link: format!(
                                        "{} -> {}",
                                        show(&stack, &[c].into()),
                                        target.display()
                                    ),
                                });
                            }
                        } else {
                            depth += 1;
                        }
                    }
                }
                parts.reverse();
                for p in parts {
                    queue.push_front(p);
                }
            }
            Some(f) => {
                if !f.is_dir() && !queue.is_empty() {
                    return Err(ViewError::NotDir(show(&stack, &[c].into())));
                }
                stack.push(c);
            }
        }
    }
    Ok(stack.iter().collect())
}

/// Glob matching of one path component, as Go's `filepath.Match` does (`*`, `?`, `[...]`,
/// `\` escapes); `*` never matches `/`.
pub fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    fn class(p: &[u8], c: u8) -> Option<(bool, usize)> {
        // p starts after '['; returns (matched, bytes consumed including ']').
        let mut i = 0;
        let negate = matches!(p.first(), Some(b'^') | Some(b'!'));
        if negate {
            i += 1;
        }
        let mut matched = false;
        let mut first = true;
        while i < p.len() {
            if p[i] == b']' && !first {
                return Some((matched != negate, i + 1));
            }
            first = false;
            let mut lo = p[i];
            if lo == b'\\' && i + 1 < p.len() {
                i += 1;
                lo = p[i];
            }
            let mut hi = lo;
            if i + 2 < p.len() && p[i + 1] == b'-' && p[i + 2] != b']' {
                hi = p[i + 2];
                if hi == b'\\' && i + 3 < p.len() {
                    hi = p[i + 3];
                    i += 1;
                }
                i += 2;
            }
            if lo <= c && c <= hi {
                matched = true;
            }
            i += 1;
        }
        None
    }
    let (mut p, mut n) = (0usize, 0usize);
    let (mut star_p, mut star_n) = (usize::MAX, 0usize);
    while n < name.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star_p = p;
                    star_n = n;
                    p += 1;
                    continue;
                }
                b'?' if name[n] != b'/' => {
                    p += 1;
                    n += 1;
                    continue;
                }
                b'[' => {
                    if let Some((ok, used)) = class(&pattern[p + 1..], name[n])
                        && ok
                        && name[n] != b'/'
                    {
                        p += 1 + used;
                        n += 1;
                        continue;
                    }
                }
                b'\\' if p + 1 < pattern.len() && pattern[p + 1] == name[n] => {
                    p += 2;
                    n += 1;
                    continue;
                }
                c if c != b'\\' && c != b'?' && c == name[n] => {
                    p += 1;
                    n += 1;
                    continue;
                }
                _ => {}
            }
        }
        if star_p != usize::MAX && name[star_n] != b'/' {
            p = star_p + 1;
            star_n += 1;
            n = star_n;
            continue;
        }
        return false;
    }
    while p < pattern.len() && pattern[p] == b'*' {
        p += 1;
    }
    p == pattern.len()
}

/// Whether a path component holds glob metacharacters.
pub fn has_wildcard(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'*' | b'?' | b'[' => return true,
            _ => {}
        }
        i += 1;
    }
    false
}

/// Expands a source path with wildcards the way BuildKit does: the part before the first
/// component with a wildcard is resolved (following symlinks), the rest is matched against
/// paths below it (a matched directory is not descended into). Returns relative paths (as the
/// user would name them, below the resolved base), sorted.
pub fn expand_wildcards(
    view: &dyn Tree,
    src: &str,
    escape: Escape,
) -> Result<Vec<PathBuf>, ViewError> {
    let comps = components(src);
    let split = comps
        .iter()
        .position(|c| has_wildcard(&c.to_string_lossy()))
        .unwrap_or(comps.len());
    let base_str: PathBuf = comps[..split].iter().collect();
    if split == comps.len() {
        return Ok(vec![base_str]);
    }
    let base = resolve(view, &base_str.to_string_lossy(), true, escape)?;
    let pattern: Vec<&OsString> = comps[split..].iter().collect();
    let mut out = Vec::new();
    // Walk depth-first in sorted order, matching the relative path against the pattern
    // component by component.
    fn walk(
        view: &dyn Tree,
        dir: &Path,
        depth: usize,
        pattern: &[&OsString],
        rel: &Path,
        out: &mut Vec<PathBuf>,
    ) -> Result<(), ViewError> {
        let Some(names) = view.read_dir(dir)? else {
            return Ok(());
        };
        for n in names {
            if !glob_match(pattern[depth].as_bytes(), n.as_bytes()) {
                continue;
            }
            let child = dir.join(&n);
            let rel_child = rel.join(&n);
            if depth + 1 == pattern.len() {
                out.push(rel_child);
            } else if let Some(f) = view.lookup(&child)?
                && f.is_dir()
            {
                walk(view, &child, depth + 1, pattern, &rel_child, out)?;
            }
        }
        Ok(())
    }
    walk(view, &base, 0, &pattern, &base, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_like_go() {
        for (p, n, want) in [
            ("*.go", "main.go", true),
            ("*.go", "main.rs", false),
            ("a?c", "abc", true),
            ("[a-c]x", "bx", true),
            ("[!a-c]x", "bx", false),
            ("[^a]x", "bx", true),
            ("*", "", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("\\*", "*", true),
            ("\\*", "a", false),
            ("*", "a/b", false),
        ] {
            assert_eq!(glob_match(p.as_bytes(), n.as_bytes()), want, "{p} {n}");
        }
    }

    #[test]
    fn stack_honours_whiteouts_and_opaque_dirs() {
        let t = tempfile::tempdir().unwrap();
        let (lo, up) = (t.path().join("lo"), t.path().join("up"));
        fs::create_dir_all(lo.join("d/sub")).unwrap();
        fs::write(lo.join("d/a"), "a").unwrap();
        fs::write(lo.join("d/sub/x"), "x").unwrap();
        fs::write(lo.join("gone"), "g").unwrap();
        fs::create_dir_all(up.join("d")).unwrap();
        fs::write(up.join("d/b"), "b").unwrap();
        // A symlink inside: resolved in the view.
        std::os::unix::fs::symlink("/d/sub", up.join("link")).unwrap();
        std::os::unix::fs::symlink("../../..", up.join("up3")).unwrap();
        let v = LayerStack::new(vec![up.clone(), lo.clone()]);
        let names = |p: &str| -> Vec<String> {
            v.read_dir(Path::new(p))
                .unwrap()
                .unwrap()
                .into_iter()
                .map(|n| n.to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(names("d"), ["a", "b", "sub"]);
        assert_eq!(
            resolve(&v, "/link/x", true, Escape::Clamp).unwrap(),
            PathBuf::from("d/sub/x")
        );
        assert_eq!(
            resolve(&v, "up3/gone", true, Escape::Clamp).unwrap(),
            PathBuf::from("gone")
        );
        assert!(resolve(&v, "up3/gone", true, Escape::Refuse).is_err());
        assert!(resolve(&v, "link", true, Escape::Refuse).is_err());
        if rustix::process::geteuid().is_root() {
            // Whiteout and opaque markers need root (mknod, trusted xattrs).
            rustix::fs::mknodat(
                rustix::fs::CWD,
                up.join("gone"),
                rustix::fs::FileType::CharacterDevice,
                rustix::fs::Mode::from_raw_mode(0o600),
                0,
            )
            .unwrap();
            rustix::fs::setxattr(
                up.join("d"),
                "trusted.overlay.opaque",
                b"y",
                rustix::fs::XattrFlags::empty(),
            )
            .unwrap();
            v.invalidate();
            assert!(v.lookup(Path::new("gone")).unwrap().is_none());
            assert_eq!(names("d"), ["b"]);
            assert!(!names("").contains(&"gone".to_string()));
        }
        let w = expand_wildcards(&v, "/d/*", Escape::Clamp).unwrap();
        assert!(w.contains(&PathBuf::from("d/b")));
    }
}
