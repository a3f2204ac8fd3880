//! The mount plan: the ordered list of mount operations that turns a fresh mount namespace into
//! the sandbox's root file system. [`plan`] is pure; the init executes the list through
//! [`crate::sys::Sys`].
//!
//! Targets inside the root are [`At::Root`] paths, resolved by the executor with
//! `openat2(RESOLVE_IN_ROOT)` so that symlinks in the image can never point a mount (or a created
//! mount point) outside the root. Mount points that do not exist are created and reported as
//! [`crate::Stub`]s, which are removed from the upper dir after the run.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::spec::{Mount, NetworkMode, SecretFile};

// MS_* flags (linux/mount.h), as plain bits so plans are data.
pub const MS_RDONLY: u64 = 1;
pub const MS_NOSUID: u64 = 2;
pub const MS_NODEV: u64 = 4;
pub const MS_NOEXEC: u64 = 8;
pub const MS_REMOUNT: u64 = 32;
pub const MS_BIND: u64 = 4096;
pub const MS_REC: u64 = 16384;
pub const MS_PRIVATE: u64 = 1 << 18;
pub const MS_STRICTATIME: u64 = 1 << 24;

/// What to create when a mount point is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Create {
    File,
    Dir,
    /// Must exist (masking `/proc` entries: absent ones are skipped).
    Existing,
}

/// Where an operation applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum At {
    /// A path in the init's (pre-pivot) view: the stage dir and the root mount point.
    Host(PathBuf),
    /// An absolute path inside the sandbox root.
    Root { path: String, create: Create },
}

impl At {
    fn root(path: impl Into<String>, create: Create) -> Self {
        At::Root {
            path: path.into(),
            create,
        }
    }
}

/// One step of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Stop mount events from propagating back to the host (`mount --make-rprivate /`).
    MakeRootPrivate,
    /// The root: overlayfs of `lowers` (topmost first) with a fresh upper dir.
    Overlay {
        at: PathBuf,
        lowers: Vec<PathBuf>,
        upper: PathBuf,
        work: PathBuf,
        userxattr: bool,
    },
    /// The root: a bind of a directory onto itself (copy mode), so it is a mount point.
    BindRoot {
        dir: PathBuf,
    },
    Mount {
        source: String,
        at: At,
        fstype: String,
        flags: u64,
        data: String,
    },
    Bind {
        from: PathBuf,
        at: At,
        recursive: bool,
        readonly: bool,
    },
    /// Writes a file (into a tmpfs).
    WriteFile {
        at: At,
        contents: Vec<u8>,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    Symlink {
        at: String,
        to: String,
    },
    /// Hides a `/proc` or `/sys` entry: `/dev/null` over a file, an empty read-only tmpfs over a
    /// directory. Absent entries are skipped.
    Mask {
        path: String,
    },
    /// Makes an existing path read-only (bind onto itself, remount read-only).
    ReadOnly {
        path: String,
    },
    PivotRoot {
        root: PathBuf,
    },
}

/// What the plan needs to know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inputs {
    pub root: RootSetup,
    /// Where the root is assembled (a directory on the host).
    pub merged: PathBuf,
    /// A directory for the private tmpfs holding generated files and secrets.
    pub stage: PathBuf,
    pub mounts: Vec<Mount>,
    pub hosts: String,
    pub resolv_conf: String,
    pub hostname: String,
    pub network: NetworkMode,
    /// In a user namespace: devpts without `gid=5` when gid 5 is not mapped.
    pub tty_gid_mapped: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RootSetup {
    /// Lower dirs topmost first (overlayfs order).
    Overlay {
        lowers: Vec<PathBuf>,
        upper: PathBuf,
        work: PathBuf,
        userxattr: bool,
    },
    /// A private copy of the root, used directly.
    Copy { dir: PathBuf },
}

/// Device nodes bind-mounted from the host into the sandbox's `/dev`.
pub const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// `/proc` and `/sys` paths hidden from the sandbox (as Docker does).
pub const MASKED: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
];

/// `/proc` paths made read-only.
pub const READONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("mount target {0:?} must be an absolute path without `..` components")]
    Target(String),
    #[error("mount target {0:?} is reserved by the sandbox")]
    Reserved(String),
    #[error("tmpfs file {0:?} must be a relative path without `..` components")]
    FilePath(String),
    #[error("bind source {0} must be an absolute path")]
    Source(PathBuf),
}

fn clean_target(t: &str) -> Result<String, PlanError> {
    if !t.starts_with('/') || t.split('/').any(|c| c == "..") {
        return Err(PlanError::Target(t.to_string()));
    }
    let joined: Vec<&str> = t
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    let clean = format!("/{}", joined.join("/"));
    if clean == "/" || clean == "/proc" || clean.starts_with("/proc/") || clean == "/dev" {
        return Err(PlanError::Reserved(t.to_string()));
    }
    Ok(clean)
}

fn clean_relative(p: &str) -> Result<String, PlanError> {
    let parts: Vec<&str> = p
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if p.starts_with('/') || parts.is_empty() || parts.contains(&"..") {
        return Err(PlanError::FilePath(p.to_string()));
    }
    Ok(parts.join("/"))
}

/// The ordered operations for `inputs`.
pub fn plan(inputs: &Inputs) -> Result<Vec<Op>, PlanError> {
    let mut ops = vec![Op::MakeRootPrivate];
    let stage = &inputs.stage;
    ops.push(Op::Mount {
        source: "tmpfs".into(),
        at: At::Host(stage.clone()),
        fstype: "tmpfs".into(),
        flags: MS_NOSUID | MS_NODEV | MS_NOEXEC,
        data: "mode=700".into(),
    });
    for (name, contents) in [
        ("hosts", &inputs.hosts),
        ("resolv.conf", &inputs.resolv_conf),
        ("hostname", &inputs.hostname),
    ] {
        ops.push(Op::WriteFile {
            at: At::Host(stage.join(name)),
            contents: contents.as_bytes().to_vec(),
            mode: 0o644,
            uid: 0,
            gid: 0,
        });
    }

    match &inputs.root {
        RootSetup::Overlay {
            lowers,
            upper,
            work,
            userxattr,
        } => ops.push(Op::Overlay {
            at: inputs.merged.clone(),
            lowers: lowers.clone(),
            upper: upper.clone(),
            work: work.clone(),
            userxattr: *userxattr,
        }),
        RootSetup::Copy { dir } => ops.push(Op::BindRoot { dir: dir.clone() }),
    }

    ops.push(Op::Mount {
        source: "proc".into(),
        at: At::root("/proc", Create::Dir),
        fstype: "proc".into(),
        flags: MS_NOSUID | MS_NODEV | MS_NOEXEC,
        data: String::new(),
    });
    ops.push(Op::Mount {
        source: "tmpfs".into(),
        at: At::root("/dev", Create::Dir),
        fstype: "tmpfs".into(),
        flags: MS_NOSUID | MS_STRICTATIME,
        data: "mode=755,size=65536k".into(),
    });
    for dev in DEVICES {
        ops.push(Op::Bind {
            from: Path::new("/dev").join(dev),
            at: At::root(format!("/dev/{dev}"), Create::File),
            recursive: false,
            readonly: false,
        });
    }
    ops.push(Op::Mount {
        source: "devpts".into(),
        at: At::root("/dev/pts", Create::Dir),
        fstype: "devpts".into(),
        flags: MS_NOSUID | MS_NOEXEC,
        data: if inputs.tty_gid_mapped {
            "newinstance,ptmxmode=0666,mode=0620,gid=5".into()
        } else {
            "newinstance,ptmxmode=0666,mode=0620".into()
        },
    });
    ops.push(Op::Symlink {
        at: "/dev/ptmx".into(),
        to: "pts/ptmx".into(),
    });
    ops.push(Op::Mount {
        source: "shm".into(),
        at: At::root("/dev/shm", Create::Dir),
        fstype: "tmpfs".into(),
        flags: MS_NOSUID | MS_NODEV | MS_NOEXEC,
        data: "mode=1777,size=65536k".into(),
    });
    for (link, to) in [
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
        ("/dev/core", "/proc/kcore"),
    ] {
        ops.push(Op::Symlink {
            at: link.into(),
            to: to.into(),
        });
    }
    ops.push(Op::Mount {
        source: "sysfs".into(),
        at: At::root("/sys", Create::Dir),
        fstype: "sysfs".into(),
        flags: MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
        data: String::new(),
    });
    for (name, target) in [
        ("hosts", "/etc/hosts"),
        ("resolv.conf", "/etc/resolv.conf"),
        ("hostname", "/etc/hostname"),
    ] {
        ops.push(Op::Bind {
            from: stage.join(name),
            at: At::root(target, Create::File),
            recursive: false,
            readonly: false,
        });
    }

    for (i, m) in inputs.mounts.iter().enumerate() {
        match m {
            Mount::Bind {
                source,
                target,
                readonly,
            } => {
                if !source.is_absolute() {
                    return Err(PlanError::Source(source.clone()));
                }
                let create = if source.is_dir() {
                    Create::Dir
                } else {
                    Create::File
                };
                ops.push(Op::Bind {
                    from: source.clone(),
                    at: At::root(clean_target(target)?, create),
                    recursive: !*readonly,
                    readonly: *readonly,
                });
            }
            Mount::Cache { source, target } => {
                if !source.is_absolute() {
                    return Err(PlanError::Source(source.clone()));
                }
                ops.push(Op::Bind {
                    from: source.clone(),
                    at: At::root(clean_target(target)?, Create::Dir),
                    recursive: true,
                    readonly: false,
                });
            }
            Mount::Tmpfs {
                target,
                size_bytes,
                mode,
                files,
            } => {
                let target = clean_target(target)?;
                let mut data = format!("mode={mode:o}");
                if let Some(s) = size_bytes {
                    data.push_str(&format!(",size={s}"));
                }
                ops.push(Op::Mount {
                    source: "tmpfs".into(),
                    at: At::root(target.clone(), Create::Dir),
                    fstype: "tmpfs".into(),
                    flags: MS_NOSUID | MS_NODEV,
                    data,
                });
                for f in files {
                    ops.push(write_secret(
                        At::root(
                            format!("{target}/{}", clean_relative(&f.path)?),
                            Create::File,
                        ),
                        f,
                    ));
                }
            }
            Mount::Secret { target, file } => {
                let staged = stage.join(format!("secret-{i}"));
                ops.push(write_secret(At::Host(staged.clone()), file));
                ops.push(Op::Bind {
                    from: staged,
                    at: At::root(clean_target(target)?, Create::File),
                    recursive: false,
                    readonly: true,
                });
            }
        }
    }

    for path in MASKED {
        ops.push(Op::Mask {
            path: (*path).into(),
        });
    }
    for path in READONLY {
        ops.push(Op::ReadOnly {
            path: (*path).into(),
        });
    }
    ops.push(Op::PivotRoot {
        root: inputs.merged.clone(),
    });
    Ok(ops)
}

fn write_secret(at: At, f: &SecretFile) -> Op {
    Op::WriteFile {
        at,
        contents: f.contents.clone(),
        mode: f.mode,
        uid: f.uid,
        gid: f.gid,
    }
}

/// The overlayfs option string for `mount(2)`; `None` when it would not fit in a page (then
/// the new mount API adds lower dirs one by one).
pub fn overlay_options(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    userxattr: bool,
) -> Option<String> {
    let mut s = String::from("lowerdir=");
    for (i, l) in lowers.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push_str(&escape_overlay_path(&l.to_string_lossy()));
    }
    s.push_str(&format!(
        ",upperdir={},workdir={}",
        escape_overlay_path(&upper.to_string_lossy()),
        escape_overlay_path(&work.to_string_lossy())
    ));
    s.push_str(
        &overlay_fixed_options(userxattr)
            .iter()
            .map(|o| format!(",{o}"))
            .collect::<String>(),
    );
    (s.len() < 4096).then_some(s)
}

/// Options that keep the upper dir a plain diff: no index, no redirects, no metacopy.
pub fn overlay_fixed_options(userxattr: bool) -> Vec<&'static str> {
    let mut v = vec!["index=off", "redirect_dir=nofollow", "metacopy=off"];
    if userxattr {
        v.push("userxattr");
    }
    v
}

/// overlayfs splits its options at `,` and lower dirs at `:`; both are escaped with `\`.
pub fn escape_overlay_path(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for c in p.chars() {
        if matches!(c, ',' | ':' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> Inputs {
        Inputs {
            root: RootSetup::Overlay {
                lowers: vec!["/s/l2".into(), "/s/l1".into()],
                upper: "/r/upper".into(),
                work: "/r/work".into(),
                userxattr: false,
            },
            merged: "/r/merged".into(),
            stage: "/r/stage".into(),
            mounts: vec![],
            hosts: "127.0.0.1 localhost\n".into(),
            resolv_conf: String::new(),
            hostname: "h\n".into(),
            network: NetworkMode::None,
            tty_gid_mapped: true,
        }
    }

    fn targets(ops: &[Op]) -> Vec<String> {
        ops.iter()
            .filter_map(|op| match op {
                Op::Mount {
                    at: At::Root { path, .. },
                    ..
                }
                | Op::Bind {
                    at: At::Root { path, .. },
                    ..
                } => Some(path.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn standard_plan_order() {
        let ops = plan(&inputs()).unwrap();
        assert_eq!(ops[0], Op::MakeRootPrivate);
        assert!(
            matches!(&ops[1], Op::Mount { fstype, at: At::Host(p), .. } if fstype == "tmpfs" && p == Path::new("/r/stage"))
        );
        assert!(
            matches!(ops.last(), Some(Op::PivotRoot { root }) if root == Path::new("/r/merged"))
        );
        let t = targets(&ops);
        let expected = [
            "/proc",
            "/dev",
            "/dev/null",
            "/dev/zero",
            "/dev/full",
            "/dev/random",
            "/dev/urandom",
            "/dev/tty",
            "/dev/pts",
            "/dev/shm",
            "/sys",
            "/etc/hosts",
            "/etc/resolv.conf",
            "/etc/hostname",
        ];
        assert_eq!(t, expected);
        assert!(ops.contains(&Op::Symlink {
            at: "/dev/ptmx".into(),
            to: "pts/ptmx".into()
        }));
        assert!(ops.contains(&Op::Mask {
            path: "/proc/kcore".into()
        }));
        assert!(ops.contains(&Op::ReadOnly {
            path: "/proc/sys".into()
        }));
    }

    #[test]
    fn user_mounts_in_order_with_secrets_staged() {
        let mut i = inputs();
        i.mounts = vec![
            Mount::Bind {
                source: "/src".into(),
                target: "/workspace/".into(),
                readonly: true,
            },
            Mount::Cache {
                source: "/cache/go".into(),
                target: "/root/.cache".into(),
            },
            Mount::Tmpfs {
                target: "/run/secrets".into(),
                size_bytes: Some(1 << 20),
                mode: 0o700,
                files: vec![SecretFile::new("npm/token", "s3cr3t")],
            },
            Mount::Secret {
                target: "/etc/ssl/key.pem".into(),
                file: SecretFile::new("", "KEY"),
            },
        ];
        let ops = plan(&i).unwrap();
        let t = targets(&ops);
        assert_eq!(
            t[t.len() - 4..],
            [
                "/workspace",
                "/root/.cache",
                "/run/secrets",
                "/etc/ssl/key.pem"
            ]
        );
        assert!(ops.iter().any(|op| matches!(op,
            Op::WriteFile { at: At::Root { path, .. }, contents, .. } if path == "/run/secrets/npm/token" && contents == b"s3cr3t")));
        assert!(ops.iter().any(|op| matches!(op,
            Op::WriteFile { at: At::Host(p), .. } if p == Path::new("/r/stage/secret-3"))));
        assert!(ops.iter().any(|op| matches!(op,
            Op::Bind { from, readonly: true, .. } if from == Path::new("/r/stage/secret-3"))));
    }

    #[test]
    fn bad_targets_are_rejected() {
        for (target, bad) in [
            ("relative", true),
            ("/a/../etc", true),
            ("/", true),
            ("/proc/sys", true),
            ("/dev", true),
            ("/ok/./x", false),
        ] {
            let mut i = inputs();
            i.mounts = vec![Mount::Cache {
                source: "/c".into(),
                target: target.into(),
            }];
            assert_eq!(plan(&i).is_err(), bad, "{target}");
        }
        let mut i = inputs();
        i.mounts = vec![Mount::Tmpfs {
            target: "/s".into(),
            size_bytes: None,
            mode: 0o700,
            files: vec![SecretFile::new("../escape", "x")],
        }];
        assert_eq!(plan(&i), Err(PlanError::FilePath("../escape".into())));
    }

    #[test]
    fn overlay_options_escape_and_overflow() {
        let o = overlay_options(
            &["/a,b".into(), "/c:d".into()],
            Path::new("/u"),
            Path::new("/w"),
            true,
        )
        .unwrap();
        assert_eq!(
            o,
            "lowerdir=/a\\,b:/c\\:d,upperdir=/u,workdir=/w,index=off,redirect_dir=nofollow,metacopy=off,userxattr"
        );
        let many: Vec<PathBuf> = (0..100)
            .map(|i| PathBuf::from(format!("/var/lib/drydock/snapshots/sha256/{i:064}")))
            .collect();
        assert_eq!(
            overlay_options(&many, Path::new("/u"), Path::new("/w"), false),
            None
        );
    }
}
