//! Real signed deliveries shaped like each forge's documented examples, sent to a running
//! server, against real git repositories in temp dirs.

mod common;

use common::*;
use serde_json::json;

const SECRET: &str = "It's a Secret to Everybody";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn github_push_runs_the_pipeline_with_statuses_logs_and_masked_secrets() {
    if !git_ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (repo, sha) = repo(tmp.path(), "app", &[("drydock.yml", PIPELINE)]);
    let rec = recorder().await;
    let s = TestServer::start(&tmp.path().join("data")).await;
    s.add_project(json!({
        "name": "app", "repo_url": file_url(&repo), "webhook_secret": SECRET,
        "forge": "github", "status_api": rec.url, "status_repo": "acme/app", "status_token": "ghp_test",
        "secrets": {"API_KEY": "hunter2-very-secret"}
    }))
    .await;

    let body = github_push("refs/heads/main", &"0".repeat(40), &sha, &file_url(&repo)).to_string();
    let (st, v) = s
        .hook(
            "/hooks/app/github",
            &github_headers("push", "d-1", SECRET, body.as_bytes()),
            body.as_bytes(),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    let id = v["runs"][0].as_i64().unwrap();
    let run = s.wait_run(id).await;
    assert_eq!(run["status"], "success", "{run}");
    assert_eq!(run["sha"], sha.as_str());
    assert!(
        run["cause"].as_str().unwrap().contains("push to main"),
        "{run}"
    );
    let test_log = s.logs(id, "test").await;
    assert!(
        test_log.iter().any(|l| l.contains("hello from test")),
        "{test_log:?}"
    );
    // The job ran the event's commit.
    assert!(
        test_log.iter().any(|l| l == &format!("sha {sha}")),
        "{test_log:?}"
    );
    let publish_log = s.logs(id, "publish").await;
    assert!(
        publish_log.iter().any(|l| l == "key is ***"),
        "{publish_log:?}"
    );
    assert!(!publish_log.iter().any(|l| l.contains("hunter2")));

    // The secret never reaches the database in plaintext.
    let db = std::fs::read(s.data.join("drydock.db")).unwrap();
    let wal = std::fs::read(s.data.join("drydock.db-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        assert!(
            !bytes.windows(8).any(|w| w == b"hunter2-"),
            "plaintext secret in the database"
        );
    }

    // The same delivery again starts nothing.
    let (st, v) = s
        .hook(
            "/hooks/app/github",
            &github_headers("push", "d-1", SECRET, body.as_bytes()),
            body.as_bytes(),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["duplicate"], true);
    assert_eq!(s.runs("app").await.len(), 1);

    // Commit statuses: pending then success, with a link to the run.
    wait_for("statuses", || {
        rec.calls
            .lock()
            .unwrap()
            .iter()
            .any(|(_, _, b)| b.contains("\"success\""))
    })
    .await;
    let calls = rec.calls.lock().unwrap().clone();
    assert!(
        calls
            .iter()
            .all(|(u, a, _)| u == &format!("/repos/acme/app/statuses/{sha}")
                && a == "Bearer ghp_test"),
        "{calls:?}"
    );
    assert!(calls[0].2.contains("\"pending\""), "{calls:?}");
    assert!(
        calls.last().unwrap().2.contains(&format!("/runs/{id}")),
        "{calls:?}"
    );

    // The UI run page, logged in with a password.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client
        .post(format!("{}/login", s.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("name=admin&password=admin-password&next=%2F")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let page = client
        .get(format!("{}/runs/{id}", s.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("<svg id=graph"), "{page}");
    assert!(page.contains("data-job=\"publish\""));
    let full = client
        .get(format!("{}/runs/{id}/jobs/test/log", s.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        full.contains("<span style=\"color:#cd3131;\">red</span> line"),
        "{full}"
    );
    // Without a session: to the login page.
    let r = client
        .get(format!("{}/runs/{id}", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_signatures_get_401_and_malformed_bodies_400_and_start_nothing() {
    if !git_ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (repo, sha) = repo(tmp.path(), "app", &[("drydock.yml", PIPELINE)]);
    let s = TestServer::start(&tmp.path().join("data")).await;
    s.add_project(json!({"name": "app", "repo_url": file_url(&repo), "webhook_secret": SECRET}))
        .await;
    let body = github_push("refs/heads/main", &"0".repeat(40), &sha, "x").to_string();
    let (st, v) = s
        .hook(
            "/hooks/app/github",
            &github_headers("push", "d-1", "wrong secret", body.as_bytes()),
            body.as_bytes(),
        )
        .await;
    assert_eq!(st, 401, "{v}");
    let (st, _) = s
        .hook(
            "/hooks/app/github",
            &[("X-GitHub-Event", "push".into())],
            body.as_bytes(),
        )
        .await;
    assert_eq!(st, 401);
    let bad = b"{\"ref\": \"refs/heads/main\", \"after\": 12";
    let (st, v) = s
        .hook(
            "/hooks/app/github",
            &github_headers("push", "d-2", SECRET, bad),
            bad,
        )
        .await;
    assert_eq!(st, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("not JSON"), "{v}");
    let bad = br#"{"ref": "refs/heads/main", "after": "not-a-sha"}"#;
    let (st, v) = s
        .hook(
            "/hooks/app/github",
            &github_headers("push", "d-3", SECRET, bad),
            bad,
        )
        .await;
    assert_eq!(st, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("not a commit id"),
        "{v}"
    );
    // A ping starts nothing.
    let ping = br#"{"zen": "Keep it logically awesome.", "hook_id": 1}"#;
    let (st, v) = s
        .hook(
            "/hooks/app/github",
            &github_headers("ping", "d-4", SECRET, ping),
            ping,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    // A branch the pipeline does not run for: no run, with the reason.
    let body = github_push("refs/heads/feature", &"0".repeat(40), &sha, "x").to_string();
    let (st, v) = s
        .hook(
            "/hooks/app/github",
            &github_headers("push", "d-5", SECRET, body.as_bytes()),
            body.as_bytes(),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert!(v["not_run"].as_str().unwrap().contains("feature"), "{v}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(s.runs("app").await.is_empty());
    s.stop().await;
}
