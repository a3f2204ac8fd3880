//! Endpoint rules (mirrors, insecure TLS), rate limits, chunk sizes, cancellation, and the
//! Docker engine as a peer.
#![allow(clippy::cloned_ref_to_slice_refs)]

mod common;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use drydock_oci::{Digest, Platform, Reference};
use drydock_registry_client::{
    Cancel, Client, ClientOptions, Event, Progress, PushOptions, RegistriesConfig, RegistryError,
    RetryPolicy,
};

fn r(s: &str) -> Reference {
    Reference::parse(s).unwrap()
}

fn opts() -> (ClientOptions, Arc<Mutex<Vec<Event>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let e2 = events.clone();
    let o = ClientOptions {
        retry: RetryPolicy {
            attempts: 3,
            base: Duration::from_millis(20),
            max: Duration::from_millis(100),
            ..Default::default()
        },
        progress: Progress::new(move |e| e2.lock().unwrap().push(e.clone())),
        ..Default::default()
    };
    (o, events)
}

fn digest_of(d: &drydock_oci::spec::Descriptor) -> Digest {
    Digest::try_from(d.digest()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_try_mirrors_first_and_fall_back_to_the_origin() {
    let Some(mirror) = Registry::start(Auth::Anonymous) else {
        return;
    };
    let Some(origin) = Registry::start(Auth::Anonymous) else {
        return;
    };
    let (_d, store) = store();
    let top = small_image(&store, "m:1", 10_000, 20);
    let client = Client::new(opts().0).unwrap();
    // Only the mirror has the image.
    client
        .push(
            &store,
            &top,
            &[r(&format!("{}/lib/app:1", mirror.host()))],
            &PushOptions::default(),
        )
        .await
        .unwrap();
    let cfg = format!(
        "[[registry]]\nprefix = \"{}\"\nmirrors = [\"{}/lib\"]\n",
        origin.host(),
        mirror.host()
    );
    let registries = RegistriesConfig::parse(&cfg, "registries.toml").unwrap();
    let (mut o, events) = opts();
    o.registries = registries;
    let client = Client::new(o).unwrap();
    let (_d2, fresh) = common::store();
    let wanted = r(&format!("{}/app:1", origin.host()));
    let pulled = client
        .pull(&fresh, &wanted, &Platform::host())
        .await
        .unwrap();
    assert_eq!(digest_of(&pulled.top), digest_of(&top));
    // Pushes never go to mirrors.
    client
        .push(&store, &top, &[wanted.clone()], &PushOptions::default())
        .await
        .unwrap();
    assert!(
        Client::new(opts().0)
            .unwrap()
            .resolve(&wanted, &Platform::host())
            .await
            .is_ok()
    );

    // A dead mirror: noted, then the origin serves.
    let dead = free_port();
    let cfg = format!(
        "[[registry]]\nprefix = \"{}\"\nmirrors = [\"127.0.0.1:{dead}\"]\n",
        origin.host()
    );
    let (mut o, events2) = opts();
    o.registries = RegistriesConfig::parse(&cfg, "registries.toml").unwrap();
    let client = Client::new(o).unwrap();
    let (_d3, fresh) = common::store();
    client
        .pull(&fresh, &wanted, &Platform::host())
        .await
        .unwrap();
    let noted = events2
        .lock()
        .unwrap()
        .iter()
        .any(|e| matches!(e, Event::Note(n) if n.contains("mirror")));
    assert!(noted);
    let retried = events2
        .lock()
        .unwrap()
        .iter()
        .any(|e| matches!(e, Event::Retry { .. }));
    assert!(!retried, "a dead mirror gets one try, then the origin");
    drop(events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_registries_accept_self_signed_tls_and_others_refuse_it() {
    let dir = tempfile::tempdir().unwrap();
    let Some(key) = signing_key(dir.path()) else {
        return;
    };
    let key_pem = dir.path().join("key.pem");
    let tls = format!(
        "  tls:\n    certificate: {}\n    key: {}\n",
        key.cert_pem.display(),
        key_pem.display()
    );
    let Some(reg) = Registry::start_with(Auth::Anonymous, &tls) else {
        return;
    };
    let (_d, store) = store();
    let top = small_image(&store, "tls:1", 10_000, 21);
    // A name that is not loopback, resolved to the registry: HTTPS with verification.
    let host = format!("registry.test:{}", reg.port);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", reg.port).parse().unwrap();
    let target = r(&format!("{host}/secure/app:1"));
    let (mut o, events) = opts();
    o.resolve = vec![("registry.test".into(), addr)];
    let strict = Client::new(o.clone()).unwrap();
    let err = strict
        .push(&store, &top, &[target.clone()], &PushOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Connect { .. }), "{err}");
    let retried = events
        .lock()
        .unwrap()
        .iter()
        .any(|e| matches!(e, Event::Retry { .. }));
    assert!(!retried, "a rejected certificate is not retried");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );

    o.registries = RegistriesConfig::parse(
        &format!("[[registry]]\nprefix = \"{host}\"\ninsecure = true\n"),
        "r",
    )
    .unwrap();
    let lax = Client::new(o).unwrap();
    lax.push(&store, &top, &[target.clone()], &PushOptions::default())
        .await
        .unwrap();
    let (_d2, fresh) = common::store();
    lax.pull(&fresh, &target, &Platform::host()).await.unwrap();

    // Insecure loopback: HTTPS first (here it answers), HTTP only as the fallback.
    let (mut o, _) = opts();
    o.registries = RegistriesConfig::parse(
        &format!(
            "[[registry]]\nprefix = \"{}\"\ninsecure = true\n",
            reg.host()
        ),
        "r",
    )
    .unwrap();
    let client = Client::new(o).unwrap();
    assert!(
        client
            .resolve(
                &r(&format!("{}/secure/app:1", reg.host())),
                &Platform::host()
            )
            .await
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn low_rate_limits_are_reported_and_chunk_min_length_is_honoured() {
    let Some(reg) = Registry::start(Auth::Anonymous) else {
        return;
    };
    let proxy = Proxy::start(
        reg.port,
        Faults {
            low_rate_limit: true,
            chunk_min_length: Some(2 << 20),
            ..Default::default()
        },
    )
    .await;
    let (_d, store) = store();
    let top = small_image(&store, "rl:1", 5 << 20, 22);
    let (mut o, events) = opts();
    o.chunk_size = 1 << 20;
    let client = Client::new(o).unwrap();
    client
        .push(
            &store,
            &top,
            &[r(&format!("{}/rl/app:1", proxy.host()))],
            &PushOptions::default(),
        )
        .await
        .unwrap();
    let low = events.lock().unwrap().iter().any(|e| {
        matches!(
            e,
            Event::RateLimit {
                remaining: 3,
                limit: 100,
                ..
            }
        )
    });
    assert!(low, "rate limit not reported");
    let patches = proxy
        .hits()
        .iter()
        .filter(|h| h.starts_with("PATCH"))
        .count();
    // 5 MiB of data in chunks of at least 2 MiB: 3 PATCHes, plus one for the ~2 MiB busybox
    // layer when the host has it (1 MiB chunks would need 6 and 2).
    assert!(
        (3..=4).contains(&patches),
        "{patches} PATCHes: {:?}",
        proxy.hits()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_stops_an_operation() {
    let Some(reg) = Registry::start(Auth::Anonymous) else {
        return;
    };
    let (_d, store) = store();
    let top = small_image(&store, "cx:1", 10_000, 23);
    let (mut o, _) = opts();
    let cancel = Cancel::new();
    o.cancel = cancel.clone();
    let client = Client::new(o).unwrap();
    cancel.cancel();
    let err = client
        .push(
            &store,
            &top,
            &[r(&format!("{}/cx/app:1", reg.host()))],
            &PushOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Cancelled), "{err}");
}

/// Debian's Docker engine pulls and runs what drydock pushes; drydock pulls what it pushes.
#[test]
fn docker_pulls_and_runs_what_drydock_pushes_and_the_reverse() {
    let Some(docker) = drydock_testkit::Docker::ensure() else {
        return;
    };
    let Some(reg) = Registry::start(Auth::Anonymous) else {
        return;
    };
    let (_d, store) = store();
    let top = small_image(&store, "dk:1", 100_000, 24);
    let client = drydock_registry_client::BlockingClient::new(opts().0).unwrap();
    let target = r(&format!("{}/docker/app:1", reg.host()));
    client
        .push(&store, &top, &[target.clone()], &PushOptions::default())
        .unwrap();
    let name = format!("{}/docker/app:1", reg.host());
    run(docker.cmd().args(["pull", "-q", &name]));
    let repo_digest =
        run(docker
            .cmd()
            .args(["inspect", "--format", "{{index .RepoDigests 0}}", &name]));
    assert!(
        repo_digest.trim().ends_with(&digest_of(&top).to_string()),
        "{repo_digest}"
    );
    if std::path::Path::new("/bin/busybox").exists() {
        let out = run(docker.cmd().args([
            "run",
            "--rm",
            "--network=none",
            &name,
            "/bin/busybox",
            "echo",
            "ran",
        ]));
        assert_eq!(out.trim(), "ran");
    }
    // docker pushes (Docker schema2, compressed layers); drydock pulls the same digest.
    let other = format!("{}/docker/pushed:2", reg.host());
    run(docker.cmd().args(["tag", &name, &other]));
    let push_out = run(docker.cmd().args(["push", &other]));
    let pushed_digest = push_out
        .split_whitespace()
        .find(|w| w.starts_with("sha256:"))
        .map(str::to_string)
        .expect("docker push prints the digest");
    let (_d2, fresh) = common::store();
    let pulled = client.pull(&fresh, &r(&other), &Platform::host()).unwrap();
    assert_eq!(digest_of(&pulled.top).to_string(), pushed_digest);
    let _ = docker.cmd().args(["rmi", "-f", &name, &other]).output();
    let _ = Command::new("true").status();
}
