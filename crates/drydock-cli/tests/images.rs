//! End-to-end tests of the image commands (issue 2) against real peers: Debian's Docker
//! engine, skopeo and umoci. Each test has its own `DRYDOCK_HOME`.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use drydock_testkit::{Docker, require_root, require_tool, run, run_ok};

struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn drydock(&self) -> Command {
        common::drydock(&self.path().join("home"))
    }

    fn ok(&self, args: &[&str]) -> String {
        run_ok(self.drydock().args(args))
    }

    fn fails(&self, args: &[&str]) -> String {
        let out: Output = run(self.drydock().args(args));
        assert!(
            !out.status.success(),
            "drydock {args:?} should fail but succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn kit_busybox(&self, tag: &str) -> String {
        let out = self.ok(&["kit", "busybox", "--tag", tag]);
        out.split_whitespace()
            .nth(1)
            .expect("digest printed")
            .to_string()
    }
}

/// Every file under `root`: path -> (type, mode, size, content hash or link target).
fn tree(root: &Path) -> Vec<(String, String)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
        let mut entries: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap()).collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let m = fs::symlink_metadata(&p).unwrap();
            let desc = if m.file_type().is_symlink() {
                format!("link {}", fs::read_link(&p).unwrap().display())
            } else if m.is_dir() {
                walk(root, &p, out);
                format!("dir {:o}", m.mode() & 0o7777)
            } else {
                let data = fs::read(&p).unwrap();
                format!(
                    "file {:o} {} {:x}",
                    m.mode() & 0o7777,
                    data.len(),
                    crc(&data)
                )
            };
            out.push((rel, desc));
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn crc(data: &[u8]) -> u32 {
    // FNV-1a is plenty to compare two trees in a test.
    data.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

#[test]
fn kit_busybox_is_reproducible_across_stores() {
    if !require_root("kit busybox") || require_tool("/bin/busybox", "busybox-static").is_none() {
        return;
    }
    let (a, b) = (Home::new(), Home::new());
    let da = a.kit_busybox("busybox:latest");
    let db = b.kit_busybox("busybox:latest");
    assert_eq!(da, db, "two kit runs must give the same manifest digest");
    // A different epoch is a different image.
    let other = run_ok(
        b.drydock()
            .args(["kit", "busybox", "--tag", "bb:epoch"])
            .env("SOURCE_DATE_EPOCH", "1700000000"),
    );
    assert_ne!(other.split_whitespace().nth(1).unwrap(), da);
}

#[test]
fn busybox_archive_is_loaded_and_run_by_docker() {
    if !require_root("kit busybox") {
        return;
    }
    let Some(docker) = Docker::ensure() else {
        return;
    };
    let home = Home::new();
    let name = format!("drydock-test/bb-run:{}", std::process::id());
    home.kit_busybox(&name);
    let archive = home.path().join("bb.tar");
    home.ok(&[
        "copy",
        &format!("local:{name}"),
        &format!("docker-archive:{}", archive.display()),
    ]);
    let loaded = run_ok(docker.cmd().args(["load", "-i"]).arg(&archive));
    assert!(loaded.contains(&name), "docker load output: {loaded}");
    let out = run_ok(docker.cmd().args([
        "run",
        "--rm",
        &name,
        "sh",
        "-c",
        "echo hello from $(cat /etc/passwd | head -c 4); ls /bin /sbin /usr/bin /usr/sbin | wc -l",
    ]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "hello from root");
    assert!(
        lines[1].trim().parse::<u32>().unwrap() > 250,
        "applet links present: {out}"
    );
    // Docker's image ID is our config digest.
    let id = run_ok(
        docker
            .cmd()
            .args(["image", "inspect", "--format", "{{.Id}}", &name]),
    );
    let config = home.ok(&["inspect", &name]);
    let v: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(id.trim(), v["Id"].as_str().unwrap());
    let _ = run(docker.cmd().args(["rmi", "-f", &name]));
}

/// A tree with the awkward cases: hard link, symlink, long name, odd modes, empty dir.
fn sample_tree(root: &Path) {
    use std::os::unix::fs::{PermissionsExt, symlink};
    fs::create_dir_all(root.join("etc/deep/er")).unwrap();
    fs::create_dir_all(root.join("empty")).unwrap();
    fs::write(root.join("etc/hello"), "hello\n").unwrap();
    fs::hard_link(root.join("etc/hello"), root.join("etc/hello-again")).unwrap();
    symlink("../etc/hello", root.join("etc/deep/link")).unwrap();
    let long = "x".repeat(120);
    fs::write(root.join("etc/deep/er").join(&long), vec![7u8; 70_000]).unwrap();
    fs::write(root.join("run.sh"), "#!/bin/sh\necho run\n").unwrap();
    fs::set_permissions(root.join("run.sh"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::set_permissions(root.join("empty"), fs::Permissions::from_mode(0o1777)).unwrap();
}

#[test]
fn docker_save_archive_imports_with_the_same_files() {
    let Some(docker) = Docker::ensure() else {
        return;
    };
    let Some(umoci) = require_tool("umoci", "umoci") else {
        return;
    };
    let home = Home::new();
    let src = home.path().join("src");
    sample_tree(&src);
    // docker import a GNU tar of the tree, docker save it: an archive we did not write.
    let tarball = home.path().join("src.tar");
    run_ok(
        Command::new("tar")
            .arg("-C")
            .arg(&src)
            .arg("-cf")
            .arg(&tarball)
            .arg("."),
    );
    let name = format!("drydock-test/saved:{}", std::process::id());
    run_ok(docker.cmd().arg("import").arg(&tarball).arg(&name));
    let saved = home.path().join("saved.tar");
    run_ok(docker.cmd().args(["save", "-o"]).arg(&saved).arg(&name));
    let _ = run(docker.cmd().args(["rmi", "-f", &name]));

    home.ok(&[
        "copy",
        &format!("docker-archive:{}", saved.display()),
        "local:restored:1",
    ]);
    let layout = home.path().join("layout");
    home.ok(&[
        "copy",
        "local:restored:1",
        &format!("oci:{}:v1", layout.display()),
    ]);
    let bundle = home.path().join("bundle");
    run_ok(
        Command::new(umoci)
            .args(["unpack", "--image"])
            .arg(format!("{}:v1", layout.display()))
            .arg(&bundle),
    );
    assert_eq!(tree(&bundle.join("rootfs")), tree(&src));
    let a = fs::metadata(bundle.join("rootfs/etc/hello")).unwrap();
    let b = fs::metadata(bundle.join("rootfs/etc/hello-again")).unwrap();
    assert_eq!(a.ino(), b.ino(), "hard link kept as a link");
}

#[test]
fn oci_layout_is_read_by_skopeo_and_umoci() {
    if !require_root("kit busybox") {
        return;
    }
    let Some(skopeo) = require_tool("skopeo", "skopeo") else {
        return;
    };
    let Some(umoci) = require_tool("umoci", "umoci") else {
        return;
    };
    let home = Home::new();
    let digest = home.kit_busybox("busybox:latest");
    let layout = home.path().join("layout");
    home.ok(&["copy", "busybox", &format!("oci:{}:1.0", layout.display())]);
    let out = run_ok(
        Command::new(&skopeo)
            .arg("inspect")
            .arg(format!("oci:{}:1.0", layout.display())),
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["Digest"].as_str().unwrap(), digest);
    assert_eq!(v["Architecture"].as_str().unwrap(), "amd64");
    let bundle = home.path().join("bundle");
    run_ok(
        Command::new(umoci)
            .args(["unpack", "--image"])
            .arg(format!("{}:1.0", layout.display()))
            .arg(&bundle),
    );
    assert_eq!(
        fs::read(bundle.join("rootfs/bin/busybox")).unwrap(),
        fs::read("/bin/busybox").unwrap()
    );
    assert_eq!(
        fs::read_to_string(bundle.join("rootfs/etc/group"))
            .unwrap()
            .lines()
            .next(),
        Some("root:x:0:")
    );
    // And back: the layout imports to the same digest.
    home.ok(&[
        "copy",
        &format!("oci:{}:1.0", layout.display()),
        "local:again:1",
    ]);
    let v: serde_json::Value = serde_json::from_str(&home.ok(&["inspect", "again:1"])).unwrap();
    assert_eq!(v["Digest"].as_str().unwrap(), digest);
}

#[test]
fn rootfs_import_round_trips_through_umoci() {
    let Some(umoci) = require_tool("umoci", "umoci") else {
        return;
    };
    let home = Home::new();
    let src = home.path().join("src");
    sample_tree(&src);
    let tarball = home.path().join("rootfs.tar.gz");
    run_ok(
        Command::new("tar")
            .arg("-C")
            .arg(&src)
            .arg("-czf")
            .arg(&tarball)
            .arg("."),
    );
    home.ok(&["import", tarball.to_str().unwrap(), "--tag", "imported:1"]);
    let layout = home.path().join("layout");
    home.ok(&["copy", "imported:1", &format!("oci:{}", layout.display())]);
    let bundle = home.path().join("bundle");
    run_ok(
        Command::new(umoci)
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:latest", layout.display()))
            .arg(&bundle),
    );
    let mut got = tree(&bundle.join("rootfs"));
    let mut want = tree(&src);
    // Rootless unpack cannot keep setuid bits; compare the rest exactly.
    for t in [&mut got, &mut want] {
        t.retain(|(p, _)| p != "run.sh");
    }
    assert_eq!(got, want);
}

#[test]
fn importing_something_that_is_not_a_tar_fails_and_names_nothing() {
    let home = Home::new();
    let bogus = home.path().join("bogus.tar");
    fs::write(&bogus, vec![b'z'; 4096]).unwrap();
    let err = home.fails(&["import", bogus.to_str().unwrap(), "--tag", "bogus:1"]);
    assert!(err.contains("bogus.tar"), "error names the file: {err}");
    let images = home.ok(&["images", "--json"]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&images).unwrap(),
        serde_json::json!([])
    );
}

#[test]
fn truncated_docker_archive_fails_without_naming_anything() {
    if !require_root("kit busybox") {
        return;
    }
    let home = Home::new();
    home.kit_busybox("busybox:latest");
    let archive = home.path().join("bb.tar");
    home.ok(&[
        "copy",
        "busybox",
        &format!("docker-archive:{}", archive.display()),
    ]);
    let data = fs::read(&archive).unwrap();
    // Cut inside the layer: the archive's tail (index, manifest.json) goes with it.
    fs::write(&archive, &data[..data.len() / 2]).unwrap();
    let err = home.fails(&[
        "copy",
        &format!("docker-archive:{}", archive.display()),
        "local:broken:1",
    ]);
    assert!(err.contains("bb.tar"), "{err}");
    assert!(home.fails(&["inspect", "broken:1"]).contains("broken"));
}

#[test]
fn failed_export_leaves_no_partial_archive() {
    if !require_root("kit busybox") {
        return;
    }
    let home = Home::new();
    home.kit_busybox("busybox:latest");
    let missing_dir = home.path().join("no/such/dir/bb.tar");
    let err = home.fails(&[
        "copy",
        "busybox",
        &format!("docker-archive:{}", missing_dir.display()),
    ]);
    assert!(err.contains("no/such/dir"), "{err}");
    // Export of a name that does not exist: clear error, no file.
    let out = home.path().join("x.tar");
    let err = home.fails(&[
        "copy",
        "local:nosuch:1",
        &format!("docker-archive:{}", out.display()),
    ]);
    assert!(err.contains("nosuch"), "{err}");
    assert!(!out.exists());
}

#[test]
fn corrupted_blob_is_detected_not_trusted() {
    if !require_root("kit busybox") {
        return;
    }
    let home = Home::new();
    home.kit_busybox("busybox:latest");
    let v: serde_json::Value = serde_json::from_str(&home.ok(&["inspect", "busybox"])).unwrap();
    let id = v["Id"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap()
        .to_string();
    let blob: PathBuf = home.path().join("home/content/blobs/sha256").join(&id);
    let mut data = fs::read(&blob).unwrap();
    data[10] ^= 0x20;
    fs::write(&blob, data).unwrap();
    let err = home.fails(&["inspect", "busybox"]);
    assert!(err.contains("digest mismatch"), "{err}");
}

#[test]
fn tag_rmi_and_gc_collect_only_unreachable_content() {
    if !require_root("kit busybox") {
        return;
    }
    let home = Home::new();
    home.kit_busybox("busybox:latest");
    home.ok(&["tag", "busybox", "localhost:5000/tools/bb:1"]);
    let images: serde_json::Value = serde_json::from_str(&home.ok(&["images", "--json"])).unwrap();
    assert_eq!(images.as_array().unwrap().len(), 2);
    home.ok(&["rmi", "busybox"]);
    // Still reachable through the other name: nothing to collect.
    let report: serde_json::Value =
        serde_json::from_str(&home.ok(&["gc", "--grace", "0s", "--json"])).unwrap();
    assert_eq!(report["removed"].as_array().unwrap().len(), 0, "{report}");
    assert_eq!(report["kept"], 3);
    home.ok(&["rmi", "localhost:5000/tools/bb:1"]);
    let dry: serde_json::Value =
        serde_json::from_str(&home.ok(&["gc", "--grace", "0s", "--dry-run", "--json"])).unwrap();
    assert_eq!(dry["removed"].as_array().unwrap().len(), 3);
    let blobs = || {
        fs::read_dir(home.path().join("home/content/blobs/sha256"))
            .unwrap()
            .count()
    };
    assert_eq!(blobs(), 3, "dry run removes nothing");
    // Within the grace period nothing goes.
    let recent: serde_json::Value = serde_json::from_str(&home.ok(&["gc", "--json"])).unwrap();
    assert_eq!(recent["kept_recent"], 3);
    home.ok(&["gc", "--grace", "0s"]);
    assert_eq!(blobs(), 0);
    assert!(home.fails(&["rmi", "busybox"]).contains("no image"));
}

#[test]
fn bad_references_are_refused_with_the_reason() {
    let home = Home::new();
    let err = home.fails(&["tag", "busybox", "Upper/Case"]);
    assert!(err.contains("must be lowercase"), "{err}");
    let err = home.fails(&["copy", "ftp://x", "local:y"]);
    assert!(err.contains("unknown transport"), "{err}");
    let err = home.fails(&["inspect", "nosuch:1"]);
    assert!(err.contains("nosuch"), "{err}");
}

#[test]
fn killed_mid_import_leaves_no_partial_blob() {
    let home = Home::new();
    // A rootfs big enough that the import is still running when it is killed.
    let src = home.path().join("src");
    fs::create_dir_all(&src).unwrap();
    let mut noise = vec![0u8; 64 << 20];
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for chunk in noise.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    for i in 0..4 {
        fs::write(src.join(format!("noise{i}")), &noise).unwrap();
    }
    let tarball = home.path().join("big.tar");
    run_ok(
        Command::new("tar")
            .arg("-C")
            .arg(&src)
            .arg("-cf")
            .arg(&tarball)
            .arg("."),
    );
    for delay_ms in [50u64, 200, 400] {
        let mut child = home
            .drydock()
            .args(["import", tarball.to_str().unwrap(), "--tag", "big:1"])
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        // Whatever is under blobs/ hashes to its name.
        let dir = home.path().join("home/content/blobs/sha256");
        if let Ok(entries) = fs::read_dir(&dir) {
            for e in entries {
                let p = e.unwrap().path();
                let sum = run_ok(Command::new("sha256sum").arg(&p));
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                assert_eq!(
                    sum.split_whitespace().next().unwrap(),
                    name,
                    "blob {name} is partial or corrupt"
                );
            }
        }
    }
    // A clean run afterwards succeeds, and gc clears the leftovers in ingest/.
    home.ok(&["import", tarball.to_str().unwrap(), "--tag", "big:1"]);
    home.ok(&["gc", "--grace", "0s"]);
    let leftovers: Vec<_> = fs::read_dir(home.path().join("home/content/ingest"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".lock"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    home.ok(&["inspect", "big:1"]);
}
