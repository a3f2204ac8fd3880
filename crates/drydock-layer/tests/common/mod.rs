//! Test helpers: random trees, snapshots of trees, raw tar building.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use proptest::prelude::*;

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Skips (returns false) when a requirement is missing locally; fails loudly in CI.
pub fn require(cond: bool, what: &str) -> bool {
    if cond {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("CI is set but {what} is missing");
    }
    #[allow(clippy::print_stderr)]
    {
        eprintln!("skipping: {what} is missing");
    }
    false
}

pub fn have_tool(name: &str) -> bool {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    File(Vec<u8>),
    Dir,
    Symlink(Vec<u8>),
    /// Index into the specs made before: hard link to that one if it is a regular file.
    Hardlink(usize),
    Fifo,
}

#[derive(Debug, Clone)]
pub struct Spec {
    pub path: Vec<String>,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub xattr: Option<Vec<u8>>,
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_string()),
        Just("b".to_string()),
        Just("a-b".to_string()),
        Just("a.b".to_string()),
        Just("x y".to_string()),
        Just("ünï".to_string()),
        Just(".hidden".to_string()),
        Just("l".repeat(120)),
        "[a-z]{1,6}",
    ]
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..2000).prop_map(Kind::File),
        1 => Just(Kind::File(vec![7u8; 70_000])),
        3 => Just(Kind::Dir),
        2 => prop_oneof![
            Just(b"a".to_vec()),
            Just(b"../b".to_vec()),
            Just(b"/etc/passwd".to_vec()),
            Just("t".repeat(150).into_bytes())
        ]
        .prop_map(Kind::Symlink),
        1 => (0usize..20).prop_map(Kind::Hardlink),
        1 => Just(Kind::Fifo),
    ]
}

pub fn spec() -> impl Strategy<Value = Spec> {
    (
        prop::collection::vec(name(), 1..4),
        kind(),
        prop_oneof![
            Just(0o644u32),
            Just(0o755),
            Just(0o4755),
            Just(0o2750),
            Just(0o1777),
            Just(0o600)
        ],
        prop_oneof![Just(0u32), Just(1000), Just(65534), Just(3_000_000)],
        prop_oneof![Just(0u32), Just(100), Just(4_000_000)],
        prop_oneof![
            Just(0i64),
            Just(1_000_000_000),
            Just(1_700_000_000),
            Just(2_000_000_000)
        ],
        prop::option::of(prop::collection::vec(
            any::<u8>().prop_filter("tar crate splits PAX on newlines", |b| *b != b'\n'),
            0..40,
        )),
    )
        .prop_map(|(path, kind, mode, uid, gid, mtime, xattr)| Spec {
            path,
            kind,
            mode,
            uid,
            gid,
            mtime,
            xattr,
        })
}

pub fn tree() -> impl Strategy<Value = Vec<Spec>> {
    prop::collection::vec(spec(), 0..30)
}

fn set_mtime(p: &Path, mtime: i64) {
    let t = rustix::fs::Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        p,
        &rustix::fs::Timestamps {
            last_access: t,
            last_modification: t,
        },
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

/// Builds the tree described by `specs` under `root` (which exists). Later specs whose path is
/// taken or whose parent is not a directory are skipped.
pub fn build(root: &Path, specs: &[Spec]) {
    let root_user = is_root();
    let mut made: Vec<(PathBuf, &Spec)> = Vec::new();
    let mut files: Vec<PathBuf> = Vec::new();
    for s in specs {
        let mut p = root.to_path_buf();
        let mut ok = true;
        for c in &s.path[..s.path.len() - 1] {
            p.push(c);
            match fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    ok = false;
                    break;
                }
                Err(_) => {
                    fs::create_dir(&p).unwrap();
                }
            }
        }
        p.push(s.path.last().unwrap());
        if !ok || fs::symlink_metadata(&p).is_ok() {
            continue;
        }
        match &s.kind {
            Kind::File(data) => {
                fs::write(&p, data).unwrap();
                files.push(p.clone());
            }
            Kind::Dir => fs::create_dir(&p).unwrap(),
            Kind::Symlink(t) => symlink(std::ffi::OsStr::from_bytes(t), &p).unwrap(),
            Kind::Hardlink(i) => {
                if files.is_empty() {
                    continue;
                }
                fs::hard_link(&files[i % files.len()], &p).unwrap();
                continue; // metadata is the target's
            }
            Kind::Fifo => {
                rustix::fs::mknodat(
                    rustix::fs::CWD,
                    &p,
                    rustix::fs::FileType::Fifo,
                    rustix::fs::Mode::from_raw_mode(0o644),
                    0,
                )
                .unwrap();
            }
        }
        made.push((p, s));
    }
    // Metadata children first, so directory mtimes stick.
    for (p, s) in made.iter().rev() {
        let is_link = matches!(s.kind, Kind::Symlink(_));
        if root_user {
            std::os::unix::fs::lchown(p, Some(s.uid), Some(s.gid)).unwrap();
        }
        if !is_link {
            let mode = if matches!(s.kind, Kind::Dir) {
                s.mode | 0o700
            } else {
                s.mode
            };
            fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
            if let Some(x) = &s.xattr
                && !matches!(s.kind, Kind::Fifo)
            {
                rustix::fs::lsetxattr(p, "user.test", x, rustix::fs::XattrFlags::empty()).unwrap();
            }
        }
        set_mtime(p, s.mtime);
    }
    // Parents created implicitly get a fixed mtime too.
    fix_dir_mtimes(root);
}

fn fix_dir_mtimes(dir: &Path) {
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            fix_dir_mtimes(&e.path());
            set_mtime(&e.path(), 1_600_000_000);
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desc {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub content: Option<Vec<u8>>,
    pub link: Option<Vec<u8>>,
    pub rdev: u64,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// The first path (sorted) of this inode's hard-link group within the tree.
    pub group: Option<String>,
}

pub struct SnapOpts {
    pub mtimes: bool,
    pub dir_mtimes: bool,
    /// Clamp mtimes to this before comparing.
    pub epoch: Option<i64>,
}

impl Default for SnapOpts {
    fn default() -> Self {
        SnapOpts {
            mtimes: true,
            dir_mtimes: true,
            epoch: None,
        }
    }
}

pub fn snapshot(root: &Path) -> BTreeMap<String, Desc> {
    snapshot_with(root, &SnapOpts::default())
}

pub fn snapshot_with(root: &Path, o: &SnapOpts) -> BTreeMap<String, Desc> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), String> = BTreeMap::new();
    let mut paths = Vec::new();
    walk(root, root, &mut paths);
    paths.sort();
    for (rel, p) in paths {
        let m = fs::symlink_metadata(&p).unwrap();
        let ft = m.file_type();
        let kind = if ft.is_file() {
            "file"
        } else if ft.is_dir() {
            "dir"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_fifo() {
            "fifo"
        } else if ft.is_char_device() {
            "char"
        } else if ft.is_block_device() {
            "block"
        } else {
            "socket"
        };
        let group = if !ft.is_dir() && m.nlink() > 1 {
            Some(
                inodes
                    .entry((m.dev(), m.ino()))
                    .or_insert_with(|| rel.clone())
                    .clone(),
            )
        } else {
            None
        };
        let mut xattrs = Vec::new();
        if !ft.is_symlink() {
            let mut buf = vec![0u8; 4096];
            if let Ok(n) = rustix::fs::llistxattr(&p, &mut buf[..]) {
                for name in buf[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
                    if name.starts_with(b"security.selinux") {
                        continue;
                    }
                    let mut v = vec![0u8; 4096];
                    let k =
                        rustix::fs::lgetxattr(&p, std::ffi::OsStr::from_bytes(name), &mut v[..])
                            .unwrap();
                    v.truncate(k);
                    xattrs.push((name.to_vec(), v));
                }
            }
            xattrs.sort();
        }
        let mut mtime = m.mtime();
        if let Some(e) = o.epoch {
            mtime = mtime.min(e);
        }
        if !o.mtimes || (ft.is_dir() && !o.dir_mtimes) {
            mtime = 0;
        }
        out.insert(
            rel,
            Desc {
                kind,
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                mtime,
                content: ft.is_file().then(|| fs::read(&p).unwrap()),
                link: ft
                    .is_symlink()
                    .then(|| fs::read_link(&p).unwrap().as_os_str().as_bytes().to_vec()),
                rdev: if ft.is_char_device() || ft.is_block_device() {
                    m.rdev()
                } else {
                    0
                },
                xattrs,
                group,
            },
        );
    }
    out
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let is_dir = e.file_type().unwrap().is_dir();
        out.push((rel, p.clone()));
        if is_dir {
            walk(root, &p, out);
        }
    }
}

/// Raw tar building, for archives no well-behaved writer makes.
pub struct RawTar {
    pub bytes: Vec<u8>,
}

impl RawTar {
    pub fn new() -> Self {
        RawTar { bytes: Vec::new() }
    }

    fn header(
        &mut self,
        name: &[u8],
        flag: u8,
        mode: u32,
        size: usize,
        link: &[u8],
        dev: (u32, u32),
    ) {
        let mut h = [0u8; 512];
        let n = name.len().min(100);
        h[..n].copy_from_slice(&name[..n]);
        let oct = |f: &mut [u8], v: u64| {
            let w = f.len() - 1;
            let s = format!("{v:0w$o}");
            f[..w].copy_from_slice(s.as_bytes());
        };
        oct(&mut h[100..108], u64::from(mode));
        oct(&mut h[108..116], 0);
        oct(&mut h[116..124], 0);
        oct(&mut h[124..136], size as u64);
        oct(&mut h[136..148], 1_600_000_000);
        h[156] = flag;
        let l = link.len().min(100);
        h[157..157 + l].copy_from_slice(&link[..l]);
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        oct(&mut h[329..337], u64::from(dev.0));
        oct(&mut h[337..345], u64::from(dev.1));
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        let s = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(s.as_bytes());
        self.bytes.extend_from_slice(&h);
    }

    fn data(&mut self, data: &[u8]) {
        self.bytes.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.bytes.extend(std::iter::repeat_n(0u8, pad));
    }

    /// A PAX extended header for the next entry.
    pub fn pax(&mut self, records: &[(&[u8], &[u8])]) -> &mut Self {
        let mut body = Vec::new();
        for (k, v) in records {
            let rest = k.len() + v.len() + 3;
            let mut len = rest + 1;
            while len.to_string().len() + rest != len {
                len = len.to_string().len() + rest;
            }
            body.extend_from_slice(format!("{len} ").as_bytes());
            body.extend_from_slice(k);
            body.push(b'=');
            body.extend_from_slice(v);
            body.push(b'\n');
        }
        self.header(b"PaxHeader", b'x', 0o644, body.len(), b"", (0, 0));
        self.data(&body);
        self
    }

    /// A GNU long name for the next entry.
    pub fn gnu_longname(&mut self, name: &[u8]) -> &mut Self {
        let mut data = name.to_vec();
        data.push(0);
        self.header(b"././@LongLink", b'L', 0o644, data.len(), b"", (0, 0));
        self.data(&data);
        self
    }

    pub fn file(&mut self, name: &[u8], data: &[u8]) -> &mut Self {
        self.header(name, b'0', 0o644, data.len(), b"", (0, 0));
        self.data(data);
        self
    }

    pub fn dir(&mut self, name: &[u8]) -> &mut Self {
        self.header(name, b'5', 0o755, 0, b"", (0, 0));
        self
    }

    pub fn symlink(&mut self, name: &[u8], target: &[u8]) -> &mut Self {
        self.header(name, b'2', 0o777, 0, target, (0, 0));
        self
    }

    pub fn hardlink(&mut self, name: &[u8], target: &[u8]) -> &mut Self {
        self.header(name, b'1', 0o644, 0, target, (0, 0));
        self
    }

    pub fn device(&mut self, name: &[u8], flag: u8, major: u32, minor: u32) -> &mut Self {
        self.header(name, flag, 0o600, 0, b"", (major, minor));
        self
    }

    pub fn finish(&mut self) -> Vec<u8> {
        let mut b = self.bytes.clone();
        b.extend(std::iter::repeat_n(0u8, 1024));
        b
    }
}

impl Default for RawTar {
    fn default() -> Self {
        Self::new()
    }
}
