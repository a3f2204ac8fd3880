//! Image triggers: a push to the embedded registry, and an upstream image whose digest
//! changes (seen with HEAD requests only: never a counted GET of a manifest).

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use sha2::Digest as _;

/// Pushes a tiny image (an empty config, one layer of bytes) as `repo:tag` with plain HTTP.
async fn push_image(
    http: &reqwest::Client,
    base: &str,
    repo: &str,
    tag: &str,
    content: &[u8],
) -> String {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let mut descs = Vec::new();
    for blob in [&config[..], content] {
        let d = format!("sha256:{}", hex(&sha2::Sha256::digest(blob)));
        let r = http
            .post(format!("{base}/v2/{repo}/blobs/uploads/?digest={d}"))
            .header("content-type", "application/octet-stream")
            .body(blob.to_vec())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "blob upload: {}", r.status());
        descs.push((d, blob.len()));
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": descs[0].0, "size": descs[0].1},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": descs[1].0, "size": descs[1].1}]
    })
    .to_string();
    let r = http
        .put(format!("{base}/v2/{repo}/manifests/{tag}"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest.clone())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "manifest: {}", r.status());
    format!("sha256:{}", hex(&sha2::Sha256::digest(manifest.as_bytes())))
}

async fn wait_runs(s: &TestServer, project: &str, n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let runs = s.runs(project).await;
        if runs.len() >= n {
            return runs;
        }
        assert!(
            Instant::now() < deadline,
            "{project}: {} runs, want {n}",
            runs.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pushes_to_the_embedded_registry_and_upstream_digest_changes_run_watching_pipelines() {
    if !git_ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // The "upstream" registry: another embedded registry on loopback.
    let up_dir = tmp.path().join("upstream");
    let upstream = drydock_registry_server::Registry::open(
        drydock_registry_server::RegistryConfig::new(&up_dir),
    )
    .unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up_addr = l.local_addr().unwrap();
    let up = upstream.clone();
    tokio::spawn(async move {
        let _ = drydock_registry_server::serve(
            up,
            l,
            drydock_registry_server::ServeOptions { tls: None },
            std::future::pending(),
        )
        .await;
    });
    let up_url = format!("http://{up_addr}");
    let http = reqwest::Client::new();
    push_image(&http, &up_url, "base/python", "3.11", b"one").await;

    let s = TestServer::start(&tmp.path().join("data")).await;
    let host = s.url.trim_start_matches("http://").to_string();
    let pipeline = format!(
        "on:\n  image:\n    - \"{host}/base/tool:1\"\n    - \"{up_addr}/base/python:3.11\"\njobs:\n  rebuild:\n    steps:\n      - run: echo rebuilding for $GITHUB_EVENT_NAME\n"
    );
    let (repo, _) = repo(tmp.path(), "app", &[("drydock.yml", &pipeline)]);
    s.add_project(json!({"name": "app", "repo_url": file_url(&repo)}))
        .await;
    // Wait until the project's watch list is read.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = s
            .app()
            .watch
            .lock()
            .unwrap()
            .get("app")
            .map(|w| w.images.len());
        if ready == Some(2) {
            break;
        }
        assert!(Instant::now() < deadline, "watch list not read");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A push to this server's registry.
    push_image(&http, &s.url, "base/tool", "1", b"tool").await;
    let runs = wait_runs(&s, "app", 1).await;
    assert!(
        runs[0]["cause"]
            .as_str()
            .unwrap()
            .contains("base/tool:1 was pushed"),
        "{runs:?}"
    );
    let r = s.wait_run(runs[0]["id"].as_i64().unwrap()).await;
    assert_eq!(r["status"], "success", "{r}");
    assert_eq!(r["event"], "image");
    // Another tag of the same repository runs nothing.
    push_image(&http, &s.url, "base/tool", "2", b"tool 2").await;

    // Upstream: the first poll records the digest; a change runs the pipeline once.
    let deadline = Instant::now() + Duration::from_secs(20);
    while s
        .app()
        .db
        .watched_digest(&format!("{up_addr}/base/python:3.11"))
        .unwrap()
        .flatten()
        .is_none()
    {
        assert!(Instant::now() < deadline, "upstream digest never recorded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        s.runs("app").await.len(),
        1,
        "an unchanged upstream image runs nothing"
    );
    push_image(&http, &up_url, "base/python", "3.11", b"two").await;
    let runs = wait_runs(&s, "app", 2).await;
    assert!(
        runs[0]["cause"]
            .as_str()
            .unwrap()
            .contains("changed digest"),
        "{runs:?}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(s.runs("app").await.len(), 2);
    // The upstream saw HEAD requests for the manifest, never a GET.
    let metrics = http
        .get(format!("{up_url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let manifest_lines: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("drydock_registry_http_requests_total") && l.contains("manifest"))
        .collect();
    assert!(
        manifest_lines.iter().any(|l| l.contains("method=\"HEAD\"")),
        "{manifest_lines:?}"
    );
    assert!(
        !manifest_lines.iter().any(|l| l.contains("method=\"GET\"")),
        "{manifest_lines:?}"
    );
    s.stop().await;
}
