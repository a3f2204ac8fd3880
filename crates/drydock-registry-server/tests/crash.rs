//! Crash safety: 50 concurrent pushes of images sharing layers, the registry killed with SIGKILL
//! half-way and restarted on the same storage. Every push that completed is intact, no blob is
//! ever served with wrong bytes, interrupted uploads resume from the offset the registry reports,
//! and the rest expire cleanly.
//!
//! The registry runs in a child process: this test binary re-executed with
//! `DRYDOCK_REGISTRY_CRASH_CHILD` set, running only `crash_child_server`.

#![allow(clippy::print_stdout)]

mod common;

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use drydock_oci::Digest;
use drydock_registry_server::{GcOptions, Registry, RegistryConfig, ServeOptions};

const CHILD_ENV: &str = "DRYDOCK_REGISTRY_CRASH_CHILD";

/// Not a test on its own: the server process of `sigkill_mid_push`.
#[test]
fn crash_child_server() {
    let Some(storage) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut cfg = RegistryConfig::new(storage);
        cfg.gc_interval = None;
        let registry = Registry::open(cfg).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("LISTENING {}", listener.local_addr().unwrap());
        drydock_registry_server::serve(
            registry,
            listener,
            ServeOptions { tls: None },
            std::future::pending(),
        )
        .await
        .unwrap();
    });
}

fn spawn_child(storage: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child_server",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_ENV, storage)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("child exited before listening")
            .unwrap();
        // libtest may print "test crash_child_server ... " on the same line first
        if let Some(i) = line.find("LISTENING ") {
            break line[i + "LISTENING ".len()..].trim().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, format!("http://{addr}"))
}

/// Pushes one image with chunked uploads (so the kill lands mid-upload); records sessions.
async fn push_chunked(
    c: &reqwest::Client,
    url: &str,
    repo: &str,
    tag: &str,
    img: &Image,
    sessions: &tokio::sync::Mutex<Vec<(String, Vec<u8>)>>,
) -> Result<(), String> {
    let mut blobs = vec![img.config.clone()];
    blobs.extend(img.layers.iter().cloned());
    for data in &blobs {
        let d = Digest::sha256(data);
        let r = c
            .post(format!("{url}/v2/{repo}/blobs/uploads/"))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if r.status() != 202 {
            return Err(format!("start: {}", r.status()));
        }
        let path = r.headers()["location"].to_str().unwrap().to_string();
        sessions.lock().await.push((path.clone(), data.clone()));
        let loc = format!("{url}{path}");
        let mut off = 0;
        for chunk in data.chunks(64 << 10) {
            let r = c
                .patch(&loc)
                .header(
                    "content-range",
                    format!("{}-{}", off, off + chunk.len() - 1),
                )
                .body(chunk.to_vec())
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if r.status() != 202 {
                return Err(format!("patch: {}", r.status()));
            }
            off += chunk.len();
        }
        let r = c
            .put(format!("{loc}?digest={d}"))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if r.status() != 201 {
            return Err(format!("put: {}", r.status()));
        }
    }
    let r = c
        .put(format!("{url}/v2/{repo}/manifests/{tag}"))
        .header("content-type", OCI_MANIFEST)
        .body(img.manifest.clone())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if r.status() != 201 {
        return Err(format!("manifest: {}", r.status()));
    }
    Ok(())
}

#[test]
fn sigkill_mid_push() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("storage");
    let (mut child, url) = spawn_child(&storage);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let shared = [bytes(1, 1_500_000), bytes(2, 700_000)];
    let images: Vec<Image> = (0..50u64)
        .map(|i| {
            image(
                i,
                vec![
                    shared[0].clone(),
                    shared[(i % 2) as usize].clone(),
                    bytes(1000 + i, 300_000),
                ],
            )
        })
        .collect();
    let sessions = Arc::new(tokio::sync::Mutex::new(Vec::new()));
    let done = Arc::new(AtomicUsize::new(0));
    let results: Vec<Result<(), String>> = rt.block_on(async {
        let c = client();
        let mut tasks = Vec::new();
        for (i, img) in images.iter().enumerate() {
            let (c, url, sessions, done) = (c.clone(), url.clone(), sessions.clone(), done.clone());
            let img = Image {
                config: img.config.clone(),
                layers: img.layers.clone(),
                manifest: img.manifest.clone(),
                digest: img.digest.clone(),
            };
            tasks.push(tokio::spawn(async move {
                // Staggered starts: when the kill lands, some pushes are done, some half-way,
                // some not started, however fast the machine is.
                tokio::time::sleep(Duration::from_millis(20 * i as u64)).await;
                let r = push_chunked(
                    &c,
                    &url,
                    &format!("crash/r{}", i % 5),
                    &format!("t{i}"),
                    &img,
                    &sessions,
                )
                .await;
                if r.is_ok() {
                    done.fetch_add(1, Ordering::SeqCst);
                }
                r
            }));
        }
        // Kill once some pushes completed (others are in flight, some half-way). Two uploads
        // are left half-way on purpose first, so whatever the timing there is one to resume
        // and one to expire (racing the in-flight ones alone, a kill could land between
        // uploads under load and leave nothing half-way).
        while done.load(Ordering::SeqCst) < 10 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for seed in [7001u64, 7002] {
            let data = bytes(seed, 200_000);
            let r = c
                .post(format!("{url}/v2/crash/half/blobs/uploads/"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
            let path = r.headers()["location"].to_str().unwrap().to_string();
            let r = c
                .patch(format!("{url}{path}"))
                .header("content-range", format!("0-{}", 100_000 - 1))
                .body(data[..100_000].to_vec())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
            sessions.lock().await.push((path, data));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    let completed: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_ok())
        .map(|(i, _)| i)
        .collect();
    assert!(
        completed.len() >= 10 && completed.len() < 50,
        "kill did not land mid-way: {} completed",
        completed.len()
    );

    let (mut child, url) = spawn_child(&storage);
    rt.block_on(async {
        let c = client();
        // every completed push is intact
        for &i in &completed {
            let repo = format!("crash/r{}", i % 5);
            let r = c
                .get(format!("{url}/v2/{repo}/manifests/t{i}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "completed push {i} lost");
            assert_eq!(
                r.bytes().await.unwrap().as_ref(),
                images[i].manifest.as_slice()
            );
            for data in images[i].layers.iter().chain([&images[i].config]) {
                let d = Digest::sha256(data);
                let got = c
                    .get(format!("{url}/v2/{repo}/blobs/{d}"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(got.status(), 200);
                assert_eq!(
                    got.bytes().await.unwrap().as_ref(),
                    data.as_slice(),
                    "blob {d} of push {i}"
                );
            }
        }
        // no partial blob is ever served: whatever is served for any push hashes right
        for (i, img) in images.iter().enumerate() {
            let repo = format!("crash/r{}", i % 5);
            for data in img.layers.iter().chain([&img.config]) {
                let d = Digest::sha256(data);
                let got = c
                    .get(format!("{url}/v2/{repo}/blobs/{d}"))
                    .send()
                    .await
                    .unwrap();
                if got.status() == 200 {
                    assert_eq!(Digest::sha256(&got.bytes().await.unwrap()), d);
                } else {
                    assert_eq!(got.status(), 404);
                }
            }
        }
        // interrupted uploads resume from the offset the registry reports
        let sessions = sessions.lock().await.clone();
        let mut resumed = 0;
        let mut left = 0;
        for (path, data) in &sessions {
            let loc = format!("{url}{path}");
            let r = c.get(&loc).send().await.unwrap();
            if r.status() == 404 {
                // Gone: finished before the kill (the blob is in the repository), or killed
                // inside the finishing PUT after its bytes were moved into the store (the
                // client never got its 201 and starts again; the bytes are there). Never
                // lost with its bytes.
                let repo = path
                    .split("/blobs/")
                    .next()
                    .unwrap()
                    .trim_start_matches("/v2/");
                let d = Digest::sha256(data);
                let head = c
                    .head(format!("{url}/v2/{repo}/blobs/{d}"))
                    .send()
                    .await
                    .unwrap();
                let stored = storage
                    .join("content/blobs/sha256")
                    .join(d.to_string().trim_start_matches("sha256:"));
                assert!(
                    head.status() == 200 || stored.is_file(),
                    "upload session {path} gone and its blob {d} is nowhere"
                );
                continue;
            }
            assert_eq!(r.status(), 204);
            let range = r.headers()["range"].to_str().unwrap().to_string();
            let end: usize = range.split('-').nth(1).unwrap().parse().unwrap();
            let offset = if end == 0 { 0 } else { end + 1 };
            assert!(offset <= data.len());
            if left % 2 == 0 {
                // resume half of them
                let r = c
                    .put(format!("{loc}?digest={}", Digest::sha256(data)))
                    .body(data[offset..].to_vec())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201, "resume at {offset} of {}", data.len());
                resumed += 1;
            }
            left += 1;
        }
        assert!(left > 0, "no upload was interrupted");
        assert!(resumed > 0);
    });
    child.kill().unwrap();
    child.wait().unwrap();
    // the rest expire cleanly
    rt.block_on(async {
        let mut cfg = RegistryConfig::new(&storage);
        cfg.gc_interval = None;
        let reg = Registry::open(cfg).unwrap();
        let report = reg
            .collect_garbage(GcOptions {
                dry_run: false,
                grace: Duration::from_secs(3600),
                upload_expiry: Duration::ZERO,
            })
            .await
            .unwrap();
        assert!(report.uploads_expired > 0);
        assert_eq!(
            std::fs::read_dir(storage.join("uploads")).unwrap().count(),
            0
        );
        // and every blob in the store holds exactly the bytes its name promises
        let content = reg.storage().content();
        for b in content.list_blobs().unwrap() {
            let data = std::fs::read(content.blob_path(&b.digest)).unwrap();
            assert_eq!(Digest::compute(b.digest.algorithm(), &data), b.digest);
        }
    });
}
