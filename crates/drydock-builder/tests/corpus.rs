//! The Dockerfile corpus: each `tests/corpus/<name>/` holds a Dockerfile, its context files,
//! an optional `setup.sh` (hard links, big files, modes git cannot keep) and a `case` file:
//!
//! ```text
//! buildkit: no            # skip the comparison (syntax newer than Debian's BuildKit)
//! base: debian            # needs debian:bookworm
//! arg: KEY=VALUE          # --build-arg
//! target: STAGE
//! secret: ID=VALUE        # --secret (a file for BuildKit)
//! fail: TEXT              # the build must fail, the error mentioning TEXT (BuildKit too)
//! run: SHELL COMMAND      # run in the built image (docker run), stdout must equal the
//! expect: LINE            #   expect lines that follow
//! exists: /path KIND MODE UID:GID   # assertions on drydock's file tree (any field may be *)
//! absent: /path
//! config: /json/pointer = JSON
//! ignore: /path           # left out of the tree comparison
//! ```
//!
//! With `buildkit: yes` (the default) the same context is built by Debian's Docker engine
//! (BuildKit) and the image configs (env, cmd, entrypoint, workdir, user, ports, volumes,
//! labels, healthcheck, stopsignal, onbuild, shell) and flattened file trees (names, types,
//! modes, owners, contents, link targets; mtimes aside) must be equal.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use drydock_builder::{BuildRequest, SecretSource};

#[derive(Debug, Default)]
struct Case {
    buildkit: bool,
    debian: bool,
    args: Vec<(String, String)>,
    target: Option<String>,
    secrets: Vec<(String, String)>,
    fail: Option<String>,
    runs: Vec<(String, Vec<String>)>,
    exists: Vec<Vec<String>>,
    absent: Vec<String>,
    config: Vec<(String, serde_json::Value)>,
    ignore: Vec<String>,
}

fn parse_case(dir: &Path) -> Case {
    let mut c = Case {
        buildkit: true,
        ..Default::default()
    };
    let text = std::fs::read_to_string(dir.join("case")).unwrap_or_default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("{}: bad case line {line:?}", dir.display()));
        let v = v.trim().to_string();
        match k.trim() {
            "buildkit" => c.buildkit = v.starts_with("yes"),
            "base" => c.debian = v == "debian",
            "arg" => {
                let (a, b) = v.split_once('=').unwrap();
                c.args.push((a.into(), b.into()));
            }
            "target" => c.target = Some(v),
            "secret" => {
                let (a, b) = v.split_once('=').unwrap();
                c.secrets.push((a.into(), b.into()));
            }
            "fail" => c.fail = Some(v),
            "run" => c.runs.push((v, Vec::new())),
            "expect" => c.runs.last_mut().expect("expect after run").1.push(v),
            "exists" => c
                .exists
                .push(v.split_whitespace().map(String::from).collect()),
            "absent" => c.absent.push(v),
            "config" => {
                let (p, j) = v.split_once('=').unwrap();
                c.config.push((
                    p.trim().into(),
                    serde_json::from_str(j.trim()).unwrap_or_else(|e| panic!("{v}: {e}")),
                ));
            }
            "ignore" => c.ignore.push(v.trim_start_matches('/').to_string()),
            other => panic!("{}: unknown case key {other:?}", dir.display()),
        }
    }
    c
}

const CONFIG_FIELDS: &[&str] = &[
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "ExposedPorts",
    "Volumes",
    "Labels",
    "Healthcheck",
    "StopSignal",
    "OnBuild",
    "Shell",
];

fn config_fields(cfg: &serde_json::Value) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for f in CONFIG_FIELDS {
        let v = cfg["config"]
            .get(*f)
            .cloned()
            .unwrap_or(serde_json::Value::Null);
        let empty = match &v {
            serde_json::Value::Null => true,
            // Current BuildKit records "/" as the default working directory, Debian's 2021
            // engine leaves it empty (the frontend follows current BuildKit): the same thing.
            serde_json::Value::String(s) if *f == "WorkingDir" => s.is_empty() || s == "/",
            serde_json::Value::String(s) => s.is_empty(),
            serde_json::Value::Array(a) => a.is_empty(),
            serde_json::Value::Object(o) => o.is_empty(),
            _ => false,
        };
        if !empty {
            out.insert(f.to_string(), v);
        }
    }
    serde_json::Value::Object(out)
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

fn run_case(name: &str) {
    let dir = corpus_dir().join(name);
    let case = parse_case(&dir);
    let Some(world) = World::new() else { return };
    let world = if case.debian {
        match world.with_debian() {
            Some(w) => w,
            None => return,
        }
    } else {
        world
    };
    let ctx = context_from(&dir);
    let secret_dir = tempfile::tempdir().unwrap();
    let mut req: BuildRequest = world.request(ctx.path());
    for (k, v) in &case.args {
        req.build_args.insert(k.clone(), v.clone());
    }
    req.target = case.target.clone();
    for (id, v) in &case.secrets {
        req.secrets
            .insert(id.clone(), SecretSource::Value(v.clone().into_bytes()));
    }
    let built = world.builder.build(req);
    let docker = if case.buildkit || !case.runs.is_empty() {
        let d = docker_with_busybox();
        if let Some(d) = &d
            && case.debian
        {
            docker_with_debian(d);
        }
        d
    } else {
        None
    };
    let tag = format!("drydock-test/{name}");
    // The engine is shared: leave no images behind.
    struct Cleanup(Option<std::path::PathBuf>, String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            if let Some(client) = &self.0 {
                let _ = Command::new(client)
                    .args(["rmi", "-f"])
                    .arg(format!("{}:buildkit", self.1))
                    .arg(format!("{}:drydock", self.1))
                    .output();
            }
        }
    }
    let _cleanup = Cleanup(docker.as_ref().map(|d| d.client.clone()), tag.clone());
    // BuildKit's build of the same context.
    let buildkit = match (&docker, case.buildkit) {
        (Some(d), true) => {
            let mut cmd = d.cmd();
            cmd.env("DOCKER_BUILDKIT", "1")
                .args(["build", "--progress=plain", "-t"])
                .arg(format!("{tag}:buildkit"));
            for (k, v) in &case.args {
                cmd.arg("--build-arg").arg(format!("{k}={v}"));
            }
            if let Some(t) = &case.target {
                cmd.arg("--target").arg(t);
            }
            for (id, v) in &case.secrets {
                let f = secret_dir.path().join(id);
                std::fs::write(&f, v).unwrap();
                cmd.arg("--secret")
                    .arg(format!("id={id},src={}", f.display()));
            }
            cmd.arg(ctx.path());
            let out = cmd.output().unwrap();
            Some((
                out.status.success(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ))
        }
        _ => None,
    };
    if let Some(want) = &case.fail {
        let err = match built {
            Ok(_) => panic!("{name}: the build succeeded but should fail with {want:?}"),
            Err(e) => {
                let mut s = e.to_string();
                if let drydock_builder::BuildError::Step(f, _) = &e {
                    s.push('\n');
                    s.push_str(&f.output_tail.join("\n"));
                }
                s
            }
        };
        assert!(
            err.contains(want.as_str()),
            "{name}: error {err:?} lacks {want:?}"
        );
        if let Some((ok, log)) = buildkit {
            assert!(!ok, "{name}: BuildKit built what drydock refused:\n{log}");
        }
        return;
    }
    let out = built.unwrap_or_else(|e| {
        let mut s = format!("{e}");
        if let drydock_builder::BuildError::Step(f, _) = &e {
            s.push_str(&format!("\n{}", f.output_tail.join("\n")));
        }
        if let drydock_builder::BuildError::Dockerfile { diagnostics, .. } = &e {
            s.push_str(&format!("\n{diagnostics:#?}"));
        }
        panic!("{name}: build failed: {s}")
    });
    let tree = world.tree(&out.layers);
    let config = world.config(&out);
    let ignored = |t: &Tree| -> Tree {
        Tree(
            t.0.iter()
                .filter(|(k, _)| {
                    !case
                        .ignore
                        .iter()
                        .any(|i| *k == i || k.starts_with(&format!("{i}/")))
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    };
    if let (Some((ok, log)), Some(d)) = (&buildkit, &docker) {
        assert!(ok, "{name}: BuildKit failed:\n{log}");
        let (bk_config, bk_tree) = docker_image(d, &format!("{tag}:buildkit"));
        assert_eq!(
            config_fields(&config),
            config_fields(&bk_config),
            "{name}: image configs differ (left drydock, right BuildKit)"
        );
        let diff = ignored(&tree).diff(&ignored(&bk_tree));
        assert!(
            diff.is_empty(),
            "{name}: file trees differ (left drydock, right BuildKit):\n{}",
            diff.join("\n")
        );
    }
    for e in &case.exists {
        let got = tree
            .get(&e[0])
            .unwrap_or_else(|| panic!("{name}: {} missing", e[0]));
        let field = |i: usize| e.get(i).map(String::as_str).unwrap_or("*");
        if field(1) != "*" {
            assert_eq!(got.kind, field(1), "{name}: kind of {}", e[0]);
        }
        if field(2) != "*" {
            assert_eq!(
                format!("{:o}", got.mode),
                field(2).trim_start_matches('0'),
                "{name}: mode of {}",
                e[0]
            );
        }
        if field(3) != "*" {
            assert_eq!(
                format!("{}:{}", got.uid, got.gid),
                field(3),
                "{name}: owner of {}",
                e[0]
            );
        }
    }
    for a in &case.absent {
        assert!(tree.get(a).is_none(), "{name}: {a} should not exist");
    }
    for (ptr, want) in &case.config {
        assert_eq!(
            config.pointer(ptr).unwrap_or(&serde_json::Value::Null),
            want,
            "{name}: config {ptr}"
        );
    }
    if let (Some(d), false) = (&docker, case.runs.is_empty()) {
        let image = format!("{tag}:drydock");
        world.load_into_docker(d, &out, &image);
        for (cmd, expect) in &case.runs {
            let out = if cmd == "default" {
                Command::new(&d.client)
                    .args(["run", "--rm", "--network", "none", &image])
                    .output()
                    .unwrap()
            } else {
                Command::new(&d.client)
                    .args([
                        "run",
                        "--rm",
                        "--network",
                        "none",
                        "--entrypoint",
                        "/bin/sh",
                    ])
                    .arg(&image)
                    .args(["-c", cmd])
                    .output()
                    .unwrap()
            };
            let got = String::from_utf8_lossy(&out.stdout);
            let got: Vec<&str> = got.lines().collect();
            assert!(
                out.status.success(),
                "{name}: docker run {cmd:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(got, *expect, "{name}: output of {cmd:?}");
        }
    }
}

/// Every corpus directory has a test below (and every test a directory).
#[test]
fn corpus_is_complete() {
    let mut dirs: Vec<String> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    let mut listed: Vec<String> = CASES.iter().map(|s| s.replace('_', "-")).collect();
    listed.sort();
    assert_eq!(dirs, listed);
    assert!(dirs.len() >= 40, "the corpus needs at least 40 Dockerfiles");
}

macro_rules! corpus {
    ($($name:ident),* $(,)?) => {
        const CASES: &[&str] = &[$(stringify!($name)),*];
        $(
            #[test]
            fn $name() {
                run_case(&stringify!($name).replace('_', "-"));
            }
        )*
    };
}

corpus! {
    add_tar,
    add_tar_chown,
    basic_run,
    build_args_in_run,
    chmod_octal,
    chmod_symbolic,
    cmd_after_entrypoint,
    cmd_entrypoint,
    cmd_reset_rule,
    cmd_shell_form,
    compile_debian,
    copy_dir_semantics,
    copy_exclude,
    copy_from_image,
    copy_from_index,
    copy_from_stage_ownership,
    copy_from_stage_paths,
    copy_link,
    copy_many_files,
    copy_missing,
    copy_overwrites,
    copy_parents,
    copy_parents_pivot,
    copy_symlink_escape,
    copy_through_base_symlinks,
    copy_wildcards,
    dockerignore,
    env_arg,
    env_in_paths,
    expose_volume,
    hardlinks,
    healthcheck,
    healthcheck_none,
    heredoc_copy,
    heredoc_run,
    labels_maintainer,
    large_files,
    many_layers,
    multi_stage,
    onbuild,
    onbuild_record,
    opaque_dirs,
    platform_args,
    relative_dest_workdir,
    run_as_user,
    run_exec_form,
    run_fails,
    run_mount_bind,
    run_mount_cache,
    run_mount_secret,
    run_mount_secret_env,
    run_mount_tmpfs,
    run_network_none,
    scratch_only,
    shell_instruction,
    special_files,
    stage_inherits,
    stopsignal,
    symlinks,
    target_stage,
    users_chown,
    whiteouts,
    workdir_existing,
    workdir_user,
}
