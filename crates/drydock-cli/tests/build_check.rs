//! `drydock build --check` end to end: a real binary on a real context directory.

mod common;

use std::process::Command;

fn drydock(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_drydock"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run drydock");
    common::outcome(&out)
}

#[test]
fn check_reports_ignored_copy_and_exits_zero_on_warnings() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM alpine\nCOPY *.log /logs/\nCOPY app /app\n",
    )
    .unwrap();
    std::fs::write(dir.path().join(".dockerignore"), "*.log\n").unwrap();
    std::fs::write(dir.path().join("a.log"), "x").unwrap();
    std::fs::write(dir.path().join("app"), "x").unwrap();
    let (code, stdout, stderr) = drydock(dir.path(), &["build", "--check", "."]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stderr.contains("warning[CopyIgnoredFile]"), "{stderr}");
    assert!(stderr.contains(" --> Dockerfile:2:6"), "{stderr}");
    assert!(stdout.contains("0 error(s), 1 warning(s)"), "{stdout}");
}

#[test]
fn check_fails_on_errors_and_on_promoted_warnings() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM alpine\nCOPY --from=${IMG} /a /b\n",
    )
    .unwrap();
    let (code, _, stderr) = drydock(dir.path(), &["build", "--check"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("error[from-not-expanded]") && stderr.contains("hint:"),
        "{stderr}"
    );

    std::fs::write(
        dir.path().join("Dockerfile"),
        "# check=error=true\nFROM alpine\nCMD run\n",
    )
    .unwrap();
    let (code, _, stderr) = drydock(dir.path(), &["build", "--check", "."]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("error[JSONArgsRecommended]"), "{stderr}");
}

#[test]
fn check_json_uses_dockerfile_specific_ignore_file_and_build_args() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("docker")).unwrap();
    std::fs::write(
        dir.path().join("docker/app.Dockerfile"),
        "ARG BASE=alpine\nFROM ${BASE}:3.19 AS build\nCOPY secret.txt /s\nFROM scratch\nCOPY --from=build /s /s\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("docker/app.Dockerfile.dockerignore"),
        "secret.txt\n",
    )
    .unwrap();
    std::fs::write(dir.path().join(".dockerignore"), "").unwrap();
    let (code, stdout, stderr) = drydock(
        dir.path(),
        &[
            "build",
            "--check",
            "--json",
            "-f",
            "docker/app.Dockerfile",
            "--build-arg",
            "BASE=debian",
            "--platform",
            "linux/arm64",
            ".",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["images"][0]["reference"], "docker.io/library/debian:3.19");
    assert_eq!(v["images"][0]["platform"], "linux/arm64/v8");
    assert_eq!(v["diagnostics"][0]["code"], "CopyIgnoredFile");
    assert_eq!(v["diagnostics"][0]["line"], 3);
    assert_eq!(v["plan"]["platform"], "linux/arm64");
}

#[test]
fn check_runs_nothing_and_needs_no_store() {
    // --check must work without a drydock home or any image: it only reads files.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM alpine\nRUN touch /should-not-run\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_drydock"))
        .current_dir(dir.path())
        .env("DRYDOCK_HOME", dir.path().join("no-such-home"))
        .args(["build", "--check", "."])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !dir.path().join("no-such-home").exists(),
        "--check must not create state"
    );
}
