//! Load generator for `bench/registry-server.sh`, speaking the distribution API to any registry.
//!
//! ```text
//! registry-bench push    URL CLIENTS IMAGE_MB   # each client pushes its own image (streamed PATCH)
//! registry-bench pull    URL CLIENTS IMAGE_MB   # each client pulls the image it pushed
//! registry-bench latency URL CONCURRENCY TOTAL  # manifest HEAD/GET, p50/p99
//! ```
//! Prints one line of JSON per run. Data is generated from a seed, 4 layers per image; pulls
//! check lengths (not digests) so that the client spends its CPU on the network, not hashing.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use drydock_oci::Digest;
use futures_util::StreamExt;

const LAYERS: usize = 4;
const CHUNK: usize = 1 << 20;

fn fill(seed: u64, buf: &mut [u8]) -> u64 {
    let mut x = seed | 1;
    for c in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        c.copy_from_slice(&b[..c.len()]);
    }
    x
}

async fn push_layer(
    c: &reqwest::Client,
    url: &str,
    repo: &str,
    seed: u64,
    size: usize,
) -> (Digest, usize) {
    let r = c
        .post(format!("{url}/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "start upload");
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let loc = if loc.starts_with("http") {
        loc
    } else {
        format!("{url}{loc}")
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let hasher = tokio::task::spawn_blocking(move || {
        let mut h = drydock_oci::Algorithm::Sha256.hasher();
        let mut state = seed;
        let mut left = size;
        while left > 0 {
            let n = left.min(CHUNK);
            let mut buf = vec![0u8; n];
            state = fill(state, &mut buf);
            h.update(&buf);
            if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                break;
            }
            left -= n;
        }
        h.finish()
    });
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|i| (i, rx)) });
    let r = c
        .patch(&loc)
        .header("content-type", "application/octet-stream")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "patch");
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let loc = if loc.starts_with("http") {
        loc
    } else {
        format!("{url}{loc}")
    };
    let d = hasher.await.unwrap();
    let sep = if loc.contains('?') { '&' } else { '?' };
    let r = c.put(format!("{loc}{sep}digest={d}")).send().await.unwrap();
    assert_eq!(r.status(), 201, "finish upload");
    (d, size)
}

async fn push_image(c: &reqwest::Client, url: &str, client: usize, mb: usize) -> u64 {
    let repo = format!("bench/c{client}");
    let per_layer = mb * (1 << 20) / LAYERS;
    let mut layers = Vec::new();
    for l in 0..LAYERS {
        layers.push(push_layer(c, url, &repo, (client * 1000 + l) as u64 + 7, per_layer).await);
    }
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"config":{{"Env":["C={client}"]}}}}"#
    );
    let cd = Digest::sha256(config.as_bytes());
    let r = c
        .post(format!("{url}/v2/{repo}/blobs/uploads/?digest={cd}"))
        .header("content-type", "application/octet-stream")
        .body(config.clone())
        .send()
        .await
        .unwrap();
    assert!(
        r.status() == 201 || r.status() == 202,
        "config upload {}",
        r.status()
    );
    if r.status() == 202 {
        let loc = r.headers()["location"].to_str().unwrap().to_string();
        let loc = if loc.starts_with("http") {
            loc
        } else {
            format!("{url}{loc}")
        };
        let sep = if loc.contains('?') { '&' } else { '?' };
        let r = c
            .put(format!("{loc}{sep}digest={cd}"))
            .body(config.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd.to_string(), "size": config.len() },
        "layers": layers.iter().map(|(d, s)| serde_json::json!({ "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d.to_string(), "size": s })).collect::<Vec<_>>(),
    });
    let r = c
        .put(format!("{url}/v2/{repo}/manifests/latest"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(serde_json::to_vec(&manifest).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "manifest");
    (per_layer * LAYERS) as u64
}

async fn pull_image(c: &reqwest::Client, url: &str, client: usize) -> u64 {
    let repo = format!("bench/c{client}");
    let m: serde_json::Value = serde_json::from_slice(
        &c.get(format!("{url}/v2/{repo}/manifests/latest"))
            .header("accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    let mut total = 0u64;
    for l in m["layers"].as_array().unwrap() {
        let r = c
            .get(format!(
                "{url}/v2/{repo}/blobs/{}",
                l["digest"].as_str().unwrap()
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let mut s = r.bytes_stream();
        let mut n = 0u64;
        while let Some(chunk) = s.next().await {
            n += chunk.unwrap().len() as u64;
        }
        assert_eq!(n, l["size"].as_u64().unwrap());
        total += n;
    }
    total
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("");
    let url = args.get(2).cloned().unwrap_or_default();
    let a: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1);
    let b: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(1024);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let c = reqwest::Client::builder().pool_max_idle_per_host(1024).build().unwrap();
        match mode {
            "push" | "pull" => {
                let start = Instant::now();
                let mut tasks = Vec::new();
                for client in 0..a {
                    let (c, url) = (c.clone(), url.clone());
                    let push = mode == "push";
                    tasks.push(tokio::spawn(async move {
                        if push { push_image(&c, &url, client, b).await } else { pull_image(&c, &url, client).await }
                    }));
                }
                let mut bytes = 0u64;
                for t in tasks {
                    bytes += t.await.unwrap();
                }
                let secs = start.elapsed().as_secs_f64();
                println!(r#"{{"mode":"{mode}","clients":{a},"bytes":{bytes},"seconds":{secs:.3},"mib_per_s":{:.1}}}"#, bytes as f64 / secs / 1048576.0);
            }
            "latency" => {
                // a small image to read
                push_image(&c, &url, 9999, 1).await;
                let per_task = b / a.max(1);
                let start = Instant::now();
                let mut tasks = Vec::new();
                for t in 0..a {
                    let (c, url) = (c.clone(), url.clone());
                    tasks.push(tokio::spawn(async move {
                        let mut lat = Vec::with_capacity(per_task);
                        for i in 0..per_task {
                            let u = format!("{url}/v2/bench/c9999/manifests/latest");
                            let req = if (i + t) % 2 == 0 { c.head(&u) } else { c.get(&u) };
                            let s = Instant::now();
                            let r = req.header("accept", "application/vnd.oci.image.manifest.v1+json").send().await.unwrap();
                            assert_eq!(r.status(), 200);
                            let _ = r.bytes().await.unwrap();
                            lat.push(s.elapsed());
                        }
                        lat
                    }));
                }
                let mut all = Vec::new();
                for t in tasks {
                    all.extend(t.await.unwrap());
                }
                let secs = start.elapsed().as_secs_f64();
                all.sort();
                println!(
                    r#"{{"mode":"latency","concurrency":{a},"requests":{},"rps":{:.0},"p50_ms":{:.3},"p99_ms":{:.3}}}"#,
                    all.len(),
                    all.len() as f64 / secs,
                    percentile(&all, 0.5),
                    percentile(&all, 0.99)
                );
            }
            _ => {
                eprintln!("usage: registry-bench push|pull URL CLIENTS IMAGE_MB | latency URL CONCURRENCY TOTAL");
                std::process::exit(2);
            }
        }
    });
}
