//! Against the real reference registry (Debian's `docker-registry`), skopeo, and faults.
#![allow(clippy::cloned_ref_to_slice_refs)]

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use drydock_content::{Store, names};
use drydock_oci::{Digest, Platform, Reference};
use drydock_registry_client::{
    BlobOutcome, Client, ClientOptions, Credential, Credentials, Event, Progress, PushOptions,
    RegistryError, RetryPolicy,
};

fn r(s: &str) -> Reference {
    Reference::parse(s).unwrap()
}

/// Options with fast retries and a recorder of every event.
fn opts() -> (ClientOptions, Arc<Mutex<Vec<Event>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let e2 = events.clone();
    let o = ClientOptions {
        retry: RetryPolicy {
            attempts: 4,
            base: Duration::from_millis(20),
            max: Duration::from_millis(200),
            ..Default::default()
        },
        progress: Progress::new(move |e| e2.lock().unwrap().push(e.clone())),
        ..Default::default()
    };
    (o, events)
}

fn outcomes(events: &Mutex<Vec<Event>>) -> Vec<BlobOutcome> {
    events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::BlobDone { outcome, .. } => Some(*outcome),
            _ => None,
        })
        .collect()
}

fn top_of(store: &Store, name: &str) -> drydock_oci::spec::Descriptor {
    names::get(store, &r(name)).unwrap().unwrap()
}

fn digest_of(d: &drydock_oci::spec::Descriptor) -> Digest {
    Digest::try_from(d.digest()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_then_pull_round_trips_and_second_push_only_heads() {
    let Some(reg) = Registry::start(Auth::Anonymous) else {
        return;
    };
    let (_d, store) = store();
    let top = small_image(&store, "app:1", 3 << 20, 1);
    let (o, events) = opts();
    let client = Client::new(o).unwrap();
    let target = r(&format!("{}/acme/app:v1", reg.host()));
    let pushed = client
        .push(
            &store,
            &top,
            &[target.clone(), target.with_tag("v2").unwrap()],
            &PushOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(pushed.digest, digest_of(&top));
    assert_eq!(pushed.references.len(), 2);
    assert!(
        outcomes(&events)
            .iter()
            .all(|o| *o == BlobOutcome::Uploaded),
        "{:?}",
        outcomes(&events)
    );

    events.lock().unwrap().clear();
    client
        .push(&store, &top, &[target.clone()], &PushOptions::default())
        .await
        .unwrap();
    let o = outcomes(&events);
    assert!(
        !o.is_empty() && o.iter().all(|o| *o == BlobOutcome::Exists),
        "{o:?}"
    );

    let (_d2, fresh) = common::store();
    let pulled = client
        .pull(&fresh, &target, &Platform::host())
        .await
        .unwrap();
    assert_eq!(digest_of(&pulled.top), digest_of(&top));
    let original = drydock_content::image::resolve(&store, &top, &Platform::host(), "x").unwrap();
    assert_eq!(pulled.image.config_digest, original.config_digest);
    for l in original.manifest.layers() {
        assert!(fresh.contains(&digest_of(l)));
    }
    assert_eq!(
        digest_of(&top_of(&fresh, &target.to_string())),
        digest_of(&top)
    );

    let mut tags = client.tags(&target.repository_ref()).await.unwrap();
    tags.sort();
    assert_eq!(tags, ["v1", "v2"]);
    let resolved = client.resolve(&target, &Platform::host()).await.unwrap();
    assert_eq!(resolved.top_digest, digest_of(&top));

    // A pinned reference is verified against its digest and stored without a name.
    let (_d3, pinned_store) = common::store();
    let pinned = target.repository_ref().with_digest(digest_of(&top));
    let pulled = client
        .pull(&pinned_store, &pinned, &Platform::host())
        .await
        .unwrap();
    assert_eq!(digest_of(&pulled.top), digest_of(&top));
    assert!(names::list(&pinned_store).unwrap().is_empty());
    let wrong = target
        .repository_ref()
        .with_digest(Digest::sha256(b"not this image"));
    let err = client
        .pull(&pinned_store, &wrong, &Platform::host())
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_uploads_use_patch_with_content_range() {
    let Some(reg) = Registry::start(Auth::Anonymous) else {
        return;
    };
    let proxy = Proxy::start(reg.port, Faults::default()).await;
    let (_d, store) = store();
    let top = small_image(&store, "big:1", 5 << 20, 2);
    let (mut o, _) = opts();
    o.chunk_size = 1 << 20;
    let client = Client::new(o).unwrap();
    let target = r(&format!("{}/acme/big:1", proxy.host()));
    client
        .push(&store, &top, &[target.clone()], &PushOptions::default())
        .await
        .unwrap();
    let patches = proxy
        .hits()
        .iter()
        .filter(|h| h.starts_with("PATCH"))
        .count();
    assert!(
        patches >= 5,
        "expected chunked PATCHes, saw {:?}",
        proxy.hits()
    );
    let (_d2, fresh) = common::store();
    client
        .pull(&fresh, &target, &Platform::host())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_pulls_what_drydock_pushes_and_drydock_pulls_what_skopeo_pushes() {
    if !have("skopeo") {
        return;
    }
    let Some(reg) = Registry::start(Auth::Anonymous) else {
        return;
    };
    let (d, store) = store();
    let top = small_image(&store, "interop:1", 1 << 20, 3);
    let client = Client::new(opts().0).unwrap();
    let target = r(&format!("{}/interop/a:1", reg.host()));
    client
        .push(&store, &top, &[target.clone()], &PushOptions::default())
        .await
        .unwrap();

    // skopeo reads it back: same manifest digest.
    let raw = run(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{target}"),
    ]));
    assert_eq!(Digest::sha256(raw.as_bytes()), digest_of(&top));
    let oci = d.path().join("skopeo-oci");
    run(Command::new("skopeo").args([
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{target}"),
        &format!("oci:{}:x", oci.display()),
    ]));

    // skopeo pushes (from that layout, as Docker schema2), drydock pulls: digests agree.
    let other = r(&format!("{}/interop/b:2", reg.host()));
    run(Command::new("skopeo").args([
        "copy",
        "--dest-tls-verify=false",
        "--format=v2s2",
        &format!("oci:{}:x", oci.display()),
        &format!("docker://{other}"),
    ]));
    let digest = run(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        "--format",
        "{{.Digest}}",
        &format!("docker://{other}"),
    ]));
    let (_d2, fresh) = common::store();
    let pulled = client
        .pull(&fresh, &other, &Platform::host())
        .await
        .unwrap();
    assert_eq!(digest_of(&pulled.top).to_string(), digest.trim());
    assert_eq!(
        pulled.top.media_type().to_string(),
        drydock_oci::media_type::DOCKER_MANIFEST
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_with_docker_config_and_login_check() {
    let Some(reg) = Registry::start(Auth::Htpasswd {
        user: "alice".into(),
        password: "s3cret".into(),
    }) else {
        return;
    };
    let (d, store) = store();
    let top = small_image(&store, "auth:1", 100_000, 4);
    let target = r(&format!("{}/team/auth:1", reg.host()));

    let anonymous = Client::new(opts().0).unwrap();
    let err = anonymous
        .push(&store, &top, &[target.clone()], &PushOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RegistryError::Unauthorized {
                had_credentials: false,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("drydock login"), "{err}");

    let bad = Credential::Basic {
        username: "alice".into(),
        password: "wrong".into(),
    };
    let err = anonymous.check_login(&reg.host(), &bad).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
    assert!(!err.to_string().contains("wrong"));
    let good = Credential::Basic {
        username: "alice".into(),
        password: "s3cret".into(),
    };
    anonymous.check_login(&reg.host(), &good).await.unwrap();

    let config = d.path().join("docker/config.json");
    drydock_registry_client::credentials::save_login(&config, &reg.host(), &good).unwrap();
    let (mut o, _) = opts();
    o.credentials = Credentials::with_docker_config(&config);
    let client = Client::new(o).unwrap();
    client
        .push(&store, &top, &[target.clone()], &PushOptions::default())
        .await
        .unwrap();
    let (_d2, fresh) = common::store();
    client
        .pull(&fresh, &target, &Platform::host())
        .await
        .unwrap();
}

struct TokenSetup {
    reg: Registry,
    tokens: TokenServer,
    _dir: tempfile::TempDir,
}

async fn token_registry() -> Option<TokenSetup> {
    let dir = tempfile::tempdir().unwrap();
    let key = signing_key(dir.path())?;
    let users = HashMap::from([("bob".to_string(), "hunter2".to_string())]);
    let refresh = HashMap::from([("refresh-abc".to_string(), "bob".to_string())]);
    let tokens = TokenServer::start(Arc::new(key.key), key.cert_der, users, refresh).await;
    let reg = Registry::start(Auth::Token {
        realm: tokens.realm(),
        cert_pem: key.cert_pem,
    })?;
    Some(TokenSetup {
        reg,
        tokens,
        _dir: dir,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_with_password_refresh_token_anonymous_and_mount() {
    let Some(t) = token_registry().await else {
        return;
    };
    let (_d, store) = store();
    let top = small_image(&store, "tok:1", 200_000, 5);
    let host = t.reg.host();
    let target = r(&format!("{host}/public/app:1"));

    // With a password: GET to the token service with Basic auth.
    let (mut o, _) = opts();
    o.credentials.insert(
        &host,
        Credential::Basic {
            username: "bob".into(),
            password: "hunter2".into(),
        },
    );
    let client = Client::new(o).unwrap();
    client
        .push(&store, &top, &[target.clone()], &PushOptions::default())
        .await
        .unwrap();
    let log = t.tokens.log.lines();
    assert!(log.iter().any(|l| l.starts_with("GET user=bob") && l.contains("repository:public/app:pull,push")), "{log:?}");
    // Tokens are cached per scope set: far fewer token requests than registry requests.
    assert!(log.len() <= 3, "{log:?}");

    // Anonymous: pulls of public/* work with an anonymous token; pushes are refused.
    let anon = Client::new(opts().0).unwrap();
    let (_d2, fresh) = common::store();
    anon.pull(&fresh, &target, &Platform::host()).await.unwrap();
    assert!(
        t.tokens
            .log
            .lines()
            .iter()
            .any(|l| l.starts_with("GET user=-"))
    );
    let err = anon
        .push(
            &store,
            &top,
            &[r(&format!("{host}/public/other:1"))],
            &PushOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");

    // An identity (refresh) token: the OAuth2 POST flow, answered with access_token.
    let (mut o, events) = opts();
    o.credentials.insert(
        &host,
        Credential::IdentityToken {
            username: String::new(),
            token: "refresh-abc".into(),
        },
    );
    let client = Client::new(o).unwrap();
    // Same registry, other repository: blobs are mounted (two scopes in one token).
    let copy = r(&format!("{host}/private/copy:1"));
    client.copy(&target, &copy, None).await.unwrap();
    let log = t.tokens.log.lines();
    assert!(
        log.iter().any(|l| l.starts_with("POST user=bob")
            && l.contains("repository:private/copy:pull,push")
            && l.contains("repository:public/app:pull")),
        "{log:?}"
    );
    let o = outcomes(&events);
    assert!(o.contains(&BlobOutcome::Mounted), "{o:?}");
    assert!(!o.contains(&BlobOutcome::Copied), "{o:?}");
    let resolved = client.resolve(&copy, &Platform::host()).await.unwrap();
    assert_eq!(resolved.top_digest, digest_of(&top));

    // A refresh token the service does not know: a clear error, no secret in it.
    let (mut o, _) = opts();
    o.credentials.insert(
        &host,
        Credential::IdentityToken {
            username: String::new(),
            token: "refresh-wrong".into(),
        },
    );
    let err = Client::new(o)
        .unwrap()
        .resolve(&copy, &Platform::host())
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
    assert!(!err.to_string().contains("refresh-wrong"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insufficient_scope_fetches_a_token_with_the_scopes_asked_for() {
    let Some(t) = token_registry().await else {
        return;
    };
    let (_d, store) = store();
    let top = small_image(&store, "scope:1", 10_000, 12);
    let (mut o, _) = opts();
    o.credentials.insert(
        &t.reg.host(),
        Credential::Basic {
            username: "bob".into(),
            password: "hunter2".into(),
        },
    );
    let client = Client::new(o.clone()).unwrap();
    client
        .push(
            &store,
            &top,
            &[r(&format!("{}/public/scope:1", t.reg.host()))],
            &PushOptions::default(),
        )
        .await
        .unwrap();
    let challenge = format!(
        r#"Bearer realm="{}",service="{TOKEN_SERVICE}",scope="repository:public/scope:pull repository:public/extra:pull",error="insufficient_scope""#,
        t.tokens.realm()
    );
    let proxy = Proxy::start(
        t.reg.port,
        Faults {
            challenge_once: Some(challenge),
            ..Default::default()
        },
    )
    .await;
    o.credentials.insert(
        &proxy.host(),
        Credential::Basic {
            username: "bob".into(),
            password: "hunter2".into(),
        },
    );
    let client = Client::new(o).unwrap();
    let resolved = client
        .resolve(
            &r(&format!("{}/public/scope:1", proxy.host())),
            &Platform::host(),
        )
        .await
        .unwrap();
    assert_eq!(resolved.top_digest, digest_of(&top));
    let log = t.tokens.log.lines();
    assert!(
        log.iter()
            .any(|l| l.contains("repository:public/extra:pull")
                && l.contains("repository:public/scope:pull")),
        "re-authenticated with the union of scopes: {log:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_between_registries_streams_blobs() {
    let Some(a) = Registry::start(Auth::Anonymous) else {
        return;
    };
    let Some(b) = Registry::start(Auth::Anonymous) else {
        return;
    };
    let (_d, store) = store();
    let top = small_image(&store, "cp:1", 2 << 20, 6);
    let (mut o, events) = opts();
    o.chunk_size = 1 << 20;
    let client = Client::new(o).unwrap();
    let src = r(&format!("{}/src/app:1", a.host()));
    let dst = r(&format!("{}/dst/app:1", b.host()));
    client
        .push(&store, &top, &[src.clone()], &PushOptions::default())
        .await
        .unwrap();
    events.lock().unwrap().clear();
    let copied = client.copy(&src, &dst, None).await.unwrap();
    assert_eq!(copied.digest, digest_of(&top));
    let o = outcomes(&events);
    assert!(o.iter().all(|o| *o == BlobOutcome::Copied), "{o:?}");
    assert_eq!(
        client
            .resolve(&dst, &Platform::host())
            .await
            .unwrap()
            .top_digest,
        digest_of(&top)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_survive_dropped_connections_429_and_500() {
    let Some(reg) = Registry::start(Auth::Anonymous) else {
        return;
    };
    let (_d, store) = store();
    let top = small_image(&store, "faulty:1", 4 << 20, 7);
    for (name, faults, chunk) in [
        (
            "drop-chunked",
            Faults {
                drop_upload_after: Some(300_000),
                ..Default::default()
            },
            1 << 20,
        ),
        (
            "drop-monolithic",
            Faults {
                drop_upload_after: Some(300_000),
                ..Default::default()
            },
            64 << 20,
        ),
        (
            "429",
            Faults {
                too_many_requests: true,
                ..Default::default()
            },
            64 << 20,
        ),
        (
            "500",
            Faults {
                server_error: true,
                ..Default::default()
            },
            64 << 20,
        ),
    ] {
        let proxy = Proxy::start(reg.port, faults).await;
        let (mut o, events) = opts();
        o.chunk_size = chunk;
        let client = Client::new(o).unwrap();
        let target = r(&format!("{}/faults/{name}:1", proxy.host()));
        client
            .push(&store, &top, &[target.clone()], &PushOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let retried = events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, Event::Retry { .. }));
        assert!(retried, "{name}: no retry was needed? {:?}", proxy.hits());
        if name == "429" {
            let waits: Vec<Duration> = events
                .lock()
                .unwrap()
                .iter()
                .filter_map(|e| match e {
                    Event::Retry { wait, .. } => Some(*wait),
                    _ => None,
                })
                .collect();
            assert!(
                waits.contains(&Duration::from_secs(1)),
                "Retry-After honoured: {waits:?}"
            );
        }
        // What arrived is intact: pull it back through a clean connection.
        let (_d2, fresh) = common::store();
        let direct = r(&format!("{}/faults/{name}:1", reg.host()));
        let pulled = client
            .pull(&fresh, &direct, &Platform::host())
            .await
            .unwrap();
        assert_eq!(digest_of(&pulled.top), digest_of(&top), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_downloads_are_never_stored_and_interrupted_ones_resume() {
    let Some(reg) = Registry::start(Auth::Anonymous) else {
        return;
    };
    let (_d, store) = store();
    let top = small_image(&store, "c:1", 3 << 20, 8);
    let client = Client::new(opts().0).unwrap();
    let direct = r(&format!("{}/c/app:1", reg.host()));
    client
        .push(&store, &top, &[direct.clone()], &PushOptions::default())
        .await
        .unwrap();
    let image = drydock_content::image::resolve(&store, &top, &Platform::host(), "x").unwrap();

    let proxy = Proxy::start(
        reg.port,
        Faults {
            corrupt_blob_gets: true,
            ..Default::default()
        },
    )
    .await;
    let (_d2, fresh) = common::store();
    let via = r(&format!("{}/c/app:1", proxy.host()));
    let err = client
        .pull(&fresh, &via, &Platform::host())
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains("nothing was stored"), "{err}");
    assert!(!fresh.contains(&image.config_digest));
    for l in image.manifest.layers() {
        assert!(!fresh.contains(&digest_of(l)));
    }
    assert!(
        names::get(&fresh, &via).unwrap().is_none(),
        "no name for a failed pull"
    );

    // Partial downloads left by the failed pull cannot poison the next one.
    client
        .pull(&fresh, &direct, &Platform::host())
        .await
        .unwrap();

    // A download cut short continues with a Range request.
    let (_d3, fresh) = common::store();
    let proxy = Proxy::start(
        reg.port,
        Faults {
            drop_download_after: Some(500_000),
            ..Default::default()
        },
    )
    .await;
    let via = r(&format!("{}/c/app:1", proxy.host()));
    let (mut o, events) = opts();
    o.parallelism = 1;
    let client = Client::new(o).unwrap();
    client.pull(&fresh, &via, &Platform::host()).await.unwrap();
    assert!(
        events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, Event::Retry { .. }))
    );
    let gets = proxy
        .hits()
        .iter()
        .filter(|h| h.starts_with("GET") && h.contains("/blobs/"))
        .count();
    assert!(
        gets > image.manifest.layers().len() + 1,
        "a second GET for the cut blob: {:?}",
        proxy.hits()
    );
    for l in image.manifest.layers() {
        assert!(fresh.contains(&digest_of(l)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_is_not_sent_to_another_host_on_redirect() {
    let Some(reg) = Registry::start(Auth::Htpasswd {
        user: "u".into(),
        password: "p".into(),
    }) else {
        return;
    };
    let (_d, store) = store();
    let top = small_image(&store, "redir:1", 100_000, 9);
    let (mut o, _) = opts();
    o.credentials.insert(
        &reg.host(),
        Credential::Basic {
            username: "u".into(),
            password: "p".into(),
        },
    );
    let client = Client::new(o.clone()).unwrap();
    let direct = r(&format!("{}/r/app:1", reg.host()));
    client
        .push(&store, &top, &[direct], &PushOptions::default())
        .await
        .unwrap();

    let cdn = Cdn::start(store.clone()).await;
    let proxy = Proxy::start(
        reg.port,
        Faults {
            redirect_blobs_to: Some(cdn.port),
            ..Default::default()
        },
    )
    .await;
    o.credentials.insert(
        &proxy.host(),
        Credential::Basic {
            username: "u".into(),
            password: "p".into(),
        },
    );
    let client = Client::new(o).unwrap();
    let (_d2, fresh) = common::store();
    client
        .pull(
            &fresh,
            &r(&format!("{}/r/app:1", proxy.host())),
            &Platform::host(),
        )
        .await
        .unwrap();
    let saw = cdn.saw_authorization.lock().unwrap().clone();
    assert!(!saw.is_empty(), "the CDN served the blobs");
    assert!(
        saw.iter().all(|s| !s),
        "Authorization leaked to the CDN: {saw:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema1_is_refused_clearly() {
    let Some(reg) = Registry::start(Auth::Anonymous) else {
        return;
    };
    let proxy = Proxy::start(
        reg.port,
        Faults {
            schema1_manifests: true,
            ..Default::default()
        },
    )
    .await;
    let client = Client::new(opts().0).unwrap();
    let (_d, store) = store();
    let err = client
        .pull(
            &store,
            &r(&format!("{}/old/app:1", proxy.host())),
            &Platform::host(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Schema1 { .. }), "{err}");
    assert!(err.to_string().contains("schema1"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_paginate_referrers_fall_back_to_tag_schema_and_delete() {
    let Some(reg) = Registry::start(Auth::Anonymous) else {
        return;
    };
    let (_d, store) = store();
    let top = small_image(&store, "t:1", 10_000, 10);
    let (mut o, _) = opts();
    o.tag_page_size = 2;
    let client = Client::new(o).unwrap();
    let base = r(&format!("{}/many/tags:a", reg.host()));
    let targets: Vec<Reference> = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|t| base.with_tag(t).unwrap())
        .collect();
    client
        .push(&store, &top, &targets, &PushOptions::default())
        .await
        .unwrap();
    let mut tags = client.tags(&base.repository_ref()).await.unwrap();
    tags.sort();
    assert_eq!(tags, ["a", "b", "c", "d", "e"]);

    // An artifact referring to the image (a signature, say): 2.8 has no referrers API, so the
    // client maintains the sha256-<hex> tag index.
    let subject = digest_of(&top);
    let empty = store.put_bytes(b"{}").unwrap();
    let payload = store.put_bytes(b"signature").unwrap();
    let artifact = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": drydock_oci::media_type::OCI_MANIFEST,
        "artifactType": "application/vnd.example.signature",
        "config": {"mediaType": drydock_oci::media_type::OCI_EMPTY, "digest": empty.to_string(), "size": 2},
        "layers": [{"mediaType": "application/octet-stream", "digest": payload.to_string(), "size": 9}],
        "subject": {"mediaType": drydock_oci::media_type::OCI_MANIFEST, "digest": subject.to_string(), "size": top.size()},
    });
    let art =
        drydock_content::image::put_json(&store, &artifact, drydock_oci::media_type::OCI_MANIFEST)
            .unwrap();
    let art_ref = base.repository_ref().with_digest(digest_of(&art));
    client
        .push(&store, &art, &[art_ref], &PushOptions::default())
        .await
        .unwrap();
    let refs = client
        .list_referrers(&base.repository_ref().with_digest(subject.clone()), None)
        .await
        .unwrap();
    assert_eq!(refs.len(), 1, "{refs:?}");
    assert_eq!(digest_of(&refs[0]), digest_of(&art));
    assert_eq!(
        refs[0]
            .artifact_type()
            .as_ref()
            .map(|a| a.to_string())
            .as_deref(),
        Some("application/vnd.example.signature")
    );
    let none = client
        .list_referrers(
            &base.repository_ref().with_digest(subject.clone()),
            Some("application/other"),
        )
        .await
        .unwrap();
    assert!(none.is_empty());

    let deleted = client.delete(&base.with_tag("e").unwrap()).await.unwrap();
    assert_eq!(deleted, subject);
    let err = client
        .resolve(&base.with_tag("a").unwrap(), &Platform::host())
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_platform_index_push_and_platform_selection_on_pull() {
    let Some(reg) = Registry::start(Auth::Anonymous) else {
        return;
    };
    let (_d, store) = store();
    let amd = small_image(&store, "mp:amd64", 50_000, 11);
    // A second platform: same layers, another config.
    let arm_layers = [tar_layer(&[("arm.txt", 0o644, b"arm".to_vec())])];
    let stored: Vec<drydock_content::transport::StoredLayer> = arm_layers
        .iter()
        .map(|l| {
            let d = store.put_bytes(l).unwrap();
            drydock_content::transport::StoredLayer {
                descriptor: drydock_oci::spec::Descriptor::new(
                    drydock_oci::spec::MediaType::from(drydock_oci::media_type::OCI_LAYER_TAR),
                    l.len() as u64,
                    drydock_oci::spec::Digest::from(&d),
                ),
                diff_id: d,
            }
        })
        .collect();
    let arm_platform = Platform::parse("linux/arm64").unwrap();
    let arm = drydock_content::image::assemble(
        &store,
        &arm_platform,
        0,
        &stored,
        &["arm".into()],
        serde_json::json!({}),
    )
    .unwrap();
    let desc = |d: &drydock_oci::spec::Descriptor, p: &Platform| {
        let mut v = serde_json::to_value(d).unwrap();
        v["platform"] =
            serde_json::json!({"os": p.os, "architecture": p.architecture, "variant": p.variant});
        if p.variant.is_none() {
            v["platform"].as_object_mut().unwrap().remove("variant");
        }
        v
    };
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": drydock_oci::media_type::OCI_INDEX,
        "manifests": [desc(&amd, &Platform::host()), desc(&arm, &arm_platform)],
    });
    let top = drydock_content::image::put_json(&store, &index, drydock_oci::media_type::OCI_INDEX)
        .unwrap();
    let client = Client::new(opts().0).unwrap();
    let target = r(&format!("{}/multi/app:1", reg.host()));
    let pushed = client
        .push(&store, &top, &[target.clone()], &PushOptions::default())
        .await
        .unwrap();
    assert_eq!(pushed.digest, digest_of(&top));

    let (_d2, fresh) = common::store();
    let pulled = client.pull(&fresh, &target, &arm_platform).await.unwrap();
    assert_eq!(
        digest_of(&pulled.top),
        digest_of(&top),
        "the name points at the index"
    );
    assert_eq!(
        digest_of(&pulled.image.manifest_descriptor),
        digest_of(&arm)
    );
    assert!(
        !fresh.contains(&digest_of(&amd)),
        "other platforms are not downloaded"
    );
    let err = client
        .pull(&fresh, &target, &Platform::parse("linux/s390x").unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::NoMatchingPlatform { .. }),
        "{err}"
    );

    // Pushing the partial index back pushes the platform's manifest alone.
    let again = r(&format!("{}/multi/partial:1", reg.host()));
    let pushed = client
        .push(
            &fresh,
            &pulled.top,
            &[again],
            &PushOptions {
                platform: Some(arm_platform.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(pushed.digest, digest_of(&arm));
}
