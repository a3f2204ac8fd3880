//! A whole build plan: the operations in dependency order, the result, and the source map.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use drydock_oci::Digest;
use serde::{Deserialize, Serialize};

use crate::canonical;
use crate::config::{History, ImageConfig};
use crate::op::{FileAction, MountKind, Op, OpId};

/// Where an operation came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// The file name as the caller named it (not a host path).
    pub file: String,
    /// 1-based, inclusive.
    pub start_line: usize,
    pub end_line: usize,
    /// Byte range in the file.
    pub start: usize,
    pub end: usize,
    /// The stage (name or index) the instruction belongs to.
    pub stage: String,
}

/// An operation and its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub id: OpId,
    pub op: Op,
}

/// A history entry of the result and, for entries that add a layer, the op whose filesystem
/// ends that layer (the layer is the difference to the previous such op).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    #[serde(flatten)]
    pub history: History,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<OpId>,
}

/// A build plan: a content-addressed graph of operations producing one image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The platform the image is built for, `os/arch[/variant]`.
    pub platform: String,
    /// Every operation, each after its inputs.
    pub ops: Vec<Node>,
    /// The operation whose filesystem is the image's root filesystem.
    pub root: OpId,
    /// The image config (no timestamps; the builder adds `created` and the rootfs).
    pub config: ImageConfig,
    /// History entries of the image, base image history excluded.
    pub history: Vec<Step>,
    /// Where each operation came from; not part of the digest.
    pub source_map: BTreeMap<OpId, Vec<Location>>,
}

impl Plan {
    /// The plan's identity: covers the operations, result, config and platform; not the
    /// source map (comments and blank lines do not change it).
    pub fn digest(&self) -> Digest {
        #[derive(Serialize)]
        struct Identity<'a> {
            platform: &'a str,
            ops: Vec<&'a OpId>,
            root: &'a OpId,
            config: &'a ImageConfig,
            history: &'a [Step],
        }
        canonical::digest(&Identity {
            platform: &self.platform,
            ops: self.ops.iter().map(|n| &n.id).collect(),
            root: &self.root,
            config: &self.config,
            history: &self.history,
        })
    }

    pub fn get(&self, id: &OpId) -> Option<&Op> {
        self.ops.iter().find(|n| &n.id == id).map(|n| &n.op)
    }

    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// A stable, readable listing for tests and `--json`-less output. Ops are named `%1`, `%2`,
    /// ... in plan order instead of by digest, so unrelated changes do not churn snapshots.
    pub fn render_text(&self) -> String {
        let names: HashMap<&OpId, String> = self
            .ops
            .iter()
            .enumerate()
            .map(|(i, n)| (&n.id, format!("%{}", i + 1)))
            .collect();
        let name = |id: &OpId| {
            names
                .get(id)
                .cloned()
                .unwrap_or_else(|| format!("?{}", id.short(12)))
        };
        let mut out = String::new();
        let _ = writeln!(out, "platform {}", self.platform);
        for n in &self.ops {
            let mut line = format!("{} = {}", name(&n.id), n.op.kind());
            match &n.op {
                Op::Scratch => {}
                Op::Image(i) => {
                    let _ = write!(
                        line,
                        " {}@{} ({})",
                        i.reference,
                        i.digest.short(12),
                        i.platform
                    );
                }
                Op::Local(l) => {
                    let _ = write!(line, " {}", l.name);
                    if !l.follow_paths.is_empty() {
                        let _ = write!(line, " paths={:?}", l.follow_paths);
                    }
                    if !l.exclude_patterns.is_empty() {
                        let _ = write!(line, " exclude={:?}", l.exclude_patterns);
                    }
                }
                Op::Http(h) => {
                    let _ = write!(line, " {} -> {}", h.url, h.filename);
                    if let Some(c) = &h.checksum {
                        let _ = write!(line, " checksum={c}");
                    }
                }
                Op::Git(g) => {
                    let _ = write!(line, " {}", g.remote);
                    if let Some(r) = &g.reference {
                        let _ = write!(line, " ref={r}");
                    }
                    if let Some(s) = &g.subdir {
                        let _ = write!(line, " subdir={s}");
                    }
                    if g.keep_git_dir {
                        line.push_str(" keep-git-dir");
                    }
                }
                Op::Exec(e) => {
                    let _ = write!(line, " on {} {:?}", name(&e.root), e.args);
                    let _ = write!(line, "\n    cwd={:?} user={:?}", e.cwd, e.user);
                    if e.network != Default::default() {
                        let _ = write!(line, " network={:?}", e.network);
                    }
                    if e.security != Default::default() {
                        let _ = write!(line, " security={:?}", e.security);
                    }
                    if !e.env.is_empty() {
                        let _ = write!(line, "\n    env={:?}", e.env);
                    }
                    if !e.proxy_env.is_empty() {
                        let _ = write!(line, "\n    proxy_env={:?}", e.proxy_env);
                    }
                    for m in &e.mounts {
                        let target = m.target.as_deref().unwrap_or("-");
                        let desc = match &m.kind {
                            MountKind::Bind {
                                input,
                                selector,
                                readonly,
                            } => format!(
                                "bind {} {selector}{}",
                                input.as_ref().map_or("scratch".into(), name),
                                if *readonly { " ro" } else { " rw" }
                            ),
                            MountKind::Cache {
                                id,
                                sharing,
                                base,
                                selector,
                                readonly,
                                mode,
                                uid,
                                gid,
                            } => format!(
                                "cache id={id:?} sharing={sharing:?} from={} {selector} mode={mode:o} uid={uid} gid={gid}{}",
                                base.as_ref().map_or("-".into(), name),
                                if *readonly { " ro" } else { "" }
                            ),
                            MountKind::Tmpfs { size } => format!("tmpfs size={size:?}"),
                            MountKind::Secret {
                                id,
                                env,
                                required,
                                mode,
                                uid,
                                gid,
                            } => format!(
                                "secret id={id:?} env={env:?} required={required} mode={mode:o} uid={uid} gid={gid}"
                            ),
                            MountKind::Ssh {
                                id,
                                required,
                                mode,
                                uid,
                                gid,
                            } => {
                                format!(
                                    "ssh id={id:?} required={required} mode={mode:o} uid={uid} gid={gid}"
                                )
                            }
                        };
                        let _ = write!(line, "\n    mount {target}: {desc}");
                    }
                }
                Op::File(f) => {
                    let _ = write!(
                        line,
                        " on {}",
                        f.base.as_ref().map_or("scratch".into(), name)
                    );
                    for a in &f.actions {
                        let _ = match a {
                            FileAction::Copy(c) => {
                                let mut s = format!(
                                    "\n    copy {}:{:?} -> {:?}",
                                    name(&c.source),
                                    c.src,
                                    c.dest
                                );
                                if let Some(o) = &c.owner {
                                    let _ = write!(
                                        s,
                                        " owner={}{}",
                                        o.user,
                                        o.group
                                            .as_ref()
                                            .map(|g| format!(":{g}"))
                                            .unwrap_or_default()
                                    );
                                }
                                if let Some(m) = &c.mode {
                                    let _ = write!(s, " mode={m}");
                                }
                                for (flag, set) in [
                                    ("unpack", c.attempt_unpack),
                                    ("parents", c.parents),
                                    ("wildcard", c.allow_wildcard),
                                    ("contents", c.dir_contents_only),
                                ] {
                                    if set {
                                        let _ = write!(s, " {flag}");
                                    }
                                }
                                if !c.exclude_patterns.is_empty() {
                                    let _ = write!(s, " exclude={:?}", c.exclude_patterns);
                                }
                                write!(line, "{s}")
                            }
                            FileAction::Mkdir {
                                path,
                                mode,
                                make_parents,
                                owner,
                            } => write!(
                                line,
                                "\n    mkdir {path:?} mode={mode:o} parents={make_parents}{}",
                                owner
                                    .as_ref()
                                    .map(|o| format!(" owner={}", o.user))
                                    .unwrap_or_default()
                            ),
                            FileAction::Mkfile {
                                path,
                                data,
                                mode,
                                owner,
                            } => write!(
                                line,
                                "\n    mkfile {path:?} mode={mode:o} data={data:?}{}",
                                owner
                                    .as_ref()
                                    .map(|o| format!(" owner={}", o.user))
                                    .unwrap_or_default()
                            ),
                            FileAction::Rm { path, .. } => write!(line, "\n    rm {path:?}"),
                        };
                    }
                }
                Op::Merge(m) => {
                    let list: Vec<String> = m.inputs.iter().map(name).collect();
                    let _ = write!(line, " [{}]", list.join(", "));
                }
                Op::Diff(d) => {
                    let _ = write!(line, " {} -> {}", name(&d.lower), name(&d.upper));
                }
            }
            if let Some(locs) = self.source_map.get(&n.id) {
                let l: Vec<String> = locs
                    .iter()
                    .map(|l| {
                        if l.start_line == l.end_line {
                            format!("{}:{}", l.file, l.start_line)
                        } else {
                            format!("{}:{}-{}", l.file, l.start_line, l.end_line)
                        }
                    })
                    .collect();
                let _ = write!(line, "\n    # {}", l.join(", "));
            }
            let _ = writeln!(out, "{line}");
        }
        let _ = writeln!(out, "root {}", name(&self.root));
        let _ = writeln!(
            out,
            "config {}",
            serde_json::to_string(&self.config).unwrap_or_default()
        );
        for s in &self.history {
            let _ = writeln!(
                out,
                "history {:?}{}{}",
                s.history.created_by,
                if s.history.empty_layer {
                    " (empty)"
                } else {
                    ""
                },
                s.op.as_ref()
                    .map(|o| format!(" layer={}", name(o)))
                    .unwrap_or_default()
            );
        }
        out
    }
}

/// Collects operations, deduplicating by digest.
#[derive(Debug, Default)]
pub struct PlanBuilder {
    nodes: Vec<Node>,
    index: HashMap<OpId, usize>,
    source_map: BTreeMap<OpId, Vec<Location>>,
}

impl PlanBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `op` (whose inputs must already be added) and returns its digest.
    pub fn add(&mut self, op: Op) -> OpId {
        let id = op_digest(&op);
        if !self.index.contains_key(&id) {
            self.index.insert(id.clone(), self.nodes.len());
            self.nodes.push(Node { id: id.clone(), op });
        }
        id
    }

    /// Records that `id` came from `loc` (an op may come from several places).
    pub fn locate(&mut self, id: &OpId, loc: Location) {
        let v = self.source_map.entry(id.clone()).or_default();
        if !v.contains(&loc) {
            v.push(loc);
        }
    }

    pub fn get(&self, id: &OpId) -> Option<&Op> {
        self.index.get(id).map(|&i| &self.nodes[i].op)
    }

    /// How many distinct operations have been added.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The operations added after the first `n`, in order.
    pub fn ids_since(&self, n: usize) -> Vec<OpId> {
        self.nodes.iter().skip(n).map(|n| n.id.clone()).collect()
    }

    /// Finishes the plan, keeping only the operations `root` needs.
    pub fn finish(
        self,
        platform: String,
        root: OpId,
        config: ImageConfig,
        history: Vec<Step>,
    ) -> Plan {
        let mut keep: HashSet<OpId> = HashSet::new();
        let mut stack = vec![root.clone()];
        while let Some(id) = stack.pop() {
            if !keep.insert(id.clone()) {
                continue;
            }
            if let Some(&i) = self.index.get(&id) {
                stack.extend(self.nodes[i].op.inputs().into_iter().cloned());
            }
        }
        let ops: Vec<Node> = self
            .nodes
            .into_iter()
            .filter(|n| keep.contains(&n.id))
            .collect();
        let source_map = self
            .source_map
            .into_iter()
            .filter(|(k, _)| keep.contains(k))
            .collect();
        Plan {
            platform,
            ops,
            root,
            config,
            history,
            source_map,
        }
    }
}

/// An operation's digest: sha256 of its canonical JSON (compact, fields in the IR's fixed
/// order, maps sorted), without the fields that must not affect caching (proxy variables).
pub fn op_digest(op: &Op) -> OpId {
    match op {
        Op::Exec(e) if !e.proxy_env.is_empty() => {
            let mut e = e.clone();
            e.proxy_env.clear();
            canonical::digest_fixed(&Op::Exec(e))
        }
        _ => canonical::digest_fixed(op),
    }
}
