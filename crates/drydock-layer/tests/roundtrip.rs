//! write_tree -> read back (tar crate, apply, GNU tar) and determinism.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use common::*;
use drydock_layer::*;
use proptest::prelude::*;

fn tar_of(root: &std::path::Path, opts: &TarOptions) -> Vec<u8> {
    let mut out = Vec::new();
    write_tree(root, &mut out, opts).unwrap();
    out
}

/// What the `tar` crate reads back: path -> (type, mode, uid, gid, mtime, content, link).
type ReadBack = BTreeMap<String, (u8, u32, u64, u64, u64, Vec<u8>, Vec<u8>)>;

fn read_back(tar: &[u8]) -> ReadBack {
    let mut out = BTreeMap::new();
    let mut a = tar::Archive::new(tar);
    let mut prev: Option<String> = None;
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let path = String::from_utf8(e.path_bytes().into_owned()).unwrap();
        if let Some(p) = &prev {
            let key = |s: &str| {
                s.trim_end_matches('/')
                    .split('/')
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            };
            assert!(
                key(p) < key(&path),
                "entries not sorted: {p:?} then {path:?}"
            );
        }
        prev = Some(path.clone());
        let h = e.header().clone();
        let mut uid = h.uid().unwrap();
        let mut gid = h.gid().unwrap();
        if let Some(pax) = e.pax_extensions().unwrap() {
            for x in pax {
                let x = x.unwrap();
                match x.key().unwrap() {
                    "uid" => uid = x.value().unwrap().parse().unwrap(),
                    "gid" => gid = x.value().unwrap().parse().unwrap(),
                    _ => {}
                }
            }
        }
        assert!(h.username_bytes().unwrap_or_default().is_empty());
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        let link = e
            .link_name_bytes()
            .map(|l| l.into_owned())
            .unwrap_or_default();
        out.insert(
            path.trim_end_matches('/').to_string(),
            (
                h.entry_type().as_byte(),
                h.mode().unwrap(),
                uid,
                gid,
                h.mtime().unwrap(),
                data,
                link,
            ),
        );
    }
    out
}

const EPOCH: i64 = 1_650_000_000;

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn tar_crate_reads_back_what_we_wrote(specs in tree()) {
        let dir = tempfile::tempdir().unwrap();
        build(dir.path(), &specs);
        let tar = tar_of(dir.path(), &TarOptions::with_epoch(EPOCH));
        let back = read_back(&tar);
        let snap = snapshot(dir.path());
        prop_assert_eq!(back.len(), snap.len());
        // Hard-link groups: the first path in the writer's (component-wise) order is the file.
        let mut order: Vec<(&String, &Desc)> = snap.iter().collect();
        order.sort_by_key(|(p, _)| p.split('/').map(str::to_owned).collect::<Vec<_>>());
        let mut firsts: BTreeMap<String, String> = BTreeMap::new();
        for (path, d) in order {
            let (ty, mode, uid, gid, mtime, data, link) = &back[path];
            prop_assert_eq!(*mode, d.mode, "{}", path);
            prop_assert_eq!(*mtime as i64, d.mtime.min(EPOCH), "{}", path);
            prop_assert_eq!(*uid, u64::from(d.uid));
            prop_assert_eq!(*gid, u64::from(d.gid));
            let first = d.group.as_ref().map(|g| firsts.entry(g.clone()).or_insert(path.clone()).clone());
            let first_of_group = first.as_ref().is_none_or(|f| f == path);
            match d.kind {
                "file" if first_of_group => {
                    prop_assert_eq!(*ty, b'0');
                    prop_assert_eq!(Some(data), d.content.as_ref());
                }
                "file" => {
                    prop_assert_eq!(*ty, b'1');
                    prop_assert_eq!(link, first.as_ref().unwrap().as_bytes());
                }
                "dir" => prop_assert_eq!(*ty, b'5'),
                "symlink" => {
                    prop_assert_eq!(*ty, b'2');
                    prop_assert_eq!(Some(link), d.link.as_ref());
                }
                "fifo" => prop_assert_eq!(*ty, b'6'),
                k => prop_assert!(false, "unexpected kind {}", k),
            }
        }
    }

    #[test]
    fn apply_of_write_tree_reproduces_the_tree(specs in tree()) {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        build(src.path(), &specs);
        let tar = tar_of(src.path(), &TarOptions::default());
        apply(&tar[..], dst.path(), &ApplyOptions::default()).unwrap();
        prop_assert_eq!(snapshot(dst.path()), snapshot(src.path()));
        // And through the portable resolver.
        let dst2 = tempfile::tempdir().unwrap();
        let opts = ApplyOptions { portable_resolver: true, ..Default::default() };
        apply(&tar[..], dst2.path(), &opts).unwrap();
        prop_assert_eq!(snapshot(dst2.path()), snapshot(src.path()));
    }

    #[test]
    fn same_tree_same_bytes_even_copied_with_newer_mtimes(specs in tree()) {
        let a = tempfile::tempdir().unwrap();
        build(a.path(), &specs);
        let opts = TarOptions::with_epoch(EPOCH);
        let first = tar_of(a.path(), &opts);
        prop_assert!(first == tar_of(a.path(), &opts), "two writes differ");
        // Everything at or after the epoch: a copy with other such mtimes gives the same bytes.
        touch_all(a.path(), EPOCH + 5);
        let first = tar_of(a.path(), &opts);
        // A copy elsewhere (through our own apply) whose mtimes are all moved above the epoch.
        let b = tempfile::tempdir().unwrap();
        apply(&first[..], b.path(), &ApplyOptions::default()).unwrap();
        touch_all(b.path(), EPOCH + 1000);
        prop_assert!(first == tar_of(b.path(), &opts), "the copy's tar differs");
    }
}

fn touch_all(dir: &std::path::Path, t: i64) {
    let ts = rustix::fs::Timespec {
        tv_sec: t,
        tv_nsec: 123,
    };
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if std::fs::symlink_metadata(&p).unwrap().is_dir() {
            touch_all(&p, t);
        }
        rustix::fs::utimensat(
            rustix::fs::CWD,
            &p,
            &rustix::fs::Timestamps {
                last_access: ts,
                last_modification: ts,
            },
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .unwrap();
    }
}

#[test]
fn gnu_tar_lists_and_extracts_our_output() {
    if !require(have_tool("tar"), "GNU tar") {
        return;
    }
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 16,
        ..ProptestConfig::default()
    });
    runner
        .run(&tree(), |specs| {
            let src = tempfile::tempdir().unwrap();
            build(src.path(), &specs);
            let work = tempfile::tempdir().unwrap();
            let tar_path = work.path().join("layer.tar");
            std::fs::write(&tar_path, tar_of(src.path(), &TarOptions::default())).unwrap();
            let list = Command::new("tar")
                .arg("-tvf")
                .arg(&tar_path)
                .output()
                .unwrap();
            prop_assert!(
                list.status.success(),
                "{}",
                String::from_utf8_lossy(&list.stderr)
            );
            let out = work.path().join("out");
            std::fs::create_dir(&out).unwrap();
            let x = Command::new("tar")
                .args([
                    "--xattrs",
                    "--xattrs-include=*",
                    "--same-permissions",
                    "--numeric-owner",
                ])
                .arg("-xf")
                .arg(&tar_path)
                .arg("-C")
                .arg(&out)
                .output()
                .unwrap();
            prop_assert!(x.status.success(), "{}", String::from_utf8_lossy(&x.stderr));
            prop_assert_eq!(snapshot(&out), snapshot(src.path()));
            Ok(())
        })
        .unwrap();
}

#[test]
fn long_names_big_ids_and_capabilities_survive() {
    let src = tempfile::tempdir().unwrap();
    let deep = src
        .path()
        .join("d".repeat(90))
        .join("e".repeat(90))
        .join("f".repeat(90));
    std::fs::create_dir_all(&deep).unwrap();
    let file = deep.join("file");
    std::fs::write(&file, b"hello").unwrap();
    std::os::unix::fs::symlink("t".repeat(200), src.path().join("longlink")).unwrap();
    if is_root() {
        std::os::unix::fs::chown(&file, Some(5_000_000), Some(6_000_000)).unwrap();
        // VFS_CAP_REVISION_2 | effective, permitted = CAP_NET_BIND_SERVICE.
        let mut cap = Vec::new();
        cap.extend_from_slice(&0x0200_0001u32.to_le_bytes());
        cap.extend_from_slice(&(1u32 << 10).to_le_bytes());
        cap.extend_from_slice(&0u32.to_le_bytes());
        cap.extend_from_slice(&0u32.to_le_bytes());
        cap.extend_from_slice(&0u32.to_le_bytes());
        rustix::fs::setxattr(
            &file,
            "security.capability",
            &cap,
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
    }
    let tar = tar_of(src.path(), &TarOptions::default());
    let dst = tempfile::tempdir().unwrap();
    apply(&tar[..], dst.path(), &ApplyOptions::default()).unwrap();
    assert_eq!(snapshot(dst.path()), snapshot(src.path()));
    let out = dst.path().join(file.strip_prefix(src.path()).unwrap());
    assert_eq!(std::fs::read(&out).unwrap(), b"hello");
    if is_root() {
        let m = std::fs::metadata(&out).unwrap();
        assert_eq!((m.uid(), m.gid()), (5_000_000, 6_000_000));
        let mut buf = [0u8; 64];
        let n = rustix::fs::getxattr(&out, "security.capability", &mut buf[..]).unwrap();
        assert_eq!(n, 20);
    }
}

#[test]
fn overlay_xattrs_are_not_written_and_filter_excludes() {
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir(src.path().join("keep")).unwrap();
    std::fs::create_dir(src.path().join("skip")).unwrap();
    std::fs::write(src.path().join("skip/inner"), b"x").unwrap();
    std::fs::write(src.path().join("keep/f"), b"y").unwrap();
    if is_root() {
        rustix::fs::setxattr(
            src.path().join("keep"),
            "trusted.overlay.opaque",
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
    }
    let filter: PathFilter =
        std::sync::Arc::new(|p: &std::path::Path, _m: &std::fs::Metadata| !p.starts_with("skip"));
    let opts = TarOptions {
        filter: Some(filter),
        ..Default::default()
    };
    let tar = tar_of(src.path(), &opts);
    let names: Vec<String> = tar::Archive::new(&tar[..])
        .entries()
        .unwrap()
        .map(|e| String::from_utf8(e.unwrap().path_bytes().into_owned()).unwrap())
        .collect();
    assert_eq!(names, ["keep/", "keep/f"]);
    assert!(!tar.windows(15).any(|w| w == b"trusted.overlay"));
}

#[test]
fn a_missing_root_is_an_error_naming_it() {
    let err = write_tree(
        std::path::Path::new("/nonexistent/drydock"),
        Vec::new(),
        &TarOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("/nonexistent/drydock"), "{err}");
}

#[test]
fn files_whose_size_is_not_their_content_are_refused_by_name() {
    // A bind-mounted /proc file says 0 bytes and has more; a /sys file says 4096 and has less.
    if !require(is_root(), "root (bind mounts)") {
        return;
    }
    for (src, what) in [
        ("/proc/version", "grew"),
        ("/sys/kernel/mm/transparent_hugepage/enabled", "ended"),
    ] {
        if !Path::new(src).exists() {
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, b"").unwrap();
        let ok = Command::new("mount")
            .args(["--bind", src])
            .arg(&f)
            .status()
            .unwrap()
            .success();
        assert!(ok, "bind mount of {src}");
        let r = write_tree(dir.path(), std::io::sink(), &TarOptions::default());
        let _ = Command::new("umount").arg(&f).status();
        let err = r.unwrap_err();
        assert!(matches!(err, LayerError::Changed { .. }), "{src}: {err}");
        assert!(
            err.to_string().contains(what) && err.to_string().contains("/f"),
            "{err}"
        );
    }
}
