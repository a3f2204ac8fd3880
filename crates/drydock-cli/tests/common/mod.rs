//! Helpers shared by the CLI's integration tests: the `drydock` binary with a home of the
//! test's own, and its exit code and output as text.
// Each test binary uses some of these.
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `drydock` binary built for these tests.
pub const DRYDOCK: &str = env!("CARGO_BIN_EXE_drydock");

/// `drydock` with `home` as its `DRYDOCK_HOME` and without an inherited `SOURCE_DATE_EPOCH`
/// (image timestamps come from the test's own flags or context, never from the environment).
pub fn drydock(home: &Path) -> Command {
    let mut c = Command::new(DRYDOCK);
    c.env("DRYDOCK_HOME", home).env_remove("SOURCE_DATE_EPOCH");
    c
}

/// A finished command's exit code (-1 when a signal ended it), stdout and stderr, decoded
/// lossily.
pub fn outcome(out: &Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What the rootless tests need: root (to create the user), busybox, newuidmap/newgidmap,
/// runuser and useradd. `why` names the test's purpose in the message.
pub fn rootless_preconditions(why: &str) -> bool {
    drydock_testkit::require_root(why)
        && drydock_testkit::require_tool("/bin/busybox", "busybox-static").is_some()
        && drydock_testkit::require_tool("newuidmap", "uidmap").is_some()
        && drydock_testkit::require_tool("newgidmap", "uidmap").is_some()
        && drydock_testkit::require_tool("runuser", "util-linux").is_some()
        && drydock_testkit::require_tool("useradd", "passwd").is_some()
}

/// A finished drydock run: exit code, stdout, stderr.
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn text(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs the drydock binary with `home` as `DRYDOCK_HOME` in `dir`, as `user` (through
/// runuser) or as root; `user_home`, when given, is `HOME` (so git does not read root's).
pub fn run_as(
    user: Option<&str>,
    home: &Path,
    user_home: Option<&Path>,
    dir: &Path,
    args: &[&str],
) -> Out {
    let mut cmd = match user {
        Some(u) => {
            let mut c = Command::new("runuser");
            c.args(["-u", u, "--", DRYDOCK]);
            c
        }
        None => Command::new(DRYDOCK),
    };
    cmd.current_dir(dir)
        .env("DRYDOCK_HOME", home)
        .env_remove("SOURCE_DATE_EPOCH")
        .env_remove("DRYDOCK_REGISTRY_USER");
    if let Some(h) = user_home {
        cmd.env("HOME", h);
    }
    let out = cmd.args(args).output().unwrap();
    let (code, stdout, stderr) = outcome(&out);
    Out {
        code,
        stdout,
        stderr,
    }
}

/// A directory every user can enter (tempfile makes them 0700).
/// A scratch directory under /var/tmp that another user can enter (tempfile makes it 0700),
/// for tests that run drydock as an unprivileged user.
pub fn shared_scratch(prefix: &str) -> tempfile::TempDir {
    let tmp = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/var/tmp")
        .unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    tmp
}

pub fn open_dir(parent: &Path, name: &str) -> PathBuf {
    let d = parent.join(name);
    fs::create_dir_all(&d).unwrap();
    fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
    d
}

/// Makes busybox with `drydock kit busybox` as root in `root_home` and copies that store into
/// `user_home` (the unprivileged user cannot run the kit: it needs root).
pub fn seed_busybox(root_home: &Path, user_home: &Path) {
    let out = run_as(None, root_home, None, root_home, &["kit", "busybox"]);
    assert_eq!(out.code, 0, "{}", out.text());
    let st = Command::new("cp")
        .arg("-a")
        .arg(root_home.join("content"))
        .arg(user_home)
        .status()
        .unwrap();
    assert!(
        st.success(),
        "cp -a {} {}",
        root_home.display(),
        user_home.display()
    );
}

/// A git repository at `repo` (branch `main`) with `files` (relative path, content), committed.
pub fn commit_repo(repo: &Path, files: &[(&str, &str)]) {
    drydock_testkit::git(repo, &["init", "-q", "-b", "main"]);
    for (p, c) in files {
        let path = repo.join(p);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, c).unwrap();
    }
    drydock_testkit::git(repo, &["add", "-A"]);
    drydock_testkit::git(repo, &["commit", "-q", "-m", "initial"]);
}
