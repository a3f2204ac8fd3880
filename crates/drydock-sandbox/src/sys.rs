//! The syscall seam. Everything the init does to the kernel goes through [`Sys`], so the
//! decision logic (mount plans, identity changes, capability and seccomp setup) runs against a
//! recording fake in unit tests; [`Linux`] is the real implementation and holds the crate's
//! `unsafe` blocks.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};

use crate::changes::{Stub, StubKind};
use crate::mounts::Create;
use crate::seccomp::Insn;

/// A resolved location inside the sandbox root, kept open so it cannot be swapped underneath.
#[derive(Debug)]
pub struct Target {
    fd: Option<OwnedFd>,
    path: PathBuf,
    pub is_dir: bool,
}

impl Target {
    /// A path that names this location for `mount(2)` and `open(2)`: `/proc/self/fd/N` for an
    /// open descriptor.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A target that is a plain path (for fakes).
    pub fn plain(path: PathBuf, is_dir: bool) -> Self {
        Self {
            fd: None,
            path,
            is_dir,
        }
    }
}

/// The kernel, as the init uses it.
pub trait Sys {
    fn mount(
        &self,
        source: Option<&str>,
        target: &Path,
        fstype: Option<&str>,
        flags: u64,
        data: Option<&str>,
    ) -> io::Result<()>;
    /// overlayfs at `target`; lowers topmost first.
    fn mount_overlay(
        &self,
        target: &Path,
        lowers: &[PathBuf],
        upper: &Path,
        work: &Path,
        userxattr: bool,
    ) -> io::Result<()>;
    /// Resolves `path` inside `root` (symlinks cannot leave it), creating what `create` asks for
    /// when missing; `Ok(None)` when `create` is [`Create::Existing`] and nothing is there.
    fn open_in_root(
        &self,
        root: &Path,
        path: &str,
        create: Create,
        stubs: &mut Vec<Stub>,
    ) -> io::Result<Option<Target>>;
    fn write_file(
        &self,
        path: &Path,
        contents: &[u8],
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> io::Result<()>;
    fn symlink_in_root(
        &self,
        root: &Path,
        path: &str,
        to: &str,
        stubs: &mut Vec<Stub>,
    ) -> io::Result<()>;
    /// Flags (`MS_NOSUID`...) of the mount holding `path`, to keep locked ones on remount.
    fn mount_flags(&self, path: &Path) -> io::Result<u64>;
    /// `pivot_root(root, root)`, detach the old root, `chdir("/")`.
    fn pivot_root(&self, root: &Path) -> io::Result<()>;

    fn unshare(&self, clone_flags: u32) -> io::Result<()>;
    fn sethostname(&self, name: &str) -> io::Result<()>;
    fn loopback_up(&self) -> io::Result<()>;
    fn set_groups(&self, groups: &[u32]) -> io::Result<()>;
    fn set_gid(&self, gid: u32) -> io::Result<()>;
    fn set_uid(&self, uid: u32) -> io::Result<()>;
    fn keep_caps(&self, keep: bool) -> io::Result<()>;
    fn drop_bounding_cap(&self, cap: u8) -> io::Result<()>;
    fn set_caps(&self, effective: u64, permitted: u64, inheritable: u64) -> io::Result<()>;
    fn clear_ambient_caps(&self) -> io::Result<()>;
    fn no_new_privs(&self) -> io::Result<()>;
    fn seccomp(&self, prog: &[Insn]) -> io::Result<()>;
    fn setrlimit(&self, resource: crate::RlimitResource, soft: u64, hard: u64) -> io::Result<()>;
    fn chdir(&self, path: &str) -> io::Result<()>;
}

fn cstr(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in string"))
}

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in path"))
}

fn errno_result(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The real kernel.
#[derive(Debug, Default, Clone, Copy)]
pub struct Linux;

fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

fn components(path: &str) -> Vec<&str> {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect()
}

impl Linux {
    fn resolve(&self, root_fd: &OwnedFd, rel: &str, flags: OFlags) -> io::Result<OwnedFd> {
        let rel = if rel.is_empty() { "." } else { rel };
        rustix::fs::openat2(
            root_fd,
            rel,
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(io::Error::from)
    }

    fn reopen_dir(&self, fd: &OwnedFd) -> io::Result<OwnedFd> {
        rustix::fs::open(
            fd_path(fd),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(Into::into)
    }
}

impl Sys for Linux {
    fn mount(
        &self,
        source: Option<&str>,
        target: &Path,
        fstype: Option<&str>,
        flags: u64,
        data: Option<&str>,
    ) -> io::Result<()> {
        let source = source.map(cstr).transpose()?;
        let target = cpath(target)?;
        let fstype = fstype.map(cstr).transpose()?;
        let data = data.filter(|d| !d.is_empty()).map(cstr).transpose()?;
        // SAFETY: every pointer is either null or a NUL-terminated string that outlives the call.
        let rc = unsafe {
            libc::mount(
                source.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
                target.as_ptr(),
                fstype.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
                flags as libc::c_ulong,
                data.as_ref()
                    .map_or(std::ptr::null(), |s| s.as_ptr().cast()),
            )
        };
        errno_result(rc)
    }

    fn mount_overlay(
        &self,
        target: &Path,
        lowers: &[PathBuf],
        upper: &Path,
        work: &Path,
        userxattr: bool,
    ) -> io::Result<()> {
        if let Some(opts) = crate::mounts::overlay_options(lowers, upper, work, userxattr) {
            return self.mount(Some("overlay"), target, Some("overlay"), 0, Some(&opts));
        }
        // Too many lower dirs for one page of options: the new mount API, one lower at a time.
        use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags};
        use rustix::mount::{
            fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount,
        };
        let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
        let mut keep = Vec::new();
        let mut short = |p: &Path| -> io::Result<String> {
            let s = p.to_string_lossy().into_owned();
            if s.len() < 250 {
                return Ok(s);
            }
            // fsconfig strings are limited to 256 bytes: name long paths through an fd.
            let fd = rustix::fs::open(
                p,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            let name = fd_path(&fd).to_string_lossy().into_owned();
            keep.push(fd);
            Ok(name)
        };
        for l in lowers {
            fsconfig_set_string(&fs, "lowerdir+", short(l)?)?;
        }
        fsconfig_set_string(&fs, "upperdir", short(upper)?)?;
        fsconfig_set_string(&fs, "workdir", short(work)?)?;
        for o in crate::mounts::overlay_fixed_options(false) {
            let (k, v) = o.split_once('=').unwrap_or((o, ""));
            fsconfig_set_string(&fs, k, v)?;
        }
        if userxattr {
            fsconfig_set_flag(&fs, "userxattr")?;
        }
        fsconfig_create(&fs)?;
        let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())?;
        move_mount(
            &mnt,
            "",
            rustix::fs::CWD,
            target,
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )?;
        drop(keep);
        Ok(())
    }

    fn open_in_root(
        &self,
        root: &Path,
        path: &str,
        create: Create,
        stubs: &mut Vec<Stub>,
    ) -> io::Result<Option<Target>> {
        let root_fd = rustix::fs::open(
            root,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let parts = components(path);
        let rel = parts.join("/");
        match self.resolve(&root_fd, &rel, OFlags::PATH) {
            Ok(fd) => {
                let is_dir = rustix::fs::fstat(&fd)?.st_mode & libc::S_IFMT == libc::S_IFDIR;
                return Ok(Some(Target {
                    path: fd_path(&fd),
                    fd: Some(fd),
                    is_dir,
                }));
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) && create != Create::Existing => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            Err(e) => return Err(e),
        }
        if parts.is_empty() {
            return Err(io::Error::other("cannot create the root itself"));
        }
        // Walk the path one component at a time, following symlinks by hand inside the root
        // (an absolute target restarts at the root, `..` stops at it) and creating what is
        // missing. Every directory in `cur` is a real directory, never a symlink.
        let mut pending: std::collections::VecDeque<String> =
            parts.iter().map(|p| p.to_string()).collect();
        let mut cur: Vec<String> = Vec::new();
        let mut links = 0;
        while let Some(comp) = pending.pop_front() {
            if comp == ".." {
                cur.pop();
                continue;
            }
            let dir = self.reopen_dir(&self.resolve(
                &root_fd,
                &cur.join("/"),
                OFlags::PATH | OFlags::DIRECTORY,
            )?)?;
            let last = pending.is_empty();
            match rustix::fs::statat(&dir, comp.as_str(), rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFLNK => {
                    links += 1;
                    if links > 40 {
                        return Err(io::Error::from_raw_os_error(libc::ELOOP));
                    }
                    let target = rustix::fs::readlinkat(&dir, comp.as_str(), Vec::new())?;
                    let target = target.to_string_lossy().into_owned();
                    if target.starts_with('/') {
                        cur.clear();
                    }
                    for c in components(&target).into_iter().rev() {
                        pending.push_front(c.to_string());
                    }
                }
                Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => cur.push(comp),
                Ok(_) if last => cur.push(comp),
                Ok(_) => return Err(io::Error::from_raw_os_error(libc::ENOTDIR)),
                Err(rustix::io::Errno::NOENT) => {
                    let kind = if last && create == Create::File {
                        rustix::fs::openat(
                            &dir,
                            comp.as_str(),
                            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
                            Mode::from_raw_mode(0o644),
                        )?;
                        StubKind::File
                    } else {
                        rustix::fs::mkdirat(&dir, comp.as_str(), Mode::from_raw_mode(0o755))?;
                        StubKind::Dir
                    };
                    cur.push(comp);
                    stubs.push(Stub {
                        path: format!("/{}", cur.join("/")),
                        kind,
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
        let rel = cur.join("/");
        let fd = self.resolve(&root_fd, &rel, OFlags::PATH)?;
        Ok(Some(Target {
            path: fd_path(&fd),
            fd: Some(fd),
            is_dir: create == Create::Dir,
        }))
    }

    fn write_file(
        &self,
        path: &Path,
        contents: &[u8],
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        f.write_all(contents)?;
        rustix::fs::fchown(
            f.as_fd(),
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
        )?;
        rustix::fs::fchmod(f.as_fd(), Mode::from_raw_mode(mode & 0o7777))?;
        Ok(())
    }

    fn symlink_in_root(
        &self,
        root: &Path,
        path: &str,
        to: &str,
        stubs: &mut Vec<Stub>,
    ) -> io::Result<()> {
        let parts = components(path);
        let Some((last, dirs)) = parts.split_last() else {
            return Err(io::Error::other("empty symlink path"));
        };
        let parent = self
            .open_in_root(root, &dirs.join("/"), Create::Dir, stubs)?
            .ok_or_else(|| io::Error::other("no parent"))?;
        let dir = self.reopen_dir(
            parent
                .fd
                .as_ref()
                .ok_or_else(|| io::Error::other("no fd"))?,
        )?;
        match rustix::fs::symlinkat(to, &dir, *last) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn mount_flags(&self, path: &Path) -> io::Result<u64> {
        let st = rustix::fs::statvfs(path)?;
        let f = st.f_flag;
        use rustix::fs::StatVfsMountFlags as F;
        let mut out = 0;
        for (flag, bit) in [
            (F::RDONLY, crate::mounts::MS_RDONLY),
            (F::NOSUID, crate::mounts::MS_NOSUID),
            (F::NODEV, crate::mounts::MS_NODEV),
            (F::NOEXEC, crate::mounts::MS_NOEXEC),
        ] {
            if f.contains(flag) {
                out |= bit;
            }
        }
        Ok(out)
    }

    fn pivot_root(&self, root: &Path) -> io::Result<()> {
        rustix::process::chdir(root)?;
        rustix::process::pivot_root(".", ".")?;
        // The old root is now stacked under the new one at "/": detach it.
        rustix::mount::unmount(".", rustix::mount::UnmountFlags::DETACH)?;
        rustix::process::chdir("/")?;
        Ok(())
    }

    fn unshare(&self, clone_flags: u32) -> io::Result<()> {
        // SAFETY: called from the single-threaded init, and never with CLONE_FILES, so no other
        // thread can observe a changed descriptor table.
        unsafe {
            rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::from_bits_retain(
                clone_flags,
            ))
        }
        .map_err(Into::into)
    }

    fn sethostname(&self, name: &str) -> io::Result<()> {
        rustix::system::sethostname(name.as_bytes()).map_err(Into::into)
    }

    fn loopback_up(&self) -> io::Result<()> {
        let sock = rustix::net::socket(
            rustix::net::AddressFamily::INET,
            rustix::net::SocketType::DGRAM,
            None,
        )?;
        // SAFETY: ifreq is plain old data; zeroed is a valid value.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        // SAFETY: SIOCGIFFLAGS reads the interface named in `req` and fills its flags field; the
        // pointer is valid for the duration of the call.
        errno_result(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) })?;
        // SAFETY: the union field written by SIOCGIFFLAGS is ifru_flags.
        unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
        // SAFETY: SIOCSIFFLAGS reads `req`, valid for the call.
        errno_result(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) })
    }

    fn set_groups(&self, groups: &[u32]) -> io::Result<()> {
        let gids: Vec<rustix::thread::Gid> = groups
            .iter()
            .map(|g| rustix::thread::Gid::from_raw(*g))
            .collect();
        rustix::thread::set_thread_groups(&gids).map_err(Into::into)
    }

    fn set_gid(&self, gid: u32) -> io::Result<()> {
        let g = rustix::thread::Gid::from_raw(gid);
        rustix::thread::set_thread_res_gid(g, g, g).map_err(Into::into)
    }

    fn set_uid(&self, uid: u32) -> io::Result<()> {
        let u = rustix::thread::Uid::from_raw(uid);
        rustix::thread::set_thread_res_uid(u, u, u).map_err(Into::into)
    }

    fn keep_caps(&self, keep: bool) -> io::Result<()> {
        rustix::thread::set_keep_capabilities(keep).map_err(Into::into)
    }

    fn drop_bounding_cap(&self, cap: u8) -> io::Result<()> {
        // SAFETY: PR_CAPBSET_DROP takes a capability number and no pointers.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) };
        match errno_result(rc) {
            // Capabilities this kernel does not know are not in the bounding set anyway.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
            r => r,
        }
    }

    fn set_caps(&self, effective: u64, permitted: u64, inheritable: u64) -> io::Result<()> {
        use rustix::thread::{CapabilitySet, CapabilitySets};
        rustix::thread::set_capabilities(
            None,
            CapabilitySets {
                effective: CapabilitySet::from_bits_retain(effective),
                permitted: CapabilitySet::from_bits_retain(permitted),
                inheritable: CapabilitySet::from_bits_retain(inheritable),
            },
        )
        .map_err(Into::into)
    }

    fn clear_ambient_caps(&self) -> io::Result<()> {
        // SAFETY: PR_CAP_AMBIENT_CLEAR_ALL takes no pointers.
        let rc = unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
                0,
                0,
                0,
            )
        };
        errno_result(rc)
    }

    fn no_new_privs(&self) -> io::Result<()> {
        rustix::thread::set_no_new_privs(true).map_err(Into::into)
    }

    fn seccomp(&self, prog: &[Insn]) -> io::Result<()> {
        let fprog = libc::sock_fprog {
            len: prog.len() as libc::c_ushort,
            // Insn is #[repr(C)] with the same layout as sock_filter.
            filter: prog.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: `fprog` points at `prog.len()` valid instructions for the duration of the call;
        // the kernel copies the program.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                1, /* SECCOMP_SET_MODE_FILTER */
                0,
                &fprog as *const libc::sock_fprog,
            )
        };
        errno_result(rc as libc::c_int)
    }

    fn setrlimit(&self, resource: crate::RlimitResource, soft: u64, hard: u64) -> io::Result<()> {
        use crate::RlimitResource as R;
        use rustix::process::Resource;
        let r = match resource {
            R::Core => Resource::Core,
            R::Cpu => Resource::Cpu,
            R::Data => Resource::Data,
            R::Fsize => Resource::Fsize,
            R::Nofile => Resource::Nofile,
            R::Nproc => Resource::Nproc,
            R::Stack => Resource::Stack,
            R::Memlock => Resource::Memlock,
            R::As => Resource::As,
        };
        let v = |x: u64| (x != u64::MAX).then_some(x);
        rustix::process::setrlimit(
            r,
            rustix::process::Rlimit {
                current: v(soft),
                maximum: v(hard),
            },
        )
        .map_err(Into::into)
    }

    fn chdir(&self, path: &str) -> io::Result<()> {
        rustix::process::chdir(path).map_err(Into::into)
    }
}

/// A fake kernel that records calls, for unit tests of the decision logic.
#[derive(Debug, Default)]
pub struct Recorder {
    pub calls: std::cell::RefCell<Vec<String>>,
    /// Paths (inside the root) that "exist" for `open_in_root`.
    pub existing: Vec<String>,
}

impl Recorder {
    fn log(&self, s: String) -> io::Result<()> {
        self.calls.borrow_mut().push(s);
        Ok(())
    }
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.calls.borrow_mut())
    }
}

impl Sys for Recorder {
    fn mount(
        &self,
        source: Option<&str>,
        target: &Path,
        fstype: Option<&str>,
        flags: u64,
        data: Option<&str>,
    ) -> io::Result<()> {
        self.log(format!(
            "mount {} {} {} {flags:#x} {}",
            source.unwrap_or("-"),
            target.display(),
            fstype.unwrap_or("-"),
            data.unwrap_or("")
        ))
    }
    fn mount_overlay(
        &self,
        target: &Path,
        lowers: &[PathBuf],
        _: &Path,
        _: &Path,
        userxattr: bool,
    ) -> io::Result<()> {
        self.log(format!(
            "overlay {} lowers={} userxattr={userxattr}",
            target.display(),
            lowers.len()
        ))
    }
    fn open_in_root(
        &self,
        root: &Path,
        path: &str,
        create: Create,
        stubs: &mut Vec<Stub>,
    ) -> io::Result<Option<Target>> {
        let exists = self.existing.iter().any(|e| e == path);
        if !exists {
            match create {
                Create::Existing => return Ok(None),
                Create::Dir => stubs.push(Stub {
                    path: path.to_string(),
                    kind: StubKind::Dir,
                }),
                Create::File => stubs.push(Stub {
                    path: path.to_string(),
                    kind: StubKind::File,
                }),
            }
        }
        Ok(Some(Target::plain(
            root.join(path.trim_start_matches('/')),
            create == Create::Dir,
        )))
    }
    fn write_file(
        &self,
        path: &Path,
        contents: &[u8],
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> io::Result<()> {
        self.log(format!(
            "write {} {}B {mode:o} {uid}:{gid}",
            path.display(),
            contents.len()
        ))
    }
    fn symlink_in_root(&self, _: &Path, path: &str, to: &str, _: &mut Vec<Stub>) -> io::Result<()> {
        self.log(format!("symlink {path} -> {to}"))
    }
    fn mount_flags(&self, _: &Path) -> io::Result<u64> {
        Ok(crate::mounts::MS_NOSUID)
    }
    fn pivot_root(&self, root: &Path) -> io::Result<()> {
        self.log(format!("pivot_root {}", root.display()))
    }
    fn unshare(&self, f: u32) -> io::Result<()> {
        self.log(format!("unshare {f:#x}"))
    }
    fn sethostname(&self, name: &str) -> io::Result<()> {
        self.log(format!("sethostname {name}"))
    }
    fn loopback_up(&self) -> io::Result<()> {
        self.log("lo up".into())
    }
    fn set_groups(&self, g: &[u32]) -> io::Result<()> {
        self.log(format!("setgroups {g:?}"))
    }
    fn set_gid(&self, gid: u32) -> io::Result<()> {
        self.log(format!("setresgid {gid}"))
    }
    fn set_uid(&self, uid: u32) -> io::Result<()> {
        self.log(format!("setresuid {uid}"))
    }
    fn keep_caps(&self, keep: bool) -> io::Result<()> {
        self.log(format!("keepcaps {keep}"))
    }
    fn drop_bounding_cap(&self, cap: u8) -> io::Result<()> {
        self.log(format!("capbset_drop {cap}"))
    }
    fn set_caps(&self, e: u64, p: u64, i: u64) -> io::Result<()> {
        self.log(format!("capset e={e:#x} p={p:#x} i={i:#x}"))
    }
    fn clear_ambient_caps(&self) -> io::Result<()> {
        self.log("ambient clear".into())
    }
    fn no_new_privs(&self) -> io::Result<()> {
        self.log("no_new_privs".into())
    }
    fn seccomp(&self, prog: &[Insn]) -> io::Result<()> {
        self.log(format!("seccomp {} insns", prog.len()))
    }
    fn setrlimit(&self, r: crate::RlimitResource, soft: u64, hard: u64) -> io::Result<()> {
        self.log(format!("setrlimit {r:?} {soft} {hard}"))
    }
    fn chdir(&self, path: &str) -> io::Result<()> {
        self.log(format!("chdir {path}"))
    }
}
