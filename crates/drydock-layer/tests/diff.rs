//! Whiteout semantics of apply, diff_trees round trips, and the overlayfs upper diff against a
//! real overlay mount.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use drydock_layer::*;
use proptest::prelude::*;

fn copy_tree(src: &Path, dst: &Path) {
    let mut tar = Vec::new();
    write_tree(src, &mut tar, &TarOptions::default()).unwrap();
    apply(&tar[..], dst, &ApplyOptions::default()).unwrap();
}

/// The layer `diff_trees` makes of `lower` -> `upper`, with default options.
fn tree_diff(lower: &Path, upper: &Path) -> Vec<u8> {
    let mut layer = Vec::new();
    diff_trees(lower, upper, &mut layer, &DiffOptions::default()).unwrap();
    layer
}

fn names(tar: &[u8]) -> Vec<String> {
    tar::Archive::new(tar)
        .entries()
        .unwrap()
        .map(|e| String::from_utf8(e.unwrap().path_bytes().into_owned()).unwrap())
        .collect()
}

fn lower_fixture(root: &Path) {
    for d in ["a", "c", "o", "o/sub", "d"] {
        fs::create_dir(root.join(d)).unwrap();
    }
    for f in [
        "a/x",
        "a/y",
        "b",
        "c/inner",
        "o/old",
        "o/sub/old2",
        "d/x",
        "keep",
    ] {
        fs::write(root.join(f), f.as_bytes()).unwrap();
    }
}

fn listing(root: &Path) -> Vec<String> {
    snapshot(root).into_keys().collect()
}

#[test]
fn whiteouts_remove_lower_paths_and_replacements_work() {
    let t = tempfile::tempdir().unwrap();
    lower_fixture(t.path());
    let tar = RawTar::new()
        .file(b"a/.wh.x", b"")
        .file(b".wh.c", b"")
        .dir(b"b/") // a file replaced by a directory
        .file(b"b/new", b"n")
        .file(b"d", b"now a file") // a directory replaced by a file
        .file(b".wh.missing", b"") // whiteout of nothing: fine
        .finish();
    let stats = apply(&tar[..], t.path(), &ApplyOptions::default()).unwrap();
    assert_eq!(stats.whiteouts, 3);
    assert_eq!(
        listing(t.path()),
        [
            "a",
            "a/y",
            "b",
            "b/new",
            "d",
            "keep",
            "o",
            "o/old",
            "o/sub",
            "o/sub/old2"
        ]
    );
    assert_eq!(fs::read(t.path().join("d")).unwrap(), b"now a file");
}

#[test]
fn opaque_directories_hide_lower_content_in_any_entry_order() {
    for marker_first in [true, false] {
        let t = tempfile::tempdir().unwrap();
        lower_fixture(t.path());
        let mut raw = RawTar::new();
        raw.dir(b"o/");
        if marker_first {
            raw.file(b"o/.wh..wh..opq", b"");
        }
        raw.file(b"o/new", b"n").file(b"o/sub/new2", b"n2");
        if !marker_first {
            raw.file(b"o/.wh..wh..opq", b"");
        }
        let stats = apply(&raw.finish()[..], t.path(), &ApplyOptions::default()).unwrap();
        assert_eq!(stats.opaques, 1);
        let l: Vec<String> = listing(t.path())
            .into_iter()
            .filter(|p| p.starts_with("o"))
            .collect();
        assert_eq!(
            l,
            ["o", "o/new", "o/sub", "o/sub/new2"],
            "marker first: {marker_first}"
        );
    }
}

#[test]
fn a_whiteout_does_not_hide_what_its_own_layer_wrote() {
    let t = tempfile::tempdir().unwrap();
    lower_fixture(t.path());
    let tar = RawTar::new()
        .file(b"keep", b"new keep")
        .file(b".wh.keep", b"")
        .finish();
    apply(&tar[..], t.path(), &ApplyOptions::default()).unwrap();
    assert_eq!(fs::read(t.path().join("keep")).unwrap(), b"new keep");
    // Whiteout first, then the new file: also the new file.
    let t = tempfile::tempdir().unwrap();
    lower_fixture(t.path());
    let tar = RawTar::new()
        .file(b".wh.keep", b"")
        .file(b"keep", b"new keep")
        .finish();
    apply(&tar[..], t.path(), &ApplyOptions::default()).unwrap();
    assert_eq!(fs::read(t.path().join("keep")).unwrap(), b"new keep");
}

#[test]
fn hard_links_to_lower_files_and_aufs_metadata() {
    let t = tempfile::tempdir().unwrap();
    lower_fixture(t.path());
    let tar = RawTar::new()
        .hardlink(b"keep2", b"keep")
        .file(b".wh..wh.plnk", b"")
        .dir(b".wh..wh.orph/")
        .finish();
    let stats = apply(&tar[..], t.path(), &ApplyOptions::default()).unwrap();
    assert_eq!(stats.skipped, 2);
    let s = snapshot(t.path());
    assert_eq!(s["keep2"].group, s["keep"].group);
    assert!(s["keep"].group.is_some());
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize),
    Rewrite(usize, Vec<u8>),
    Chmod(usize, u32),
    Add(usize, String, Vec<u8>),
    ToDir(usize),
    ToFile(usize),
    Relink(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>()).prop_map(Mutation::Delete),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 0..600))
            .prop_map(|(i, d)| Mutation::Rewrite(i, d)),
        (
            any::<usize>(),
            prop_oneof![Just(0o600u32), Just(0o755), Just(0o4711)]
        )
            .prop_map(|(i, m)| Mutation::Chmod(i, m)),
        (
            any::<usize>(),
            "[a-z]{1,4}",
            prop::collection::vec(any::<u8>(), 0..100)
        )
            .prop_map(|(i, n, d)| Mutation::Add(i, n, d)),
        any::<usize>().prop_map(Mutation::ToDir),
        any::<usize>().prop_map(Mutation::ToFile),
        any::<usize>().prop_map(Mutation::Relink),
    ]
}

fn all_paths(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if fs::symlink_metadata(&p).unwrap().is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}

fn mutate(root: &Path, muts: &[Mutation]) {
    for m in muts {
        let paths = all_paths(root);
        let pick = |i: usize| (!paths.is_empty()).then(|| paths[i % paths.len()].clone());
        let is_dir = |p: &Path| fs::symlink_metadata(p).map(|m| m.is_dir()).unwrap_or(false);
        let is_file = |p: &Path| {
            fs::symlink_metadata(p)
                .map(|m| m.is_file())
                .unwrap_or(false)
        };
        match m {
            Mutation::Delete(i) => {
                if let Some(p) = pick(*i) {
                    if is_dir(&p) {
                        fs::remove_dir_all(&p).unwrap()
                    } else {
                        fs::remove_file(&p).unwrap()
                    }
                }
            }
            Mutation::Rewrite(i, d) => {
                if let Some(p) = pick(*i).filter(|p| is_file(p)) {
                    fs::write(&p, d).unwrap();
                }
            }
            Mutation::Chmod(i, mode) => {
                if let Some(p) = pick(*i).filter(|p| is_file(p) || is_dir(p)) {
                    let mode = if is_dir(&p) { mode | 0o700 } else { *mode };
                    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
                }
            }
            Mutation::Add(i, name, d) => {
                let dir = pick(*i)
                    .filter(|p| is_dir(p))
                    .unwrap_or_else(|| root.to_path_buf());
                let p = dir.join(name);
                if fs::symlink_metadata(&p).is_err() {
                    fs::write(&p, d).unwrap();
                }
            }
            Mutation::ToDir(i) => {
                if let Some(p) = pick(*i).filter(|p| !is_dir(p)) {
                    fs::remove_file(&p).unwrap();
                    fs::create_dir(&p).unwrap();
                    fs::write(p.join("inside"), b"i").unwrap();
                }
            }
            Mutation::ToFile(i) => {
                if let Some(p) = pick(*i).filter(|p| is_dir(p)) {
                    fs::remove_dir_all(&p).unwrap();
                    fs::write(&p, b"was a dir").unwrap();
                }
            }
            Mutation::Relink(i) => {
                if let Some(p) = pick(*i).filter(|p| fs::symlink_metadata(p).unwrap().is_symlink())
                {
                    fs::remove_file(&p).unwrap();
                    std::os::unix::fs::symlink("elsewhere", &p).unwrap();
                }
            }
        }
    }
}

/// Directory mtimes are left out of a tree diff when nothing else about the directory changed
/// (a child added or removed bumps it), so after apply such a directory has whatever time the
/// apply gave it: compare everything else.
fn without_dir_mtimes(
    mut snap: std::collections::BTreeMap<String, Desc>,
) -> std::collections::BTreeMap<String, Desc> {
    for d in snap.values_mut() {
        if d.kind == "dir" {
            d.mtime = 0;
        }
    }
    snap
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, .. ProptestConfig::default() })]

    #[test]
    fn diff_trees_then_apply_onto_lower_gives_upper(
        specs in tree(),
        muts in prop::collection::vec(mutation(), 0..8),
    ) {
        let lower = tempfile::tempdir().unwrap();
        build(lower.path(), &specs);
        let upper = tempfile::tempdir().unwrap();
        copy_tree(lower.path(), upper.path());
        mutate(upper.path(), &muts);
        let layer = tree_diff(lower.path(), upper.path());
        let result = tempfile::tempdir().unwrap();
        copy_tree(lower.path(), result.path());
        apply(&layer[..], result.path(), &ApplyOptions::default()).unwrap();
        prop_assert_eq!(without_dir_mtimes(snapshot(result.path())), without_dir_mtimes(snapshot(upper.path())));
        if muts.is_empty() {
            prop_assert!(names(&layer).is_empty(), "no change, yet {:?}", names(&layer));
        }
    }
}

#[test]
fn diff_of_trees_names_whiteouts_and_skips_mtime_only_changes() {
    let lower = tempfile::tempdir().unwrap();
    lower_fixture(lower.path());
    let upper = tempfile::tempdir().unwrap();
    copy_tree(lower.path(), upper.path());
    fs::remove_file(upper.path().join("a/x")).unwrap();
    fs::remove_dir_all(upper.path().join("c")).unwrap();
    // mtime only: not a change by default.
    let t = rustix::fs::Timespec {
        tv_sec: 1_000,
        tv_nsec: 0,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        upper.path().join("keep"),
        &rustix::fs::Timestamps {
            last_access: t,
            last_modification: t,
        },
        rustix::fs::AtFlags::empty(),
    )
    .unwrap();
    let layer = tree_diff(lower.path(), upper.path());
    assert_eq!(names(&layer), expected_order());
    let with_mtime = DiffOptions {
        compare_mtime: true,
        ..Default::default()
    };
    let mut layer = Vec::new();
    diff_trees(lower.path(), upper.path(), &mut layer, &with_mtime).unwrap();
    assert!(names(&layer).contains(&"keep".to_string()));
}

fn expected_order() -> Vec<String> {
    // Component-wise path order: ".wh.c" < "a/" < "a/.wh.x".
    [".wh.c", "a/", "a/.wh.x"].map(String::from).to_vec()
}

/// New directories `names` under `root`.
fn dirs_in<const N: usize>(root: &Path, names: [&str; N]) -> [PathBuf; N] {
    names.map(|d| {
        let p = root.join(d);
        fs::create_dir(&p).unwrap();
        p
    })
}

/// Marks `dir` opaque as overlayfs does (root only: a `trusted.` xattr).
fn mark_opaque(dir: &Path) {
    rustix::fs::setxattr(
        dir,
        "trusted.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
}

fn overlay_supported() -> bool {
    fs::read_to_string("/proc/filesystems")
        .map(|s| s.contains("overlay"))
        .unwrap_or(false)
}

fn sh(cmd: &str) {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn overlay_upper_diff_reproduces_the_merged_view() {
    if !require(is_root() && overlay_supported(), "root with overlayfs") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let [l, u, w, m] = ["lower", "upper", "work", "merged"].map(|d| {
        let p = work.path().join(d);
        fs::create_dir(&p).unwrap();
        p
    });
    lower_fixture(&l);
    fs::write(l.join("chm"), b"mode").unwrap();
    let mount = format!(
        "mount -t overlay overlay -o lowerdir={},upperdir={},workdir={},redirect_dir=off,metacopy=off,index=off {}",
        l.display(),
        u.display(),
        w.display(),
        m.display()
    );
    sh(&mount);
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let guard = Unmount(m.clone());
    // Changes through the mount.
    fs::write(m.join("a/y"), b"modified").unwrap();
    fs::remove_file(m.join("a/x")).unwrap();
    fs::remove_dir_all(m.join("c")).unwrap();
    fs::remove_dir_all(m.join("o")).unwrap();
    fs::create_dir(m.join("o")).unwrap();
    fs::write(m.join("o/fresh"), b"fresh").unwrap();
    fs::set_permissions(m.join("chm"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::create_dir_all(m.join("new/deep")).unwrap();
    fs::write(m.join("new/deep/file"), b"new").unwrap();
    fs::rename(m.join("d/x"), m.join("d/x-renamed")).unwrap();
    // Opened for writing but unchanged content: copied up, must not be in the layer.
    fs::OpenOptions::new()
        .append(true)
        .open(m.join("keep"))
        .unwrap();
    let merged = snapshot_with(
        &m,
        &SnapOpts {
            dir_mtimes: false,
            ..Default::default()
        },
    );
    drop(guard);
    let mut layer = Vec::new();
    diff_overlay_upper(
        &u,
        std::slice::from_ref(&l),
        &mut layer,
        &DiffOptions::default(),
    )
    .unwrap();
    let n = names(&layer);
    for want in [
        "a/.wh.x",
        ".wh.c",
        "o/.wh..wh..opq",
        "d/.wh.x",
        "new/deep/file",
    ] {
        assert!(n.contains(&want.to_string()), "{want} missing from {n:?}");
    }
    assert!(
        !n.contains(&"keep".to_string()),
        "unchanged copy-up written: {n:?}"
    );
    assert!(!String::from_utf8_lossy(&layer).contains("trusted.overlay"));
    let result = tempfile::tempdir().unwrap();
    copy_tree(&l, result.path());
    apply(&layer[..], result.path(), &ApplyOptions::default()).unwrap();
    assert_eq!(
        snapshot_with(
            result.path(),
            &SnapOpts {
                dir_mtimes: false,
                ..Default::default()
            }
        ),
        merged
    );
    // Also through GNU tar listing.
    let tar_path = work.path().join("layer.tar");
    fs::write(&tar_path, &layer).unwrap();
    sh(&format!("tar -tvf {} >/dev/null", tar_path.display()));
}

/// The layer used by the overlay-format tests: a whiteout, a deleted directory, an opaque
/// directory with new content, a directory replaced after its whiteout, and a plain new file.
fn overlay_case_layer() -> Vec<u8> {
    RawTar::new()
        .dir(b"a/")
        .file(b"a/.wh.x", b"")
        .file(b".wh.c", b"")
        .dir(b"o/")
        .file(b"o/.wh..wh..opq", b"")
        .file(b"o/new", b"n")
        .file(b".wh.d", b"")
        .dir(b"d/")
        .file(b"d/only", b"only")
        .file(b"fresh", b"fresh")
        .finish()
}

#[test]
fn overlay_whiteouts_are_devices_and_opaque_xattrs() {
    if !require(
        is_root(),
        "root (mknod of whiteout devices, trusted xattrs)",
    ) {
        return;
    }
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let t = tempfile::tempdir().unwrap();
    let opts = ApplyOptions {
        whiteouts: Whiteouts::Overlay { userxattr: false },
        ..Default::default()
    };
    let stats = apply(&overlay_case_layer()[..], t.path(), &opts).unwrap();
    assert_eq!((stats.whiteouts, stats.opaques), (3, 1));
    for wh in ["a/x", "c"] {
        let md = fs::symlink_metadata(t.path().join(wh)).unwrap();
        assert!(md.file_type().is_char_device() && md.rdev() == 0, "{wh}");
    }
    let opaque = |p: &str| {
        let mut buf = [0u8; 4];
        rustix::fs::lgetxattr(t.path().join(p), "trusted.overlay.opaque", &mut buf[..])
            .map(|n| buf[..n].to_vec())
            .ok()
    };
    assert_eq!(opaque("o").as_deref(), Some(&b"y"[..]));
    assert_eq!(
        opaque("d").as_deref(),
        Some(&b"y"[..]),
        "a directory written over its own whiteout replaces the lower one"
    );
    assert_eq!(opaque("a"), None);
    assert_eq!(fs::read(t.path().join("o/new")).unwrap(), b"n");
}

#[test]
fn overlay_format_layer_mounted_gives_the_applied_tree() {
    if !require(is_root() && overlay_supported(), "root with overlayfs") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let [lower, layer, merged, applied] = ["lower", "layer", "merged", "applied"].map(|d| {
        let p = work.path().join(d);
        fs::create_dir(&p).unwrap();
        p
    });
    lower_fixture(&lower);
    lower_fixture(&applied);
    let tar = overlay_case_layer();
    apply(&tar[..], &applied, &ApplyOptions::default()).unwrap();
    let opts = ApplyOptions {
        whiteouts: Whiteouts::Overlay { userxattr: false },
        ..Default::default()
    };
    apply(&tar[..], &layer, &opts).unwrap();
    sh(&format!(
        "mount -t overlay overlay -o ro,lowerdir={}:{} {}",
        layer.display(),
        lower.display(),
        merged.display()
    ));
    let seen = listing(&merged);
    let _ = Command::new("umount").arg(&merged).status();
    assert_eq!(seen, listing(&applied));
}

#[test]
fn overlay_upper_diff_reads_the_lowers_like_overlayfs() {
    if !require(is_root(), "root (trusted.overlay xattrs, whiteout devices)") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let [upper, top, bottom] = dirs_in(work.path(), ["upper", "top", "bottom"]);
    // bottom has o/f, p/g and w; top makes o opaque (hiding o/f) and whites out w.
    for d in [&bottom, &top, &upper] {
        fs::create_dir(d.join("o")).unwrap();
    }
    fs::create_dir(bottom.join("p")).unwrap();
    fs::write(bottom.join("o/f"), b"same").unwrap();
    fs::write(bottom.join("p/g"), b"same").unwrap();
    fs::write(bottom.join("w"), b"same").unwrap();
    mark_opaque(&top.join("o"));
    rustix::fs::mknodat(
        rustix::fs::CWD,
        top.join("w"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    // The upper holds the same bytes at all three paths, with the same metadata.
    fs::create_dir(upper.join("p")).unwrap();
    for f in ["o/f", "p/g", "w"] {
        fs::write(upper.join(f), b"same").unwrap();
    }
    let mut layer = Vec::new();
    diff_overlay_upper(
        &upper,
        &[top.clone(), bottom.clone()],
        &mut layer,
        &DiffOptions::default(),
    )
    .unwrap();
    let n = names(&layer);
    // o/f is new (the lower one is hidden by the opaque dir), w is new (whited out below);
    // p/g is a copy-up of the same file: left out.
    assert!(n.contains(&"o/f".to_string()), "{n:?}");
    assert!(n.contains(&"w".to_string()), "{n:?}");
    assert!(!n.contains(&"p/g".to_string()), "{n:?}");
}

/// Found by the round-trip property in CI: a directory replaced by a file and then by a new
/// directory (so it lost its xattr) was applied onto the lower one, which kept its xattr.
#[test]
fn a_directory_that_lost_its_xattrs_loses_them_after_apply() {
    let lower = tempfile::tempdir().unwrap();
    let dir = lower.path().join("d");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("f"), b"f").unwrap();
    for (name, value) in [
        ("user.empty", &b""[..]),
        ("user.kept", b"v"),
        ("user.gone", b"g"),
    ] {
        rustix::fs::lsetxattr(&dir, name, value, rustix::fs::XattrFlags::empty()).unwrap();
    }
    let upper = tempfile::tempdir().unwrap();
    copy_tree(lower.path(), upper.path());
    let up = upper.path().join("d");
    for name in ["user.empty", "user.gone"] {
        rustix::fs::lremovexattr(&up, name).unwrap();
    }
    let layer = tree_diff(lower.path(), upper.path());
    assert_eq!(names(&layer), ["d/"]);
    let result = tempfile::tempdir().unwrap();
    copy_tree(lower.path(), result.path());
    apply(&layer[..], result.path(), &ApplyOptions::default()).unwrap();
    assert_eq!(
        snapshot(result.path())["d"].xattrs,
        snapshot(upper.path())["d"].xattrs
    );
    assert_eq!(snapshot(result.path())["d"].xattrs.len(), 1);
    assert!(
        result.path().join("d/f").exists(),
        "the directory's children stay"
    );
}

/// A directory removed and made again in a RUN is opaque in the upper dir; a file put back in
/// it with the bytes and metadata of the lower's file was left out of the layer as an unchanged
/// copy-up, so the opaque marker deleted it on apply.
#[test]
fn a_file_under_an_opaque_upper_directory_is_kept_even_when_a_lower_has_its_twin() {
    if !require(is_root(), "root (trusted.overlay xattrs)") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let [upper, lower] = dirs_in(work.path(), ["upper", "lower"]);
    for d in [&lower, &upper] {
        fs::create_dir_all(d.join("d/sub")).unwrap();
        fs::write(d.join("d/x"), b"same").unwrap();
        fs::write(d.join("d/sub/y"), b"same").unwrap();
    }
    fs::write(lower.join("d/gone"), b"gone").unwrap();
    mark_opaque(&upper.join("d"));
    let mut layer = Vec::new();
    diff_overlay_upper(
        &upper,
        std::slice::from_ref(&lower),
        &mut layer,
        &DiffOptions::default(),
    )
    .unwrap();
    let result = tempfile::tempdir().unwrap();
    copy_tree(&lower, result.path());
    apply(&layer[..], result.path(), &ApplyOptions::default()).unwrap();
    assert_eq!(listing(result.path()), ["d", "d/sub", "d/sub/y", "d/x"]);
}
