//! Gitea/Forgejo, GitLab (token and standard-webhooks) and generic deliveries; statuses to
//! Gitea and GitLab; pull requests from forks (no secrets until approved).

mod common;

use base64::Engine as _;
use common::*;
use serde_json::json;

const SECRET: &str = "forge-secret";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gitea_gitlab_and_generic_deliveries_start_runs_and_report_statuses() {
    if !git_ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (repo, sha) = repo(tmp.path(), "app", &[("drydock.yml", PIPELINE)]);
    let rec = recorder().await;
    let s = TestServer::start(&tmp.path().join("data")).await;
    for (name, forge) in [
        ("gt", "gitea"),
        ("fj", "forgejo"),
        ("gl", "gitlab"),
        ("gen", "generic"),
    ] {
        s.add_project(json!({
            "name": name, "repo_url": file_url(&repo), "webhook_secret": SECRET, "forge": forge,
            "status_api": rec.url, "status_repo": "acme/app", "status_token": "tok"
        }))
        .await;
    }
    // Gitea's push payload (documented shape).
    let body = json!({
        "ref": "refs/heads/main", "before": "0".repeat(40), "after": sha,
        "compare_url": "", "commits": [{"id": sha, "message": "x"}],
        "repository": {"id": 1, "full_name": "acme/app", "clone_url": file_url(&repo), "default_branch": "main"},
        "pusher": {"login": "ann", "username": "ann"}, "sender": {"login": "ann"}
    })
    .to_string();
    let sig = hmac_hex(SECRET, body.as_bytes());
    let (st, v) = s
        .hook(
            "/hooks/gt/gitea",
            &[
                ("X-Gitea-Event", "push".into()),
                ("X-Gitea-Delivery", "g-1".into()),
                ("X-Gitea-Signature", sig.clone()),
            ],
            body.as_bytes(),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    let gitea_run = v["runs"][0].as_i64().unwrap();
    let (st, v) = s
        .hook(
            "/hooks/fj/forgejo",
            &[
                ("X-Forgejo-Event", "push".into()),
                ("X-Forgejo-Delivery", "f-1".into()),
                ("X-Forgejo-Signature", sig),
            ],
            body.as_bytes(),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    // GitLab: X-Gitlab-Token, a tag push.
    let tag_sha = sha.clone();
    let gl = json!({
        "object_kind": "tag_push", "event_name": "tag_push", "ref": "refs/tags/v1.0.0",
        "before": "0".repeat(40), "after": tag_sha, "checkout_sha": tag_sha, "user_username": "ann",
        "project": {"id": 15, "path_with_namespace": "acme/app", "git_http_url": file_url(&repo), "default_branch": "main"}
    })
    .to_string();
    let (st, v) = s
        .hook(
            "/hooks/gl/gitlab",
            &[
                ("X-Gitlab-Event", "Tag Push Hook".into()),
                ("X-Gitlab-Token", SECRET.into()),
                ("X-Gitlab-Event-UUID", "u-1".into()),
            ],
            gl.as_bytes(),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    let gitlab_run = v["runs"][0].as_i64().unwrap();
    let (st, _) = s
        .hook(
            "/hooks/gl/gitlab",
            &[
                ("X-Gitlab-Event", "Tag Push Hook".into()),
                ("X-Gitlab-Token", "nope".into()),
                ("X-Gitlab-Event-UUID", "u-2".into()),
            ],
            gl.as_bytes(),
        )
        .await;
    assert_eq!(st, 401);
    // GitLab's signed form (standard webhooks).
    let key = b"signing-key-0123456789";
    s.api("PATCH", "/api/projects/gl", Some(json!({"webhook_secret": format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(key))}))).await;
    let push = json!({
        "object_kind": "push", "ref": "refs/heads/main", "before": "0".repeat(40), "after": sha,
        "checkout_sha": sha, "user_username": "ann",
        "project": {"path_with_namespace": "acme/app", "git_http_url": file_url(&repo), "default_branch": "main"}
    })
    .to_string();
    let ts = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs())
    .to_string();
    let mac = drydock_server::webhooks::hmac_sha256(
        key,
        &[b"msg_2.", ts.as_bytes(), b".", push.as_bytes()],
    );
    let sig = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac)
    );
    let hs = [
        ("webhook-id", "msg_2".to_string()),
        ("webhook-timestamp", ts.clone()),
        ("webhook-signature", sig),
        ("X-Gitlab-Event", "Push Hook".to_string()),
    ];
    let (st, v) = s.hook("/hooks/gl/gitlab", &hs, push.as_bytes()).await;
    assert_eq!(st, 202, "{v}");
    let (st, v) = s.hook("/hooks/gl/gitlab", &hs, push.as_bytes()).await;
    assert_eq!((st, &v["duplicate"]), (200, &json!(true)), "{v}");
    // Generic.
    let g =
        json!({"event": "push", "ref": "refs/heads/main", "sha": sha, "actor": "bot"}).to_string();
    let (st, v) = s
        .hook(
            "/hooks/gen/generic",
            &[
                (
                    "X-Drydock-Signature",
                    format!("sha256={}", hmac_hex(SECRET, g.as_bytes())),
                ),
                ("X-Drydock-Delivery", "x-1".into()),
            ],
            g.as_bytes(),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    let generic_run = v["runs"][0].as_i64().unwrap();

    // A GitLab merge request from a branch of the same project (not a fork), then new
    // commits on it (update with oldrev: synchronize); a title edit starts nothing.
    git(&repo, &["checkout", "-q", "-b", "feature"]);
    let mr_sha = commit(&repo, &[("feature.txt", "x\n")], "feature");
    git(&repo, &["checkout", "-q", "main"]);
    let mr = |action: &str, oldrev: Option<&str>, delivery: &str| {
        let mut attrs = json!({
            "iid": 3, "action": action, "source_branch": "feature", "target_branch": "main",
            "source_project_id": 15, "target_project_id": 15, "last_commit": {"id": mr_sha},
            "source": {"git_http_url": file_url(&repo), "path_with_namespace": "acme/app"},
            "target": {"git_http_url": file_url(&repo), "path_with_namespace": "acme/app"}
        });
        if let Some(o) = oldrev {
            attrs["oldrev"] = json!(o);
        }
        let body = json!({
            "object_kind": "merge_request", "event_type": "merge_request",
            "user": {"username": "ann"},
            "project": {"path_with_namespace": "acme/app", "git_http_url": file_url(&repo), "default_branch": "main"},
            "object_attributes": attrs
        })
        .to_string();
        (body, delivery.to_string())
    };
    s.api(
        "PATCH",
        "/api/projects/gl",
        Some(json!({"webhook_secret": SECRET})),
    )
    .await;
    for (action, oldrev, delivery, runs) in [
        ("open", None, "mr-1", 1),
        ("update", Some(sha.as_str()), "mr-2", 1),
        ("update", None, "mr-3", 0),
    ] {
        let (body, d) = mr(action, oldrev, delivery);
        let (st, v) = s
            .hook(
                "/hooks/gl/gitlab",
                &[
                    ("X-Gitlab-Event", "Merge Request Hook".into()),
                    ("X-Gitlab-Token", SECRET.into()),
                    ("X-Gitlab-Event-UUID", d),
                ],
                body.as_bytes(),
            )
            .await;
        assert!(st == 202 || st == 200, "{v}");
        assert_eq!(
            v["runs"].as_array().map_or(0, |a| a.len()),
            runs,
            "{action}: {v}"
        );
        if let Some(id) = v["runs"][0].as_i64() {
            let r = s.wait_run(id).await;
            assert_eq!(r["event"], "pull_request", "{r}");
            assert_eq!(r["sha"], mr_sha.as_str());
            assert_eq!(r["fork"], false);
            assert!(
                r["cause"]
                    .as_str()
                    .unwrap()
                    .contains("pull request #3 feature -> main"),
                "{r}"
            );
        }
    }

    for id in [gitea_run, gitlab_run, generic_run] {
        let r = s.wait_run(id).await;
        // publish asks for a group with no value set: the run fails there, test passes.
        assert_eq!(r["jobs"][0]["status"], "success", "{r}");
    }
    let r = s.wait_run(gitlab_run).await;
    assert_eq!(r["ref"], "refs/tags/v1.0.0");
    wait_for("gitea and gitlab statuses", || {
        let c = rec.calls.lock().unwrap();
        c.iter().any(|(u, a, _)| {
            u.starts_with(&format!("/api/v1/repos/acme/app/statuses/{sha}")) && a == "token tok"
        }) && c.iter().any(|(u, a, _)| {
            u.starts_with(&format!("/api/v4/projects/acme%2Fapp/statuses/{sha}"))
                && u.contains("state=failed")
                && a == "tok"
        })
    })
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fork_pull_requests_get_no_secrets_until_a_maintainer_approves() {
    if !git_ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (repo, _) = repo(tmp.path(), "app", &[("drydock.yml", PIPELINE)]);
    let fork = tmp.path().join("fork");
    git(
        tmp.path(),
        &[
            "clone",
            "-q",
            repo.to_str().unwrap(),
            fork.to_str().unwrap(),
        ],
    );
    git(&fork, &["checkout", "-q", "-b", "feature"]);
    let head = commit(&fork, &[("README", "from a fork\n")], "fork change");
    let s = TestServer::start(&tmp.path().join("data")).await;
    s.add_project(
        json!({"name": "app", "repo_url": file_url(&repo), "webhook_secret": SECRET,
        "secrets": {"API_KEY": "s3cr3t-value"}}),
    )
    .await;
    let body = github_pr(
        "opened",
        7,
        "feature",
        &head,
        "eve/app",
        "acme/app",
        &file_url(&fork),
    )
    .to_string();
    let (st, v) = s
        .hook(
            "/hooks/app/github",
            &github_headers("pull_request", "pr-1", SECRET, body.as_bytes()),
            body.as_bytes(),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    let id = v["runs"][0].as_i64().unwrap();
    let r = s.wait_run(id).await;
    assert_eq!(r["fork"], true);
    assert_eq!(r["jobs"][0]["status"], "success", "{r}");
    assert_eq!(r["jobs"][1]["status"], "failure", "{r}");
    assert!(
        r["jobs"][1]["reason"].as_str().unwrap().contains("fork"),
        "{r}"
    );
    // A user without admin cannot approve.
    // The admin approves: a new run of the same commit, with the secrets.
    let (st, v) = s
        .api("POST", &format!("/api/runs/{id}/approve"), None)
        .await;
    assert_eq!(st, 201, "{v}");
    let id2 = v["run"].as_i64().unwrap();
    let r2 = s.wait_run(id2).await;
    assert_eq!(r2["status"], "success", "{r2}");
    assert_eq!(r2["sha"], head.as_str());
    assert_eq!(r2["approved_by"], "admin");
    assert!(
        s.logs(id2, "publish")
            .await
            .iter()
            .any(|l| l == "key is ***")
    );
    // A run that is not a fork's cannot be approved.
    let (st, _) = s
        .api("POST", &format!("/api/runs/{id2}/approve"), None)
        .await;
    assert_eq!(st, 422);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn openapi_describes_every_api_route_and_tokens_have_scopes() {
    let tmp = tempfile::tempdir().unwrap();
    let s = TestServer::start(&tmp.path().join("data")).await;
    let (st, spec) = s.api("GET", "/api/openapi.json", None).await;
    assert_eq!(st, 200);
    let paths = spec["paths"].as_object().unwrap();
    let mut documented = 0;
    for (method, path) in drydock_server::http::API_ROUTES {
        assert!(
            paths.get(*path).and_then(|p| p.get(*method)).is_some(),
            "{method} {path} is not in openapi.json"
        );
        documented += 1;
    }
    let in_spec: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(
        in_spec, documented,
        "openapi.json documents routes the router does not have"
    );
    // A read-only token can read, not trigger.
    let (st, v) = s
        .api(
            "POST",
            "/api/tokens",
            Some(json!({"name": "ro", "scopes": "read"})),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let ro = v["token"].as_str().unwrap().to_string();
    let r = s
        .http
        .get(format!("{}/api/projects", s.url))
        .bearer_auth(&ro)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = s
        .http
        .post(format!("{}/api/projects", s.url))
        .bearer_auth(&ro)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let r = s
        .http
        .get(format!("{}/api/projects", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // Key rotation keeps secrets readable.
    let (st, v) = s.api("POST", "/api/secrets/rotate", None).await;
    assert_eq!(st, 200, "{v}");
    s.stop().await;
}
