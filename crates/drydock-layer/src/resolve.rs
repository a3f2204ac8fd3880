//! Opening directories inside a root without ever leaving it.
//!
//! Every path of a layer entry is resolved relative to the apply target with symlinks interpreted
//! as if the target were `/` (like `chroot`, containerd and Docker do), or, under
//! [`SymlinkPolicy::RejectEscapes`], refused when a symlink would lead out. The kernel does this
//! with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` (or `RESOLVE_BENEATH`); where
//! `openat2` is missing (Linux < 5.6, or a seccomp filter refuses it), a component-by-component
//! walk with `O_NOFOLLOW` and `readlinkat` does the same.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// What to do with a symlink in the parent path of a layer entry that points outside the target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SymlinkPolicy {
    /// Resolve it as if the target were the root directory (`/etc` means `TARGET/etc`, `..` at
    /// the top stays at the top), as Docker and containerd do. Nothing outside is ever touched.
    #[default]
    InRoot,
    /// Refuse the entry ([`crate::Reject::SymlinkEscape`]): any absolute symlink, or a `..` that
    /// would climb above the target.
    RejectEscapes,
}

#[derive(Debug)]
pub(crate) enum ResolveError {
    NotFound,
    NotDir,
    Escape,
    Io(io::Error),
}

impl From<Errno> for ResolveError {
    fn from(e: Errno) -> Self {
        match e {
            Errno::NOENT => ResolveError::NotFound,
            Errno::NOTDIR => ResolveError::NotDir,
            Errno::XDEV => ResolveError::Escape,
            e => ResolveError::Io(e.into()),
        }
    }
}

static OPENAT2_MISSING: AtomicBool = AtomicBool::new(false);

pub(crate) struct Root {
    pub fd: OwnedFd,
    policy: SymlinkPolicy,
    portable: bool,
}

const MAX_SYMLINKS: usize = 40;

impl Root {
    pub(crate) fn open(
        target: &std::path::Path,
        policy: SymlinkPolicy,
        portable: bool,
    ) -> io::Result<Self> {
        let fd = rustix::fs::open(
            target,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Root {
            fd,
            policy,
            portable,
        })
    }

    /// Opens the directory at `comps` (already free of `.`, `..` and empty components). With
    /// `readable` the fd can list the directory; otherwise it is an `O_PATH` fd, good for `*at`
    /// calls.
    pub(crate) fn open_dir(
        &self,
        comps: &[&[u8]],
        readable: bool,
    ) -> Result<OwnedFd, ResolveError> {
        let flags = if readable {
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC
        } else {
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC
        };
        if !self.portable && !OPENAT2_MISSING.load(Ordering::Relaxed) {
            let path = join(comps);
            let resolve = match self.policy {
                SymlinkPolicy::InRoot => ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
                SymlinkPolicy::RejectEscapes => ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
            };
            let path: &[u8] = if path.is_empty() { b"." } else { &path };
            let mut tries = 0;
            loop {
                match rustix::fs::openat2(&self.fd, path, flags, Mode::empty(), resolve) {
                    Ok(fd) => return Ok(fd),
                    // A concurrent rename; the kernel asks us to retry.
                    Err(Errno::AGAIN) if tries < 16 => tries += 1,
                    Err(Errno::NOSYS) | Err(Errno::PERM) => {
                        OPENAT2_MISSING.store(true, Ordering::Relaxed);
                        break;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        self.open_dir_portable(comps, readable)
    }

    fn open_dir_portable(&self, comps: &[&[u8]], readable: bool) -> Result<OwnedFd, ResolveError> {
        let root = rustix::fs::openat(
            &self.fd,
            ".",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let mut stack: Vec<OwnedFd> = vec![root];
        let mut queue: VecDeque<Vec<u8>> = comps.iter().map(|c| c.to_vec()).collect();
        let mut links = 0;
        while let Some(c) = queue.pop_front() {
            if c.is_empty() || c == b"." {
                continue;
            }
            if c == b".." {
                if stack.len() > 1 {
                    stack.pop();
                } else if self.policy == SymlinkPolicy::RejectEscapes {
                    return Err(ResolveError::Escape);
                }
                continue;
            }
            let cur = stack.last().expect("root stays on the stack");
            let st = rustix::fs::statat(cur, c.as_slice(), AtFlags::SYMLINK_NOFOLLOW)?;
            match FileType::from_raw_mode(st.st_mode) {
                FileType::Directory => {
                    let fd = rustix::fs::openat(
                        cur,
                        c.as_slice(),
                        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    )?;
                    stack.push(fd);
                }
                FileType::Symlink => {
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(ResolveError::Io(Errno::LOOP.into()));
                    }
                    let target = rustix::fs::readlinkat(cur, c.as_slice(), Vec::new())?;
                    let target = target.into_bytes();
                    if target.starts_with(b"/") {
                        if self.policy == SymlinkPolicy::RejectEscapes {
                            return Err(ResolveError::Escape);
                        }
                        stack.truncate(1);
                    }
                    for part in target.split(|&b| b == b'/').rev() {
                        queue.push_front(part.to_vec());
                    }
                }
                _ => return Err(ResolveError::NotDir),
            }
        }
        let last = stack.pop().expect("root stays on the stack");
        if readable {
            Ok(rustix::fs::openat(
                last.as_fd(),
                ".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )?)
        } else {
            Ok(last)
        }
    }
}

/// `a/b/c` from components.
pub(crate) fn join(comps: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(comps.iter().map(|c| c.len() + 1).sum());
    for (i, c) in comps.iter().enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        out.extend_from_slice(c);
    }
    out
}
