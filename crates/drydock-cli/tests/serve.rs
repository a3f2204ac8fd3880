//! `drydock serve` as a process: projects and runs through `drydock project` and
//! `drydock remote`, and a SIGKILL during a run: after the restart the interrupted run is
//! marked interrupted and requeued (or failed, per project), the finished step's log intact.
#![allow(clippy::print_stderr)]

mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::DRYDOCK;
use drydock_testkit::git;

struct Serve {
    child: Child,
    url: String,
}

fn serve(data: &Path, port: u16) -> Serve {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(data.with_extension("log"))
        .unwrap();
    let child = Command::new(DRYDOCK)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data"])
        .arg(data)
        .args(["--jobs", "2"])
        .env("DRYDOCK_HOME", data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            && data.join("admin-token").exists()
        {
            break;
        }
        assert!(Instant::now() < deadline, "drydock serve did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    Serve { child, url }
}

fn drydock(data: &Path, url: &str, args: &[&str]) -> Output {
    Command::new(DRYDOCK)
        .args(args)
        .args(["--server", url])
        .env("DRYDOCK_HOME", data)
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn run_json(data: &Path, url: &str, id: i64) -> serde_json::Value {
    let out = ok(&drydock(
        data,
        url,
        &["remote", "show", &id.to_string(), "--json"],
    ));
    serde_json::from_str(&out).unwrap()
}

#[test]
fn a_server_killed_mid_run_comes_back_consistent() {
    if drydock_testkit::require_tool("git", "git").is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("app");
    std::fs::create_dir_all(&repo).unwrap();
    let marker = tmp.path().join("second-attempt");
    let pipeline = format!(
        "on:\n  manual:\njobs:\n  work:\n    steps:\n      - run: echo step one done; echo second line\n      - run: |\n          echo step two starting\n          if [ ! -e {m} ]; then touch {m}; sleep 60; fi\n          echo step two finished\n",
        m = marker.display()
    );
    std::fs::write(repo.join("drydock.yml"), pipeline).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "init"]);
    let data = tmp.path().join("data");
    let port = drydock_testkit::free_port();
    let mut s = serve(&data, port);
    let url = s.url.clone();
    ok(&drydock(
        &data,
        &url,
        &[
            "project",
            "add",
            "app",
            "--repo",
            &format!("file://{}", repo.display()),
            "--webhook-secret",
            "x",
        ],
    ));
    let list = ok(&drydock(&data, &url, &["project", "list"]));
    assert!(list.contains("app"), "{list}");
    // A secret from standard input, shown by name only.
    let mut child = Command::new(DRYDOCK)
        .args([
            "project",
            "secret",
            "set",
            "app",
            "DEPLOY_TOKEN",
            "--server",
            &url,
        ])
        .env("DRYDOCK_HOME", &data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"s3cr3t-value\n").unwrap();
    ok(&child.wait_with_output().unwrap());
    let shown = ok(&drydock(&data, &url, &["project", "show", "app"]));
    assert!(
        shown.contains("DEPLOY_TOKEN") && !shown.contains("s3cr3t"),
        "{shown}"
    );
    let out = ok(&drydock(&data, &url, &["remote", "trigger", "app"]));
    assert!(out.starts_with("run 1:"), "{out}");
    // Wait until step two runs (step one finished, its log written).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = run_json(&data, &url, 1);
        if r["jobs"][0]["steps"][1]["status"] == "running" {
            break;
        }
        assert!(Instant::now() < deadline, "step two never ran: {r}");
        std::thread::sleep(Duration::from_millis(100));
    }
    s.child.kill().unwrap(); // SIGKILL
    s.child.wait().unwrap();

    assert!(
        data.join("work/1").exists(),
        "the killed run's checkout is left behind"
    );
    let mut s = serve(&data, port);
    assert!(!data.join("work/1").exists(), "and cleaned at the restart");
    let r1 = run_json(&data, &url, 1);
    assert_eq!(r1["status"], "interrupted", "{r1}");
    assert!(
        r1["reason"].as_str().unwrap().contains("requeued as run 2"),
        "{r1}"
    );
    assert_eq!(r1["jobs"][0]["status"], "interrupted", "{r1}");
    assert_eq!(r1["jobs"][0]["steps"][0]["status"], "success", "{r1}");
    assert_eq!(r1["jobs"][0]["steps"][1]["status"], "interrupted", "{r1}");
    let logs = ok(&drydock(&data, &url, &["remote", "logs", "1"]));
    assert!(
        logs.contains("work | step one done") && logs.contains("work | second line"),
        "{logs}"
    );
    // The requeued run finishes.
    let out = ok(&drydock(&data, &url, &["remote", "logs", "2", "--follow"]));
    assert!(
        out.contains("step two finished") && out.contains("run 2: success"),
        "{out}"
    );
    let r2 = run_json(&data, &url, 2);
    assert!(
        r2["cause"].as_str().unwrap().starts_with("requeued: run 1"),
        "{r2}"
    );
    let runs = ok(&drydock(&data, &url, &["remote", "runs"]));
    assert!(
        runs.contains("interrupted") && runs.contains("success"),
        "{runs}"
    );

    // With on-interrupt fail, the interrupted run is failed, not requeued.
    ok(&drydock(
        &data,
        &url,
        &["project", "set", "app", "--on-interrupt", "fail"],
    ));
    std::fs::remove_file(&marker).unwrap();
    ok(&drydock(&data, &url, &["remote", "trigger", "app"]));
    let deadline = Instant::now() + Duration::from_secs(30);
    while run_json(&data, &url, 3)["jobs"][0]["steps"][1]["status"] != "running" {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(100));
    }
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    let mut s = serve(&data, port);
    let r3 = run_json(&data, &url, 3);
    assert_eq!(r3["status"], "failure", "{r3}");
    assert!(
        r3["reason"]
            .as_str()
            .unwrap()
            .contains("interrupted by a server restart"),
        "{r3}"
    );
    let runs = ok(&drydock(&data, &url, &["remote", "runs", "--json"]));
    let runs: serde_json::Value = serde_json::from_str(&runs).unwrap();
    assert_eq!(
        runs.as_array().unwrap().len(),
        3,
        "nothing requeued: {runs}"
    );
    // postgres:// is refused with a clear message.
    let o = Command::new(DRYDOCK)
        .args(["serve", "--database", "postgres://u@db/drydock", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not built yet"));
    s.child.kill().unwrap();
    s.child.wait().unwrap();
}
