//! `drydock serve` over HTTPS (rustls with ring), with a certificate made by openssl.

mod common;

use std::process::Command;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_server_speaks_https_with_the_given_certificate() {
    let Some(openssl) = drydock_testkit::require_tool("openssl", "openssl") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key) = (tmp.path().join("cert.pem"), tmp.path().join("key.pem"));
    let out = Command::new(openssl)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut cfg = config(&tmp.path().join("data"));
    cfg.tls = Some(drydock_registry_server::TlsFiles {
        cert: cert.clone(),
        key,
    });
    let s = TestServer::start_with(cfg).await;
    assert!(s.url.starts_with("https://127.0.0.1:"), "{}", s.url);
    let client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(&cert).unwrap()).unwrap(),
        )
        .build()
        .unwrap();
    let r = client
        .get(format!("{}/healthz", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = client
        .get(format!("{}/api/whoami", s.url))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.text().await.unwrap().contains("\"admin\""));
    // The registry answers at /v2/ on the same port.
    let r = client.get(format!("{}/v2/", s.url)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    s.stop().await;
}
