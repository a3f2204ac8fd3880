//! Hostile layer archives, generated here: none of them may write outside the target.
//!
//! Each case runs with both path resolvers (openat2 and the portable walk) and both symlink
//! policies, into `WORK/target`, next to a sentinel directory `WORK/sentinel` whose snapshot must
//! not change, and nothing may appear in `WORK` besides the two.

mod common;

use std::path::Path;

use common::*;
use drydock_layer::*;

type MakeTar = Box<dyn Fn(&str) -> Vec<u8>>;

struct Case {
    name: &'static str,
    /// Builds the archive; gets the absolute sentinel path.
    tar: MakeTar,
    /// The reason the apply must refuse with (under each policy), or `None` for "may succeed, but
    /// inside the target".
    expect: Option<Reject>,
    /// Under `RejectEscapes`, if different.
    expect_strict: Option<Option<Reject>>,
}

fn cases() -> Vec<Case> {
    let mut v = vec![
        Case {
            name: "dotdot file",
            tar: Box::new(|_| RawTar::new().file(b"../pwned", b"x").finish()),
            expect: Some(Reject::DotDot),
            expect_strict: None,
        },
        Case {
            name: "dotdot in the middle",
            tar: Box::new(|_| {
                RawTar::new()
                    .dir(b"a/")
                    .file(b"a/../../pwned", b"x")
                    .finish()
            }),
            expect: Some(Reject::DotDot),
            expect_strict: None,
        },
        Case {
            name: "absolute path is taken as relative to the target",
            tar: Box::new(|s| {
                RawTar::new()
                    .file(format!("{s}/pwned").as_bytes(), b"x")
                    .finish()
            }),
            expect: None,
            expect_strict: None,
        },
        Case {
            name: "symlink to the sentinel, then a file through it",
            tar: Box::new(|s| {
                RawTar::new()
                    .symlink(b"a", s.as_bytes())
                    .file(b"a/pwned", b"x")
                    .finish()
            }),
            expect: None,
            expect_strict: Some(Some(Reject::SymlinkEscape)),
        },
        Case {
            name: "relative symlink climbing out, then a file through it",
            tar: Box::new(|_| {
                RawTar::new()
                    .symlink(b"a", b"../../../../../../../../..")
                    .file(b"a/pwned", b"x")
                    .finish()
            }),
            expect: None,
            expect_strict: Some(Some(Reject::SymlinkEscape)),
        },
        Case {
            name: "symlink chain out, then a directory and a file through it",
            tar: Box::new(|s| {
                RawTar::new()
                    .symlink(b"b", s.as_bytes())
                    .symlink(b"a", b"b")
                    .dir(b"a/sub/")
                    .file(b"a/sub/pwned", b"x")
                    .finish()
            }),
            expect: None,
            expect_strict: Some(Some(Reject::SymlinkEscape)),
        },
        Case {
            name: "a directory replaced by a symlink out, then a file below",
            tar: Box::new(|s| {
                RawTar::new()
                    .dir(b"d/")
                    .symlink(b"d", s.as_bytes())
                    .file(b"d/pwned", b"x")
                    .finish()
            }),
            expect: None,
            expect_strict: Some(Some(Reject::SymlinkEscape)),
        },
        Case {
            name: "regular file over a symlink to a sentinel file",
            tar: Box::new(|s| {
                RawTar::new()
                    .symlink(b"f", format!("{s}/file").as_bytes())
                    .file(b"f", b"overwritten?")
                    .finish()
            }),
            expect: None,
            expect_strict: None,
        },
        Case {
            name: "hard link with dotdot",
            tar: Box::new(|_| RawTar::new().hardlink(b"h", b"../sentinel/file").finish()),
            expect: Some(Reject::DotDot),
            expect_strict: None,
        },
        Case {
            name: "hard link to an absolute sentinel path",
            tar: Box::new(|s| {
                RawTar::new()
                    .hardlink(b"h", format!("{s}/file").as_bytes())
                    .finish()
            }),
            expect: Some(Reject::HardlinkTargetMissing(String::new())),
            expect_strict: None,
        },
        Case {
            name: "hard link through a symlink that escapes",
            tar: Box::new(|s| {
                RawTar::new()
                    .symlink(b"d", s.as_bytes())
                    .hardlink(b"h", b"d/file")
                    .finish()
            }),
            expect: Some(Reject::HardlinkTargetMissing(String::new())),
            expect_strict: Some(Some(Reject::SymlinkEscape)),
        },
        Case {
            name: "hard link to an escaping symlink, then a write to the link",
            tar: Box::new(|s| {
                RawTar::new()
                    .symlink(b"s", format!("{s}/file").as_bytes())
                    .hardlink(b"h", b"s")
                    .file(b"h", b"overwritten?")
                    .finish()
            }),
            expect: None,
            expect_strict: None,
        },
        Case {
            name: "hard link to a nonexistent file",
            tar: Box::new(|_| RawTar::new().hardlink(b"h", b"nope").finish()),
            expect: Some(Reject::HardlinkTargetMissing(String::new())),
            expect_strict: None,
        },
        Case {
            name: "hard link to the root directory",
            tar: Box::new(|_| RawTar::new().hardlink(b"h", b"./").finish()),
            expect: Some(Reject::HardlinkToDirectory(String::new())),
            expect_strict: None,
        },
        Case {
            name: "character device",
            tar: Box::new(|_| RawTar::new().device(b"mem", b'3', 1, 1).finish()),
            expect: Some(Reject::Device),
            expect_strict: None,
        },
        Case {
            name: "block device",
            tar: Box::new(|_| RawTar::new().device(b"sda", b'4', 8, 0).finish()),
            expect: Some(Reject::Device),
            expect_strict: None,
        },
        Case {
            name: "whiteout of dotdot",
            tar: Box::new(|_| RawTar::new().file(b".wh...", b"").finish()),
            expect: Some(Reject::BadWhiteout),
            expect_strict: None,
        },
        Case {
            name: "whiteout of dotdot in a subdirectory",
            tar: Box::new(|_| RawTar::new().dir(b"a/").file(b"a/.wh...", b"").finish()),
            expect: Some(Reject::BadWhiteout),
            expect_strict: None,
        },
        Case {
            name: "whiteout of dot",
            tar: Box::new(|_| RawTar::new().file(b".wh..", b"").finish()),
            expect: Some(Reject::BadWhiteout),
            expect_strict: None,
        },
        Case {
            name: "whiteout through an escaping symlink",
            tar: Box::new(|s| {
                RawTar::new()
                    .symlink(b"d", s.as_bytes())
                    .file(b"d/.wh.file", b"")
                    .finish()
            }),
            expect: None,
            expect_strict: Some(Some(Reject::SymlinkEscape)),
        },
        Case {
            name: "opaque marker through an escaping symlink",
            tar: Box::new(|s| {
                RawTar::new()
                    .symlink(b"d", s.as_bytes())
                    .file(b"d/.wh..wh..opq", b"")
                    .finish()
            }),
            expect: None,
            expect_strict: Some(Some(Reject::SymlinkEscape)),
        },
        Case {
            name: "very long PAX path that climbs out",
            tar: Box::new(|_| {
                let long = format!("{}/{}pwned", "a".repeat(200), "../".repeat(60));
                RawTar::new()
                    .pax(&[(b"path", long.as_bytes())])
                    .file(b"harmless", b"x")
                    .finish()
            }),
            expect: Some(Reject::DotDot),
            expect_strict: None,
        },
        Case {
            name: "PAX linkpath of a hard link that climbs out",
            tar: Box::new(|_| {
                let long = format!("{}../../sentinel/file", "./".repeat(80));
                RawTar::new()
                    .pax(&[(b"linkpath", long.as_bytes())])
                    .hardlink(b"h", b"x")
                    .finish()
            }),
            expect: Some(Reject::DotDot),
            expect_strict: None,
        },
        Case {
            name: "GNU long name that climbs out",
            tar: Box::new(|_| {
                let long = format!("{}/../../../../pwned", "b".repeat(150));
                RawTar::new()
                    .gnu_longname(long.as_bytes())
                    .file(b"harmless", b"x")
                    .finish()
            }),
            expect: Some(Reject::DotDot),
            expect_strict: None,
        },
        Case {
            name: "PAX path with a NUL byte",
            tar: Box::new(|_| {
                RawTar::new()
                    .pax(&[(b"path", b"ok\0../../pwned")])
                    .file(b"x", b"x")
                    .finish()
            }),
            expect: Some(Reject::Nul),
            expect_strict: None,
        },
        Case {
            name: "overlay xattrs cannot be planted",
            tar: Box::new(|_| {
                RawTar::new()
                    .pax(&[(b"SCHILY.xattr.trusted.overlay.redirect", b"/etc")])
                    .dir(b"d/")
                    .finish()
            }),
            expect: None,
            expect_strict: None,
        },
        Case {
            name: "entry below a regular file",
            tar: Box::new(|_| RawTar::new().file(b"f", b"x").file(b"f/g", b"y").finish()),
            expect: Some(Reject::ParentNotDirectory),
            expect_strict: None,
        },
    ];
    // Symlink loops must fail cleanly, not spin.
    v.push(Case {
        name: "symlink loop",
        tar: Box::new(|_| {
            RawTar::new()
                .symlink(b"a", b"b")
                .symlink(b"b", b"a")
                .file(b"a/x", b"x")
                .finish()
        }),
        expect: None,
        expect_strict: None,
    });
    v
}

fn same_reason(got: &Reject, want: &Reject) -> bool {
    match (got, want) {
        (Reject::HardlinkTargetMissing(_), Reject::HardlinkTargetMissing(_)) => true,
        (Reject::HardlinkToDirectory(_), Reject::HardlinkToDirectory(_)) => true,
        (a, b) => a == b,
    }
}

fn run(case: &Case, portable: bool, policy: SymlinkPolicy) {
    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("target");
    let sentinel = work.path().join("sentinel");
    std::fs::create_dir(&target).unwrap();
    std::fs::create_dir(&sentinel).unwrap();
    std::fs::write(sentinel.join("file"), b"sentinel").unwrap();
    std::fs::create_dir(sentinel.join("dir")).unwrap();
    std::fs::write(sentinel.join("dir/inner"), b"inner").unwrap();
    let before = snapshot(&sentinel);
    let tar = (case.tar)(sentinel.to_str().unwrap());
    let opts = ApplyOptions {
        portable_resolver: portable,
        symlinks: policy,
        ..Default::default()
    };
    let res = apply(&tar[..], &target, &opts);
    let label = format!("{} (portable={portable}, {policy:?})", case.name);
    let expect = match (policy, &case.expect_strict) {
        (SymlinkPolicy::RejectEscapes, Some(e)) => e.clone(),
        _ => case.expect.clone(),
    };
    match (&expect, &res) {
        (Some(want), Err(e)) => {
            let got = e
                .reject_reason()
                .unwrap_or_else(|| panic!("{label}: wrong error {e}"));
            assert!(
                same_reason(got, want),
                "{label}: refused for {got:?}, expected {want:?}"
            );
            // The error names the entry.
            assert!(e.to_string().contains("layer entry"), "{label}: {e}");
        }
        (Some(want), Ok(_)) => panic!("{label}: applied, expected refusal {want:?}"),
        (None, _) => {}
    }
    assert_eq!(snapshot(&sentinel), before, "{label}: sentinel changed");
    let mut names: Vec<_> = std::fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["sentinel", "target"],
        "{label}: something appeared outside"
    );
    // Outside the work dir too: nothing named "pwned" at the filesystem root or next to it.
    assert!(!Path::new("/pwned").exists(), "{label}: /pwned exists");
    // Planted overlay xattrs never land.
    if target.join("d").exists() {
        let mut buf = [0u8; 64];
        assert!(
            rustix::fs::lgetxattr(target.join("d"), "trusted.overlay.redirect", &mut buf[..])
                .is_err(),
            "{label}: overlay xattr planted"
        );
    }
}

#[test]
fn hostile_archives_never_write_outside_the_target() {
    let all = cases();
    assert!(all.len() >= 25);
    for case in &all {
        for portable in [false, true] {
            for policy in [SymlinkPolicy::InRoot, SymlinkPolicy::RejectEscapes] {
                run(case, portable, policy);
            }
        }
    }
}

#[test]
fn writes_through_symlinks_land_inside_the_target_in_root_mode() {
    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("target");
    std::fs::create_dir(&target).unwrap();
    let tar = RawTar::new()
        .dir(b"etc/")
        .symlink(b"a", b"/etc")
        .file(b"a/passwd", b"root::0:0::/:/bin/sh\n")
        .finish();
    apply(&tar[..], &target, &ApplyOptions::default()).unwrap();
    assert_eq!(
        std::fs::read(target.join("etc/passwd")).unwrap(),
        b"root::0:0::/:/bin/sh\n"
    );
    assert_eq!(
        std::fs::read_link(target.join("a")).unwrap(),
        Path::new("/etc")
    );
}

#[test]
fn devices_are_created_when_allowed() {
    if !require(is_root(), "root") {
        return;
    }
    let target = tempfile::tempdir().unwrap();
    let tar = RawTar::new().device(b"null", b'3', 1, 3).finish();
    let opts = ApplyOptions {
        allow_devices: true,
        ..Default::default()
    };
    apply(&tar[..], target.path(), &opts).unwrap();
    let snap = snapshot(target.path());
    assert_eq!(snap["null"].kind, "char");
    assert_eq!(snap["null"].rdev, rustix::fs::makedev(1, 3));
}

#[test]
fn devices_are_left_out_and_listed_when_skipped() {
    let target = tempfile::tempdir().unwrap();
    let tar = RawTar::new()
        .dir(b"dev/")
        .device(b"dev/console", b'3', 5, 1)
        .device(b"dev/sda", b'4', 8, 0)
        .file(b"after", b"x")
        .finish();
    let refused = apply(&tar[..], target.path(), &ApplyOptions::default());
    assert!(
        matches!(
            refused,
            Err(LayerError::Rejected {
                reason: Reject::Device,
                ..
            })
        ),
        "{refused:?}"
    );
    let target = tempfile::tempdir().unwrap();
    let opts = ApplyOptions {
        skip_devices: true,
        ..Default::default()
    };
    let stats = apply(&tar[..], target.path(), &opts).unwrap();
    assert_eq!(stats.skipped_devices, ["dev/console", "dev/sda"]);
    assert!(!target.path().join("dev/console").exists());
    assert_eq!(std::fs::read(target.path().join("after")).unwrap(), b"x");
}

#[test]
fn corrupt_archives_are_read_errors_not_panics() {
    let good = RawTar::new().file(b"a", &[b'x'; 3000]).finish();
    for cut in [1, 100, 511, 600, 2000] {
        let target = tempfile::tempdir().unwrap();
        let r = apply(&good[..cut], target.path(), &ApplyOptions::default());
        assert!(
            matches!(r, Err(LayerError::Read { .. })),
            "cut at {cut}: {r:?}"
        );
    }
    let mut bad = good.clone();
    bad[148] = b'9';
    let target = tempfile::tempdir().unwrap();
    let r = apply(&bad[..], target.path(), &ApplyOptions::default());
    assert!(matches!(r, Err(LayerError::Read { .. })), "{r:?}");
}
