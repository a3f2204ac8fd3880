//! Fixtures for the sandbox integration tests: a busybox root file system built from Debian's
//! busybox-static, the init binary, and checks that nothing outlives a run.
#![allow(dead_code, clippy::print_stderr)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use drydock_sandbox::{Root, SandboxSpec, Stdio};

pub const INIT: &str = env!("CARGO_BIN_EXE_drydock-sandbox-init");
pub const BUSYBOX: &str = "/usr/bin/busybox";

fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// A precondition of a test: in CI a missing one fails the test; locally the test is skipped
/// with the reason printed.
pub fn require(ok: bool, what: &str) -> bool {
    if ok {
        return true;
    }
    if in_ci() {
        panic!("precondition missing in CI: {what}");
    }
    eprintln!("SKIPPED: {what}");
    false
}

/// Root and busybox-static: what almost every test here needs.
pub fn ready() -> bool {
    require(
        drydock_testkit::is_root(),
        "these sandbox tests run as root (CI runs them as root)",
    ) && require(
        Path::new(BUSYBOX).is_file(),
        "busybox-static is installed (apt-get install -y busybox-static)",
    )
}

/// A busybox root file system: /bin/busybox with applet symlinks, /etc/passwd and /etc/group
/// (root, app:1000 in wheel and audio), /tmp, /home/app, and the probe binary with its libraries.
pub fn busybox_rootfs(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    for d in ["bin", "etc", "tmp", "home/app", "root", "usr/bin"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::copy(BUSYBOX, root.join("bin/busybox")).unwrap();
    let list = Command::new(BUSYBOX).arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" && !applet.is_empty() {
            let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(applet));
        }
    }
    fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:App:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .unwrap();
    fs::write(
        root.join("etc/group"),
        "root:x:0:\nwheel:x:10:app\naudio:x:29:app\napp:x:1000:\nnogroup:x:65534:\n",
    )
    .unwrap();
    rustix::fs::chown(
        root.join("home/app"),
        Some(rustix::fs::Uid::from_raw(1000)),
        Some(rustix::fs::Gid::from_raw(1000)),
    )
    .unwrap();
    install_probe(&root);
    root
}

/// Copies the init binary (which has a `probe` mode) and the shared libraries it needs.
pub fn install_probe(root: &Path) {
    fs::copy(INIT, root.join("usr/bin/probe")).unwrap();
    let ldd = Command::new("ldd").arg(INIT).output().unwrap();
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        let path = line.split_whitespace().find(|w| w.starts_with('/'));
        if let Some(p) = path {
            let dst = root.join(p.trim_start_matches('/'));
            fs::create_dir_all(dst.parent().unwrap()).unwrap();
            fs::copy(p, &dst).unwrap();
        }
    }
}

pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub state: PathBuf,
}

impl Fixture {
    pub fn new() -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("drydock-sbx-test")
            .tempdir()
            .unwrap();
        let root = busybox_rootfs(tmp.path());
        let state = tmp.path().join("state");
        Self { tmp, root, state }
    }

    /// A spec running `sh -c script`, output captured.
    pub fn sh(&self, script: &str) -> SandboxSpec {
        self.spec(Root::Rootfs(self.root.clone()), ["/bin/sh", "-c", script])
    }

    pub fn spec<I: IntoIterator<Item = S>, S: Into<String>>(
        &self,
        root: Root,
        argv: I,
    ) -> SandboxSpec {
        let mut s = SandboxSpec::new(root, argv);
        s.init_binary = Some(PathBuf::from(INIT));
        s.state_dir = self.state.clone();
        s.stdout = Stdio::Capture;
        s.stderr = Stdio::Capture;
        s
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Host processes whose environment contains `marker`.
pub fn processes_with_env(marker: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(env) = fs::read(e.path().join("environ"))
            && env.split(|b| *b == 0).any(|kv| kv == marker.as_bytes())
        {
            out.push(pid);
        }
    }
    out
}

/// Mounts in this (the host's) mount namespace that mention `path`.
pub fn mounts_under(path: &Path) -> Vec<String> {
    let p = path.to_string_lossy().into_owned();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&p))
        .map(str::to_string)
        .collect()
}

/// cgroup directories named after a run.
pub fn cgroups_of(run_id: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let name = format!("drydock-{run_id}");
    fn walk(dir: &Path, name: &str, out: &mut Vec<PathBuf>, depth: usize) {
        if depth > 4 {
            return;
        }
        if let Ok(rd) = fs::read_dir(dir) {
            for e in rd.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    if e.file_name().to_string_lossy() == name {
                        out.push(e.path());
                    }
                    walk(&e.path(), name, out, depth + 1);
                }
            }
        }
    }
    walk(Path::new("/sys/fs/cgroup"), &name, &mut out, 0);
    out
}

/// Every file under `dir` (relative paths), and whether any file contains `needle`.
pub fn scan(dir: &Path, needle: &[u8]) -> (Vec<String>, bool) {
    let mut paths = Vec::new();
    let mut found = false;
    fn walk(base: &Path, dir: &Path, needle: &[u8], paths: &mut Vec<String>, found: &mut bool) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            paths.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            let md = fs::symlink_metadata(&p).unwrap();
            if md.is_dir() {
                walk(base, &p, needle, paths, found);
            } else if md.is_file()
                && !needle.is_empty()
                && let Ok(data) = fs::read(&p)
                && data.windows(needle.len()).any(|w| w == needle)
            {
                *found = true;
            }
        }
    }
    walk(dir, dir, needle, &mut paths, &mut found);
    paths.sort();
    (paths, found)
}

/// The run directories (not the trash being swept) under a state dir.
pub fn run_dirs(state: &Path) -> Vec<String> {
    fs::read_dir(state)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("run-"))
                .collect()
        })
        .unwrap_or_default()
}
