//! Key rotation while the server is stopped (`drydock serve --rotate-key`): every sealed value
//! is re-encrypted under a new key, and runs after the restart still get the secret.

mod common;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotating_the_key_offline_keeps_secrets_and_webhook_secrets_working() {
    if !git_ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (repo, sha) = repo(tmp.path(), "app", &[("drydock.yml", PIPELINE)]);
    let data = tmp.path().join("data");
    let s = TestServer::start(&data).await;
    s.add_project(
        json!({"name": "app", "repo_url": file_url(&repo), "webhook_secret": "hook",
        "secrets": {"API_KEY": "rotate-me-123"}}),
    )
    .await;
    s.stop().await;
    let key_before = std::fs::read(data.join("secret.key")).unwrap();
    let (n, id) = drydock_server::rotate_key(&data, None).unwrap();
    assert_eq!(n, 2, "the secret and the webhook secret");
    assert_eq!(id.len(), 8);
    assert_ne!(std::fs::read(data.join("secret.key")).unwrap(), key_before);
    assert_eq!(
        std::fs::read(data.join("secret.key.old")).unwrap(),
        key_before
    );

    let s = TestServer::start(&data).await;
    let body = github_push("refs/heads/main", &"0".repeat(40), &sha, "x").to_string();
    let (st, v) = s
        .hook(
            "/hooks/app/github",
            &github_headers("push", "r-1", "hook", body.as_bytes()),
            body.as_bytes(),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    let id = v["runs"][0].as_i64().unwrap();
    let r = s.wait_run(id).await;
    assert_eq!(r["status"], "success", "{r}");
    assert!(
        s.logs(id, "publish")
            .await
            .iter()
            .any(|l| l == "key is ***")
    );
    s.stop().await;
}
