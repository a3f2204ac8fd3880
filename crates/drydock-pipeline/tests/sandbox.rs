//! Jobs in the sandbox (busybox from drydock-kit): the workspace at /workspace, state carried
//! between steps, services reachable by name, readiness timeouts, workspaces handed on.

mod common;

use common::*;
use drydock_db::Status;

#[test]
fn a_job_runs_in_its_image_with_the_workspace_mounted() {
    if !sandbox_ready() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let yml = r#"
jobs:
  test:
    image: busybox
    steps:
      - run: |
          pwd
          cat app.txt
          test -f /bin/busybox && echo in-busybox
          echo from-step-one > /tmp/carried
          echo made-in-sandbox > made.txt
      - run: cat /tmp/carried
      - run: |
          sleep 300 &
          echo "left a sleeper"
      - run: ./check.sh
    persist: [made.txt]
  after:
    needs: [test]
    steps:
      - attach: true
      - run: cat made.txt
"#;
    let repo = repo(
        t.path(),
        &[
            ("drydock.yml", yml),
            ("app.txt", "app contents\n"),
            ("check.sh", "#!/bin/sh\necho checked in $(pwd)\nexit 0\n"),
        ],
    );
    let home = Home::with_busybox();
    let engine = home.engine(no_builder());
    let started = std::time::Instant::now();
    let (r, rec) = Run::new(&engine, &repo).go();
    let text = rec.text();
    assert_job(&r, &rec, "test", Status::Success);
    assert_job(&r, &rec, "after", Status::Success);
    assert!(text.contains("test | stdout: /workspace"), "{text}");
    assert!(text.contains("app contents"), "{text}");
    assert!(text.contains("in-busybox"), "{text}");
    assert!(text.contains("test | stdout: from-step-one"), "{text}");
    assert!(text.contains("checked in /workspace"), "{text}");
    assert!(text.contains("after | stdout: made-in-sandbox"), "{text}");
    assert!(started.elapsed().as_secs() < 200, "a sleeper held the step");
    let persisted = r.job("test").unwrap().persisted.clone().unwrap();
    assert!(home.store.contains(&persisted.digest));
}

#[test]
fn a_failing_command_in_the_sandbox_fails_the_job() {
    if !sandbox_ready() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let yml = "jobs:\n  t:\n    image: busybox\n    steps:\n      - run: |\n          false\n          echo not reached\n";
    let repo = repo(t.path(), &[("drydock.yml", yml)]);
    let home = Home::with_busybox();
    let engine = home.engine(no_builder());
    let (r, rec) = Run::new(&engine, &repo).go();
    assert_job(&r, &rec, "t", Status::Failure);
    assert_eq!(r.job("t").unwrap().steps[0].exit_code, Some(1));
    assert!(!rec.text().contains("not reached"));
}

#[test]
fn services_are_reachable_by_name_and_a_service_never_ready_fails_in_time() {
    if !sandbox_ready() {
        return;
    }
    let port = drydock_testkit::free_port();
    let bad_port = drydock_testkit::free_port();
    let t = tempfile::tempdir().unwrap();
    let yml = format!(
        r#"
jobs:
  test:
    image: busybox
    services:
      web:
        image: busybox
        command: mkdir -p /www && echo hello-from-web > /www/index.html && exec httpd -f -p {port} -h /www
        ready: wget -q -O- http://web:{port}/
        timeout: 30s
    steps:
      - run: wget -q -O- http://web:{port}/ | grep hello-from-web
  never-ready:
    needs: [test]
    image: busybox
    services:
      db:
        image: busybox
        command: sleep 600
        ready: wget -q -O- http://db:{bad_port}/
        timeout: 2s
    steps:
      - run: echo should not run
"#
    );
    let repo = repo(t.path(), &[("drydock.yml", &yml)]);
    let home = Home::with_busybox();
    let engine = home.engine(no_builder());
    let started = std::time::Instant::now();
    let (r, rec) = Run::new(&engine, &repo).go();
    let text = rec.text();
    assert_job(&r, &rec, "test", Status::Success);
    assert!(text.contains("test | stdout: hello-from-web"), "{text}");
    assert_job(&r, &rec, "never-ready", Status::Failure);
    let reason = r.job("never-ready").unwrap().reason.clone().unwrap();
    assert!(
        reason.contains("service db did not become ready within 2s"),
        "{reason}"
    );
    assert!(!text.contains("should not run"));
    assert!(started.elapsed().as_secs() < 120);
}

#[test]
fn a_host_shell_job_reaches_its_service_on_localhost() {
    if !sandbox_ready() {
        return;
    }
    let port = drydock_testkit::free_port();
    let t = tempfile::tempdir().unwrap();
    let yml = format!(
        r#"
jobs:
  host-test:
    services:
      web:
        image: busybox
        command: mkdir -p /www && echo from-service > /www/index.html && exec httpd -f -p {port} -h /www
        ready: wget -q -O- http://web:{port}/
    steps:
      - run: busybox wget -q -O- http://127.0.0.1:{port}/
"#
    );
    let repo = repo(t.path(), &[("drydock.yml", &yml)]);
    let home = Home::with_busybox();
    let engine = home.engine(no_builder());
    let (r, rec) = Run::new(&engine, &repo).go();
    assert_job(&r, &rec, "host-test", Status::Success);
    assert!(
        rec.text().contains("host-test | stdout: from-service"),
        "{}",
        rec.text()
    );
    // The service is gone with its job.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}
