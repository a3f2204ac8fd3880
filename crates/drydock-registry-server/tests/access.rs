//! Access control: anonymous read on/off, users, access tokens and their scopes, the token
//! service, revocation.

mod common;

use base64::Engine as _;
use common::*;
use drydock_registry_server::{Action, Grant};

fn basic(user: &str, pw: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
    )
}

async fn token_for(
    c: &reqwest::Client,
    url: &str,
    auth: Option<&str>,
    scopes: &[&str],
) -> (u16, serde_json::Value) {
    let mut q: Vec<(&str, &str)> = vec![("service", "drydock-registry")];
    for s in scopes {
        q.push(("scope", s));
    }
    let qs = serde_urlencoded::to_string(&q).unwrap();
    let mut req = c.get(format!("{url}/v2/token?{qs}"));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let body = r.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_registry_until_an_account_exists_then_anonymous_push_is_refused() {
    let s = start(|_| {}).await;
    let c = client();
    let img = image(1, vec![bytes(1, 100)]);
    push_image(&c, &s.url, "acme/app", "v1", &img).await;
    s.registry
        .auth()
        .add_user("alice", "pw", vec![Grant::everything()])
        .unwrap();
    // anonymous read still works, anonymous push does not
    let r = c
        .get(format!("{}/v2/acme/app/manifests/v1", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .post(format!("{}/v2/acme/app/blobs/uploads/", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let challenge = r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(challenge.starts_with("Bearer realm=\""), "{challenge}");
    assert!(challenge.contains("/v2/token\""), "{challenge}");
    assert!(
        challenge.contains("scope=\"repository:acme/app:pull,push\""),
        "{challenge}"
    );
    assert_eq!(error_code(&r.text().await.unwrap()), "UNAUTHORIZED");
    // /v2/ challenges anonymous clients so that `docker login` finds the token service
    let r = c.get(format!("{}/v2/", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // Basic auth works for the user, not with a wrong password
    let r = c
        .get(format!("{}/v2/", s.url))
        .header("authorization", basic("alice", "pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .get(format!("{}/v2/", s.url))
        .header("authorization", basic("alice", "nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .post(format!("{}/v2/acme/app/blobs/uploads/", s.url))
        .header("authorization", basic("alice", "pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_read_can_be_turned_off() {
    let s = start(|c| c.anonymous_read = false).await;
    let c = client();
    s.registry
        .auth()
        .add_user("alice", "pw", vec![Grant::everything()])
        .unwrap();
    let img = image(2, vec![bytes(2, 100)]);
    let auth = basic("alice", "pw");
    for (d, data) in [(0, &img.config), (1, &img.layers[0])] {
        let _ = d;
        let dg = drydock_oci::Digest::sha256(data);
        let r = c
            .post(format!("{}/v2/x/blobs/uploads/?digest={dg}", s.url))
            .header("authorization", &auth)
            .body(data.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let r = c
        .put(format!("{}/v2/x/manifests/v1", s.url))
        .header("authorization", &auth)
        .header("content-type", OCI_MANIFEST)
        .body(img.manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = c
        .get(format!("{}/v2/x/manifests/v1", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .get(format!("{}/v2/_catalog", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .get(format!("{}/v2/x/manifests/v1", s.url))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // an anonymous session token grants nothing
    let (status, t) = token_for(&c, &s.url, None, &["repository:x:pull"]).await;
    assert_eq!(status, 200);
    let bearer = format!("Bearer {}", t["token"].as_str().unwrap());
    let r = c
        .get(format!("{}/v2/x/manifests/v1", s.url))
        .header("authorization", bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

/// A robot token for acme/app cannot read or write acme/other, used directly, as a Basic
/// password, or through the token service; and it stops working when revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn robot_token_never_acts_outside_its_scope() {
    let s = start(|c| c.anonymous_read = false).await;
    let c = client();
    let auth = s.registry.auth();
    auth.add_user("admin", "pw", vec![Grant::everything()])
        .unwrap();
    let admin = basic("admin", "pw");
    // content in acme/other, pushed by the admin
    let other = image(3, vec![bytes(3, 200)]);
    for data in [&other.config, &other.layers[0]] {
        let d = drydock_oci::Digest::sha256(data);
        let r = c
            .post(format!("{}/v2/acme/other/blobs/uploads/?digest={d}", s.url))
            .header("authorization", &admin)
            .body(data.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let r = c
        .put(format!("{}/v2/acme/other/manifests/v1", s.url))
        .header("authorization", &admin)
        .header("content-type", OCI_MANIFEST)
        .body(other.manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    let (info, secret) = auth
        .create_token(
            "ci",
            vec![Grant {
                repositories: "acme/app".into(),
                actions: vec![Action::Pull, Action::Push],
            }],
            None,
        )
        .unwrap();
    let app = image(4, vec![bytes(4, 300)]);
    let layer_d = drydock_oci::Digest::sha256(&other.layers[0]);
    for creds in [format!("Bearer {secret}"), basic("ci", &secret)] {
        // may push and pull acme/app
        for data in [&app.config, &app.layers[0]] {
            let d = drydock_oci::Digest::sha256(data);
            let r = c
                .post(format!("{}/v2/acme/app/blobs/uploads/?digest={d}", s.url))
                .header("authorization", &creds)
                .body(data.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
        }
        let r = c
            .put(format!("{}/v2/acme/app/manifests/v1", s.url))
            .header("authorization", &creds)
            .header("content-type", OCI_MANIFEST)
            .body(app.manifest.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let r = c
            .get(format!("{}/v2/acme/app/manifests/v1", s.url))
            .header("authorization", &creds)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        // may not delete in acme/app
        let r = c
            .delete(format!("{}/v2/acme/app/manifests/v1", s.url))
            .header("authorization", &creds)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        assert_eq!(error_code(&r.text().await.unwrap()), "DENIED");
        // nothing at all in acme/other
        for (method, path) in [
            ("GET", "/v2/acme/other/manifests/v1".to_string()),
            ("HEAD", "/v2/acme/other/manifests/v1".to_string()),
            ("GET", format!("/v2/acme/other/blobs/{layer_d}")),
            ("GET", "/v2/acme/other/tags/list".to_string()),
            ("POST", "/v2/acme/other/blobs/uploads/".to_string()),
            ("PUT", "/v2/acme/other/manifests/v2".to_string()),
            ("DELETE", "/v2/acme/other/manifests/v1".to_string()),
            ("GET", format!("/v2/acme/other/referrers/{}", other.digest)),
        ] {
            let r = c
                .request(
                    reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                    format!("{}{path}", s.url),
                )
                .header("authorization", &creds)
                .header("content-type", OCI_MANIFEST)
                .body(other.manifest.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 403, "{method} {path} with {creds:.12}");
        }
        // mounting from acme/other into acme/app is not a way around it: falls back to an upload
        let r = c
            .post(format!(
                "{}/v2/acme/app/blobs/uploads/?mount={layer_d}&from=acme/other",
                s.url
            ))
            .header("authorization", &creds)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        // the catalog lists only acme/app
        let v = c
            .get(format!("{}/v2/_catalog", s.url))
            .header("authorization", &creds)
            .send()
            .await
            .unwrap()
            .json_value()
            .await;
        assert_eq!(v["repositories"], serde_json::json!(["acme/app"]));
    }

    // token service: asking for more yields only what the token holds
    let (status, t) = token_for(
        &c,
        &s.url,
        Some(&basic("ci", &secret)),
        &[
            "repository:acme/app:pull,push,delete",
            "repository:acme/other:pull,push",
        ],
    )
    .await;
    assert_eq!(status, 200);
    let session = t["token"].as_str().unwrap().to_string();
    assert!(t["expires_in"].as_u64().unwrap() >= 60);
    let bearer = format!("Bearer {session}");
    let r = c
        .get(format!("{}/v2/acme/app/manifests/v1", s.url))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .get(format!("{}/v2/acme/other/manifests/v1", s.url))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = c
        .delete(format!("{}/v2/acme/app/manifests/v1", s.url))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // a session token scoped to pull only cannot push, even though the account could: 401 so
    // the client fetches a token with the right scope
    let (_, t) = token_for(
        &c,
        &s.url,
        Some(&basic("ci", &secret)),
        &["repository:acme/app:pull"],
    )
    .await;
    let pull_only = format!("Bearer {}", t["token"].as_str().unwrap());
    let r = c
        .post(format!("{}/v2/acme/app/blobs/uploads/", s.url))
        .header("authorization", &pull_only)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("repository:acme/app:pull,push")
    );
    // a tampered session token is refused
    let mut forged = session.clone();
    forged.insert(10, 'x');
    let r = c
        .get(format!("{}/v2/acme/app/manifests/v1", s.url))
        .header("authorization", format!("Bearer {forged}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // bad credentials at the token service
    let (status, _) = token_for(
        &c,
        &s.url,
        Some(&basic("ci", "ddk_nope_nope")),
        &["repository:acme/app:pull"],
    )
    .await;
    assert_eq!(status, 401);

    // revocation takes effect at once, for the token and for sessions obtained with it
    auth.revoke_token(&info.id).unwrap();
    let r = c
        .get(format!("{}/v2/acme/app/manifests/v1", s.url))
        .header("authorization", format!("Bearer {secret}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .get(format!("{}/v2/acme/app/manifests/v1", s.url))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_service_oauth_post_and_expired_tokens() {
    let s = start(|_| {}).await;
    let c = client();
    s.registry
        .auth()
        .add_user(
            "bob",
            "pw",
            vec![Grant {
                repositories: "bob/**".into(),
                actions: vec![Action::Pull, Action::Push],
            }],
        )
        .unwrap();
    let form = serde_urlencoded::to_string([
        ("grant_type", "password"),
        ("username", "bob"),
        ("password", "pw"),
        ("service", "drydock-registry"),
        ("scope", "repository:bob/x:pull,push"),
        ("client_id", "test"),
    ])
    .unwrap();
    let r = c
        .post(format!("{}/v2/token", s.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v = r.json_value().await;
    let bearer = format!("Bearer {}", v["access_token"].as_str().unwrap());
    let r = c
        .post(format!("{}/v2/bob/x/blobs/uploads/", s.url))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = c
        .post(format!("{}/v2/other/blobs/uploads/", s.url))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let bad = serde_urlencoded::to_string([
        ("grant_type", "password"),
        ("username", "bob"),
        ("password", "no"),
    ])
    .unwrap();
    let r = c
        .post(format!("{}/v2/token", s.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(bad)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let (_, expired) = s
        .registry
        .auth()
        .create_token(
            "old",
            vec![Grant::everything()],
            Some(std::time::Duration::ZERO),
        )
        .unwrap();
    let r = c
        .get(format!("{}/v2/", s.url))
        .header("authorization", format!("Bearer {expired}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_per_client() {
    let s = start(|c| {
        c.rate_limit = Some(drydock_registry_server::RateLimit {
            per_second: 0.01,
            burst: 5,
        })
    })
    .await;
    let c = client();
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let r = c.get(format!("{}/v2/", s.url)).send().await.unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            assert!(r.headers().contains_key("retry-after"));
            assert_eq!(error_code(&r.text().await.unwrap()), "TOOMANYREQUESTS");
        }
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        5,
        "{statuses:?}"
    );
    // health checks are not rate limited
    let r = c.get(format!("{}/healthz", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_health() {
    let s = start(|_| {}).await;
    let c = client();
    push_image(&c, &s.url, "m/x", "v1", &image(5, vec![bytes(5, 10)])).await;
    let text = c
        .get(format!("{}/metrics", s.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("drydock_registry_http_requests_total{method=\"PUT\",route=\"manifest\",status=\"201\"} 1"), "{text}");
    assert!(text.contains("drydock_registry_manifests_pushed_total 1"));
    assert!(text.contains("drydock_registry_resident_memory_bytes"));
    assert!(
        text.contains(
            "drydock_registry_http_request_duration_seconds_bucket{route=\"upload_start\""
        )
    );
}
