//! `drydock build` end to end with the real binary: image IDs, metadata files, error output
//! with a caret, standard-input contexts, and the build cache commands.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

struct Home(tempfile::TempDir);

impl Home {
    fn new() -> Option<Home> {
        if !drydock_testkit::require_root("drydock build (sandbox)") {
            return None;
        }
        drydock_testkit::require_tool("/bin/busybox", "busybox-static")?;
        let h = Home(
            tempfile::Builder::new()
                .prefix("drydock-cli-build-")
                .tempdir_in("/var/tmp")
                .unwrap(),
        );
        let (code, _, err) = h.run(Path::new("/"), &["kit", "busybox"], None);
        assert_eq!(code, 0, "{err}");
        Some(h)
    }

    fn run(&self, dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> (i32, String, String) {
        let mut child = common::drydock(self.0.path())
            .current_dir(dir)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(data) = stdin {
            input.write_all(data).unwrap();
        }
        drop(input);
        common::outcome(&child.wait_with_output().unwrap())
    }
}

#[test]
fn build_writes_iidfile_and_metadata_and_names_the_image() {
    let Some(h) = Home::new() else { return };
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nCOPY f /f\nRUN cat /f > /g\nCMD [\"cat\", \"/g\"]\n",
    )
    .unwrap();
    std::fs::write(ctx.path().join("f"), "x\n").unwrap();
    let (code, out, err) = h.run(
        ctx.path(),
        &[
            "build",
            "--progress=plain",
            "-t",
            "app:1",
            "-t",
            "app:latest",
            "--iidfile",
            "iid",
            "--metadata-file",
            "meta.json",
            ".",
        ],
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("#1 [2/3] COPY f /f"), "{err}");
    assert!(err.contains("DONE"), "{err}");
    let iid = std::fs::read_to_string(ctx.path().join("iid")).unwrap();
    assert!(iid.starts_with("sha256:"), "{iid}");
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ctx.path().join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["containerimage.config.digest"], iid.as_str());
    assert!(
        meta["containerimage.digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert_eq!(
        meta["image.name"],
        "docker.io/library/app:1,docker.io/library/app:latest"
    );
    // Warm: everything cached, same ID, `-q` prints only the ID.
    let (code, out, err) = h.run(ctx.path(), &["build", "-q", "-t", "app:1", "."], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), iid);
    let (code, out, _) = h.run(ctx.path(), &["images"], None);
    assert_eq!(code, 0);
    assert!(out.contains("app"), "{out}");
    // gc keeps the cache; prune --all drops it.
    let (code, _, err) = h.run(ctx.path(), &["gc", "--grace", "0s"], None);
    assert_eq!(code, 0, "{err}");
    let (_, _, err) = h.run(ctx.path(), &["build", "--progress=plain", "."], None);
    assert!(err.contains("CACHED"), "{err}");
    let (code, out, err) = h.run(ctx.path(), &["builder", "du"], None);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("2 records"), "{out}");
    let (code, out, err) = h.run(ctx.path(), &["builder", "prune", "--all"], None);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("removed 2 records"), "{out}");
}

#[test]
fn a_failing_step_shows_the_line_with_a_caret_and_its_output() {
    let Some(h) = Home::new() else { return };
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\n\nRUN echo preparing && echo broken >&2 && false\n",
    )
    .unwrap();
    let (code, _, err) = h.run(ctx.path(), &["build", "--progress=plain", "."], None);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(" > broken"), "{err}");
    assert!(err.contains("Dockerfile:3"), "{err}");
    assert!(err.contains("^^^"), "{err}");
    assert!(err.contains("exit code 1"), "{err}");
}

#[test]
fn dockerfile_and_context_from_standard_input() {
    let Some(h) = Home::new() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = h.run(
        dir.path(),
        &["build", "-q", "-"],
        Some(b"FROM busybox\nRUN echo from-stdin > /x\n"),
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("sha256:"), "{out}");
    // A tar on stdin is the context.
    let ctx = dir.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nCOPY data /data\n").unwrap();
    std::fs::write(ctx.join("data"), "d\n").unwrap();
    let tar = Command::new("tar")
        .arg("-c")
        .arg("-C")
        .arg(&ctx)
        .arg(".")
        .output()
        .unwrap();
    let (code, out, err) = h.run(dir.path(), &["build", "-q", "-"], Some(&tar.stdout));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("sha256:"), "{out}");
}
