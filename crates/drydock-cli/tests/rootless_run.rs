//! `drydock run` as an unprivileged user (created here, as tests/rootless_build.rs does): the
//! binary re-runs itself inside a user namespace with the user's subordinate ids and the whole
//! pipeline works there as root of that namespace: a host-shell step (its files belong to the
//! user outside), a job in a busybox sandbox, and an `images:` build whose image is the image
//! root builds from the same Dockerfile, labels and epoch. What the run records (database,
//! logs) stays readable by the user without the namespace (`drydock runs`, `drydock logs`).

mod common;

use common::{
    Out, commit_repo, open_dir, rootless_preconditions, run_as, seed_busybox, shared_scratch,
};

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use drydock_testkit::git;
use drydock_testkit::users::{chown_recursive, ensure_user_with_subids};

const USER: &str = "drydock-rootless";

const PIPELINE: &str = r#"
images:
  tiny:
    context: tiny

jobs:
  host:
    steps:
      - run: |
          echo made on the host > host.txt
          echo "host uid $(id -u)"
  sandboxed:
    image: busybox
    steps:
      - run: |
          echo "sandbox uid $(id -u)"
          cat /workspace/data.txt
  build:
    steps:
      - build: tiny
"#;

const DOCKERFILE: &str = "\
FROM busybox
COPY msg /msg
RUN chown 1000:1000 /msg && cat /msg > /copied
";

fn preconditions() -> bool {
    rootless_preconditions("creating an unprivileged user for a rootless run")
        && drydock_testkit::require_tool("git", "git").is_some()
}

/// Runs drydock as `user` (or root) with `home` in `dir`, `HOME` = `user_home`.
fn drydock(user: Option<&str>, home: &Path, user_home: &Path, dir: &Path, args: &[&str]) -> Out {
    run_as(user, home, Some(user_home), dir, args)
}

/// Every path under `dir` (directories too), with its host owner.
fn owners_under(dir: &Path) -> Vec<(PathBuf, u32)> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let md = fs::symlink_metadata(e.path()).unwrap();
        out.push((e.path(), md.uid()));
        if md.is_dir() {
            out.extend(owners_under(&e.path()));
        }
    }
    out
}

#[test]
fn a_rootless_run_runs_host_sandboxed_and_build_jobs_and_its_records_stay_the_users() {
    if !preconditions() {
        return;
    }
    let (uid, gid) = ensure_user_with_subids(USER, true);
    let tmp = shared_scratch("drydock-cli-rootless-run-");
    let root_home = open_dir(tmp.path(), "root-home");
    let home = open_dir(tmp.path(), "user-home");
    let user_dir = open_dir(tmp.path(), "user");

    // The same busybox image in both homes: made by root, its store copied to the user.
    seed_busybox(&root_home, &home);

    // The repository, committed by root, then given to the user.
    let repo = open_dir(tmp.path(), "repo");
    commit_repo(
        &repo,
        &[
            ("drydock.yml", PIPELINE),
            ("data.txt", "data from the workspace\n"),
            ("tiny/Dockerfile", DOCKERFILE),
            ("tiny/msg", "tiny message\n"),
        ],
    );
    let commit_time = git(&repo, &["show", "-s", "--format=%ct", "HEAD"]);
    for d in [&home, &user_dir, &repo] {
        chown_recursive(d, uid, gid);
    }

    let out = drydock(
        Some(USER),
        &home,
        &user_dir,
        &repo,
        &["run", "--json", "--keep-workspaces"],
    );
    assert_eq!(out.code, 0, "{}", out.text());
    assert!(out.stderr.contains("host uid 0"), "{}", out.text());
    assert!(out.stderr.contains("sandbox uid 0"), "{}", out.text());
    assert!(
        out.stderr.contains("data from the workspace"),
        "{}",
        out.text()
    );
    let summary: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(summary["status"], "success", "{summary:#}");
    let run_id = summary["run_id"].to_string();
    let images = summary["images"].as_array().unwrap();
    assert_eq!(images.len(), 1, "{summary:#}");
    let digest = images[0]["digest"].as_str().unwrap().to_string();

    // The host step's file, in the kept workspace, belongs to the user outside.
    let host_txt: Vec<_> = owners_under(&home.join("runs"))
        .into_iter()
        .filter(|(p, _)| p.ends_with("host.txt"))
        .collect();
    assert_eq!(host_txt.len(), 1, "{host_txt:?}");
    assert_eq!(host_txt[0].1, uid, "{host_txt:?}");

    // Everything the run recorded (database, logs, workspaces) is the user's: nothing in the
    // home but the build cache's snapshots may belong to another id.
    let foreign: Vec<_> = owners_under(&home)
        .into_iter()
        .filter(|(p, owner)| *owner != uid && !p.starts_with(home.join("cache/snapshots")))
        .collect();
    assert!(foreign.is_empty(), "not owned by uid {uid}: {foreign:?}");

    // Read back by the user without a user namespace.
    let runs = drydock(Some(USER), &home, &user_dir, &repo, &["runs", "--json"]);
    assert_eq!(runs.code, 0, "{}", runs.text());
    let listed: serde_json::Value = serde_json::from_str(&runs.stdout).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"].to_string(), run_id, "{listed:?}");
    let logs = drydock(Some(USER), &home, &user_dir, &repo, &["logs", &run_id]);
    assert_eq!(logs.code, 0, "{}", logs.text());
    assert!(logs.stdout.contains("sandbox uid 0"), "{}", logs.text());

    // The built image is in the user's store.
    let listed = drydock(Some(USER), &home, &user_dir, &repo, &["images", "--json"]);
    assert_eq!(listed.code, 0, "{}", listed.text());
    assert!(
        listed.stdout.contains(&digest) && listed.stdout.contains("/tiny"),
        "{digest} not listed:\n{}",
        listed.text()
    );

    // Root builds the same Dockerfile with the run's labels at the commit's epoch: the same
    // manifest.
    // Untagged, the run names it drydock.local/PROJECT/IMAGE:run-ID (the project: the repository
    // directory's name).
    let image = format!("local:drydock.local/repo/tiny:run-{run_id}");
    let inspect = drydock(Some(USER), &home, &user_dir, &repo, &["inspect", &image]);
    assert_eq!(inspect.code, 0, "{}", inspect.text());
    let info: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
    let mut args = vec![
        "build".to_string(),
        "--progress=plain".into(),
        "--source-date-epoch".into(),
        commit_time,
    ];
    if let Some(labels) = info["Config"]["Labels"].as_object() {
        for (k, v) in labels {
            args.push("--label".into());
            args.push(format!("{k}={}", v.as_str().unwrap()));
        }
    }
    let meta = root_home.join("meta.json");
    args.extend([
        "-t".into(),
        "root-built:1".into(),
        "--metadata-file".into(),
        meta.display().to_string(),
        ".".into(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let built = drydock(None, &root_home, &user_dir, &repo.join("tiny"), &args);
    assert_eq!(built.code, 0, "{}", built.text());
    let root_inspect = drydock(
        None,
        &root_home,
        &user_dir,
        &repo,
        &["inspect", "local:root-built:1"],
    );
    assert_eq!(root_inspect.code, 0, "{}", root_inspect.text());
    let root_info: serde_json::Value = serde_json::from_str(&root_inspect.stdout).unwrap();
    assert_eq!(
        root_info["DiffIds"], info["DiffIds"],
        "root's layers differ from the rootless run's:\nroot: {root_info:#}\nrun: {info:#}\n{}",
        built.stderr
    );
    let meta: serde_json::Value = serde_json::from_slice(&fs::read(&meta).unwrap()).unwrap();
    assert_eq!(
        meta["containerimage.digest"].as_str(),
        Some(digest.as_str()),
        "root's build differs from the rootless run's {digest}:\nroot: {root_info:#}\nrun: {info:#}\n{}",
        built.stderr
    );
}

/// Without subordinate ids there is no user namespace, but a pipeline of host jobs needs none:
/// `drydock run` warns (with the hint) and runs it as the user.
#[test]
fn a_user_without_subordinate_ids_still_runs_host_jobs_with_a_warning() {
    if !preconditions() {
        return;
    }
    const NO_SUBIDS_USER: &str = "drydock-nosubids";
    let (uid, gid) = ensure_user_with_subids(NO_SUBIDS_USER, false);
    let tmp = shared_scratch("drydock-cli-nosubids-run-");
    let home = open_dir(tmp.path(), "home");
    let user_dir = open_dir(tmp.path(), "user");
    let repo = open_dir(tmp.path(), "repo");
    commit_repo(
        &repo,
        &[(
            "drydock.yml",
            "jobs:\n  host:\n    steps:\n      - run: echo \"host uid $(id -u)\"\n",
        )],
    );
    chown_recursive(tmp.path(), uid, gid);
    let out = drydock(Some(NO_SUBIDS_USER), &home, &user_dir, &repo, &["run"]);
    assert_eq!(out.code, 0, "{}", out.text());
    assert!(
        out.stderr.contains("warning: ")
            && out.stderr.contains("\nhint: ")
            && out.stderr.contains("goes on without a user namespace"),
        "{}",
        out.text()
    );
    assert!(
        out.stdout.contains(&format!("host uid {uid}")),
        "{}",
        out.text()
    );
}
