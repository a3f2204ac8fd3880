//! `drydock run`, `drydock runs` and `drydock logs` end to end: the real binary on git
//! repositories made here, busybox from `drydock kit`, and `drydock registry serve`.

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::DRYDOCK;
use drydock_testkit::git;

struct Env {
    tmp: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Self {
            tmp: tempfile::Builder::new()
                .prefix("drydock-run-test")
                .tempdir()
                .unwrap(),
        }
    }

    fn home(&self) -> PathBuf {
        self.tmp.path().join("home")
    }

    fn drydock(&self, dir: &Path, args: &[&str]) -> Output {
        Command::new(DRYDOCK)
            .current_dir(dir)
            .args(args)
            .env("DRYDOCK_HOME", self.home())
            .env_remove("DRYDOCK_REGISTRY_USER")
            .output()
            .expect("run drydock")
    }

    fn repo(&self, files: &[(&str, &str)]) -> PathBuf {
        let r = self.tmp.path().join("repo");
        std::fs::create_dir_all(&r).unwrap();
        git(&r, &["init", "-q", "-b", "main"]);
        for (p, c) in files {
            let path = r.join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, c).unwrap();
        }
        git(&r, &["add", "-A"]);
        git(&r, &["commit", "-q", "-m", "initial"]);
        r
    }
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ready() -> bool {
    drydock_testkit::require_root("drydock run with sandboxed jobs")
        && drydock_testkit::require_tool("git", "git").is_some()
        && drydock_testkit::precondition(
            Path::new("/bin/busybox").is_file(),
            "busybox-static is installed (apt-get install busybox-static)",
        )
}

/// `drydock registry serve` on a free port, killed when dropped.
struct Registry {
    child: Child,
    host: String,
}

impl Registry {
    fn start(env: &Env) -> Self {
        let port = drydock_testkit::free_port();
        let host = format!("127.0.0.1:{port}");
        let child = Command::new(DRYDOCK)
            .args(["registry", "serve", "--listen", &host, "--storage"])
            .arg(env.tmp.path().join("registry"))
            .env("DRYDOCK_HOME", env.home())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&host).is_err() {
            assert!(Instant::now() < deadline, "the registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, host }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn workspace_hand_off_pushes_the_built_digest_without_building_again() {
    if !ready() {
        return;
    }
    let env = Env::new();
    let reg = Registry::start(&env);
    let yml = format!(
        r#"
images:
  app:
    context: app
    repositories: [{host}/acme/handoff]
    tags: type=raw,value=v1
jobs:
  build:
    steps:
      - build: app
      - run: |
          mkdir -p dist
          drydock copy "local:${{DRYDOCK_IMAGE_APP_TAGS%% *}}" oci:dist/app-oci:v1
          echo "${{{{ images.app.digest }}}}" > dist/digest.txt
          echo "release notes" > dist/notes.txt
    persist: [dist/]
  publish:
    needs: [build]
    steps:
      - attach: true
      - run: |
          cat dist/notes.txt
          test "$(cat dist/digest.txt)" = "${{{{ images.app.digest }}}}"
          grep -q "$(cut -d: -f2 dist/digest.txt)" dist/app-oci/index.json
          echo archive holds the built digest
      - push: app
"#,
        host = reg.host
    );
    let repo = env.repo(&[
        ("drydock.yml", &yml),
        (
            "app/Dockerfile",
            "FROM busybox\nCOPY msg /msg\nCMD [\"cat\", \"/msg\"]\n",
        ),
        ("app/msg", "handed off\n"),
    ]);
    let kit = env.drydock(&repo, &["kit", "busybox"]);
    assert!(kit.status.success(), "{}", text(&kit));
    let out = env.drydock(&repo, &["run", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let images = summary["images"].as_array().unwrap();
    assert_eq!(images.len(), 1, "{summary:#}");
    let digest = images[0]["digest"].as_str().unwrap().to_string();
    assert_eq!(images[0]["pushed"], true, "{summary:#}");
    assert_eq!(images[0]["job"], "publish");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("archive holds the built digest"),
        "{stderr}"
    );
    let publish = summary["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == "publish")
        .unwrap();
    assert!(
        publish["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| !s["name"].as_str().unwrap().starts_with("build")),
        "publish did not build"
    );
    // The registry has exactly the digest job `build` made.
    let inspect = env.drydock(
        &repo,
        &["inspect", &format!("docker://{}/acme/handoff:v1", reg.host)],
    );
    assert!(inspect.status.success(), "{}", text(&inspect));
    let info: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(info["Digest"].as_str(), Some(digest.as_str()), "{info:#}");
}

#[test]
fn runs_and_logs_show_what_was_recorded_with_secrets_masked() {
    if !ready() {
        return;
    }
    let env = Env::new();
    let yml = r#"
secrets:
  deploy:
    keys: [DEPLOY_TOKEN]
jobs:
  test:
    image: busybox
    secrets: [deploy]
    steps:
      - name: greet
        run: echo "testing with $DEPLOY_TOKEN"
  fail:
    steps:
      - run: echo broken; exit 5
"#;
    let repo = env.repo(&[("drydock.yml", yml)]);
    let kit = env.drydock(&repo, &["kit", "busybox"]);
    assert!(kit.status.success(), "{}", text(&kit));
    std::fs::write(
        env.tmp.path().join("secrets.env"),
        "DEPLOY_TOKEN=tok-123-abc\n",
    )
    .unwrap();
    let secret_file = env.tmp.path().join("secrets.env");
    let out = env.drydock(
        &repo,
        &["run", "--secret-file", secret_file.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("test | testing with ***"), "{stdout}");
    assert!(!stdout.contains("tok-123-abc"), "{stdout}");
    assert!(stdout.contains("==> fail: failure"), "{stdout}");
    assert!(
        stdout.contains("run 1: failure (job fail failed)"),
        "{stdout}"
    );

    let runs = env.drydock(&repo, &["runs"]);
    assert!(runs.status.success(), "{}", text(&runs));
    let listing = String::from_utf8_lossy(&runs.stdout);
    assert!(
        listing.contains("failure") && listing.contains("refs/heads/main"),
        "{listing}"
    );
    let runs_json = env.drydock(&repo, &["runs", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&runs_json.stdout).unwrap();
    assert_eq!(v[0]["id"], 1);
    assert_eq!(v[0]["status"], "failure");

    let logs = env.drydock(&repo, &["logs", "1", "test"]);
    assert!(logs.status.success(), "{}", text(&logs));
    let l = String::from_utf8_lossy(&logs.stdout);
    assert!(l.contains("--- step 1: greet"), "{l}");
    assert!(l.contains("testing with ***"), "{l}");
    assert!(!l.contains("tok-123-abc"), "{l}");
    let all = env.drydock(&repo, &["logs", "1"]);
    let l = String::from_utf8_lossy(&all.stdout);
    assert!(l.contains("fail | broken"), "{l}");
    assert!(l.contains("==> fail: failure: step 1"), "{l}");
    let missing = env.drydock(&repo, &["logs", "1", "nope"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no job nope"));
}

#[test]
fn the_example_pipeline_runs_end_to_end() {
    if !ready() {
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/run-example.sh");
    let port = drydock_testkit::free_port();
    let out = Command::new("bash")
        .arg(&script)
        .env("DRYDOCK", DRYDOCK)
        .env("REGISTRY", format!("127.0.0.1:{port}"))
        .env_remove("DRYDOCK_HOME")
        .output()
        .unwrap();
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("smoke  | Hello from drydock!"), "{all}");
    assert!(
        all.contains("run-pushed-image | Hello from drydock!"),
        "{all}"
    );
    assert!(
        all.contains("== ok: tested, built, tagged, pushed"),
        "{all}"
    );
}
