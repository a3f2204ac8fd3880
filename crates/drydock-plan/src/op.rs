//! The operations of a build graph. Inputs are referenced by [`OpId`] (the digest of the input
//! operation), so every operation's digest covers everything it depends on.

use std::collections::BTreeMap;

use drydock_oci::Digest;
use serde::{Deserialize, Serialize};

/// An operation's content address: sha256 of its canonical JSON.
pub type OpId = Digest;

/// One node of the build graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Op {
    /// An empty filesystem.
    Scratch,
    /// A base image, pinned by the digest the caller resolved.
    Image(ImageSource),
    /// Files from a local context. The builder hashes their contents; the plan only names them.
    Local(LocalSource),
    /// A file downloaded over HTTP(S) (`ADD <url>`).
    Http(HttpSource),
    /// A git repository checkout (`ADD <git url>`).
    Git(GitSource),
    /// Run a process on top of `root`; the result is the changed root filesystem.
    Exec(ExecOp),
    /// File operations on `base` (or on an empty filesystem).
    File(FileOp),
    /// Layer the inputs on top of each other, later ones winning (`COPY --link`).
    Merge(MergeOp),
    /// The changes that turn `lower` into `upper`.
    Diff(DiffOp),
}

impl Op {
    /// The operations this one reads from, in a fixed order.
    pub fn inputs(&self) -> Vec<&OpId> {
        match self {
            Op::Scratch | Op::Image(_) | Op::Local(_) | Op::Http(_) | Op::Git(_) => Vec::new(),
            Op::Exec(e) => {
                let mut v = vec![&e.root];
                for m in &e.mounts {
                    match &m.kind {
                        MountKind::Bind { input: Some(i), .. }
                        | MountKind::Cache { base: Some(i), .. } => v.push(i),
                        _ => {}
                    }
                }
                v
            }
            Op::File(f) => {
                let mut v: Vec<&OpId> = f.base.iter().collect();
                for a in &f.actions {
                    if let FileAction::Copy(c) = a {
                        v.push(&c.source);
                    }
                }
                v
            }
            Op::Merge(m) => m.inputs.iter().collect(),
            Op::Diff(d) => vec![&d.lower, &d.upper],
        }
    }

    /// A short name for the kind of operation.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Scratch => "scratch",
            Op::Image(_) => "image",
            Op::Local(_) => "local",
            Op::Http(_) => "http",
            Op::Git(_) => "git",
            Op::Exec(_) => "exec",
            Op::File(_) => "file",
            Op::Merge(_) => "merge",
            Op::Diff(_) => "diff",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSource {
    /// The reference as resolved (normalised, e.g. `docker.io/library/alpine:3.19`).
    pub reference: String,
    /// The manifest digest the caller resolved it to; the op's identity.
    pub digest: Digest,
    /// `os/arch[/variant]`.
    pub platform: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalSource {
    /// `context` for the build context, or a named context.
    pub name: String,
    /// Only these paths (and their parents) are needed; empty means everything.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub follow_paths: Vec<String>,
    /// `.dockerignore` patterns, in order (`!` re-includes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_patterns: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpSource {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<Digest>,
    /// The name to save it under (from the URL's last path segment).
    pub filename: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitSource {
    pub remote: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subdir: Option<String>,
    pub keep_git_dir: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    #[default]
    Sandbox,
    None,
    Host,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Security {
    #[default]
    Sandbox,
    Insecure,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecOp {
    pub root: OpId,
    pub args: Vec<String>,
    /// `KEY=value`, in order.
    pub env: Vec<String>,
    pub cwd: String,
    /// `user[:group]` as written; empty is root. The builder resolves names in the rootfs.
    pub user: String,
    pub network: Network,
    pub security: Security,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<ExecMount>,
    /// Proxy variables from build args. Passed to the process but not part of the digest, as
    /// BuildKit does, so changing a proxy does not invalidate the cache.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub proxy_env: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecMount {
    /// Where it appears; `None` for a secret exposed only as an environment variable.
    pub target: Option<String>,
    #[serde(flatten)]
    pub kind: MountKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheSharing {
    Shared,
    Private,
    Locked,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mount", rename_all = "snake_case")]
pub enum MountKind {
    /// A directory of an input (`None`: the build context is named by `input` always; kept
    /// optional for an empty bind).
    Bind {
        input: Option<OpId>,
        selector: String,
        readonly: bool,
    },
    /// A persistent cache directory shared between builds, keyed by `id` (not part of any
    /// layer). `base` seeds it.
    Cache {
        id: String,
        sharing: CacheSharing,
        base: Option<OpId>,
        selector: String,
        readonly: bool,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    Tmpfs {
        size: Option<u64>,
    },
    /// A secret by id only; its value never enters the plan.
    Secret {
        id: String,
        env: Option<String>,
        required: bool,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    Ssh {
        id: String,
        required: bool,
        mode: u32,
        uid: u32,
        gid: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileOp {
    /// The filesystem to change; `None` starts from empty.
    pub base: Option<OpId>,
    pub actions: Vec<FileAction>,
}

/// `user[:group]`, unresolved: the builder looks names up in the destination filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

impl Owner {
    pub fn parse(s: &str) -> Owner {
        match s.split_once(':') {
            Some((u, g)) => Owner {
                user: u.into(),
                group: Some(g.into()),
            },
            None => Owner {
                user: s.into(),
                group: None,
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum FileAction {
    Copy(CopyAction),
    Mkdir {
        path: String,
        mode: u32,
        make_parents: bool,
        owner: Option<Owner>,
    },
    Mkfile {
        path: String,
        data: String,
        mode: u32,
        owner: Option<Owner>,
    },
    Rm {
        path: String,
        allow_not_found: bool,
        allow_wildcard: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyAction {
    pub source: OpId,
    /// Path in `source` (may contain wildcards when `allow_wildcard`).
    pub src: String,
    /// Absolute destination; ends with `/` when it must be a directory.
    pub dest: String,
    pub owner: Option<Owner>,
    /// Octal (`0755`) or symbolic (`u+x`) mode, as written.
    pub mode: Option<String>,
    pub follow_symlinks: bool,
    /// Copy a directory's contents rather than the directory itself.
    pub dir_contents_only: bool,
    pub allow_wildcard: bool,
    pub allow_empty_wildcard: bool,
    pub create_dest_path: bool,
    /// ADD: extract local tar archives.
    pub attempt_unpack: bool,
    /// `--parents`: keep the source's parent directories.
    pub parents: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_patterns: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeOp {
    pub inputs: Vec<OpId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffOp {
    pub lower: OpId,
    pub upper: OpId,
}
