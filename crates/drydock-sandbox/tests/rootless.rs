//! The rootless path: an unprivileged user (created here) runs the sandbox through a user
//! namespace with its /etc/subuid and /etc/subgid ranges (newuidmap/newgidmap) and overlayfs
//! with `userxattr`.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use common::*;
use drydock_testkit::users::{chown_recursive, ensure_user_with_subids, subid_start};

const USER: &str = "drydock-rootless";

#[test]
fn an_unprivileged_user_runs_a_sandbox_through_a_user_namespace() {
    if !ready()
        || !require(
            Path::new("/usr/bin/newuidmap").exists(),
            "newuidmap is installed (apt-get install -y uidmap)",
        )
        || !require(
            Path::new("/usr/sbin/runuser").exists(),
            "runuser is installed (util-linux)",
        )
    {
        return;
    }
    let (uid, gid) = ensure_user_with_subids(USER, true);
    let f = Fixture::new();
    fs::set_permissions(
        f.tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let bin = f.tmp.path().join("drydock-sandbox-init");
    fs::copy(INIT, &bin).unwrap();
    let ro = f.tmp.path().join("ro");
    fs::create_dir_all(&ro).unwrap();
    fs::write(ro.join("data"), "read-only data").unwrap();
    fs::create_dir_all(&f.state).unwrap();
    chown_recursive(f.tmp.path(), uid, gid);

    let script = "id; cat /proc/self/uid_map /proc/self/gid_map; ls /proc | grep -c '^[0-9]'; \
                  cat /ro/data; echo; echo x > /ro/data 2>/dev/null || echo ro-denied; \
                  mount -t tmpfs none /mnt 2>/dev/null || echo mount-denied; \
                  echo made-by-root > /rootfile; echo made-by-app > /appfile; chown 1000:1000 /appfile; \
                  su -s /bin/sh app -c 'id -u' 2>/dev/null || busybox setuidgid app id -u";
    let out = Command::new("runuser")
        .args(["-u", USER, "--"])
        .arg(&bin)
        .args(["run", "--rootfs"])
        .arg(&f.root)
        .arg("--state")
        .arg(&f.state)
        .args(["--rootless", "--keep", "--bind"])
        .arg(format!("{}:/ro:ro", ro.display()))
        .args(["--", "/bin/sh", "-c", script])
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(
        out.status.success(),
        "status {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("uid=0(root) gid=0(root)"), "{stdout}");
    let subuid = subid_start("/etc/subuid", USER);
    let subgid = subid_start("/etc/subgid", USER);
    let norm = |l: &str| l.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(norm(lines[1]), format!("0 {uid} 1"), "{stdout}");
    assert_eq!(norm(lines[2]), format!("1 {subuid} 65536"), "{stdout}");
    assert_eq!(norm(lines[3]), format!("0 {gid} 1"), "{stdout}");
    assert_eq!(norm(lines[4]), format!("1 {subgid} 65536"), "{stdout}");
    let procs: usize = lines[5].parse().unwrap();
    assert!(procs <= 4, "{stdout}");
    assert_eq!(lines[6], "read-only data");
    assert!(
        stdout.contains("ro-denied") && stdout.contains("mount-denied"),
        "{stdout}"
    );
    assert_eq!(lines[lines.len() - 2].trim(), "1000", "{stdout}");
    assert_eq!(
        fs::read_to_string(ro.join("data")).unwrap(),
        "read-only data"
    );

    // The changes: files owned by the caller (container root) and by its subordinate range.
    let upper = Path::new(
        stdout
            .lines()
            .find(|l| l.ends_with("/upper"))
            .expect("upper dir printed"),
    );
    let root_file = fs::metadata(upper.join("rootfile")).unwrap();
    assert_eq!((root_file.uid(), root_file.gid()), (uid, gid));
    let app_file = fs::metadata(upper.join("appfile")).unwrap();
    assert_eq!(
        (app_file.uid(), app_file.gid()),
        (subuid + 999, subgid + 999)
    );
    assert!(
        !upper.join("etc").exists() && !upper.join("proc").exists(),
        "no mount-point stubs left"
    );

    // Without --keep, the run directory (with files owned by subordinate ids) is deleted from
    // inside a user namespace before the process exits.
    let state2 = f.tmp.path().join("state2");
    fs::create_dir_all(&state2).unwrap();
    chown_recursive(&state2, uid, gid);
    let out = Command::new("runuser")
        .args(["-u", USER, "--"])
        .arg(&bin)
        .args(["run", "--rootfs"])
        .arg(&f.root)
        .arg("--state")
        .arg(&state2)
        .args([
            "--rootless",
            "--",
            "/bin/sh",
            "-c",
            "mkdir -p /x/y && echo z > /x/y/z && chown -R 1000:1000 /x && chmod 700 /x/y",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let left = walk_names(&state2);
    assert_eq!(
        left,
        vec!["trash".to_string()],
        "only the (empty) trash dir remains"
    );
}

fn walk_names(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if e.file_type().unwrap().is_dir() {
            for sub in walk_names(&e.path()) {
                out.push(format!("{name}/{sub}"));
            }
        }
        out.push(name);
    }
    out.sort();
    out
}
