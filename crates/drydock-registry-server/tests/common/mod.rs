//! Shared helpers of the registry's integration tests: an in-process server on loopback, images
//! made from bytes, and system tool checks.
#![allow(dead_code, clippy::print_stderr)]

use std::net::SocketAddr;
use std::path::Path;

use drydock_oci::Digest;
use drydock_registry_server::{Registry, RegistryConfig, ServeOptions};

pub struct Server {
    pub url: String,
    pub addr: SocketAddr,
    pub registry: Registry,
    pub dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Starts a registry on 127.0.0.1 with a fresh storage directory; `tweak` adjusts the config.
pub async fn start(tweak: impl FnOnce(&mut RegistryConfig)) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = RegistryConfig::new(dir.path().join("storage"));
    cfg.gc_interval = None;
    cfg.durable = false;
    tweak(&mut cfg);
    let registry = Registry::open(cfg).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let reg = registry.clone();
    tokio::spawn(async move {
        drydock_registry_server::serve(reg, listener, ServeOptions { tls: None }, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    Server {
        url: format!("http://{addr}"),
        addr,
        registry,
        dir,
        shutdown: Some(tx),
    }
}

pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Deterministic pseudo-random bytes.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// An image made from bytes: a config and layers (which need not be real tars for a
/// registry), with its manifest.
pub struct Image {
    pub config: Vec<u8>,
    pub layers: Vec<Vec<u8>>,
    pub manifest: Vec<u8>,
    pub digest: Digest,
}

pub fn config_json(seed: u64) -> Vec<u8> {
    format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Env":["SEED={seed}"]}},"rootfs":{{"type":"layers","diff_ids":[]}}}}"#
    )
    .into_bytes()
}

pub fn image(seed: u64, layers: Vec<Vec<u8>>) -> Image {
    image_typed(seed, layers, OCI_MANIFEST, OCI_CONFIG, OCI_LAYER)
}

pub fn image_typed(
    seed: u64,
    layers: Vec<Vec<u8>>,
    mt: &str,
    config_mt: &str,
    layer_mt: &str,
) -> Image {
    let config = config_json(seed);
    let desc = |mt: &str, b: &[u8]| serde_json::json!({ "mediaType": mt, "digest": Digest::sha256(b).to_string(), "size": b.len() });
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": mt,
        "config": desc(config_mt, &config),
        "layers": layers.iter().map(|l| desc(layer_mt, l)).collect::<Vec<_>>(),
    });
    let manifest = serde_json::to_vec(&manifest).unwrap();
    Image {
        digest: Digest::sha256(&manifest),
        config,
        layers,
        manifest,
    }
}

/// Pushes a blob monolithically (POST with digest).
pub async fn push_blob(c: &reqwest::Client, url: &str, repo: &str, data: &[u8]) -> Digest {
    let d = Digest::sha256(data);
    let r = c
        .post(format!("{url}/v2/{repo}/blobs/uploads/?digest={d}"))
        .header("content-type", "application/octet-stream")
        .body(data.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        201,
        "push blob {d}: {}",
        r.text().await.unwrap()
    );
    d
}

pub async fn push_manifest(
    c: &reqwest::Client,
    url: &str,
    repo: &str,
    reference: &str,
    mt: &str,
    body: &[u8],
) -> reqwest::Response {
    c.put(format!("{url}/v2/{repo}/manifests/{reference}"))
        .header("content-type", mt)
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
}

pub async fn push_image(c: &reqwest::Client, url: &str, repo: &str, tag: &str, img: &Image) {
    push_blob(c, url, repo, &img.config).await;
    for l in &img.layers {
        push_blob(c, url, repo, l).await;
    }
    let r = push_manifest(c, url, repo, tag, OCI_MANIFEST, &img.manifest).await;
    assert_eq!(
        r.status().as_u16(),
        201,
        "push manifest: {}",
        r.text().await.unwrap()
    );
}

/// Whether a system tool is available. With `CI` set, a missing tool fails the test loudly;
/// locally the test is skipped with a message.
pub fn have_tool(name: &str) -> bool {
    let found = which(name).is_some();
    if !found {
        if std::env::var_os("CI").is_some() {
            panic!("{name} is required in CI but is not installed");
        }
        eprintln!("SKIP: {name} is not installed");
    }
    found
}

pub fn which(name: &str) -> Option<std::path::PathBuf> {
    if name.starts_with('/') {
        return Path::new(name).is_file().then(|| name.into());
    }
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

pub fn error_code(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["errors"][0]["code"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// `Response::json` without reqwest's `json` feature.
pub trait JsonExt {
    fn json_value(self) -> impl std::future::Future<Output = serde_json::Value>;
}

impl JsonExt for reqwest::Response {
    async fn json_value(self) -> serde_json::Value {
        let b = self.bytes().await.unwrap();
        serde_json::from_slice(&b)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&b)))
    }
}

/// A registry running on its own runtime thread, for tests that drive blocking external tools.
pub struct ThreadServer {
    pub url: String,
    pub host: String,
    pub registry: Registry,
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for ThreadServer {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn start_thread(tweak: impl FnOnce(&mut RegistryConfig) + Send + 'static) -> ThreadServer {
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let s = start(tweak).await;
            tx.send((s.registry.clone(), s.url.clone(), s.addr))
                .unwrap();
            tokio::task::spawn_blocking(move || {
                let _ = stop_rx.recv();
            })
            .await
            .unwrap();
            drop(s);
        });
    });
    let (registry, url, addr) = rx.recv().unwrap();
    ThreadServer {
        url,
        host: addr.to_string(),
        registry,
        stop: Some(stop_tx),
        thread: Some(thread),
    }
}

pub fn run(cmd: &mut std::process::Command) -> std::process::Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

pub fn run_ok(cmd: &mut std::process::Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An OCI image layout at `dir` holding one image tagged `tag` whose single layer is a real
/// tar of a file `hello.txt` with `content` (made with the system tar).
pub fn oci_layout(dir: &Path, tag: &str, content: &str) -> Digest {
    let root = dir.join("rootfs");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("hello.txt"), content).unwrap();
    let out = run(std::process::Command::new("tar")
        .args(["--sort=name", "--mtime=@0", "--owner=0", "--group=0", "-C"])
        .arg(&root)
        .args(["-cf", "-", "hello.txt"]));
    let layer = out.stdout;
    let layout = dir.join("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    let put = |b: &[u8]| {
        let d = Digest::sha256(b);
        std::fs::write(layout.join("blobs/sha256").join(d.hex()), b).unwrap();
        d
    };
    let ld = put(&layer);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": { "Cmd": ["/hello.txt"] },
        "rootfs": { "type": "layers", "diff_ids": [ld.to_string()] },
    }))
    .unwrap();
    let cd = put(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": { "mediaType": OCI_CONFIG, "digest": cd.to_string(), "size": config.len() },
        "layers": [{ "mediaType": OCI_LAYER, "digest": ld.to_string(), "size": layer.len() }],
    }))
    .unwrap();
    let md = put(&manifest);
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{ "mediaType": OCI_MANIFEST, "digest": md.to_string(), "size": manifest.len(),
                        "annotations": { "org.opencontainers.image.ref.name": tag } }],
    });
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    md
}
