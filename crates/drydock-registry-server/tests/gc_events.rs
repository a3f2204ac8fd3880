//! Online garbage collection, the event bus and webhooks.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use drydock_oci::Digest;
use drydock_registry_server::{EventAction, EventTarget, GcOptions, WebhookConfig};

/// Deliveries a webhook receiver saw: signature header and body.
type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

fn gc_now(dry_run: bool) -> GcOptions {
    GcOptions {
        dry_run,
        grace: Duration::ZERO,
        upload_expiry: Duration::ZERO,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_removes_untagged_and_unreferenced_keeps_index_children_and_referrers() {
    let s = start(|_| {}).await;
    let c = client();
    let shared = bytes(1, 5000);
    let kept = image(1, vec![shared.clone(), bytes(2, 100)]);
    let dropped = image(2, vec![shared.clone(), bytes(3, 100)]);
    let child = image(3, vec![bytes(4, 100)]);
    push_image(&c, &s.url, "g/app", "keep", &kept).await;
    push_image(&c, &s.url, "g/app", "drop", &dropped).await;
    push_image(&c, &s.url, "g/app", "child", &child).await;
    // an index (tagged) whose child loses its own tag
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{ "mediaType": OCI_MANIFEST, "digest": child.digest.to_string(), "size": child.manifest.len() }],
    }))
    .unwrap();
    assert_eq!(
        push_manifest(&c, &s.url, "g/app", "multi", OCI_INDEX, &index)
            .await
            .status(),
        201
    );
    assert_eq!(
        c.delete(format!("{}/v2/g/app/manifests/child", s.url))
            .send()
            .await
            .unwrap()
            .status(),
        202
    );
    // a referrer of the kept image (untagged, kept because its subject is)
    let empty = b"{}".to_vec();
    push_blob(&c, &s.url, "g/app", &empty).await;
    let referrer = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/x-sbom",
        "config": { "mediaType": "application/vnd.oci.empty.v1+json", "digest": Digest::sha256(&empty).to_string(), "size": 2 },
        "layers": [],
        "subject": { "mediaType": OCI_MANIFEST, "digest": kept.digest.to_string(), "size": kept.manifest.len() },
    }))
    .unwrap();
    let rd = Digest::sha256(&referrer);
    assert_eq!(
        push_manifest(
            &c,
            &s.url,
            "g/app",
            &rd.to_string(),
            OCI_MANIFEST,
            &referrer
        )
        .await
        .status(),
        201
    );
    // untag "drop"; also an upload left half-way
    assert_eq!(
        c.delete(format!("{}/v2/g/app/manifests/drop", s.url))
            .send()
            .await
            .unwrap()
            .status(),
        202
    );
    let r = c
        .post(format!("{}/v2/g/app/blobs/uploads/", s.url))
        .send()
        .await
        .unwrap();
    let upload = format!("{}{}", s.url, r.headers()["location"].to_str().unwrap());
    c.patch(&upload).body(vec![1u8; 100]).send().await.unwrap();

    // with the default grace period nothing is young enough to go
    let report = s
        .registry
        .collect_garbage(GcOptions {
            dry_run: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        report.manifests_removed.is_empty() && report.blobs_removed.is_empty(),
        "{report:?}"
    );
    assert!(report.links_removed.is_empty());

    // dry run reports, removes nothing
    let report = s.registry.collect_garbage(gc_now(true)).await.unwrap();
    assert_eq!(report.manifests_removed.len(), 1, "{report:?}");
    assert_eq!(
        report.manifests_removed[0].digest,
        dropped.digest.to_string()
    );
    assert_eq!(
        c.get(format!("{}/v2/g/app/manifests/{}", s.url, dropped.digest))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let dropped_layer = Digest::sha256(&dropped.layers[1]);
    assert!(
        report
            .blobs_removed
            .iter()
            .any(|b| b.digest == dropped_layer.to_string())
    );

    let report = s.registry.collect_garbage(gc_now(false)).await.unwrap();
    assert_eq!(report.manifests_removed.len(), 1);
    assert_eq!(report.uploads_expired, 1);
    // gone: the untagged manifest, its own layer and config; the upload
    assert_eq!(
        c.get(format!("{}/v2/g/app/manifests/{}", s.url, dropped.digest))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        c.get(format!("{}/v2/g/app/blobs/{dropped_layer}", s.url))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert!(!s.registry.storage().content().contains(&dropped_layer));
    assert_eq!(c.get(&upload).send().await.unwrap().status(), 404);
    // kept: the tagged image with the shared layer, the index child, the referrer
    for (what, path) in [
        ("kept manifest", "/v2/g/app/manifests/keep".to_string()),
        (
            "shared layer",
            format!("/v2/g/app/blobs/{}", Digest::sha256(&shared)),
        ),
        (
            "index child",
            format!("/v2/g/app/manifests/{}", child.digest),
        ),
        (
            "index child layer",
            format!("/v2/g/app/blobs/{}", Digest::sha256(&child.layers[0])),
        ),
        ("referrer", format!("/v2/g/app/manifests/{rd}")),
    ] {
        assert_eq!(
            c.get(format!("{}{path}", s.url))
                .send()
                .await
                .unwrap()
                .status(),
            200,
            "{what}"
        );
    }
    // once the index goes, its child goes too
    assert_eq!(
        c.delete(format!("{}/v2/g/app/manifests/multi", s.url))
            .send()
            .await
            .unwrap()
            .status(),
        202
    );
    let report = s.registry.collect_garbage(gc_now(false)).await.unwrap();
    assert!(
        report
            .manifests_removed
            .iter()
            .any(|m| m.digest == child.digest.to_string()),
        "{report:?}"
    );
    assert_eq!(
        c.get(format!("{}/v2/g/app/manifests/{}", s.url, child.digest))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_while_pushing_never_breaks_a_push() {
    let s = start(|_| {}).await;
    let c = client();
    let shared = bytes(50, 200_000);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gc = {
        let (reg, stop) = (s.registry.clone(), stop.clone());
        tokio::spawn(async move {
            let mut runs = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // A short grace period: pushes in flight are younger than it.
                reg.collect_garbage(GcOptions {
                    dry_run: false,
                    grace: Duration::from_secs(5),
                    upload_expiry: Duration::from_secs(60),
                })
                .await
                .unwrap();
                runs += 1;
            }
            runs
        })
    };
    for i in 0..20 {
        let img = image(200 + i, vec![shared.clone(), bytes(300 + i, 1000)]);
        push_image(&c, &s.url, "busy/app", &format!("t{i}"), &img).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(gc.await.unwrap() > 0);
    for i in 0..20 {
        let r = c
            .get(format!("{}/v2/busy/app/manifests/t{i}", s.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = c
        .get(format!(
            "{}/v2/busy/app/blobs/{}",
            s.url,
            Digest::sha256(&shared)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().len(), shared.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_for_push_delete_and_mount() {
    let s = start(|_| {}).await;
    let mut rx = s.registry.events().subscribe();
    let c = client();
    s.registry
        .auth()
        .add_user(
            "ev",
            "pw",
            vec![drydock_registry_server::Grant::everything()],
        )
        .unwrap();
    let img = image(7, vec![bytes(7, 100)]);
    let auth = format!(
        "Basic {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "ev:pw")
    );
    for data in [&img.config, &img.layers[0]] {
        let d = Digest::sha256(data);
        let r = c
            .post(format!("{}/v2/e/app/blobs/uploads/?digest={d}", s.url))
            .header("authorization", &auth)
            .body(data.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let r = c
        .put(format!("{}/v2/e/app/manifests/v1", s.url))
        .header("authorization", &auth)
        .header("content-type", OCI_MANIFEST)
        .body(img.manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let layer = Digest::sha256(&img.layers[0]);
    let r = c
        .post(format!(
            "{}/v2/e/other/blobs/uploads/?mount={layer}&from=e/app",
            s.url
        ))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = c
        .delete(format!("{}/v2/e/app/manifests/v1", s.url))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = c
        .delete(format!("{}/v2/e/app/manifests/{}", s.url, img.digest))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let mut events = Vec::new();
    while let Ok(Ok(e)) = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
        events.push(e);
    }
    let manifest_push = events
        .iter()
        .find(|e| e.action == EventAction::Push && e.target == EventTarget::Manifest)
        .unwrap();
    assert_eq!(manifest_push.repository, "e/app");
    assert_eq!(manifest_push.tag.as_deref(), Some("v1"));
    assert_eq!(
        manifest_push.digest.as_deref(),
        Some(img.digest.to_string().as_str())
    );
    assert_eq!(manifest_push.media_type.as_deref(), Some(OCI_MANIFEST));
    assert_eq!(manifest_push.actor.as_deref(), Some("ev"));
    assert_eq!(
        events
            .iter()
            .filter(|e| e.action == EventAction::Push && e.target == EventTarget::Blob)
            .count(),
        2
    );
    let mount = events
        .iter()
        .find(|e| e.action == EventAction::Mount)
        .unwrap();
    assert_eq!(
        (mount.repository.as_str(), mount.from_repository.as_deref()),
        ("e/other", Some("e/app"))
    );
    assert!(events.iter().any(|e| e.action == EventAction::Delete
        && e.target == EventTarget::Tag
        && e.tag.as_deref() == Some("v1")));
    assert!(
        events
            .iter()
            .any(|e| e.action == EventAction::Delete && e.target == EventTarget::Manifest)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_signed_and_retried() {
    // A receiver that fails the first two deliveries.
    let received: Received = Arc::default();
    let attempts = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let app = {
        let (received, attempts) = (received.clone(), attempts.clone());
        axum::Router::new().route(
            "/hook",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let (received, attempts) = (received.clone(), attempts.clone());
                    async move {
                        if attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
                            return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                        }
                        let sig = headers
                            .get("x-drydock-signature-256")
                            .map(|v| v.to_str().unwrap().to_string())
                            .unwrap_or_default();
                        received.lock().unwrap().push((sig, body.to_vec()));
                        axum::http::StatusCode::NO_CONTENT
                    }
                },
            ),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let s = start(|c| {
        let mut h = WebhookConfig::new(hook_url.clone(), Some("s3cret".into()));
        h.initial_backoff = Duration::from_millis(50);
        h.repositories = Some("hooked/**".into());
        c.webhooks = vec![h];
    })
    .await;
    let c = client();
    push_image(&c, &s.url, "unhooked", "v1", &image(8, vec![bytes(8, 10)])).await;
    let img = image(9, vec![bytes(9, 10)]);
    push_image(&c, &s.url, "hooked/app", "v1", &img).await;
    let mut tries = 0;
    loop {
        let got = received.lock().unwrap().clone();
        let manifest = got
            .iter()
            .find(|(_, b)| String::from_utf8_lossy(b).contains("\"target\":\"manifest\""));
        if let Some((sig, body)) = manifest {
            assert_eq!(
                sig,
                &drydock_registry_server::webhooks::signature("s3cret", body)
            );
            let v: serde_json::Value = serde_json::from_slice(body).unwrap();
            assert_eq!(v["repository"], "hooked/app");
            assert_eq!(v["tag"], "v1");
            assert_eq!(v["digest"], img.digest.to_string());
            assert!(
                got.iter()
                    .all(|(_, b)| !String::from_utf8_lossy(b).contains("unhooked"))
            );
            break;
        }
        tries += 1;
        assert!(
            tries < 200,
            "webhook never delivered: {} attempts",
            attempts.load(std::sync::atomic::Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(attempts.load(std::sync::atomic::Ordering::SeqCst) >= 3);
}
