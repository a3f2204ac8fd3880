#![allow(clippy::print_stderr)]
//! Schedules (a missed tick after downtime fires once), load (1,000 deliveries: a third with
//! bad signatures, some replays: exactly the expected runs, no server error), concurrency
//! groups with cancel-in-progress, manual runs and cancel.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

const SECRET: &str = "load-secret";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_schedule_missed_during_downtime_fires_once() {
    if !git_ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pipeline = "on:\n  schedule:\n    - cron: \"0 0 1 1 *\"\njobs:\n  nightly:\n    steps:\n      - run: echo nightly\n";
    let (repo, _) = repo(tmp.path(), "app", &[("drydock.yml", pipeline)]);
    let data = tmp.path().join("data");
    // Last fired three years ago: three ticks were missed.
    {
        std::fs::create_dir_all(&data).unwrap();
        let db = drydock_db::Db::open(data.join("drydock.db")).unwrap();
        let three_years = 3 * 366 * 24 * 3600 * 1000i64;
        let now = drydock_server::util::now_ms();
        db.set_schedule_fired("app", "0 0 1 1 *@0", now - three_years)
            .unwrap();
    }
    let s = TestServer::start(&data).await;
    s.add_project(json!({"name": "app", "repo_url": file_url(&repo)}))
        .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.runs("app").await.is_empty() {
        assert!(Instant::now() < deadline, "the schedule did not fire");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let runs = s.runs("app").await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    let cause = runs[0]["cause"].as_str().unwrap();
    assert!(
        cause.contains("schedule 0 0 1 1 *") && cause.contains("caught up"),
        "{cause}"
    );
    let r = s.wait_run(runs[0]["id"].as_i64().unwrap()).await;
    assert_eq!(r["status"], "success", "{r}");
    assert_eq!(r["event"], "schedule");
    s.stop().await;
    // A restart does not fire it again.
    let s = TestServer::start(&data).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(s.runs("app").await.len(), 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_deliveries_with_bad_signatures_and_replays_make_exactly_the_expected_runs() {
    if !git_ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pipeline =
        "on:\n  push:\n    branches: [main]\njobs:\n  t:\n    steps:\n      - run: \"true\"\n";
    let (repo, sha) = repo(tmp.path(), "app", &[("drydock.yml", pipeline)]);
    let s = Arc::new(TestServer::start(&tmp.path().join("data")).await);
    s.add_project(json!({"name": "app", "repo_url": file_url(&repo), "webhook_secret": SECRET}))
        .await;
    let body = github_push("refs/heads/main", &"0".repeat(40), &sha, &file_url(&repo)).to_string();
    // 1,000 deliveries: every third badly signed, every tenth a replay of an earlier one.
    let mut plan = Vec::new();
    let mut expected_runs = 0usize;
    for i in 0..1000usize {
        if i % 3 == 0 {
            plan.push((format!("bad-{i}"), false, 401u16));
        } else if i % 10 == 1 && i > 10 {
            // Replays a valid delivery sent earlier (i - 10 is valid: (i-10) % 3 != 0 here
            // unless it is a multiple of 3, in which case replay i - 9).
            let j = if (i - 10) % 3 != 0 && (i - 10) % 10 != 1 {
                i - 10
            } else {
                i - 9
            };
            plan.push((format!("ok-{j}"), true, 200u16));
        } else {
            plan.push((format!("ok-{i}"), true, 202u16));
            expected_runs += 1;
        }
    }
    let started = Instant::now();
    let mut handles = Vec::new();
    let plan = Arc::new(plan);
    for w in 0..8usize {
        let s = s.clone();
        let plan = plan.clone();
        let body = body.clone();
        handles.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for (i, (id, good, _)) in plan.iter().enumerate() {
                if i % 8 != w {
                    continue;
                }
                let secret = if *good { SECRET } else { "wrong" };
                let (st, v) = s
                    .hook(
                        "/hooks/app/github",
                        &github_headers("push", id, secret, body.as_bytes()),
                        body.as_bytes(),
                    )
                    .await;
                out.push((i, st, v));
            }
            out
        }));
    }
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    let mut replay_first = 0;
    for h in handles {
        for (i, st, v) in h.await.unwrap() {
            assert!(st < 500, "delivery {i}: server error {st}: {v}");
            *statuses.entry(st).or_default() += 1;
            let want = plan[i].2;
            if want == 200 && st == 202 {
                // A replay raced ahead of its original: then the original is the duplicate.
                replay_first += 1;
            } else if !(want == 202 && st == 200) {
                assert_eq!(st, want, "delivery {i}: {v}");
            }
        }
    }
    let took = started.elapsed();
    // Speed is bench/server.sh's business; this checks correctness under load.
    eprintln!(
        "1000 deliveries in {took:?}: {statuses:?} (replays that raced their original: {replay_first})"
    );
    assert_eq!(statuses.get(&401).copied().unwrap_or(0), 334);
    let db = drydock_db::Db::open(s.data.join("drydock.db")).unwrap();
    assert_eq!(db.count_runs(Some("app")).unwrap() as usize, expected_runs);
    assert_eq!(statuses.get(&202).copied().unwrap_or(0), expected_runs);
    let s = Arc::try_unwrap(s).ok().unwrap();
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_in_progress_cancels_the_older_run_of_a_group_and_cancel_stops_a_run() {
    if !git_ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pipeline = "on:\n  push:\n  manual:\njobs:\n  slow:\n    steps:\n      - run: echo started; sleep 20\n";
    let (repo, _) = repo(tmp.path(), "app", &[("drydock.yml", pipeline)]);
    let s = TestServer::start(&tmp.path().join("data")).await;
    s.add_project(json!({"name": "app", "repo_url": file_url(&repo), "concurrency": "ref", "cancel_in_progress": true})).await;
    let (st, v) = s
        .api(
            "POST",
            "/api/projects/app/runs",
            Some(json!({"ref": "main"})),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let first = v["run"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !s.logs(first, "slow").await.iter().any(|l| l == "started") {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, v) = s
        .api("POST", "/api/projects/app/runs", Some(json!({})))
        .await;
    let second = v["run"].as_i64().unwrap();
    let r1 = s.wait_run(first).await;
    assert_eq!(r1["status"], "cancelled", "{r1}");
    assert!(
        r1["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("superseded by run {second}")),
        "{r1}"
    );
    // The second runs; cancel it by hand.
    while !s.logs(second, "slow").await.iter().any(|l| l == "started") {
        assert!(Instant::now() < deadline + Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (st, _) = s
        .api("POST", &format!("/api/runs/{second}/cancel"), None)
        .await;
    assert_eq!(st, 200);
    let r2 = s.wait_run(second).await;
    assert_eq!(r2["status"], "cancelled", "{r2}");
    assert_eq!(r2["reason"], "cancelled by admin");
    let (st, _) = s
        .api("POST", &format!("/api/runs/{second}/cancel"), None)
        .await;
    assert_eq!(st, 409);
    // A manual run needs `manual` in `on` (it has it) and a job that exists.
    let (st, v) = s
        .api(
            "POST",
            "/api/projects/app/runs",
            Some(json!({"job": "nope"})),
        )
        .await;
    assert_eq!(st, 422, "{v}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_server_job_limit_holds_runs_back() {
    if !git_ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pipeline = "on:\n  manual:\njobs:\n  a:\n    steps:\n      - run: sleep 0.5\n";
    let (repo, _) = repo(tmp.path(), "app", &[("drydock.yml", pipeline)]);
    let mut cfg = config(&tmp.path().join("data"));
    cfg.job_limit = 1;
    let s = TestServer::start_with(cfg).await;
    s.add_project(json!({"name": "app", "repo_url": file_url(&repo)}))
        .await;
    s.add_project(json!({"name": "other", "repo_url": file_url(&repo)}))
        .await;
    let mut ids = Vec::new();
    for p in ["app", "other", "app"] {
        let (st, v) = s
            .api("POST", &format!("/api/projects/{p}/runs"), Some(json!({})))
            .await;
        assert_eq!(st, 201, "{v}");
        ids.push(v["run"].as_i64().unwrap());
    }
    let mut spans = Vec::new();
    for id in ids {
        let r = s.wait_run(id).await;
        assert_eq!(r["status"], "success", "{r}");
        spans.push((
            r["started_at"].as_i64().unwrap(),
            r["finished_at"].as_i64().unwrap(),
        ));
    }
    spans.sort();
    for w in spans.windows(2) {
        assert!(
            w[1].0 >= w[0].1,
            "runs overlapped with a job limit of 1: {spans:?}"
        );
    }
    let (st, v) = s.api("POST", "/api/runs/1/rerun", None).await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(
        s.wait_run(v["run"].as_i64().unwrap()).await["cause"],
        "re-run of run 1 by admin"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rerunning_the_failed_jobs_keeps_the_passed_ones_their_workspaces_and_outputs() {
    if !git_ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let counter = tmp.path().join("builds");
    let flag = tmp.path().join("fixed");
    let pipeline = format!(
        "on:\n  manual:\njobs:\n  build:\n    outputs:\n      version: ${{{{ steps.v.outputs.version }}}}\n    steps:\n      - id: v\n        run: echo built >> {c}; mkdir -p out; echo artifact-1 > out/a.txt; echo version=7.1 >> \"$GITHUB_OUTPUT\"\n    persist: [out/]\n  flaky:\n    needs: [build]\n    steps:\n      - attach: true\n      - run: echo \"version [${{{{ needs.build.outputs.version }}}}]\"; cat out/a.txt; test -e {f}\n  after:\n    needs: [flaky]\n    steps:\n      - run: echo after\n",
        c = counter.display(),
        f = flag.display()
    );
    let (repo, _) = repo(tmp.path(), "app", &[("drydock.yml", &pipeline)]);
    let s = TestServer::start(&tmp.path().join("data")).await;
    s.add_project(json!({"name": "app", "repo_url": file_url(&repo)}))
        .await;
    let (_, v) = s
        .api("POST", "/api/projects/app/runs", Some(json!({})))
        .await;
    let first = v["run"].as_i64().unwrap();
    let r1 = s.wait_run(first).await;
    assert_eq!(r1["status"], "failure", "{r1}");
    assert_eq!(r1["jobs"][2]["status"], "skipped", "{r1}");
    std::fs::write(&flag, "").unwrap();
    let (st, v) = s
        .api(
            "POST",
            &format!("/api/runs/{first}/rerun"),
            Some(json!({"failed_only": true})),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let second = v["run"].as_i64().unwrap();
    let r2 = s.wait_run(second).await;
    assert_eq!(r2["status"], "success", "{r2}");
    assert_eq!(
        r2["cause"],
        format!("re-run of the failed jobs of run {first} by admin")
    );
    assert_eq!(r2["jobs"][0]["status"], "success");
    assert_eq!(
        r2["jobs"][0]["reason"],
        format!("kept: passed in run {first}"),
        "{r2}"
    );
    assert!(
        s.logs(second, "flaky")
            .await
            .iter()
            .any(|l| l == "artifact-1"),
        "the kept job's persisted files reach the re-run job"
    );
    assert!(
        s.logs(second, "flaky")
            .await
            .iter()
            .any(|l| l == "version [7.1]"),
        "the kept job's outputs reach the re-run job: {:?}",
        s.logs(second, "flaky").await
    );
    assert_eq!(
        std::fs::read_to_string(&counter).unwrap(),
        "built\n",
        "build ran once"
    );
    // Nothing failed: nothing to re-run.
    let (st, _) = s
        .api(
            "POST",
            &format!("/api/runs/{second}/rerun"),
            Some(json!({"failed_only": true})),
        )
        .await;
    assert_eq!(st, 422);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_concurrency_group_without_cancel_in_progress_makes_runs_wait() {
    if !git_ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pipeline = "on:\n  manual:\njobs:\n  a:\n    steps:\n      - run: sleep 0.5\n";
    let (app_repo, _) = repo(tmp.path(), "app", &[("drydock.yml", pipeline)]);
    let (other, _) = repo(tmp.path(), "other", &[("drydock.yml", pipeline)]);
    let s = TestServer::start(&tmp.path().join("data")).await;
    s.add_project(
        json!({"name": "app", "repo_url": file_url(&app_repo), "concurrency": "project"}),
    )
    .await;
    s.add_project(json!({"name": "other", "repo_url": file_url(&other), "max_runs": 1}))
        .await;
    let mut app_runs = Vec::new();
    let mut other_runs = Vec::new();
    for _ in 0..2 {
        for (p, v) in [("app", &mut app_runs), ("other", &mut other_runs)] {
            let (st, r) = s
                .api("POST", &format!("/api/projects/{p}/runs"), Some(json!({})))
                .await;
            assert_eq!(st, 201, "{r}");
            v.push(r["run"].as_i64().unwrap());
        }
    }
    // The job limit (2) would allow two at once; the group and max_runs keep each project's
    // runs one after the other, and nothing is cancelled.
    for ids in [app_runs, other_runs] {
        let mut spans = Vec::new();
        for id in ids {
            let r = s.wait_run(id).await;
            assert_eq!(r["status"], "success", "{r}");
            spans.push((
                r["started_at"].as_i64().unwrap(),
                r["finished_at"].as_i64().unwrap(),
            ));
        }
        spans.sort();
        assert!(spans[1].0 >= spans[0].1, "overlap: {spans:?}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_over_the_project_timeout_fails_with_the_reason() {
    if !git_ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pipeline =
        "on:\n  manual:\njobs:\n  slow:\n    steps:\n      - run: echo started; sleep 30\n";
    let (repo, _) = repo(tmp.path(), "app", &[("drydock.yml", pipeline)]);
    let mut cfg = config(&tmp.path().join("data"));
    cfg.minute = Duration::from_millis(500);
    let s = TestServer::start_with(cfg).await;
    s.add_project(json!({"name": "app", "repo_url": file_url(&repo), "timeout_minutes": 1}))
        .await;
    let (_, v) = s
        .api("POST", "/api/projects/app/runs", Some(json!({})))
        .await;
    let started = Instant::now();
    let r = s.wait_run(v["run"].as_i64().unwrap()).await;
    assert_eq!(r["status"], "failure", "{r}");
    assert_eq!(r["reason"], "timed out after 1 minute", "{r}");
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "the step was stopped"
    );
    s.stop().await;
}
