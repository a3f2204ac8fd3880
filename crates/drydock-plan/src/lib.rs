//! drydock's build-graph IR: what to build, not how to read a Dockerfile.
//!
//! A [`Plan`] is a content-addressed graph of [`Op`]s (base images pinned by digest, local
//! context files, process executions, file copies, merges) plus the image config and history
//! the result gets, and a source map from every op back to the line that asked for it. The
//! solver/builder executes plans and knows nothing of Dockerfiles; frontends produce them.
//!
//! Every op's identity is the sha256 of its canonical JSON ([`op_digest`]), and inputs are
//! referenced by digest, so an op's digest covers everything it depends on. A plan's digest
//! ([`Plan::digest`]) depends only on its ops, result, config and platform: never on time,
//! host paths or secret values (secrets are named by id).
//!
//! - [`op`]: the operations ([`Op`], [`ExecOp`], [`FileOp`], [`FileAction`], mounts, sources).
//! - [`config`]: the image config in OCI/Docker JSON shape ([`ImageConfig`]) and [`History`].
//! - [`plan`]: [`Plan`], [`PlanBuilder`], the source map ([`Location`]).
//! - [`canonical`]: canonical JSON and digests.

pub mod canonical;
pub mod config;
pub mod op;
pub mod plan;

pub use config::{ContainerConfig, Empty, HealthConfig, History, ImageConfig};
pub use op::{
    CacheSharing, CopyAction, DiffOp, ExecMount, ExecOp, FileAction, FileOp, GitSource, HttpSource,
    ImageSource, LocalSource, MergeOp, MountKind, Network, Op, OpId, Owner, Security,
};
pub use plan::{Location, Node, Plan, PlanBuilder, Step, op_digest};

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(root: &OpId, proxy: Option<&str>) -> Op {
        Op::Exec(ExecOp {
            root: root.clone(),
            args: vec!["/bin/sh".into(), "-c".into(), "true".into()],
            env: vec!["PATH=/bin".into()],
            cwd: "/".into(),
            user: String::new(),
            network: Network::Sandbox,
            security: Security::Sandbox,
            mounts: vec![ExecMount {
                target: Some("/run/secrets/tok".into()),
                kind: MountKind::Secret {
                    id: "tok".into(),
                    env: None,
                    required: false,
                    mode: 0o400,
                    uid: 0,
                    gid: 0,
                },
            }],
            proxy_env: proxy
                .map(|p| [("HTTP_PROXY".to_string(), p.to_string())].into())
                .unwrap_or_default(),
        })
    }

    #[test]
    fn digests_are_stable_and_ignore_proxies() {
        let mut b = PlanBuilder::new();
        let s = b.add(Op::Scratch);
        let a = b.add(exec(&s, None));
        let c = b.add(exec(&s, Some("http://proxy:3128")));
        assert_eq!(a, c, "proxy env must not change the digest");
        assert_eq!(op_digest(&Op::Scratch), s);
        let plan = b.finish(
            "linux/amd64".into(),
            a.clone(),
            ImageConfig::default(),
            vec![],
        );
        assert_eq!(plan.ops.len(), 2);
        let again: Plan = serde_json::from_str(&plan.to_json_pretty()).unwrap();
        assert_eq!(again.digest(), plan.digest());
    }

    #[test]
    fn finish_prunes_unreachable_ops() {
        let mut b = PlanBuilder::new();
        let s = b.add(Op::Scratch);
        let _unused = b.add(Op::Local(LocalSource {
            name: "context".into(),
            follow_paths: vec![],
            exclude_patterns: vec![],
        }));
        let plan = b.finish("linux/amd64".into(), s, ImageConfig::default(), vec![]);
        assert_eq!(plan.ops.len(), 1);
    }
}
