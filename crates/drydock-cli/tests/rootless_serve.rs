//! `drydock serve` as an unprivileged user (created here, as tests/rootless_run.rs does): the
//! server re-runs itself inside a user namespace with the user's subordinate ids, so the
//! pipelines it runs work as they do under `drydock run`: a job in a busybox sandbox runs as
//! root of the namespace and an `images:` build lands in the user's store. The project is added
//! and the run triggered through `drydock project` and `drydock remote`, as tests/serve.rs does.

mod common;

use common::{
    Out, commit_repo, open_dir, rootless_preconditions, run_as, seed_busybox, shared_scratch,
};

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use drydock_testkit::users::{chown_recursive, ensure_user_with_subids};

const USER: &str = "drydock-rootless";

const PIPELINE: &str = r#"
on:
  manual:

images:
  tiny:
    context: tiny

jobs:
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
RUN cat /msg > /copied
";

fn preconditions() -> bool {
    rootless_preconditions("creating an unprivileged user for a rootless server")
        && drydock_testkit::require_tool("git", "git").is_some()
        && drydock_testkit::require_tool("kill", "procps").is_some()
}

/// `drydock serve` run by `runuser` as the user, in a process group of its own: dropping it
/// stops the whole group (runuser, the outer drydock, the one inside the user namespace and
/// whatever that started), also when an assertion fails first.
struct Serve {
    child: Child,
    url: String,
    log: std::path::PathBuf,
}

impl Serve {
    fn start(home: &Path, user_home: &Path, port: u16) -> Serve {
        let log = home.with_extension("log");
        let log_file = fs::File::create(&log).unwrap();
        let child = Command::new("runuser")
            .args(["-u", USER, "--", common::DRYDOCK, "serve", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["--jobs", "2"])
            .env("DRYDOCK_HOME", home)
            .env("HOME", user_home)
            .env("RUST_LOG", "warn")
            .env_remove("SOURCE_DATE_EPOCH")
            .current_dir(user_home)
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap();
        let mut s = Serve {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                && home.join("admin-token").exists()
            {
                break;
            }
            if let Ok(Some(st)) = s.child.try_wait() {
                panic!("drydock serve exited ({st}):\n{}", s.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "drydock serve did not start:\n{}",
                s.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        s
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Ctrl-C for the whole group (the server shuts down), then SIGKILL for what is left.
    fn stop(&mut self) {
        let group = format!("-{}", self.child.id());
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-INT", "--", &group])
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        // Whatever is still in the group (also after runuser has exited).
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn a_rootless_server_runs_image_jobs_and_builds_images() {
    if !preconditions() {
        return;
    }
    let (uid, gid) = ensure_user_with_subids(USER, true);
    let tmp = shared_scratch("drydock-cli-rootless-serve-");
    let root_home = open_dir(tmp.path(), "root-home");
    let home = open_dir(tmp.path(), "server-home");
    let user_dir = open_dir(tmp.path(), "user");

    // The busybox image in the server's store: made by root, its store copied to the user.
    seed_busybox(&root_home, &home);

    // The repository, committed by root, then given to the user.
    let repo = open_dir(tmp.path(), "app");
    commit_repo(
        &repo,
        &[
            ("drydock.yml", PIPELINE),
            ("data.txt", "data from the workspace\n"),
            ("tiny/Dockerfile", DOCKERFILE),
            ("tiny/msg", "tiny message\n"),
        ],
    );
    for d in [&home, &user_dir, &repo] {
        chown_recursive(d, uid, gid);
    }

    let mut server = Serve::start(&home, &user_dir, drydock_testkit::free_port());
    let url = server.url.clone();
    // The client commands, as the user (they need no namespace).
    let client = |args: &[&str]| -> Out {
        let mut a = args.to_vec();
        a.extend(["--server", &url]);
        run_as(Some(USER), &home, Some(&user_dir), &user_dir, &a)
    };
    let repo_url = format!("file://{}", repo.display());
    let out = client(&[
        "project",
        "add",
        "app",
        "--repo",
        &repo_url,
        "--webhook-secret",
        "x",
    ]);
    assert_eq!(out.code, 0, "{}\n{}", out.text(), server.log_text());
    let out = client(&["remote", "trigger", "app"]);
    assert_eq!(out.code, 0, "{}\n{}", out.text(), server.log_text());
    assert!(out.stdout.starts_with("run 1:"), "{}", out.text());

    // Follows the run to its end.
    let logs = client(&["remote", "logs", "1", "--follow"]);
    assert!(
        logs.stdout.contains("run 1: success"),
        "{}\n--- server\n{}",
        logs.text(),
        server.log_text()
    );
    assert!(logs.stdout.contains("sandbox uid 0"), "{}", logs.text());
    assert!(
        logs.stdout.contains("data from the workspace"),
        "{}",
        logs.text()
    );
    let show = client(&["remote", "show", "1", "--json"]);
    assert_eq!(show.code, 0, "{}", show.text());
    let run: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
    assert_eq!(run["status"], "success", "{run:#}");
    server.stop();
    let server_log = server.log_text();
    drop(server);

    // The built image is in the user's store, read without the server.
    let listed = run_as(
        Some(USER),
        &home,
        Some(&user_dir),
        &user_dir,
        &["images", "--json"],
    );
    assert_eq!(listed.code, 0, "{}", listed.text());
    assert!(
        listed.stdout.contains("/app/tiny"),
        "tiny not listed:\n{}\n--- server\n{server_log}",
        listed.text()
    );
    let image = "local:drydock.local/app/tiny:run-1";
    let inspect = run_as(
        Some(USER),
        &home,
        Some(&user_dir),
        &user_dir,
        &["inspect", image],
    );
    assert_eq!(inspect.code, 0, "{}", inspect.text());
    let info: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
    assert_eq!(
        info["DiffIds"].as_array().map(Vec::len),
        Some(3),
        "busybox's layer plus COPY and RUN: {info:#}"
    );
}
