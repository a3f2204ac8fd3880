//! `drydock build` as an unprivileged user (created here, as the sandbox's rootless test does):
//! the binary re-runs itself inside a user namespace with the user's subordinate ids, and the
//! image it builds is byte-for-byte the image root builds from the same Dockerfile and context
//! (owners from RUN and `COPY --chown`, `--chmod`, whiteouts, opaque directories, a RUN as a
//! non-root user). `drydock builder prune --all` deletes the snapshots it left (files owned by
//! subordinate ids), and a user without subordinate ids gets a clear error.

mod common;

use common::{Out, open_dir, rootless_preconditions, run_as, seed_busybox, shared_scratch};

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use drydock_testkit::users::{chown_recursive, ensure_user_with_subids, subid_start};

const USER: &str = "drydock-rootless";
const NO_SUBIDS_USER: &str = "drydock-nosubids";
const EPOCH: &str = "1700000000";

const DOCKERFILE: &str = "\
FROM busybox
# Debian's busybox-static has no adduser applet: add the user by hand.
RUN echo 'app:x:1000:1000::/home/app:/bin/sh' >> /etc/passwd && echo 'app:x:1000:' >> /etc/group \\
    && mkdir /data && chown app:app /data && touch /data/x
COPY --chown=1000:1000 f /home/f
COPY --chmod=0700 g /g
# A whiteout (a base file deleted) and an opaque directory (a base directory replaced).
RUN rm /bin/vi && rm -rf /usr/sbin && mkdir /usr/sbin && echo new > /usr/sbin/new
USER app
RUN id > /tmp/id
";

fn preconditions() -> bool {
    rootless_preconditions("creating an unprivileged user for a rootless build")
}

/// Runs drydock as `user` (or root) with `home` in `dir`.
fn drydock(user: Option<&str>, home: &Path, dir: &Path, args: &[&str]) -> Out {
    run_as(user, home, None, dir, args)
}

fn manifest_digest(meta_file: &Path) -> String {
    let meta: serde_json::Value = serde_json::from_slice(&fs::read(meta_file).unwrap()).unwrap();
    meta["containerimage.digest"]
        .as_str()
        .unwrap_or_else(|| panic!("no containerimage.digest in {meta}"))
        .to_string()
}

/// `drydock build .` in `ctx` as `user` (or root) with `home`, at `--source-date-epoch` EPOCH,
/// which must succeed: the image's manifest digest (from `--metadata-file`) and the build's
/// stderr (its plain progress log).
fn build_at_epoch(user: Option<&str>, home: &Path, ctx: &Path) -> (String, String) {
    let meta = home.join("meta.json");
    let out = drydock(
        user,
        home,
        ctx,
        &[
            "build",
            "--progress=plain",
            "--source-date-epoch",
            EPOCH,
            "--metadata-file",
            meta.to_str().unwrap(),
            ".",
        ],
    );
    assert_eq!(
        out.code,
        0,
        "build as {}:\n{}{}",
        user.unwrap_or("root"),
        out.stdout,
        out.stderr
    );
    (manifest_digest(&meta), out.stderr)
}

/// Every non-directory under `dir`, with its host owner.
fn files_under(dir: &Path) -> Vec<(PathBuf, u32)> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let md = fs::symlink_metadata(e.path()).unwrap();
        if md.is_dir() {
            out.extend(files_under(&e.path()));
        } else {
            out.push((e.path(), md.uid()));
        }
    }
    out
}

#[test]
fn a_rootless_build_gives_the_image_a_root_build_gives_and_prune_cleans_up_after_it() {
    if !preconditions() {
        return;
    }
    let (uid, gid) = ensure_user_with_subids(USER, true);
    let sub = subid_start("/etc/subuid", USER);
    let tmp = shared_scratch("drydock-cli-rootless-");
    let root_home = open_dir(tmp.path(), "root-home");
    let user_home = open_dir(tmp.path(), "user-home");
    let ctx = open_dir(tmp.path(), "ctx");
    fs::write(ctx.join("Dockerfile"), DOCKERFILE).unwrap();
    fs::write(ctx.join("f"), "f\n").unwrap();
    fs::write(ctx.join("g"), "g\n").unwrap();
    for f in ["Dockerfile", "f", "g"] {
        fs::set_permissions(ctx.join(f), fs::Permissions::from_mode(0o644)).unwrap();
    }

    // The same busybox image in both homes: made by root, its store copied to the user.
    seed_busybox(&root_home, &user_home);
    chown_recursive(&user_home, uid, gid);

    let (user_digest, user_log) = build_at_epoch(Some(USER), &user_home, &ctx);
    let (root_digest, root_log) = build_at_epoch(None, &root_home, &ctx);
    assert_eq!(
        user_digest, root_digest,
        "the rootless build's manifest ({user_digest}) differs from root's ({root_digest})\n\
         rootless build:\n{user_log}\nroot build:\n{root_log}"
    );

    // The user's snapshots hold files owned by subordinate ids (so deleting them needs the
    // namespace), and the RUN as `app` ran as uid 1000.
    let snapshots = user_home.join("cache/snapshots");
    let files = files_under(&snapshots);
    assert!(
        files.iter().any(|(_, owner)| *owner == sub + 999),
        "no snapshot file owned by {} (container uid 1000): {files:?}",
        sub + 999
    );
    let id = files
        .iter()
        .find(|(p, _)| p.ends_with("tmp/id"))
        .map(|(p, _)| fs::read_to_string(p).unwrap())
        .unwrap_or_default();
    assert!(id.starts_with("uid=1000(app) gid=1000(app)"), "{id:?}");

    // Nothing named any more, so prune --all leaves no snapshot behind.
    let out = drydock(
        Some(USER),
        &user_home,
        tmp.path(),
        &["rmi", "busybox:latest"],
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let out = drydock(
        Some(USER),
        &user_home,
        tmp.path(),
        &["builder", "prune", "--all"],
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let left = files_under(&snapshots);
    assert!(left.is_empty(), "left after prune: {left:?}");
    let dirs: Vec<_> = fs::read_dir(snapshots.join("sha256"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(dirs.is_empty(), "snapshot directories left: {dirs:?}");
}

#[test]
fn a_user_without_subordinate_ids_is_told_what_to_configure() {
    if !preconditions() {
        return;
    }
    let (uid, gid) = ensure_user_with_subids(NO_SUBIDS_USER, false);
    let tmp = shared_scratch("drydock-cli-nosubids-");
    let home = open_dir(tmp.path(), "home");
    chown_recursive(&home, uid, gid);
    let ctx = open_dir(tmp.path(), "ctx");
    fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY f /f\n").unwrap();
    fs::write(ctx.join("f"), "f\n").unwrap();
    for f in ["Dockerfile", "f"] {
        fs::set_permissions(ctx.join(f), fs::Permissions::from_mode(0o644)).unwrap();
    }
    let out = drydock(Some(NO_SUBIDS_USER), &home, &ctx, &["build", "."]);
    assert_ne!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains(&format!("/etc/subuid has no range for {NO_SUBIDS_USER}"))
            && out.stderr.contains("\nhint: ")
            && out.stderr.contains("--add-subuids"),
        "{}",
        out.stderr
    );
    // Nothing was built: no layer extracted with the wrong owners.
    assert!(!home.join("cache/snapshots").exists());
    // The same for prune, which would delete files owned by subordinate ids.
    let out = drydock(
        Some(NO_SUBIDS_USER),
        &home,
        &ctx,
        &["builder", "prune", "--all"],
    );
    assert_ne!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("hint: "), "{}", out.stderr);
}

#[test]
fn device_nodes_in_a_base_image_are_left_out_with_a_warning_and_the_image_is_still_roots() {
    if !preconditions() {
        return;
    }
    let (uid, gid) = ensure_user_with_subids(USER, true);
    let tmp = shared_scratch("drydock-cli-rootless-dev-");
    let root_home = open_dir(tmp.path(), "root-home");
    let user_home = open_dir(tmp.path(), "user-home");
    chown_recursive(&user_home, uid, gid);
    // A base image whose only layer carries device nodes, as debootstrap roots do.
    let rootfs = open_dir(tmp.path(), "rootfs");
    fs::create_dir_all(rootfs.join("bin")).unwrap();
    fs::create_dir_all(rootfs.join("dev")).unwrap();
    fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).unwrap();
    for (name, kind, major, minor) in [("console", "c", "5", "1"), ("sda", "b", "8", "0")] {
        let st = Command::new("mknod")
            .arg(rootfs.join("dev").join(name))
            .args([kind, major, minor])
            .status()
            .unwrap();
        assert!(st.success(), "mknod {name}");
    }
    let tar = tmp.path().join("rootfs.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    fs::set_permissions(&tar, fs::Permissions::from_mode(0o644)).unwrap();
    let ctx = open_dir(tmp.path(), "ctx");
    fs::write(ctx.join("Dockerfile"), "FROM devbase:1\nRUN echo hi > /x\n").unwrap();
    fs::set_permissions(ctx.join("Dockerfile"), fs::Permissions::from_mode(0o644)).unwrap();

    let build = |user: Option<&str>, home: &Path| {
        let tar = tar.to_str().unwrap();
        let out = drydock(user, home, &ctx, &["import", tar, "--tag", "devbase:1"]);
        assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
        build_at_epoch(user, home, &ctx)
    };
    let (user_digest, user_log) = build(Some(USER), &user_home);
    let (root_digest, root_log) = build(None, &root_home);
    assert!(
        user_log.contains("2 device node(s) left out")
            && user_log.contains("/dev/console")
            && user_log.contains("/dev/sda"),
        "{user_log}"
    );
    assert!(!root_log.contains("device node"), "{root_log}");
    assert_eq!(
        user_digest, root_digest,
        "rootless build:\n{user_log}\nroot build:\n{root_log}"
    );
}
