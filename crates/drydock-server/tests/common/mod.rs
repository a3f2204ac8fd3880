//! Test fixtures: git repositories in temp dirs (served to the server by file:// URL), a
//! running server with its admin token, signed deliveries, a recorder of commit statuses.
#![allow(dead_code, clippy::print_stderr)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use drydock_server::{Server, ServerConfig};
use serde_json::{Value, json};

pub fn git_ready() -> bool {
    drydock_testkit::require_tool("git", "git").is_some()
}

pub use drydock_testkit::git;

pub fn write(dir: &Path, files: &[(&str, &str)]) {
    for (p, c) in files {
        let path = dir.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, c).unwrap();
    }
}

/// A repository with `files` committed on `main`; returns (dir, head sha).
pub fn repo(dir: &Path, name: &str, files: &[(&str, &str)]) -> (PathBuf, String) {
    let r = dir.join(name);
    std::fs::create_dir_all(&r).unwrap();
    git(&r, &["init", "-q", "-b", "main"]);
    write(&r, files);
    git(&r, &["add", "-A"]);
    git(&r, &["commit", "-q", "-m", "initial"]);
    let sha = git(&r, &["rev-parse", "HEAD"]);
    (r, sha)
}

pub fn commit(dir: &Path, files: &[(&str, &str)], msg: &str) -> String {
    write(dir, files);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", msg]);
    git(dir, &["rev-parse", "HEAD"])
}

pub fn file_url(p: &Path) -> String {
    format!("file://{}", p.display())
}

pub struct TestServer {
    pub server: Option<Server>,
    pub url: String,
    pub token: String,
    pub http: reqwest::Client,
    pub data: PathBuf,
}

pub fn config(data: &Path) -> ServerConfig {
    let mut cfg = ServerConfig::new(data, "127.0.0.1:0".parse::<SocketAddr>().unwrap());
    cfg.job_limit = 2;
    cfg.tick = Duration::from_millis(200);
    cfg.refresh = Duration::from_secs(3600);
    cfg.image_poll = Duration::from_millis(500);
    cfg.builder = Some(Arc::new(drydock_pipeline::NoBuilder));
    cfg.admin_password = Some("admin-password".into());
    cfg
}

impl TestServer {
    pub async fn start(data: &Path) -> TestServer {
        Self::start_with(config(data)).await
    }

    pub async fn start_with(cfg: ServerConfig) -> TestServer {
        drydock_server::install_crypto_provider();
        let data = cfg.data_dir.clone();
        let server = Server::start(cfg).await.expect("server starts");
        let token = std::fs::read_to_string(data.join("admin-token"))
            .unwrap()
            .trim()
            .to_string();
        TestServer {
            url: server.url(),
            server: Some(server),
            token,
            http: reqwest::Client::new(),
            data,
        }
    }

    pub fn app(&self) -> &Arc<drydock_server::App> {
        self.server.as_ref().unwrap().app()
    }

    pub async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(m, format!("{}{path}", self.url))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let r = req.send().await.unwrap();
        let s = r.status().as_u16();
        let t = r.text().await.unwrap();
        (s, serde_json::from_str(&t).unwrap_or(Value::String(t)))
    }

    pub async fn add_project(&self, body: Value) {
        let (s, v) = self.api("POST", "/api/projects", Some(body)).await;
        assert_eq!(s, 201, "{v}");
    }

    pub async fn hook(&self, path: &str, headers: &[(&str, String)], body: &[u8]) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(body.to_vec());
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let r = req.send().await.unwrap();
        let s = r.status().as_u16();
        let t = r.text().await.unwrap();
        (s, serde_json::from_str(&t).unwrap_or(Value::String(t)))
    }

    /// Waits until run `id` has finished; returns its JSON.
    pub async fn wait_run(&self, id: i64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (s, v) = self.api("GET", &format!("/api/runs/{id}"), None).await;
            assert_eq!(s, 200, "{v}");
            let st = v["status"].as_str().unwrap_or("");
            if !matches!(st, "queued" | "running") && v["active"] == false {
                return v;
            }
            assert!(Instant::now() < deadline, "run {id} did not finish: {v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn logs(&self, id: i64, job: &str) -> Vec<String> {
        let (s, v) = self
            .api("GET", &format!("/api/runs/{id}/jobs/{job}/logs"), None)
            .await;
        assert_eq!(s, 200, "{v}");
        v["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["line"].as_str().unwrap().to_string())
            .collect()
    }

    pub async fn runs(&self, project: &str) -> Vec<Value> {
        let (_, v) = self
            .api(
                "GET",
                &format!("/api/runs?project={project}&limit=500"),
                None,
            )
            .await;
        v["runs"].as_array().cloned().unwrap_or_default()
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }
}

pub fn hmac_hex(secret: &str, body: &[u8]) -> String {
    hex(&drydock_server::webhooks::hmac_sha256(
        secret.as_bytes(),
        &[body],
    ))
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// GitHub's push payload (the documented example's shape, trimmed).
pub fn github_push(git_ref: &str, before: &str, after: &str, clone_url: &str) -> Value {
    json!({
        "ref": git_ref, "before": before, "after": after,
        "created": false, "deleted": false, "forced": false, "base_ref": null,
        "compare": "https://github.com/acme/app/compare/x...y",
        "commits": [{"id": after, "message": "change", "author": {"name": "t", "email": "t@example.invalid"}}],
        "head_commit": {"id": after, "message": "change"},
        "repository": {"id": 1, "name": "app", "full_name": "acme/app", "private": false,
            "clone_url": clone_url, "default_branch": "main", "owner": {"login": "acme"}},
        "pusher": {"name": "ann", "email": "ann@example.invalid"},
        "sender": {"login": "ann", "id": 7, "type": "User"}
    })
}

pub fn github_pr(
    action: &str,
    number: u64,
    head: &str,
    head_sha: &str,
    head_repo: &str,
    base_repo: &str,
    head_clone: &str,
) -> Value {
    json!({
        "action": action, "number": number,
        "pull_request": {
            "number": number, "state": "open", "title": "change",
            "user": {"login": "eve"},
            "head": {"label": format!("{head_repo}:{head}"), "ref": head, "sha": head_sha,
                "repo": {"full_name": head_repo, "clone_url": head_clone, "fork": head_repo != base_repo}},
            "base": {"label": "acme:main", "ref": "main", "sha": "0".repeat(40),
                "repo": {"full_name": base_repo, "clone_url": "x"}}
        },
        "repository": {"full_name": base_repo, "default_branch": "main"},
        "sender": {"login": "eve"}
    })
}

/// Signed GitHub delivery headers.
pub fn github_headers(
    event: &str,
    delivery: &str,
    secret: &str,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    vec![
        ("X-GitHub-Event", event.to_string()),
        ("X-GitHub-Delivery", delivery.to_string()),
        (
            "X-Hub-Signature-256",
            format!("sha256={}", hmac_hex(secret, body)),
        ),
        ("User-Agent", "GitHub-Hookshot/abc".to_string()),
    ]
}

/// A recorder of commit-status calls: an HTTP server on loopback.
pub struct Recorder {
    pub url: String,
    pub calls: Arc<Mutex<Vec<(String, String, String)>>>,
}

pub async fn recorder() -> Recorder {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, Uri};
    let calls: Arc<Mutex<Vec<(String, String, String)>>> = Arc::default();
    let c2 = calls.clone();
    let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
        let c = c2.clone();
        async move {
            let auth = headers
                .get("authorization")
                .or_else(|| headers.get("private-token"))
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            c.lock().unwrap().push((
                uri.to_string(),
                auth,
                String::from_utf8_lossy(&body).into_owned(),
            ));
            (axum::http::StatusCode::CREATED, "{}")
        }
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    Recorder { url, calls }
}

pub async fn wait_for<F: FnMut() -> bool>(what: &str, mut f: F) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub const PIPELINE: &str = r#"on:
  push:
    branches: [main]
    tags: ["v*"]
  pull_request:
    branches: [main]
  manual:
secrets:
  deploy:
    keys: [API_KEY]
jobs:
  test:
    steps:
      - run: echo "hello from test"
      - run: printf '\033[31mred\033[0m line\n'
      - run: echo "sha $GITHUB_SHA"
  publish:
    needs: [test]
    secrets: [deploy]
    steps:
      - run: echo "key is $API_KEY"
"#;
