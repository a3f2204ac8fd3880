//! The UI in a real browser: Debian's chromium, headless, driven through chromedriver's
//! WebDriver HTTP protocol: log in, open a running run, see live log lines arrive (SSE), see
//! the job graph, and a secret masked in the page.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;
use serde_json::{Value, json};

struct Driver {
    child: Child,
    base: String,
    session: String,
    http: reqwest::Client,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    async fn start(profile: &std::path::Path) -> Option<Driver> {
        drydock_server::install_crypto_provider();
        let chromedriver = drydock_testkit::require_tool("chromedriver", "chromium-driver")?;
        let chromium = drydock_testkit::require_tool("chromium", "chromium")?;
        let port = drydock_testkit::free_port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.display())]
            }
        }}});
        let mut d = Driver {
            child,
            base,
            session: String::new(),
            http,
        };
        let v = d.call("POST", "/session", caps).await;
        d.session = v["sessionId"].as_str().expect("a session").to_string();
        Some(d)
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = if path == "/session" {
            format!("{}{path}", self.base)
        } else {
            format!("{}/session/{}{path}", self.base, self.session)
        };
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(m, url);
        if method != "GET" {
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let r = req.send().await.unwrap();
        let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        assert!(v["value"].get("error").is_none(), "webdriver {path}: {v}");
        v["value"].clone()
    }

    async fn go(&self, url: &str) {
        self.call("POST", "/url", json!({ "url": url })).await;
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .call(
                "POST",
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        v.as_object()
            .unwrap()
            .values()
            .next()
            .unwrap()
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn js(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    async fn screenshot(&self, to: &std::path::Path) {
        let v = self.call("GET", "/screenshot", json!({})).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        let _ = std::fs::write(to, png);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn log_in_open_a_run_and_watch_live_logs_and_the_job_graph() {
    if !git_ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(driver) = Driver::start(&tmp.path().join("profile")).await else {
        return;
    };
    let pipeline = "on:\n  manual:\nsecrets:\n  s:\n    keys: [TOKEN]\njobs:\n  build:\n    secrets: [s]\n    steps:\n      - run: |\n          echo \"token $TOKEN\"\n          for i in $(seq 1 40); do printf '\\033[32mline %s\\033[0m\\n' $i; sleep 0.2; done\n  test:\n    needs: [build]\n    steps:\n      - run: echo tested\n  deploy:\n    needs: [build, test]\n    steps:\n      - run: echo deployed\n";
    let (repo, _) = repo(tmp.path(), "app", &[("drydock.yml", pipeline)]);
    let s = TestServer::start(&tmp.path().join("data")).await;
    s.add_project(
        json!({"name": "app", "repo_url": file_url(&repo), "secrets": {"TOKEN": "tok-123456"}}),
    )
    .await;
    let (st, v) = s
        .api("POST", "/api/projects/app/runs", Some(json!({})))
        .await;
    assert_eq!(st, 201, "{v}");
    let id = v["run"].as_i64().unwrap();

    // Log in through the form.
    driver.go(&format!("{}/runs/{id}", s.url)).await;
    let name = driver.find("#name").await;
    driver
        .call(
            "POST",
            &format!("/element/{name}/value"),
            json!({"text": "admin"}),
        )
        .await;
    let pw = driver.find("#password").await;
    driver
        .call(
            "POST",
            &format!("/element/{pw}/value"),
            json!({"text": "admin-password"}),
        )
        .await;
    let button = driver.find("#login").await;
    driver
        .call("POST", &format!("/element/{button}/click"), json!({}))
        .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let url = driver.call("GET", "/url", json!({})).await;
        if url.as_str().unwrap().ends_with(&format!("/runs/{id}")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "login did not land on the run: {url}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The job graph: three nodes, two levels of edges.
    let nodes = driver
        .js("return document.querySelectorAll('#graph g.node').length")
        .await;
    assert_eq!(nodes, 3);
    let edges = driver
        .js("return document.querySelectorAll('#graph path.edge').length")
        .await;
    assert_eq!(edges, 3);
    // Live lines arrive while the job runs.
    let count = "return document.querySelectorAll('#log-build div').length";
    let deadline = Instant::now() + Duration::from_secs(30);
    let first = loop {
        let n = driver.js(count).await.as_i64().unwrap();
        if n >= 3 {
            break n;
        }
        assert!(Instant::now() < deadline, "no live lines");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let run = s.api("GET", &format!("/api/runs/{id}"), None).await.1;
    assert_eq!(
        run["jobs"][0]["status"], "running",
        "lines arrived while the job ran: {run}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = driver.js(count).await.as_i64().unwrap();
        if n > first + 5 {
            break;
        }
        assert!(Instant::now() < deadline, "lines stopped arriving at {n}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Colours are rendered, the secret is masked.
    let html = driver
        .js("return document.getElementById('log-build').innerHTML")
        .await;
    let html = html.as_str().unwrap();
    assert!(
        html.contains("token ***") && !html.contains("tok-123456"),
        "{html}"
    );
    assert!(html.contains("color:#0dbc79"), "{html}");
    // The job ends: its badge turns, the run succeeds.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let st = driver
            .js("return document.getElementById('log-deploy').dataset.done || ''")
            .await;
        if st == "success" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "deploy never ended in the page: {st}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The page reloads once to show the final state; the whole log is there again.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let done = driver
            .js("var m = document.getElementById('runmeta'); return m ? m.dataset.done : ''")
            .await;
        let n = driver.js(count).await.as_i64().unwrap_or(0);
        if done == "true" && n == 41 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "final page: done={done} lines={n}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let steps = driver
        .js("return document.querySelectorAll('#job-build .st-success').length")
        .await;
    assert_eq!(steps, 2, "the job and its step, both passed");
    // The graph follows: every node green.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let fills = driver
            .js("return Array.from(document.querySelectorAll('#graph rect')).map(function(r){return r.getAttribute('fill')}).join(',')")
            .await;
        if fills == "#2e9d57,#2e9d57,#2e9d57" {
            break;
        }
        assert!(Instant::now() < deadline, "graph not updated: {fills}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if let Ok(dir) = std::env::var("DRYDOCK_SCREENSHOT_DIR") {
        driver
            .screenshot(&std::path::Path::new(&dir).join("run-page.png"))
            .await;
    }
    let _ = driver.call("DELETE", "", json!({})).await;
    s.stop().await;
}
