//! The acceptance scenarios of issue 8 that build and push: each on a git repository made here,
//! with drydock-builder, busybox from drydock-kit as the base image, and an embedded registry.

mod common;

use std::sync::Arc;

use common::*;
use drydock_db::Status;
use drydock_oci::{Platform, Reference};
use drydock_pipeline::ImageBuilder;
use drydock_pipeline::git::EventOverrides;

fn builder(home: &Home) -> Arc<dyn ImageBuilder> {
    Arc::new(
        drydock_builder::Builder::new(home.dir.path())
            .unwrap()
            .with_init_binary(INIT),
    )
}

fn tags(reg: &TestRegistry, repo: &str) -> Vec<String> {
    let r = Reference::parse_repository(&format!("{}/{repo}", reg.host)).unwrap();
    let mut t = client().tags(&r).unwrap_or_default();
    t.sort();
    t
}

fn digest(reg: &TestRegistry, repo: &str, tag: &str) -> String {
    let r = Reference::parse(&format!("{}/{repo}:{tag}", reg.host)).unwrap();
    client()
        .resolve(&r, &Platform::host())
        .unwrap()
        .top_digest
        .to_string()
}

const APP_DOCKERFILE: &str = "FROM busybox\nCOPY hello.sh /hello.sh\nCMD [\"/hello.sh\"]\n";

fn publish_yml(host: &str) -> String {
    format!(
        r#"
images:
  app:
    context: app
    repositories: [{host}/acme/app]
    tags: |
      type=sha,format=long
      type=ref,event=branch
      type=ref,event=pr
    push: ${{{{ github.ref == 'refs/heads/main' }}}}
jobs:
  test:
    image: busybox
    steps:
      - run: ./test.sh
  publish:
    needs: [test]
    steps:
      - build: app
      - push: app
      - run: echo "published ${{{{ images.app.digest }}}} as ${{{{ join(images.app.tags, ' ') }}}}"
"#
    )
}

#[test]
fn test_then_publish_on_main_branch_and_pull_request() {
    if !sandbox_ready() {
        return;
    }
    let reg = TestRegistry::start();
    let t = tempfile::tempdir().unwrap();
    let repo = repo(
        t.path(),
        &[
            ("drydock.yml", &publish_yml(&reg.host)),
            ("test.sh", "#!/bin/sh\necho tests pass\n"),
            ("app/Dockerfile", APP_DOCKERFILE),
            ("app/hello.sh", "#!/bin/sh\necho hello from app\n"),
        ],
    );
    let sha = git(&repo, &["rev-parse", "HEAD"]);
    let home = Home::with_busybox();
    let engine = home.engine(builder(&home));

    // A failing test skips publish, fails the run and pushes nothing.
    write(
        &repo,
        &[("test.sh", "#!/bin/sh\necho a test fails\nexit 1\n")],
    );
    let (r, rec) = Run::new(&engine, &repo).go();
    assert_job(&r, &rec, "test", Status::Failure);
    assert_job(&r, &rec, "publish", Status::Skipped);
    assert_eq!(r.status, Status::Failure);
    assert!(tags(&reg, "acme/app").is_empty());
    git(&repo, &["checkout", "-q", "--", "test.sh"]);

    // On main: pushed as sha-<40 hex> and main, one digest.
    let (r, rec) = Run::new(&engine, &repo).go();
    assert_job(&r, &rec, "publish", Status::Success);
    assert_eq!(r.status, Status::Success);
    let img = r.image("app").expect("images in the summary");
    assert!(img.pushed, "{img:?}");
    let want_sha = format!("sha-{sha}");
    assert_eq!(
        tags(&reg, "acme/app"),
        vec!["main".to_string(), want_sha.clone()]
    );
    assert_eq!(digest(&reg, "acme/app", "main"), img.digest);
    assert_eq!(digest(&reg, "acme/app", &want_sha), img.digest);
    assert!(
        rec.text().contains(&format!("published {}", img.digest)),
        "{}",
        rec.text()
    );
    let recorded = home.db.images(r.run_id).unwrap();
    assert_eq!(recorded.len(), 1);
    assert!(recorded[0].pushed);

    // On a feature branch: built, tagged, not pushed, and the summary says why.
    git(&repo, &["checkout", "-q", "-b", "feature/login"]);
    let (r, rec) = Run::new(&engine, &repo).go();
    assert_job(&r, &rec, "publish", Status::Success);
    let img = r.image("app").unwrap();
    assert!(!img.pushed);
    let why = img.reason.clone().unwrap();
    assert!(
        why.starts_with("not pushed: images.app.push is false") && why.contains("refs/heads/main"),
        "{why}"
    );
    assert!(
        img.tags.iter().any(|t| t.ends_with(":feature-login")),
        "{:?}",
        img.tags
    );
    assert_eq!(tags(&reg, "acme/app").len(), 2, "nothing new was pushed");

    // A pull request computes pr-N and pushes nothing.
    let mut run = Run::new(&engine, &repo);
    run.over = EventOverrides {
        pr: Some(7),
        base: Some("main".into()),
        ..Default::default()
    };
    let (r, rec) = run.go();
    assert_job(&r, &rec, "publish", Status::Success);
    let img = r.image("app").unwrap();
    assert!(!img.pushed, "{img:?}");
    assert!(
        img.tags.iter().any(|t| t.ends_with("/acme/app:pr-7")),
        "{:?}",
        img.tags
    );
    assert!(img.reason.as_deref().unwrap().starts_with("not pushed"));
    assert_eq!(tags(&reg, "acme/app").len(), 2);
}

#[test]
fn four_images_from_subdirectories_and_only_the_changed_one_rebuilds() {
    if !sandbox_ready() {
        return;
    }
    let reg = TestRegistry::start();
    let t = tempfile::tempdir().unwrap();
    let names = ["a", "b", "c", "d"];
    let mut yml = String::from("env:\n  DOCKER_METADATA_SHORT_SHA_LENGTH: \"8\"\nimages:\n");
    for n in names {
        yml.push_str(&format!(
            "  {n}:\n    context: svc-{n}\n    repositories: [{}/mono/{n}]\n    tags: |\n      type=sha,prefix=,format=short\n      type=raw,value=latest,enable={{{{is_default_branch}}}}\n",
            reg.host
        ));
    }
    yml.push_str("jobs:\n  images:\n    steps:\n");
    for n in names {
        yml.push_str(&format!("      - build: {n}\n      - push: {n}\n"));
    }
    let mut files: Vec<(String, String)> = vec![("drydock.yml".into(), yml)];
    for n in names {
        files.push((
            format!("svc-{n}/Dockerfile"),
            "FROM busybox\nCOPY app.txt /app.txt\nRUN cat /app.txt > /copy.txt\n".into(),
        ));
        files.push((format!("svc-{n}/app.txt"), format!("service {n} v1\n")));
    }
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let repo = repo(t.path(), &refs);
    let home = Home::with_busybox();
    let engine = home.engine(builder(&home));

    let (first, rec) = Run::new(&engine, &repo).go();
    assert_job(&first, &rec, "images", Status::Success);
    let sha1 = git(&repo, &["rev-parse", "HEAD"]);
    for n in names {
        let img = first.image(n).unwrap();
        assert!(img.pushed, "{img:?}");
        let repo_name = format!("mono/{n}");
        assert_eq!(
            tags(&reg, &repo_name),
            vec![sha1[..8].to_string(), "latest".into()]
        );
        assert_eq!(digest(&reg, &repo_name, &sha1[..8]), img.digest);
        assert_eq!(digest(&reg, &repo_name, "latest"), img.digest);
    }

    write(&repo, &[("svc-b/app.txt", "service b v2\n")]);
    commit(&repo, "change b");
    let sha2 = git(&repo, &["rev-parse", "HEAD"]);
    let (second, rec) = Run::new(&engine, &repo).go();
    assert_job(&second, &rec, "images", Status::Success);
    for n in names {
        let before = first.image(n).unwrap();
        let after = second.image(n).unwrap();
        let repo_name = format!("mono/{n}");
        if n == "b" {
            assert_ne!(after.digest, before.digest, "b changed");
            assert!(!after.cached, "b was rebuilt");
        } else {
            assert_eq!(after.digest, before.digest, "{n} is the same image");
            assert!(after.cached, "{n} came from the cache: {}", rec.text());
        }
        assert_eq!(digest(&reg, &repo_name, &sha2[..8]), after.digest);
        assert_eq!(digest(&reg, &repo_name, "latest"), after.digest);
    }
}
