//! `drydock validate` and `drydock tags` on real git repositories made in temp dirs.

use std::path::Path;
use std::process::{Command, Output};

use drydock_testkit::require_tool;

const PIPELINE: &str = r#"on:
  push: { branches: [main, "feature/**"], tags: ["v*"] }
  pull_request: { branches: [main] }
images:
  app:
    context: app
    repositories: [registry.example.com/acme/app, localhost:5000/acme/app]
    tags: |
      type=sha,format=long
      type=ref,event=branch
      type=ref,event=pr
      type=semver,pattern={{version}}
      type=semver,pattern={{major}}.{{minor}}
    push: ${{ github.event_name == 'push' && (github.ref == 'refs/heads/main' || startsWith(github.ref, 'refs/tags/')) }}
  short:
    repositories: [registry.example.com/acme/short]
    tags: |
      type=raw,value={{sha}}
      type=describe
    flavor: |
      latest=true
jobs:
  test:
    steps: [ { run: "true" } ]
  publish:
    needs: [test]
    steps:
      - build: app
      - push: app
"#;

struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    /// A repository with drydock.yml committed on `main` at a fixed commit time.
    fn new() -> Option<Repo> {
        require_tool("git", "git")?;
        let r = Repo {
            dir: tempfile::tempdir().unwrap(),
        };
        r.git(&["init", "-q", "-b", "main"]);
        std::fs::write(r.path().join("drydock.yml"), PIPELINE).unwrap();
        r.commit("pipeline", "2021-03-04T05:06:07Z");
        Some(r)
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .arg("-C")
            .arg(self.path())
            .args(args)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn commit(&self, msg: &str, date: &str) {
        let out = Command::new("git")
            .arg("-C")
            .arg(self.path())
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@example.invalid",
                "add",
                "-A",
            ])
            .output()
            .unwrap();
        assert!(out.status.success());
        let out = Command::new("git")
            .arg("-C")
            .arg(self.path())
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@example.invalid",
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                msg,
            ])
            .env("GIT_AUTHOR_DATE", date)
            .env("GIT_COMMITTER_DATE", date)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn sha(&self) -> String {
        self.git(&["rev-parse", "HEAD"])
    }

    fn drydock(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_drydock"))
            .current_dir(self.path())
            .args(args)
            .output()
            .unwrap()
    }

    fn tags_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["tags", "--json"];
        all.extend_from_slice(args);
        let out = self.drydock(&all);
        assert!(
            out.status.success(),
            "drydock {all:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn tags_on_main_have_the_full_sha_and_the_branch_and_are_pushed() {
    let Some(repo) = Repo::new() else { return };
    let sha = repo.sha();
    let v = repo.tags_json(&["--image", "app"]);
    assert_eq!(
        strings(&v["refs"]),
        [
            "registry.example.com/acme/app:main".to_string(),
            format!("registry.example.com/acme/app:sha-{sha}"),
            "localhost:5000/acme/app:main".to_string(),
            format!("localhost:5000/acme/app:sha-{sha}"),
        ]
    );
    assert_eq!(v["push"], true);
    assert_eq!(
        v["labels"]["org.opencontainers.image.revision"],
        sha.as_str()
    );
    // created is the commit time, so two runs agree
    assert_eq!(
        v["labels"]["org.opencontainers.image.created"],
        "2021-03-04T05:06:07.000Z"
    );
    assert_eq!(v["version"], "main");
    // text output
    let out = repo.drydock(&["tags", "--image", "app"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("  registry.example.com/acme/app:main\n"),
        "{text}"
    );
    assert!(text.contains("push: yes"), "{text}");
}

#[test]
fn a_feature_branch_is_sanitised_and_not_pushed() {
    let Some(repo) = Repo::new() else { return };
    repo.git(&["checkout", "-q", "-b", "feature/Login-Page"]);
    let v = repo.tags_json(&["--image", "app"]);
    assert_eq!(strings(&v["tags"])[0], "feature-Login-Page");
    assert_eq!(v["push"], false);
    assert!(
        v["not_pushed_because"]
            .as_str()
            .unwrap()
            .contains("images.app.push is false")
    );
}

#[test]
fn a_checked_out_tag_gives_semver_tags_and_latest() {
    let Some(repo) = Repo::new() else { return };
    repo.git(&["tag", "v1.2.3"]);
    repo.git(&["checkout", "-q", "v1.2.3"]);
    let sha = repo.sha();
    let v = repo.tags_json(&["--image", "app"]);
    assert_eq!(
        strings(&v["tags"]),
        [
            "1.2.3".to_string(),
            "1.2".to_string(),
            format!("sha-{sha}"),
            "latest".to_string()
        ]
    );
    assert_eq!(v["event"]["ref"], "refs/tags/v1.2.3");
    assert_eq!(v["push"], true);
    // the same from main with --ref
    repo.git(&["checkout", "-q", "main"]);
    let w = repo.tags_json(&["--image", "app", "--ref", "refs/tags/v1.2.3"]);
    assert_eq!(v["tags"], w["tags"]);
}

#[test]
fn a_pull_request_gets_pr_n_and_is_not_pushed() {
    let Some(repo) = Repo::new() else { return };
    repo.git(&["checkout", "-q", "-b", "feature/x"]);
    let v = repo.tags_json(&["--image", "app", "--pr", "42", "--base", "main"]);
    assert_eq!(strings(&v["tags"])[0], "pr-42");
    assert_eq!(v["event"]["name"], "pull_request");
    assert_eq!(v["event"]["ref"], "refs/pull/42/merge");
    assert_eq!(v["push"], false);
    let s = repo.tags_json(&[
        "--image",
        "app",
        "--pr",
        "42",
        "--sha",
        "0123456789abcdef0123456789abcdef01234567",
    ]);
    assert!(
        strings(&s["tags"]).contains(&"sha-0123456789abcdef0123456789abcdef01234567".to_string())
    );
}

#[test]
fn describe_and_short_sha_come_from_git() {
    let Some(repo) = Repo::new() else { return };
    repo.git(&["tag", "v0.9.0"]);
    repo.commit("next", "2021-03-05T00:00:00Z");
    let short = repo.git(&["rev-parse", "--short=7", "HEAD"]);
    let describe = repo.git(&["describe", "--tags", "--always"]);
    assert!(describe.starts_with("v0.9.0-1-g"), "{describe}");
    let v = repo.tags_json(&["--image", "short"]);
    assert_eq!(strings(&v["tags"]), [describe, short, "latest".to_string()]);
}

#[test]
fn a_repository_not_in_the_file_gets_the_default_tags() {
    let Some(repo) = Repo::new() else { return };
    let v = repo.tags_json(&["--image", "ghcr.io/Acme/Web"]);
    assert_eq!(strings(&v["refs"]), ["ghcr.io/acme/web:main"]);
    let v = repo.tags_json(&["--image", "ghcr.io/acme/web", "--ref", "refs/tags/v2.0.0"]);
    assert_eq!(strings(&v["tags"]), ["v2.0.0", "latest"]);
    let out = repo.drydock(&["tags", "--image", "not a repo"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("neither an image of"));
}

#[test]
fn validate_reports_every_error_with_positions() {
    let Some(repo) = Repo::new() else { return };
    let out = repo.drydock(&["validate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("drydock.yml: ok (2 jobs, 2 images"));
    let bad = "jobs:\n  test:\n    needs: [tset]\n    stpes: []\n    steps:\n      - run: echo ${{ gihub.sha }}\n";
    std::fs::write(repo.path().join("bad.yml"), bad).unwrap();
    let out = repo.drydock(&["validate", "bad.yml"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "error[unknown-job]: unknown job `tset`",
        " --> bad.yml:3:13",
        "  |             ^^^^ not defined in `jobs`",
        "hint: did you mean `test`?",
        "error[unknown-key]: unknown key `stpes` in job `test`",
        "hint: did you mean `steps`?",
        " --> bad.yml:6:23",
        "hint: did you mean 'github'?",
        "bad.yml: 3 errors",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    let out = repo.drydock(&["validate", "--json", "bad.yml"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 3);
    assert_eq!(v[0]["line"], 3);
    assert_eq!(v[0]["column"], 13);
    let out = repo.drydock(&["validate", "missing.yml"]);
    assert!(!out.status.success());
}

#[test]
fn an_invalid_pipeline_stops_tags() {
    let Some(repo) = Repo::new() else { return };
    std::fs::write(repo.path().join("drydock.yml"), "jobs: {}\n").unwrap();
    let out = repo.drydock(&["tags", "--image", "app"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no jobs"));
}
