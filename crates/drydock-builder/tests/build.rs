//! Builder behaviour beyond single Dockerfiles: reproducibility, the cache (warm rebuilds,
//! one changed file, other directories, no-cache filters), secrets, failures, outputs, remote
//! sources and registries.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use common::*;
use drydock_builder::{
    BuildError, BuildRequest, ContextSource, Event, Output, Progress, PruneOptions, SecretSource,
};
use drydock_oci::Reference;

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (p, c) in files {
        let p = dir.join(p);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, c).unwrap();
    }
}

/// Collects the progress events of a build.
fn recorder() -> (Progress, Arc<Mutex<Vec<Event>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let e2 = events.clone();
    (
        Progress::new(move |e| e2.lock().unwrap().push(e.clone())),
        events,
    )
}

fn names_of(events: &[Event], f: impl Fn(&Event) -> Option<String>) -> Vec<String> {
    events.iter().filter_map(f).collect()
}

fn started(events: &[Event]) -> Vec<String> {
    names_of(events, |e| match e {
        Event::Started(s) => Some(s.name.clone()),
        _ => None,
    })
}

const APP: &str = "FROM busybox
COPY a.txt /a.txt
RUN cat /a.txt > /a-copy
COPY b.txt /b.txt
RUN cat /b.txt > /b-copy
COPY dir /dir
";

fn app_context(dir: &Path) {
    write(
        dir,
        &[
            ("Dockerfile", APP),
            ("a.txt", "a\n"),
            ("b.txt", "b\n"),
            ("dir/x", "x\n"),
        ],
    );
}

#[test]
fn two_fresh_homes_give_identical_manifest_digests() {
    let Some(w1) = World::new() else { return };
    let Some(w2) = World::new() else { return };
    let t = tempfile::tempdir().unwrap();
    app_context(t.path());
    write(
        t.path(),
        &[(
            "Dockerfile",
            &format!(
                "{APP}RUN mkdir -p /made && echo deterministic > /made/file && ln -s /made/file /made/link\nWORKDIR /srv\nENV A=1\n"
            ),
        )],
    );
    // Different mtimes in the two contexts must not matter (epoch 0 clamps them).
    let t2 = tempfile::tempdir().unwrap();
    Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", t.path().display()))
        .arg(t2.path())
        .status()
        .unwrap();
    fs::File::options()
        .write(true)
        .open(t2.path().join("a.txt"))
        .unwrap()
        .set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(3600))
        .unwrap();
    let o1 = w1.build(t.path(), |_| {}).unwrap();
    let o2 = w2.build(t2.path(), |_| {}).unwrap();
    assert_eq!(o1.descriptor.digest(), o2.descriptor.digest());
    assert_eq!(o1.config_digest, o2.config_digest);
    // SOURCE_DATE_EPOCH changes the timestamps, hence the digest, reproducibly.
    let o3 = w1
        .build(t.path(), |r| r.source_date_epoch = Some(1_700_000_000))
        .unwrap();
    let o4 = w2
        .build(t2.path(), |r| r.source_date_epoch = Some(1_700_000_000))
        .unwrap();
    assert_ne!(o1.descriptor.digest(), o3.descriptor.digest());
    assert_eq!(o3.descriptor.digest(), o4.descriptor.digest());
    let cfg = w1.config(&o3);
    assert_eq!(cfg["created"], "2023-11-14T22:13:20Z");
}

#[test]
fn warm_rebuild_is_all_cached_and_one_changed_file_reruns_from_its_copy() {
    let Some(w) = World::new() else { return };
    let t = tempfile::tempdir().unwrap();
    app_context(t.path());
    let cold = w.build(t.path(), |_| {}).unwrap();
    assert_eq!(cold.stats.executed, 5);
    let (p, events) = recorder();
    let warm = w.build(t.path(), |r| r.progress = p).unwrap();
    assert_eq!(
        warm.stats.executed,
        0,
        "{:?}",
        started(&events.lock().unwrap())
    );
    assert_eq!(warm.stats.cached, 5);
    assert_eq!(warm.descriptor.digest(), cold.descriptor.digest());
    // Touching a file changes nothing.
    fs::File::options()
        .write(true)
        .open(t.path().join("a.txt"))
        .unwrap()
        .set_modified(std::time::SystemTime::UNIX_EPOCH)
        .unwrap();
    assert_eq!(w.build(t.path(), |_| {}).unwrap().stats.executed, 0);
    // Changing b.txt reruns from the COPY that reads it.
    fs::write(t.path().join("b.txt"), "b changed\n").unwrap();
    let (p, events) = recorder();
    let out = w.build(t.path(), |r| r.progress = p).unwrap();
    let ran = started(&events.lock().unwrap());
    assert_eq!(
        ran,
        [
            "[4/6] COPY b.txt /b.txt",
            "[5/6] RUN cat /b.txt > /b-copy",
            "[6/6] COPY dir /dir"
        ]
    );
    assert_eq!(out.stats.cached, 2);
    let tree = w.tree(&out.layers);
    assert!(tree.get("/b-copy").unwrap().data.starts_with("10 bytes"));
}

#[test]
fn the_same_context_in_another_directory_hits_the_cache() {
    let Some(w) = World::new() else { return };
    let t1 = tempfile::tempdir().unwrap();
    let t2 = tempfile::tempdir().unwrap();
    app_context(t1.path());
    app_context(t2.path());
    let a = w.build(t1.path(), |_| {}).unwrap();
    let b = w.build(t2.path(), |_| {}).unwrap();
    assert_eq!(b.stats.executed, 0);
    assert_eq!(a.descriptor.digest(), b.descriptor.digest());
}

#[test]
fn no_cache_and_no_cache_filter() {
    let Some(w) = World::new() else { return };
    let t = tempfile::tempdir().unwrap();
    write(
        t.path(),
        &[(
            "Dockerfile",
            "FROM busybox AS deps\nRUN echo deps > /deps\nFROM busybox AS app\nCOPY --from=deps /deps /deps\nRUN cat /deps > /app\n",
        )],
    );
    w.build(t.path(), |_| {}).unwrap();
    assert_eq!(
        w.build(t.path(), |r| r.no_cache = true)
            .unwrap()
            .stats
            .executed,
        3
    );
    let (p, events) = recorder();
    let o = w
        .build(t.path(), |r| {
            r.no_cache_filter = vec!["app".into()];
            r.progress = p;
        })
        .unwrap();
    assert_eq!(
        started(&events.lock().unwrap()),
        [
            "[app 2/3] COPY --from=deps /deps /deps",
            "[app 3/3] RUN cat /deps > /app"
        ]
    );
    assert_eq!(o.stats.executed, 2);
}

#[test]
fn identical_steps_in_two_stages_run_once_and_independent_stages_both_run() {
    let Some(w) = World::new() else { return };
    let t = tempfile::tempdir().unwrap();
    write(
        t.path(),
        &[(
            "Dockerfile",
            "FROM busybox AS one\nRUN echo same > /same\nRUN echo one > /one\n\
             FROM busybox AS two\nRUN echo same > /same\nRUN echo two > /two\n\
             FROM busybox\nCOPY --from=one /one /\nCOPY --from=two /two /\nCOPY --from=one /same /\n",
        )],
    );
    let (p, events) = recorder();
    let o = w.build(t.path(), |r| r.progress = p).unwrap();
    let ran = started(&events.lock().unwrap());
    assert_eq!(
        ran.iter().filter(|s| s.contains("echo same")).count(),
        1,
        "{ran:?}"
    );
    assert_eq!(o.stats.executed, 6, "{ran:?}");
    let tree = w.tree(&o.layers);
    for f in ["/one", "/two", "/same"] {
        assert!(tree.get(f).is_some(), "{f}");
    }
}

#[test]
fn a_missing_base_image_fails_before_any_step_runs() {
    let Some(w) = World::new() else { return };
    let t = tempfile::tempdir().unwrap();
    write(
        t.path(),
        &[(
            "Dockerfile",
            "FROM busybox AS ok\nRUN echo would run > /x\nFROM example.invalid/nope:1.0\nCOPY --from=ok /x /x\n",
        )],
    );
    let (p, events) = recorder();
    let err = w.build(t.path(), |r| r.progress = p).unwrap_err();
    match &err {
        BuildError::BaseImage {
            reference,
            line,
            looked,
            ..
        } => {
            assert_eq!(reference, "example.invalid/nope:1.0");
            assert_eq!(*line, 3);
            assert!(looked[0].contains("local store"), "{looked:?}");
        }
        other => panic!("unexpected error {other}"),
    }
    assert!(started(&events.lock().unwrap()).is_empty());
}

#[test]
fn a_failing_run_reports_its_line_and_last_output_lines() {
    let Some(w) = World::new() else { return };
    let t = tempfile::tempdir().unwrap();
    write(
        t.path(),
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo fine\nRUN echo first line && echo second line >&2 && exit 7\n",
        )],
    );
    let err = w.build(t.path(), |_| {}).unwrap_err();
    let (src, diags) = err.diagnostics().expect("diagnostics");
    let rendered = drydock_diagnostics::render(&src.name, &src.text, diags[0]);
    assert!(rendered.contains("Dockerfile:3"), "{rendered}");
    assert!(rendered.contains("^"), "{rendered}");
    match err {
        BuildError::Step(f, _) => {
            assert_eq!(f.exit_code, Some(7));
            assert_eq!(f.output_tail, ["first line", "second line"]);
            assert!(f.message.contains("exit code 7"), "{}", f.message);
        }
        other => panic!("{other}"),
    }
}

/// Every blob in the store, decompressed when it is a layer, and every cache record.
fn everything_stored(w: &World) -> Vec<u8> {
    let mut all = Vec::new();
    for b in w.store().list_blobs().unwrap() {
        let f = w.store().open_blob(&b.digest).unwrap();
        let (_, mut r) = drydock_layer::decompress_detect(f).unwrap();
        r.read_to_end(&mut all).unwrap();
    }
    for (_, rec, _) in w.builder.cache().list() {
        all.extend(serde_json::to_vec(&rec).unwrap());
    }
    for e in walkdir(&w.builder.cache().records_dir()) {
        all.extend(fs::read(e).unwrap());
    }
    all
}

fn walkdir(d: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(d) {
        for e in rd.flatten() {
            if e.path().is_dir() {
                out.extend(walkdir(&e.path()));
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

#[test]
fn secrets_never_reach_layers_configs_cache_or_logs() {
    let Some(w) = World::new() else { return };
    let t = tempfile::tempdir().unwrap();
    let secret = "pa55-Word-that-is-unique-7f3e";
    write(
        t.path(),
        &[(
            "Dockerfile",
            "FROM busybox\nARG VISIBLE=1\nRUN --mount=type=secret,id=token,required cat /run/secrets/token; echo; wc -c < /run/secrets/token > /len\nRUN --mount=type=secret,id=token,env=TOKEN echo \"token is $TOKEN\"\n",
        )],
    );
    let (p, events) = recorder();
    let o = w
        .build(t.path(), |r| {
            r.secrets
                .insert("token", SecretSource::Value(secret.as_bytes().to_vec()));
            r.progress = p;
        })
        .unwrap();
    let tree = w.tree(&o.layers);
    assert!(tree.get("/len").is_some());
    let stored = everything_stored(&w);
    assert!(
        !stored
            .windows(secret.len())
            .any(|win| win == secret.as_bytes()),
        "the secret is stored somewhere"
    );
    let logs: String = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::Log { data, .. } => Some(String::from_utf8_lossy(data).into_owned()),
            _ => None,
        })
        .collect();
    assert!(!logs.contains(secret), "{logs}");
    assert!(logs.contains("token is ****"), "{logs}");
    // A different secret value does not invalidate the cache (values are not in keys).
    let o2 = w
        .build(t.path(), |r| {
            r.secrets
                .insert("token", SecretSource::Value(b"another".to_vec()));
        })
        .unwrap();
    assert_eq!(o2.stats.executed, 0);
    // A required secret that is missing fails clearly.
    let err = w.build(t.path(), |r| r.no_cache = true).unwrap_err();
    assert!(err.to_string().contains("secret \"token\""), "{err}");
}

#[test]
fn outputs_oci_docker_local_tar_and_names() {
    let Some(w) = World::new() else { return };
    let t = tempfile::tempdir().unwrap();
    app_context(t.path());
    let out = tempfile::tempdir().unwrap();
    let o = w
        .build(t.path(), |r| {
            r.tags = vec![Reference::parse("example.test/app:1").unwrap()];
            r.outputs = vec![
                Output::Store,
                Output::OciDir(out.path().join("oci")),
                Output::DockerArchive(out.path().join("image.tar")),
                Output::LocalDir(out.path().join("files")),
                Output::Tar(out.path().join("files.tar")),
            ];
        })
        .unwrap();
    assert_eq!(o.tags[0].to_string(), "example.test/app:1");
    let named = drydock_content::names::get(w.store(), &o.tags[0])
        .unwrap()
        .unwrap();
    assert_eq!(named.digest(), o.descriptor.digest());
    assert!(out.path().join("oci/index.json").is_file());
    assert!(out.path().join("oci/oci-layout").is_file());
    assert_eq!(
        fs::read_to_string(out.path().join("files/a-copy")).unwrap(),
        "a\n"
    );
    let listing = Command::new("tar")
        .arg("-tf")
        .arg(out.path().join("files.tar"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&listing.stdout).contains("dir/x"));
    if let Some(docker) = drydock_testkit::Docker::ensure() {
        drydock_testkit::run_ok(
            docker
                .cmd()
                .arg("load")
                .arg("-i")
                .arg(out.path().join("image.tar")),
        );
        let o = drydock_testkit::run_ok(docker.cmd().args([
            "run",
            "--rm",
            "example.test/app:1",
            "cat",
            "/b-copy",
        ]));
        assert_eq!(o, "b\n");
    }
    if let Some(skopeo) = drydock_testkit::require_tool("skopeo", "skopeo") {
        drydock_testkit::run_ok(
            Command::new(skopeo)
                .arg("inspect")
                .arg(format!("oci:{}:1", out.path().join("oci").display())),
        );
    }
}

#[test]
fn zstd_layers_and_oci_media_types() {
    let Some(w) = World::new() else { return };
    let t = tempfile::tempdir().unwrap();
    app_context(t.path());
    let o = w
        .build(t.path(), |r| {
            r.compression = drydock_oci::media_type::Compression::Zstd
        })
        .unwrap();
    let own: Vec<_> = o.layers.iter().skip(1).collect();
    assert!(
        own.iter()
            .all(|l| l.media_type == drydock_oci::media_type::OCI_LAYER_ZSTD)
    );
    assert_eq!(w.tree(&o.layers).get("/a-copy").unwrap().kind, "file");
}

#[test]
fn gc_keeps_cache_blobs_and_prune_drops_them() {
    let Some(w) = World::new() else { return };
    let t = tempfile::tempdir().unwrap();
    app_context(t.path());
    w.build(t.path(), |_| {}).unwrap();
    let roots = w.builder.cache().roots();
    assert!(!roots.is_empty());
    let report = drydock_content::gc::collect(
        w.store(),
        &drydock_content::gc::GcOptions {
            grace: std::time::Duration::ZERO,
            extra_roots: roots,
            ..Default::default()
        },
    )
    .unwrap();
    // The unnamed image's manifest and config go; every cached layer stays.
    assert!(report.removed.len() <= 2, "{:?}", report.removed);
    assert_eq!(w.build(t.path(), |_| {}).unwrap().stats.executed, 0);
    let p = w
        .builder
        .cache()
        .prune(
            w.store(),
            &PruneOptions {
                all: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(p.records_removed, 5);
    assert!(p.blobs_removed >= 5);
    assert_eq!(w.build(t.path(), |_| {}).unwrap().stats.executed, 5);
}

#[test]
fn tarball_and_git_contexts() {
    let Some(w) = World::new() else { return };
    if drydock_testkit::require_tool("git", "git").is_none() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo");
    app_context(&repo.join("sub"));
    let git = |args: &[&str]| {
        drydock_testkit::run_ok(
            Command::new("git")
                .arg("-C")
                .arg(&repo)
                .args(args)
                .env("GIT_AUTHOR_DATE", "2024-01-02T03:04:05Z")
                .env("GIT_COMMITTER_DATE", "2024-01-02T03:04:05Z"),
        )
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["-c", "user.name=t", "-c", "user.email=t@t", "add", "."]);
    git(&[
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@t",
        "commit",
        "-qm",
        "init",
    ]);
    let o = w
        .build(t.path(), |r| {
            r.context = ContextSource::Git(format!("file://{}#main:sub", repo.display()));
        })
        .unwrap();
    // The commit time is the epoch.
    assert_eq!(o.source_date_epoch, 1_704_164_645);
    assert_eq!(w.config(&o)["created"], "2024-01-02T03:04:05Z");
    // The same files as a tarball context: same layers (the epoch aside, the same tree).
    let tar = t.path().join("ctx.tar.gz");
    drydock_testkit::run_ok(
        Command::new("tar")
            .arg("-czf")
            .arg(&tar)
            .arg("-C")
            .arg(repo.join("sub"))
            .arg("."),
    );
    let o2 = w
        .build(t.path(), |r| {
            r.context = ContextSource::Tarball(tar.clone());
            r.source_date_epoch = Some(1_704_164_645);
        })
        .unwrap();
    assert_eq!(o2.descriptor.digest(), o.descriptor.digest());
}

/// A one-shot HTTP server on loopback serving `body` for every request.
fn serve(body: &'static [u8]) -> (u16, std::thread::JoinHandle<()>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        for s in l.incoming().take(4) {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLast-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(body);
        }
    });
    (port, h)
}

#[test]
fn add_url_with_checksum() {
    let Some(w) = World::new() else { return };
    let body: &[u8] = b"downloaded content\n";
    let (port, _h) = serve(body);
    let sum = drydock_oci::Digest::sha256(body);
    let t = tempfile::tempdir().unwrap();
    write(
        t.path(),
        &[(
            "Dockerfile",
            &format!(
                "FROM busybox\nADD --checksum={sum} http://127.0.0.1:{port}/files/data.txt /srv/\nADD http://127.0.0.1:{port}/other.bin /other\n"
            ),
        )],
    );
    let o = w.build(t.path(), |_| {}).unwrap();
    let tree = w.tree(&o.layers);
    let e = tree.get("/srv/data.txt").unwrap();
    assert_eq!((e.mode, e.uid), (0o600, 0));
    assert!(tree.get("/other").is_some());
    // A wrong checksum fails.
    write(
        t.path(),
        &[(
            "Dockerfile",
            &format!(
                "FROM busybox\nADD --checksum=sha256:{} http://127.0.0.1:{port}/x /x\n",
                "0".repeat(64)
            ),
        )],
    );
    let err = w.build(t.path(), |_| {}).unwrap_err().to_string();
    assert!(err.contains("checksum mismatch"), "{err}");
}

#[test]
fn add_git_repository() {
    let Some(w) = World::new() else { return };
    if drydock_testkit::require_tool("git", "git").is_none() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo");
    write(
        &repo,
        &[("README", "readme\n"), ("docs/guide.md", "guide\n")],
    );
    let git = |args: &[&str]| {
        drydock_testkit::run_ok(Command::new("git").arg("-C").arg(&repo).args(args))
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "."]);
    git(&[
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@t",
        "commit",
        "-qm",
        "x",
    ]);
    git(&["tag", "v1"]);
    // Served by `git daemon` on loopback: ADD takes git:// URLs.
    let port = drydock_testkit::free_port();
    let mut daemon = Command::new("git")
        .args([
            "daemon",
            "--reuseaddr",
            "--export-all",
            "--listen=127.0.0.1",
        ])
        .arg(format!("--port={port}"))
        .arg(format!("--base-path={}", t.path().display()))
        .arg(t.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "git daemon did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let ctx = t.path().join("ctx");
    write(
        &ctx,
        &[(
            "Dockerfile",
            &format!("FROM busybox\nADD git://127.0.0.1:{port}/repo#v1 /src\n"),
        )],
    );
    let built = w.build(&ctx, |_| {});
    let _ = daemon.kill();
    let _ = daemon.wait();
    let o = built.unwrap();
    let tree = w.tree(&o.layers);
    assert!(tree.get("/src/README").is_some());
    assert!(tree.get("/src/docs/guide.md").is_some());
    assert!(tree.get("/src/.git").is_none());
}

#[test]
fn push_to_a_registry_and_pull_a_base_from_it() {
    let Some(w) = World::new() else { return };
    let Some(reg) = drydock_testkit::ReferenceRegistry::start("") else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    app_context(t.path());
    let name = format!("{}/team/app:1", reg.host());
    let o = w
        .build(t.path(), |r| {
            r.tags = vec![Reference::parse(&name).unwrap()];
            r.push = true;
        })
        .unwrap();
    assert_eq!(o.pushed.len(), 1);
    assert_eq!(
        &o.pushed[0].1.to_string(),
        &o.descriptor.digest().to_string()
    );
    // Another home builds FROM the pushed image, pulling it.
    let Some(w2) = World::new() else { return };
    let t2 = tempfile::tempdir().unwrap();
    write(
        t2.path(),
        &[(
            "Dockerfile",
            &format!("FROM {name}\nRUN cat /a-copy > /again\n"),
        )],
    );
    let never = w2.build(t2.path(), |_| {});
    assert!(matches!(never, Err(BuildError::BaseImage { .. })));
    let o2 = w2
        .build(t2.path(), |r| r.pull = drydock_builder::PullPolicy::Missing)
        .unwrap();
    assert!(w2.tree(&o2.layers).get("/again").is_some());
}

#[test]
fn request_defaults_are_docker_like() {
    let r = BuildRequest::default();
    assert_eq!(r.pull, drydock_builder::PullPolicy::Missing);
    assert_eq!(r.outputs, vec![Output::Store]);
    assert_eq!(r.compression, drydock_oci::media_type::Compression::Gzip);
}

#[test]
fn base_images_come_through_a_docker_io_mirror() {
    let Some(w) = World::new() else { return };
    let Some(reg) = drydock_testkit::ReferenceRegistry::start("") else {
        return;
    };
    // The mirror holds docker.io/library/mirrored:1 (our busybox) as library/mirrored:1.
    let busybox = drydock_content::names::get(w.store(), &Reference::parse("busybox").unwrap())
        .unwrap()
        .unwrap();
    let client = drydock_registry_client::BlockingClient::new(Default::default()).unwrap();
    client
        .push(
            w.store(),
            &busybox,
            &[Reference::parse(&format!("{}/library/mirrored:1", reg.host())).unwrap()],
            &Default::default(),
        )
        .unwrap();
    let Some(w2) = World::new() else { return };
    fs::write(
        w2.home.path().join("registries.toml"),
        format!(
            "[[registry]]\nprefix = \"docker.io\"\nmirrors = [\"{}\"]\n",
            reg.host()
        ),
    )
    .unwrap();
    let t = tempfile::tempdir().unwrap();
    write(
        t.path(),
        &[("Dockerfile", "FROM mirrored:1\nRUN echo via mirror > /m\n")],
    );
    let o = w2
        .build(t.path(), |r| r.pull = drydock_builder::PullPolicy::Always)
        .unwrap();
    assert!(w2.tree(&o.layers).get("/m").is_some());
    // Now in the local store: `never` works too.
    w2.build(t.path(), |r| r.pull = drydock_builder::PullPolicy::Never)
        .unwrap();
}

#[test]
fn cancelling_stops_a_running_step_and_a_failure_stops_the_others() {
    let Some(w) = World::new() else { return };
    let t = tempfile::tempdir().unwrap();
    write(t.path(), &[("Dockerfile", "FROM busybox\nRUN sleep 600\n")]);
    let cancel = drydock_builder::Cancel::new();
    let (p, events) = recorder();
    let c2 = cancel.clone();
    let e2 = events.clone();
    let watcher = std::thread::spawn(move || {
        while !e2
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, Event::Started(_)))
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        c2.cancel();
    });
    let err = w
        .build(t.path(), |r| {
            r.progress = p;
            r.cancel = cancel;
        })
        .unwrap_err();
    watcher.join().unwrap();
    assert!(matches!(err, BuildError::Cancelled), "{err}");
    // A failing stage stops the slow one beside it; the failure is what is reported.
    write(
        t.path(),
        &[(
            "Dockerfile",
            "FROM busybox AS slow\nRUN sleep 600\nFROM busybox AS bad\nRUN exit 4\nFROM busybox\nCOPY --from=slow /etc/passwd /a\nCOPY --from=bad /etc/passwd /b\n",
        )],
    );
    let err = w.build(t.path(), |_| {}).unwrap_err();
    match err {
        BuildError::Step(f, _) => assert_eq!(f.exit_code, Some(4)),
        other => panic!("{other}"),
    }
}

/// Regression: an upper dir with an unchanged copy-up (left out of its layer) was adopted as
/// the snapshot of that layer, so the same (empty) layer on another parent showed a stale file.
#[test]
fn a_shared_layer_snapshot_never_carries_another_parents_files() {
    let Some(w) = World::new() else { return };
    let t = tempfile::tempdir().unwrap();
    write(
        t.path(),
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo a > /f\nRUN touch /f\n",
        )],
    );
    w.build(t.path(), |_| {}).unwrap();
    write(
        t.path(),
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo b > /f\nRUN true\nRUN cat /f > /out\n",
        )],
    );
    let o = w.build(t.path(), |_| {}).unwrap();
    // The two empty layers are the same blob.
    let layers: Vec<_> = o.layers.iter().map(|l| l.digest.clone()).collect();
    assert_eq!(layers.len(), 4);
    let d = tempfile::tempdir().unwrap();
    drydock_builder::export::flatten(w.store(), &o.layers, d.path()).unwrap();
    assert_eq!(fs::read_to_string(d.path().join("out")).unwrap(), "b\n");
}

#[test]
fn a_symlink_out_of_the_context_names_the_copy_that_reads_it() {
    let Some(w) = World::new() else { return };
    let t = tempfile::tempdir().unwrap();
    write(
        t.path(),
        &[
            ("Dockerfile", "FROM busybox\nCOPY ok /ok\nCOPY sneaky /x\n"),
            ("ok", "ok\n"),
        ],
    );
    std::os::unix::fs::symlink("../../../../etc/shadow", t.path().join("sneaky")).unwrap();
    let err = w.build(t.path(), |_| {}).unwrap_err();
    let (src, diags) = err
        .diagnostics()
        .unwrap_or_else(|| panic!("not located: {err:?}"));
    let rendered = drydock_diagnostics::render(&src.name, &src.text, diags[0]);
    assert!(rendered.contains("Dockerfile:3"), "{rendered}");
    assert!(
        err.to_string().contains("outside the build context"),
        "{err}"
    );
    assert!(err.to_string().contains("COPY sneaky /x"), "{err}");
}

/// Inodes of the files with this path (relative to a snapshot root) in all snapshots.
fn snapshot_inodes(w: &World, rel: &str) -> Vec<u64> {
    use std::os::unix::fs::MetadataExt;
    let snaps = w.home.path().join("cache/snapshots/sha256");
    let mut out: Vec<u64> = fs::read_dir(&snaps)
        .unwrap()
        .flatten()
        .filter_map(|e| fs::symlink_metadata(e.path().join(rel)).ok())
        .map(|m| m.ino())
        .collect();
    out.sort();
    out
}

#[test]
fn unchanged_files_are_linked_into_the_next_copy_layer_which_stays_byte_identical() {
    let Some(w) = World::new() else { return };
    let t = tempfile::tempdir().unwrap();
    write(
        t.path(),
        &[
            (
                "Dockerfile",
                "FROM busybox\nCOPY . /data/\nCOPY big.bin /again/big.bin\nRUN cat /data/small.txt > /seen\n",
            ),
            ("small.txt", "v1\n"),
        ],
    );
    let big: Vec<u8> = (0..3u32 << 20).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(t.path().join("big.bin"), &big).unwrap();
    // The pool only takes a source whose last change is 2 s old.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    w.build(t.path(), |_| {}).unwrap();
    let pool = w.home.path().join("cache/files");
    let entries = || fs::read_dir(&pool).map_or(0, |r| r.count());
    // One per destination: Dockerfile, small.txt and big.bin under /data, big.bin under /again.
    assert_eq!(entries(), 4);
    fs::write(t.path().join("small.txt"), "v2\n").unwrap();
    let second = w.build(t.path(), |_| {}).unwrap();
    let data = snapshot_inodes(&w, "data/big.bin");
    assert_eq!(data.len(), 2, "two COPY . layers");
    assert_eq!(data[0], data[1], "the second links the first's file");
    let dockerfile = snapshot_inodes(&w, "data/Dockerfile");
    assert_eq!(dockerfile.len(), 2);
    assert_eq!(dockerfile[0], dockerfile[1], "small files too");
    let small = snapshot_inodes(&w, "data/small.txt");
    assert_ne!(small[0], small[1], "the changed file is written anew");
    let again = snapshot_inodes(&w, "again/big.bin");
    assert_eq!(again.len(), 1, "unchanged, so cached");
    assert_ne!(again[0], data[0], "one inode never shows at two paths");
    // The layers are those of a build that copied every byte.
    let fresh = World::new().unwrap();
    let expected = fresh.build(t.path(), |_| {}).unwrap();
    assert_eq!(second.descriptor.digest(), expected.descriptor.digest());
    // A changed large file is copied, not linked.
    let mut big2 = big.clone();
    big2[12345] ^= 0xff;
    fs::write(t.path().join("big.bin"), &big2).unwrap();
    let third = w.build(t.path(), |_| {}).unwrap();
    assert_eq!(
        third.descriptor.digest(),
        fresh.build(t.path(), |_| {}).unwrap().descriptor.digest()
    );
    assert_ne!(third.descriptor.digest(), second.descriptor.digest());
    // Entries some snapshot still links stay; prune --all drops the snapshots, then them.
    let prune = |all| {
        w.builder
            .cache()
            .prune(
                w.store(),
                &PruneOptions {
                    all,
                    ..Default::default()
                },
            )
            .unwrap()
    };
    prune(false);
    assert_eq!(entries(), 4);
    prune(true);
    assert_eq!(entries(), 0);
}
