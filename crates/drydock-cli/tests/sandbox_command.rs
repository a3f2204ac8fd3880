//! `drydock sandbox run`: the drydock binary re-executes itself as the sandbox init.

use std::fs;
use std::path::Path;
use std::process::Command;

use drydock_testkit::{require_root, require_tool};

fn busybox_root(dir: &Path, busybox: &Path) -> std::path::PathBuf {
    let root = dir.join("rootfs");
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::copy(busybox, root.join("bin/busybox")).unwrap();
    for applet in ["sh", "echo", "cat", "id", "hostname"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    fs::write(root.join("etc/group"), "root:x:0:\n").unwrap();
    root
}

#[test]
fn sandbox_run_reexecs_drydock_as_init_and_returns_the_exit_code() {
    if !require_root("the sandbox command test") {
        return;
    }
    let Some(busybox) = require_tool("busybox", "busybox-static") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let root = busybox_root(tmp.path(), &busybox);
    let out = Command::new(env!("CARGO_BIN_EXE_drydock"))
        .env("DRYDOCK_HOME", tmp.path().join("home"))
        .args(["sandbox", "run", "--rootfs"])
        .arg(&root)
        .args(["--hostname", "cli-test", "--", "/bin/sh", "-c"])
        .arg("hostname; id -u; cat /proc/1/cmdline | tr '\\0' ' ' 2>/dev/null || cat /proc/1/cmdline; exit 3")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(3),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("cli-test\n0\n"), "{stdout}");
    // PID 1 in the sandbox is the drydock binary in its init role.
    assert!(stdout.contains("__drydock-sandbox-init"), "{stdout}");
    // Nothing is left in the state directory.
    let state = tmp.path().join("home/sandbox");
    let left: Vec<_> = fs::read_dir(&state)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "trash")
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(
        fs::read_dir(state.join("trash"))
            .map(|d| d.count())
            .unwrap_or(0),
        0
    );
}

#[test]
fn sandbox_is_hidden_from_help() {
    let out = Command::new(env!("CARGO_BIN_EXE_drydock"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("sandbox"));
    let out = Command::new(env!("CARGO_BIN_EXE_drydock"))
        .args(["sandbox", "run", "--help"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Internal"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
