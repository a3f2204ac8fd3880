//! Jobs in a host shell: the DAG, skips with reasons, `if`, `continue-on-error`, `--job`,
//! timeouts, nothing detached, outputs, secrets, records.

mod common;

use common::*;
use drydock_db::Status;

#[test]
fn failing_test_skips_publish_and_fails_the_run() {
    if !git_ready() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let repo = repo(
        t.path(),
        &[(
            "drydock.yml",
            "jobs:\n  test:\n    steps:\n      - run: echo testing; exit 3\n  publish:\n    needs: [test]\n    steps:\n      - run: echo never\n",
        )],
    );
    let home = Home::new();
    let engine = home.engine(no_builder());
    let (r, rec) = Run::new(&engine, &repo).go();
    assert_job(&r, &rec, "test", Status::Failure);
    assert_job(&r, &rec, "publish", Status::Skipped);
    assert_eq!(
        r.job("publish").unwrap().reason.as_deref(),
        Some("needed job test failed")
    );
    assert!(
        r.job("test")
            .unwrap()
            .reason
            .as_deref()
            .unwrap()
            .contains("exit code 3"),
        "{:?}",
        r.job("test").unwrap().reason
    );
    assert_eq!(r.status, Status::Failure);
    assert_eq!(r.reason.as_deref(), Some("job test failed"));
    // The database has it all.
    let detail = home.db.run_detail(r.run_id).unwrap();
    assert_eq!(detail.run.status, Status::Failure);
    let (test_job, steps) = &detail.jobs[0];
    assert_eq!(test_job.name, "test");
    assert_eq!(steps[0].exit_code, Some(3));
    let logs = home.db.logs(test_job.id, 0, 100).unwrap();
    assert!(logs.iter().any(|l| l.line == "testing"), "{logs:?}");
    assert!(!rec.text().contains("never"));
}

#[test]
fn jobs_run_in_parallel_where_needs_allow_and_job_selects() {
    if !git_ready() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    // a and b both wait until the other has started: only parallel execution finishes.
    let yml = r#"
jobs:
  a:
    steps:
      - run: |
          touch "$MARK/a"
          for i in $(seq 100); do [ -e "$MARK/b" ] && exit 0; sleep 0.1; done; exit 1
  b:
    steps:
      - run: |
          touch "$MARK/b"
          for i in $(seq 100); do [ -e "$MARK/a" ] && exit 0; sleep 0.1; done; exit 1
  c:
    needs: [a, b]
    steps:
      - run: echo "c after ${{ needs.a.result }} and ${{ needs.b.result }}"
  other:
    steps:
      - run: echo other
"#;
    let mark = t.path().join("mark");
    std::fs::create_dir_all(&mark).unwrap();
    let yml = yml.replace("$MARK", &mark.display().to_string());
    let repo = repo(t.path(), &[("drydock.yml", &yml)]);
    let home = Home::new();
    let engine = home.engine(no_builder());
    let (r, rec) = Run::new(&engine, &repo).go();
    for j in ["a", "b", "c", "other"] {
        assert_job(&r, &rec, j, Status::Success);
    }
    assert!(
        rec.text().contains("c after success and success"),
        "{}",
        rec.text()
    );

    // --job c runs c and what it needs, nothing else.
    std::fs::remove_dir_all(&mark).unwrap();
    std::fs::create_dir_all(&mark).unwrap();
    let mut run = Run::new(&engine, &repo);
    run.only_job = Some("c");
    let (r, rec) = run.go();
    let names: Vec<&str> = r.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"], "{}", rec.text());
}

#[test]
fn if_and_status_functions_and_continue_on_error() {
    if !git_ready() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let yml = r#"
jobs:
  flaky:
    continue-on-error: true
    steps:
      - run: exit 1
  after-flaky:
    needs: [flaky]
    steps:
      - run: echo "flaky was ${{ needs.flaky.result }}"
  broken:
    steps:
      - run: exit 2
      - run: echo not-this
      - name: cleanup
        if: always()
        run: echo cleaning up
      - name: on-failure
        if: failure()
        run: echo reporting failure
      - name: tolerated
        if: always()
        continue-on-error: true
        run: exit 9
  notify:
    needs: [broken]
    if: failure()
    steps:
      - run: echo notifying
  deploy:
    needs: [broken]
    steps:
      - run: echo deploying
  main-only:
    if: github.ref == 'refs/heads/main'
    steps:
      - run: echo main
  never:
    if: ${{ github.event_name == 'schedule' }}
    steps:
      - run: echo nope
"#;
    let repo = repo(t.path(), &[("drydock.yml", yml)]);
    let home = Home::new();
    let engine = home.engine(no_builder());
    let (r, rec) = Run::new(&engine, &repo).go();
    let text = rec.text();
    assert_job(&r, &rec, "flaky", Status::Failure);
    assert!(r.job("flaky").unwrap().continued_on_error);
    assert_job(&r, &rec, "after-flaky", Status::Success);
    assert!(text.contains("flaky was success"), "{text}");
    assert_job(&r, &rec, "broken", Status::Failure);
    let steps = &r.job("broken").unwrap().steps;
    assert_eq!(steps[1].status, Status::Skipped);
    assert_eq!(steps[1].reason.as_deref(), Some("an earlier step failed"));
    assert_eq!(steps[2].status, Status::Success);
    assert_eq!(steps[3].status, Status::Success);
    assert_eq!(steps[4].status, Status::Failure);
    assert!(text.contains("cleaning up") && text.contains("reporting failure"));
    assert!(!text.contains("not-this"));
    assert!(
        r.job("broken")
            .unwrap()
            .reason
            .as_deref()
            .unwrap()
            .starts_with("step 1 (run: exit 2) failed"),
        "{:?}",
        r.job("broken").unwrap().reason
    );
    assert_job(&r, &rec, "notify", Status::Success);
    assert_job(&r, &rec, "deploy", Status::Skipped);
    assert_job(&r, &rec, "main-only", Status::Success);
    assert_job(&r, &rec, "never", Status::Skipped);
    assert!(
        r.job("never")
            .unwrap()
            .reason
            .as_deref()
            .unwrap()
            .starts_with("if: "),
        "{:?}",
        r.job("never").unwrap().reason
    );
    assert_eq!(r.status, Status::Failure);
    assert_eq!(r.reason.as_deref(), Some("job broken failed"));
}

#[test]
fn background_processes_die_with_their_step() {
    if !git_ready() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let pidfile = t.path().join("pids");
    let yml = format!(
        r#"
jobs:
  detach:
    steps:
      - run: |
          sleep 300 &
          echo $! >> {p}
          setsid sleep 301 &
          echo $! >> {p}
          echo started
      - run: echo next step
"#,
        p = pidfile.display()
    );
    let repo = repo(t.path(), &[("drydock.yml", &yml)]);
    let home = Home::new();
    let engine = home.engine(no_builder());
    let (r, rec) = Run::new(&engine, &repo).go();
    assert_job(&r, &rec, "detach", Status::Success);
    let pids = std::fs::read_to_string(&pidfile).unwrap();
    for pid in pids.split_whitespace() {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let alive = !status.is_empty() && !status.contains("State:\tZ");
        assert!(!alive, "process {pid} outlived its step:\n{status}");
    }
}

#[test]
fn step_and_job_timeouts_kill_and_fail() {
    if !git_ready() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let yml = r#"
jobs:
  slow-step:
    steps:
      - run: sleep 30
        timeout-minutes: 0.02
      - if: always()
        run: echo after timeout
  slow-job:
    timeout-minutes: 0.02
    steps:
      - run: sleep 30
      - if: always()
        run: echo never runs
"#;
    let repo = repo(t.path(), &[("drydock.yml", yml)]);
    let home = Home::new();
    let engine = home.engine(no_builder());
    let (r, rec) = Run::new(&engine, &repo).go();
    assert_job(&r, &rec, "slow-step", Status::Failure);
    let s = &r.job("slow-step").unwrap().steps;
    assert!(
        s[0].reason.as_deref().unwrap().contains("timed out"),
        "{s:?}"
    );
    assert_eq!(s[1].status, Status::Success);
    assert_job(&r, &rec, "slow-job", Status::Failure);
    let s = &r.job("slow-job").unwrap().steps;
    assert!(
        s[0].reason
            .as_deref()
            .unwrap()
            .contains("the job timed out"),
        "{s:?}"
    );
    assert_eq!(s[1].status, Status::Skipped);
}

#[test]
fn workspace_is_the_working_tree_with_uncommitted_changes_and_outputs_flow() {
    if !git_ready() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let yml = r#"
env:
  GREETING: hello
jobs:
  look:
    env:
      WHO: ${{ github.ref_name }}
    working-directory: sub
    steps:
      - run: |
          cat here.txt
          test -f ../untracked.txt
          test ! -e ../ignored.log
          test ! -e ../.git
          echo "$GREETING $WHO"
      - id: calc
        run: |
          echo "answer=42" >> "$GITHUB_OUTPUT"
          echo "FROM_STEP=yes" >> "$GITHUB_ENV"
      - run: echo "answer ${{ steps.calc.outputs.answer }} $FROM_STEP"
      - shell: sh
        working-directory: .
        run: pwd | grep -q workspace && echo "sh in root"
      - run: echo "hash=${{ hashFiles('**/here.txt') }} none=${{ hashFiles('*.nothing') }}."
"#;
    let repo = repo(
        t.path(),
        &[
            ("drydock.yml", yml),
            ("sub/here.txt", "committed\n"),
            (".gitignore", "*.log\n"),
        ],
    );
    write(
        &repo,
        &[
            ("sub/here.txt", "changed, not committed\n"),
            ("untracked.txt", "u"),
            ("ignored.log", "x"),
        ],
    );
    let home = Home::new();
    let engine = home.engine(no_builder());
    let (r, rec) = Run::new(&engine, &repo).go();
    assert_job(&r, &rec, "look", Status::Success);
    let text = rec.text();
    assert!(text.contains("changed, not committed"), "{text}");
    assert!(text.contains("hello main"), "{text}");
    assert!(text.contains("answer 42 yes"), "{text}");
    assert!(text.contains("sh in root"), "{text}");
    let hash = text
        .split("stdout: hash=")
        .nth(1)
        .unwrap_or("")
        .split(' ')
        .next()
        .unwrap_or("");
    assert_eq!(hash.len(), 64, "{text}");
    assert!(text.contains("none=."), "{text}");
}

#[test]
fn secrets_are_refused_off_main_and_masked_everywhere() {
    if !git_ready() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let yml = r#"
secrets:
  hub:
    keys: [HUB_TOKEN]
    allow: { branches: [main] }
jobs:
  publish:
    secrets: [hub]
    steps:
      - run: |
          echo "token is $HUB_TOKEN"
          printf '%s' "$HUB_TOKEN" | base64
          echo "no group, no leak: ${HUB_TOKEN:+set}"
  other:
    steps:
      - run: echo "other sees ${HUB_TOKEN:-nothing}"
"#;
    let repo = repo(t.path(), &[("drydock.yml", yml)]);
    let home = Home::new();
    let engine = home.engine(no_builder());
    let secret = "hunter2-very-secret";
    let mut run = Run::new(&engine, &repo);
    run.secrets = vec![("HUB_TOKEN", secret)];
    let (r, rec) = run.go();
    assert_job(&r, &rec, "publish", Status::Success);
    assert_job(&r, &rec, "other", Status::Success);
    let text = rec.text();
    assert!(text.contains("token is ***"), "{text}");
    assert!(!text.contains(secret), "{text}");
    assert!(!text.contains("aHVudGVyMi"), "base64 leaked: {text}");
    assert!(text.contains("other sees nothing"), "{text}");
    // Nothing in the database either.
    for (job, _) in home.db.run_detail(r.run_id).unwrap().jobs {
        for l in home.db.logs(job.id, 0, 1000).unwrap() {
            assert!(!l.line.contains(secret), "{l:?}");
        }
    }

    // On a branch the group refuses the job, before any step.
    git(&repo, &["checkout", "-q", "-b", "feature/x"]);
    let mut run = Run::new(&engine, &repo);
    run.secrets = vec![("HUB_TOKEN", secret)];
    let (r, rec) = run.go();
    assert_job(&r, &rec, "publish", Status::Failure);
    let reason = r.job("publish").unwrap().reason.clone().unwrap();
    assert!(
        reason.contains("hub") && reason.contains("feature/x"),
        "{reason}"
    );
    assert!(r.job("publish").unwrap().steps.is_empty());
}

#[test]
fn a_run_can_be_cancelled() {
    if !git_ready() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let yml = "jobs:\n  long:\n    steps:\n      - run: sleep 60\n  later:\n    needs: [long]\n    steps:\n      - run: echo later\n";
    let repo = repo(t.path(), &[("drydock.yml", yml)]);
    let home = Home::new();
    let engine = home.engine(no_builder());
    let run = Run::new(&engine, &repo);
    let cancel = run.cancel.clone();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(500));
        cancel.cancel();
    });
    let started = std::time::Instant::now();
    let (r, rec) = run.go();
    canceller.join().unwrap();
    assert!(started.elapsed().as_secs() < 30, "the sleep was not killed");
    assert_job(&r, &rec, "long", Status::Cancelled);
    assert_job(&r, &rec, "later", Status::Cancelled);
    assert_eq!(r.status, Status::Cancelled);
}

#[test]
fn fan_out_with_branch_filters_and_a_failing_deploy() {
    if !git_ready() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let yml = r#"
jobs:
  build:
    steps:
      - run: echo built
  deploy-eu:
    needs: [build]
    steps:
      - run: echo deploying eu
  deploy-us:
    needs: [build]
    on:
      push:
        branches-ignore: ["hotfix/**"]
    steps:
      - run: echo deploying us
  deploy-broken:
    needs: [build]
    steps:
      - run: echo deploy fails; exit 1
"#;
    let repo = repo(t.path(), &[("drydock.yml", yml)]);
    let home = Home::new();
    let engine = home.engine(no_builder());
    let (r, rec) = Run::new(&engine, &repo).go();
    assert_job(&r, &rec, "build", Status::Success);
    assert_job(&r, &rec, "deploy-eu", Status::Success);
    assert_job(&r, &rec, "deploy-us", Status::Success);
    assert_job(&r, &rec, "deploy-broken", Status::Failure);
    assert_eq!(r.status, Status::Failure);
    assert_eq!(r.reason.as_deref(), Some("job deploy-broken failed"));

    git(&repo, &["checkout", "-q", "-b", "hotfix/urgent"]);
    let (r, rec) = Run::new(&engine, &repo).go();
    assert_job(&r, &rec, "build", Status::Success);
    assert_job(&r, &rec, "deploy-eu", Status::Success);
    assert_job(&r, &rec, "deploy-us", Status::Skipped);
    let reason = r.job("deploy-us").unwrap().reason.clone().unwrap();
    assert!(
        reason.starts_with("filtered: ") && reason.contains("hotfix/urgent"),
        "{reason}"
    );
    assert!(!rec.text().contains("deploying us"));
}

#[test]
fn a_secret_value_in_a_build_arg_is_refused_with_a_hint() {
    if !git_ready() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let yml = r#"
env:
  PASSED_ALONG: s3cr3t-value-42
secrets:
  hub:
    keys: [HUB_TOKEN]
images:
  app:
    args:
      TOKEN: ${{ env.PASSED_ALONG }}
jobs:
  build:
    secrets: [hub]
    steps:
      - build: app
"#;
    let repo = repo(
        t.path(),
        &[("drydock.yml", yml), ("Dockerfile", "FROM busybox\n")],
    );
    let home = Home::new();
    let engine = home.engine(no_builder());
    let mut run = Run::new(&engine, &repo);
    run.secrets = vec![("HUB_TOKEN", "s3cr3t-value-42")];
    let (r, rec) = run.go();
    assert_job(&r, &rec, "build", Status::Failure);
    let reason = r.job("build").unwrap().reason.clone().unwrap();
    assert!(
        reason.contains("build arg TOKEN carries the value of secret HUB_TOKEN")
            && reason.contains("--secret"),
        "{reason}"
    );
    assert!(!rec.text().contains("s3cr3t-value-42"), "{}", rec.text());
}

#[test]
fn an_event_the_pipeline_does_not_accept_skips_every_job_with_the_reason() {
    if !git_ready() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let yml =
        "on:\n  push:\n    branches: [main]\njobs:\n  a:\n    steps:\n      - run: echo ran\n";
    let repo = repo(t.path(), &[("drydock.yml", yml)]);
    git(&repo, &["checkout", "-q", "-b", "docs/typo"]);
    let home = Home::new();
    let engine = home.engine(no_builder());
    let (r, rec) = Run::new(&engine, &repo).go();
    assert_eq!(r.status, Status::Skipped, "{}", rec.text());
    let reason = r.reason.clone().unwrap();
    assert!(
        reason.starts_with("filtered: ") && reason.contains("docs/typo"),
        "{reason}"
    );
    assert_job(&r, &rec, "a", Status::Skipped);
    assert!(!rec.text().contains("stdout: ran"), "{}", rec.text());
    assert_eq!(home.db.run(r.run_id).unwrap().status, Status::Skipped);
}

/// The log lines of job `name` in the database.
fn job_log(home: &Home, run_id: i64, name: &str) -> Vec<String> {
    let detail = home.db.run_detail(run_id).unwrap();
    let (job, _) = detail.jobs.iter().find(|(j, _)| j.name == name).unwrap();
    home.db
        .logs(job.id, 0, 1000)
        .unwrap()
        .into_iter()
        .map(|l| l.line)
        .collect()
}

#[test]
fn job_outputs_reach_the_jobs_that_need_them() {
    if !git_ready() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let yml = r#"
jobs:
  A:
    env:
      SUFFIX: rc1
    outputs:
      x: ${{ steps.ver.outputs.version }}
      both: "${{ steps.ver.outputs.version }}-${{ env.SUFFIX }}"
      none: ${{ steps.ver.outputs.missing }}
    steps:
      - id: ver
        run: echo "version=1.2.3" >> "$GITHUB_OUTPUT"
  B:
    needs: [A]
    if: needs.A.outputs.x == '1.2.3'
    steps:
      - run: echo "B got [${{ needs.A.outputs.x }}] [${{ needs.A.outputs.both }}] [${{ needs.A.outputs.none }}] [${{ needs.A.outputs.undeclared }}]"
      - if: needs.A.outputs.x != '1.2.3'
        run: echo "B-wrong-branch"
  C:
    needs: [A]
    if: needs.A.outputs.x == '9.9.9'
    steps:
      - run: echo "C-should-not-run"
"#;
    let repo = repo(t.path(), &[("drydock.yml", yml)]);
    let home = Home::new();
    let engine = home.engine(no_builder());
    let (r, rec) = Run::new(&engine, &repo).go();
    assert_job(&r, &rec, "A", Status::Success);
    assert_job(&r, &rec, "B", Status::Success);
    assert_job(&r, &rec, "C", Status::Skipped);
    let text = rec.text();
    assert!(text.contains("B got [1.2.3] [1.2.3-rc1] [] []"), "{text}");
    assert!(!text.contains("B-wrong-branch"), "{text}");
    assert!(!text.contains("C-should-not-run"), "{text}");
    assert_eq!(
        r.job("C").unwrap().reason.as_deref(),
        Some("if: needs.A.outputs.x == '9.9.9' was false")
    );
}

#[test]
fn a_job_output_holding_a_secret_is_not_passed_on() {
    if !git_ready() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let yml = r#"
secrets:
  hub:
    keys: [HUB_TOKEN]
jobs:
  A:
    secrets: [hub]
    outputs:
      token: ${{ secrets.HUB_TOKEN }}
      wrapped: ${{ steps.s.outputs.wrapped }}
      plain: ${{ steps.s.outputs.plain }}
    steps:
      - id: s
        run: |
          echo "wrapped=before-$HUB_TOKEN-after" >> "$GITHUB_OUTPUT"
          echo "plain=harmless" >> "$GITHUB_OUTPUT"
  B:
    needs: [A]
    steps:
      - run: echo "B sees [${{ needs.A.outputs.token }}] [${{ needs.A.outputs.wrapped }}] [${{ needs.A.outputs.plain }}]"
"#;
    let repo = repo(t.path(), &[("drydock.yml", yml)]);
    let home = Home::new();
    let engine = home.engine(no_builder());
    let secret = "hunter2-very-secret";
    let mut run = Run::new(&engine, &repo);
    run.secrets = vec![("HUB_TOKEN", secret)];
    let (r, rec) = run.go();
    assert_job(&r, &rec, "A", Status::Success);
    assert_job(&r, &rec, "B", Status::Success);
    let text = rec.text();
    assert!(text.contains("B sees [] [] [harmless]"), "{text}");
    assert!(!text.contains(secret), "{text}");
    let log = job_log(&home, r.run_id, "A");
    for name in ["token", "wrapped"] {
        let want = format!("warning: output {name} was skipped because it contains a secret");
        assert!(log.iter().any(|l| l.starts_with(&want)), "{name}: {log:?}");
    }
    assert!(!log.iter().any(|l| l.contains("output plain")), "{log:?}");
    for l in log.iter().chain(job_log(&home, r.run_id, "B").iter()) {
        assert!(!l.contains(secret), "{l}");
    }
}

#[test]
fn outputs_of_a_failed_job_reach_a_dependent_that_runs_always() {
    if !git_ready() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let yml = r#"
jobs:
  A:
    outputs:
      x: ${{ steps.first.outputs.x }}
      status: ${{ job.status }}
    steps:
      - id: first
        run: echo "x=from-failed-job" >> "$GITHUB_OUTPUT"
      - run: exit 4
  B:
    needs: [A]
    if: always()
    steps:
      - run: echo "B after ${{ needs.A.result }} got [${{ needs.A.outputs.x }}] [${{ needs.A.outputs.status }}]"
  C:
    needs: [A]
    steps:
      - run: echo "C-should-not-run"
"#;
    let repo = repo(t.path(), &[("drydock.yml", yml)]);
    let home = Home::new();
    let engine = home.engine(no_builder());
    let (r, rec) = Run::new(&engine, &repo).go();
    assert_job(&r, &rec, "A", Status::Failure);
    assert_job(&r, &rec, "B", Status::Success);
    assert_job(&r, &rec, "C", Status::Skipped);
    let text = rec.text();
    assert!(
        text.contains("B after failure got [from-failed-job] [failure]"),
        "{text}"
    );
    assert!(!text.contains("C-should-not-run"), "{text}");
}
