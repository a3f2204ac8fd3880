//! Test peers: Debian's `docker-registry` (anonymous, htpasswd, token auth), a token server
//! that signs RS256 JWTs the registry accepts, a fault-injecting HTTP proxy, and images built
//! from files into a temporary content store.
#![allow(dead_code, clippy::print_stderr)]

use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use drydock_content::Store;
use drydock_content::transport::StoredLayer;
use drydock_oci::spec::{Descriptor, MediaType};
use drydock_oci::{Digest, Platform, media_type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Whether `tool` is on PATH. In CI (`CI` set) a missing tool fails the test; locally the test
/// is skipped with a message.
pub fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        if std::env::var_os("CI").is_some() {
            panic!("{tool} is required in CI (install it in .ci/run)");
        }
        eprintln!("skipping: {tool} is not installed");
    }
    found
}

pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub enum Auth {
    Anonymous,
    Htpasswd { user: String, password: String },
    Token { realm: String, cert_pem: PathBuf },
}

/// A running `docker-registry`, stopped on drop.
pub struct Registry {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

pub const TOKEN_SERVICE: &str = "drydock-test";
pub const TOKEN_ISSUER: &str = "drydock-test-issuer";

impl Registry {
    pub fn start(auth: Auth) -> Option<Self> {
        Self::start_with(auth, "")
    }

    /// With more configuration under `http:` (such as `tls:`), indented by two spaces.
    pub fn start_with(auth: Auth, http_extra: &str) -> Option<Self> {
        if !have("docker-registry") {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let auth_yaml = match &auth {
            Auth::Anonymous => String::new(),
            Auth::Htpasswd { user, password } => {
                let file = dir.path().join("htpasswd");
                let out = Command::new("htpasswd")
                    .args(["-Bbn", user, password])
                    .output()
                    .expect("htpasswd (apache2-utils)");
                assert!(out.status.success());
                std::fs::write(&file, out.stdout).unwrap();
                format!(
                    "auth:\n  htpasswd:\n    realm: basic-realm\n    path: {}\n",
                    file.display()
                )
            }
            Auth::Token { realm, cert_pem } => format!(
                "auth:\n  token:\n    realm: {realm}\n    service: {TOKEN_SERVICE}\n    issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
                cert_pem.display()
            ),
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: test-secret\n{http_extra}{auth_yaml}",
            dir.path().join("data").display()
        );
        let cfg = dir.path().join("config.yml");
        std::fs::write(&cfg, config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let r = Registry { dir, port, child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "registry did not start: {}",
                r.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(r)
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test CA certificate and key for signing tokens (made with the openssl CLI).
pub struct SigningKey {
    pub cert_pem: PathBuf,
    pub cert_der: Vec<u8>,
    pub key: ring::signature::RsaKeyPair,
}

pub fn signing_key(dir: &Path) -> Option<SigningKey> {
    if !have("openssl") {
        return None;
    }
    let key_pem = dir.join("key.pem");
    let cert_pem = dir.join("cert.pem");
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    run(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        key_pem.to_str().unwrap(),
    ]);
    run(&[
        "req",
        "-x509",
        "-new",
        "-key",
        key_pem.to_str().unwrap(),
        "-out",
        cert_pem.to_str().unwrap(),
        "-days",
        "2",
        "-subj",
        "/CN=drydock test token issuer",
    ]);
    let key_der = run(&[
        "pkcs8",
        "-topk8",
        "-nocrypt",
        "-in",
        key_pem.to_str().unwrap(),
        "-outform",
        "DER",
    ]);
    let cert_der = run(&["x509", "-in", cert_pem.to_str().unwrap(), "-outform", "DER"]);
    let key = ring::signature::RsaKeyPair::from_pkcs8(&key_der).expect("PKCS#8 RSA key");
    Some(SigningKey {
        cert_pem,
        cert_der,
        key,
    })
}

/// What the token server saw: one line per request (`GET scope=… account=…`, `POST …`).
#[derive(Default, Clone)]
pub struct TokenLog(pub Arc<Mutex<Vec<String>>>);

impl TokenLog {
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// A token server: users (name -> password) and refresh tokens (token -> user). Authenticated
/// users get every action they ask for; anonymous callers get `pull` on `public/*` only.
pub struct TokenServer {
    pub addr: SocketAddr,
    pub log: TokenLog,
    _task: tokio::task::JoinHandle<()>,
}

impl TokenServer {
    pub async fn start(
        key: Arc<ring::signature::RsaKeyPair>,
        cert_der: Vec<u8>,
        users: HashMap<String, String>,
        refresh: HashMap<String, String>,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = TokenLog::default();
        let log2 = log.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let key = key.clone();
                let cert = cert_der.clone();
                let users = users.clone();
                let refresh = refresh.clone();
                let log = log2.clone();
                tokio::spawn(async move {
                    let Some((head, body)) = read_request(&mut sock).await else {
                        return;
                    };
                    let (status, resp) =
                        token_response(&head, &body, &key, &cert, &users, &refresh, &log);
                    let out = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{resp}",
                        resp.len()
                    );
                    let _ = sock.write_all(out.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        Self {
            addr,
            log,
            _task: task,
        }
    }

    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }
}

fn token_response(
    head: &str,
    body: &[u8],
    key: &ring::signature::RsaKeyPair,
    cert: &[u8],
    users: &HashMap<String, String>,
    refresh: &HashMap<String, String>,
    log: &TokenLog,
) -> (&'static str, String) {
    let first = head.lines().next().unwrap_or_default();
    let target = first.split(' ').nth(1).unwrap_or_default();
    let method = first.split(' ').next().unwrap_or_default();
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or_default();
    let mut params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    if method == "POST" {
        params.extend(url::form_urlencoded::parse(body).into_owned());
    }
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let mut scopes: Vec<String> = params
        .iter()
        .filter(|(n, _)| n == "scope")
        .flat_map(|(_, v)| v.split(' ').map(str::to_string).collect::<Vec<_>>())
        .collect();
    scopes.retain(|s| !s.is_empty());
    let basic = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("Authorization: Basic ")
                .or_else(|| l.strip_prefix("authorization: Basic "))
        })
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let user: Option<String> = match (method, get("grant_type").as_deref()) {
        ("POST", Some("refresh_token")) => {
            match refresh.get(&get("refresh_token").unwrap_or_default()) {
                Some(u) => Some(u.clone()),
                None => return ("401 Unauthorized", r#"{"error":"invalid_grant"}"#.into()),
            }
        }
        ("POST", Some("password")) => {
            let (u, p) = (
                get("username").unwrap_or_default(),
                get("password").unwrap_or_default(),
            );
            if users.get(&u) != Some(&p) {
                return ("401 Unauthorized", r#"{"error":"invalid_grant"}"#.into());
            }
            Some(u)
        }
        _ => match basic {
            Some(b) => {
                let (u, p) = b.split_once(':').unwrap_or((&b, ""));
                if users.get(u).map(String::as_str) != Some(p) {
                    return (
                        "401 Unauthorized",
                        r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#
                            .into(),
                    );
                }
                Some(u.to_string())
            }
            None => None,
        },
    };
    log.0.lock().unwrap().push(format!(
        "{method} user={} scopes={}",
        user.as_deref().unwrap_or("-"),
        scopes.join(" ")
    ));
    let access: Vec<serde_json::Value> = scopes
        .iter()
        .filter_map(|s| {
            let mut parts = s.splitn(3, ':');
            let (typ, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
            let actions: Vec<&str> = actions
                .split(',')
                .filter(|a| user.is_some() || (*a == "pull" && name.starts_with("public/")))
                .collect();
            Some(serde_json::json!({"type": typ, "name": name, "actions": actions}))
        })
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [STANDARD.encode(cert)]});
    let claims = serde_json::json!({
        "iss": TOKEN_ISSUER, "sub": user.clone().unwrap_or_default(), "aud": TOKEN_SERVICE,
        "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("{now}-{}", rand_id()), "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut sig = vec![0u8; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut sig,
    )
    .unwrap();
    let jwt = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig));
    // POST (OAuth2) answers `access_token`; GET answers `token`, as Docker's services do.
    let body = if method == "POST" {
        serde_json::json!({"access_token": jwt, "expires_in": 300, "scope": scopes.join(" ")})
    } else {
        serde_json::json!({"token": jwt, "issued_at": "2026-01-01T00:00:00Z"})
    };
    ("200 OK", body.to_string())
}

fn rand_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Reads one HTTP/1.1 request head and its Content-Length body.
async fn read_request(sock: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    let end = loop {
        let n = sock.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let len = content_length(&head);
    let mut body = buf[end..].to_vec();
    while body.len() < len {
        let n = sock.read(&mut tmp).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&tmp[..n]);
    }
    Some((head, body))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn content_length(head: &str) -> usize {
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0)
}

/// Faults the proxy injects, each once.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Close the connection after this many body bytes of the first PATCH/PUT with a body
    /// larger than that.
    pub drop_upload_after: Option<usize>,
    /// Answer the first request whose path contains `/blobs/` with 429 and `Retry-After: 1`.
    pub too_many_requests: bool,
    /// Answer the first request whose path contains `/blobs/` with 500.
    pub server_error: bool,
    /// Flip a byte in the body of every blob GET.
    pub corrupt_blob_gets: bool,
    /// Answer blob GETs with 307 to `http://localhost:<port>/...` (another host).
    pub redirect_blobs_to: Option<u16>,
    /// Close the connection after this many body bytes of the first blob GET response.
    pub drop_download_after: Option<usize>,
    /// Answer manifest GETs with a Docker schema1 manifest.
    pub schema1_manifests: bool,
    /// Add Docker Hub's rate-limit headers (3 of 100 left) to every response.
    pub low_rate_limit: bool,
    /// Add `OCI-Chunk-Min-Length` to the answers that start uploads.
    pub chunk_min_length: Option<u64>,
    /// Answer the first manifest GET with 401 and this `WWW-Authenticate` value.
    pub challenge_once: Option<String>,
}

/// A fault-injecting HTTP proxy in front of a registry: one request per connection (it adds
/// `Connection: close`), so every request is seen.
pub struct Proxy {
    pub port: u16,
    pub hits: Arc<Mutex<Vec<String>>>,
    _task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: u16, faults: Faults) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let faults = Arc::new(Mutex::new(faults));
        let hits = Arc::new(Mutex::new(Vec::new()));
        let hits2 = hits.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let faults = faults.clone();
                let hits = hits2.clone();
                tokio::spawn(async move {
                    let _ = proxy_one(sock, upstream, faults, hits).await;
                });
            }
        });
        Self {
            port,
            hits,
            _task: task,
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn hits(&self) -> Vec<String> {
        self.hits.lock().unwrap().clone()
    }
}

async fn proxy_one(
    mut client: TcpStream,
    upstream: u16,
    faults: Arc<Mutex<Faults>>,
    hits: Arc<Mutex<Vec<String>>>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut tmp = vec![0u8; 64 << 10];
    let end = loop {
        let n = client.read(&mut tmp).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let first = head.lines().next().unwrap_or_default().to_string();
    let method = first.split(' ').next().unwrap_or_default().to_string();
    let path = first.split(' ').nth(1).unwrap_or_default().to_string();
    let len = content_length(&head);
    hits.lock().unwrap().push(format!("{method} {path}"));
    let is_blob = path.contains("/blobs/") && !path.contains("/uploads/");
    let canned = {
        let mut f = faults.lock().unwrap();
        if is_blob && f.too_many_requests {
            f.too_many_requests = false;
            Some("HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string())
        } else if is_blob && f.server_error {
            f.server_error = false;
            Some("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string())
        } else if let Some(port) = f.redirect_blobs_to.filter(|_| is_blob && method == "GET") {
            Some(format!(
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://localhost:{port}{path}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            ))
        } else if f.challenge_once.is_some() && method == "GET" && path.contains("/manifests/") {
            let c = f.challenge_once.take().unwrap_or_default();
            Some(format!(
                "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: {c}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            ))
        } else if f.schema1_manifests && method == "GET" && path.contains("/manifests/") {
            let body = r#"{"schemaVersion":1,"name":"x","tag":"latest","architecture":"amd64","fsLayers":[],"history":[]}"#;
            Some(format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.distribution.manifest.v1+prettyjws\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ))
        } else {
            None
        }
    };
    if let Some(resp) = canned {
        // Drain the body first so the client sees the answer, not a reset.
        let mut body = buf.len() - end;
        while body < len {
            let n = client.read(&mut tmp).await?;
            if n == 0 {
                break;
            }
            body += n;
        }
        client.write_all(resp.as_bytes()).await?;
        return client.shutdown().await;
    }
    let drop_after = {
        let mut f = faults.lock().unwrap();
        match f.drop_upload_after {
            Some(n) if (method == "PATCH" || method == "PUT") && len > n => {
                f.drop_upload_after = None;
                Some(n)
            }
            _ => None,
        }
    };
    // Consumed only when a response actually gets that long (see below).
    let drop_download = if method == "GET" && is_blob {
        faults.lock().unwrap().drop_download_after
    } else {
        None
    };
    let corrupt = method == "GET" && is_blob && faults.lock().unwrap().corrupt_blob_gets;
    let mut up = TcpStream::connect(("127.0.0.1", upstream)).await?;
    let new_head = set_connection_close(&head);
    up.write_all(new_head.as_bytes()).await?;
    let mut sent = buf.len() - end;
    match drop_after {
        Some(n) => {
            let first = (buf.len() - end).min(n);
            up.write_all(&buf[end..end + first]).await?;
            let mut sent_now = first;
            while sent_now < n {
                let k = client
                    .read(&mut tmp[..(n - sent_now).min(64 << 10)])
                    .await?;
                if k == 0 {
                    break;
                }
                up.write_all(&tmp[..k]).await?;
                sent_now += k;
            }
            // Simulated network failure: both sides see the connection die mid-body.
            drop(up);
            drop(client);
            return Ok(());
        }
        None => up.write_all(&buf[end..]).await?,
    }
    while sent < len {
        let k = client.read(&mut tmp).await?;
        if k == 0 {
            break;
        }
        up.write_all(&tmp[..k]).await?;
        sent += k;
    }
    // Response: stream until the upstream closes, adjusting the head.
    let mut rbuf = Vec::new();
    let rend = loop {
        let n = up.read(&mut tmp).await?;
        if n == 0 {
            return Ok(());
        }
        rbuf.extend_from_slice(&tmp[..n]);
        if let Some(i) = find(&rbuf, b"\r\n\r\n") {
            break i + 4;
        }
    };
    let rhead = String::from_utf8_lossy(&rbuf[..rend]).into_owned();
    let mut rhead = set_connection_close(&rhead);
    let mut extra = String::new();
    {
        let f = faults.lock().unwrap();
        if f.low_rate_limit {
            extra.push_str("ratelimit-limit: 100;w=21600\r\nratelimit-remaining: 3;w=21600\r\n");
        }
        if let Some(n) = f.chunk_min_length
            && method == "POST"
            && path.contains("/blobs/uploads/")
        {
            extra.push_str(&format!("OCI-Chunk-Min-Length: {n}\r\n"));
        }
    }
    rhead.insert_str(rhead.len() - 2, &extra);
    client.write_all(rhead.as_bytes()).await?;
    let mut body = rbuf[rend..].to_vec();
    let mut flipped = !corrupt;
    let mut forwarded = 0usize;
    loop {
        if !body.is_empty() {
            if !flipped {
                body[0] ^= 0x55;
                flipped = true;
            }
            if let Some(limit) = drop_download {
                let room = limit.saturating_sub(forwarded);
                if body.len() >= room && faults.lock().unwrap().drop_download_after.take().is_some()
                {
                    client.write_all(&body[..room]).await?;
                    return Ok(());
                }
            }
            client.write_all(&body).await?;
            forwarded += body.len();
        }
        let n = up.read(&mut tmp).await?;
        if n == 0 {
            break;
        }
        body = tmp[..n].to_vec();
    }
    client.shutdown().await
}

fn set_connection_close(head: &str) -> String {
    let mut out = String::new();
    for line in head.split("\r\n").filter(|l| !l.is_empty()) {
        if line.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    out
}

/// A tiny "CDN": serves `/v2/<repo>/blobs/<digest>` from a store and records whether any
/// request carried an Authorization header.
pub struct Cdn {
    pub port: u16,
    pub saw_authorization: Arc<Mutex<Vec<bool>>>,
    _task: tokio::task::JoinHandle<()>,
}

impl Cdn {
    pub async fn start(store: Store) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let saw = Arc::new(Mutex::new(Vec::new()));
        let saw2 = saw.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let store = store.clone();
                let saw = saw2.clone();
                tokio::spawn(async move {
                    let Some((head, _)) = read_request(&mut sock).await else {
                        return;
                    };
                    saw.lock().unwrap().push(
                        head.lines()
                            .any(|l| l.to_ascii_lowercase().starts_with("authorization:")),
                    );
                    let path = head
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .split(' ')
                        .nth(1)
                        .unwrap_or_default()
                        .to_string();
                    let digest = path.rsplit('/').next().and_then(|d| Digest::parse(d).ok());
                    let data = digest.and_then(|d| store.read_blob(&d).ok());
                    let resp = match data {
                        Some(d) => {
                            let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", d.len()).into_bytes();
                            r.extend_from_slice(&d);
                            r
                        }
                        None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
                    };
                    let _ = sock.write_all(&resp).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        Self {
            port,
            saw_authorization: saw,
            _task: task,
        }
    }
}

/// Deterministic pseudo-random bytes (xorshift), so layers do not compress and tests repeat.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A tar layer holding `files` (path, mode, contents).
pub fn tar_layer(files: &[(&str, u32, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, mode, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_path(path).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(*mode);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append(&h, data.as_slice()).unwrap();
    }
    b.into_inner().unwrap()
}

/// Builds an image in `store` from tar layers (uncompressed, OCI media types) and names it.
pub fn build_image(store: &Store, name: &str, layers: Vec<Vec<u8>>, cmd: &[&str]) -> Descriptor {
    let stored: Vec<StoredLayer> = layers
        .iter()
        .map(|l| {
            let d = store.put_bytes(l).unwrap();
            StoredLayer {
                descriptor: Descriptor::new(
                    MediaType::from(media_type::OCI_LAYER_TAR),
                    l.len() as u64,
                    drydock_oci::spec::Digest::from(&d),
                ),
                diff_id: d,
            }
        })
        .collect();
    let history: Vec<String> = (0..stored.len()).map(|i| format!("layer {i}")).collect();
    let desc = drydock_content::image::assemble(
        store,
        &Platform::host(),
        0,
        &stored,
        &history,
        serde_json::json!({"Cmd": cmd, "Env": ["PATH=/bin"]}),
    )
    .unwrap();
    drydock_content::names::set(store, &drydock_oci::Reference::parse(name).unwrap(), &desc)
        .unwrap();
    desc
}

/// A small runnable image: busybox (when the host has a static one) plus a data layer.
pub fn small_image(store: &Store, name: &str, data_len: usize, seed: u64) -> Descriptor {
    let mut layers = Vec::new();
    if let Ok(bb) = std::fs::read("/bin/busybox") {
        layers.push(tar_layer(&[("bin/busybox", 0o755, bb)]));
    }
    layers.push(tar_layer(&[(
        "data/random.bin",
        0o644,
        random_bytes(seed, data_len),
    )]));
    build_image(store, name, layers, &["/bin/busybox", "true"])
}

pub fn store() -> (tempfile::TempDir, Store) {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path().join("content")).unwrap();
    (d, s)
}

/// Runs a command, returning stdout; panics with stderr on failure.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn write_file(path: &Path, data: &[u8]) {
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(data).unwrap();
}
