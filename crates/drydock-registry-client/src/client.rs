//! The HTTP core: one [`Client`] per process, shared by every operation. It resolves how to reach
//! a host (scheme, TLS), authenticates (Basic, Bearer tokens cached per realm/service/scopes),
//! retries with backoff and jitter, and reports rate limits.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};

use crate::RegistryError;
use crate::challenge::{self, Challenge};
use crate::credentials::{Credential, Credentials};
use crate::progress::{Cancel, Event, Progress};
use crate::registries::{Endpoint, RegistriesConfig, Security};

/// How hard to try before giving up on a request.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// First backoff; doubles each time, with up to 50% jitter.
    pub base: Duration,
    pub max: Duration,
    /// The longest `Retry-After` honoured; longer waits fail the request instead.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            base: Duration::from_millis(250),
            max: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

/// Everything a [`Client`] is configured with.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub registries: RegistriesConfig,
    pub credentials: Credentials,
    /// Blobs transferred at once (default 4).
    pub parallelism: usize,
    pub retry: RetryPolicy,
    /// Chunk size for chunked uploads on registries without a known limit (default 32 MiB);
    /// blobs up to this size go in one monolithic PUT.
    pub chunk_size: u64,
    pub progress: Progress,
    pub cancel: Cancel,
    pub user_agent: String,
    pub connect_timeout: Duration,
    /// Tags per page when listing (`?n=`); pages are followed through `Link` headers.
    pub tag_page_size: usize,
    /// Static name resolution (`host` -> address), before DNS: split-horizon setups and tests.
    pub resolve: Vec<(String, std::net::SocketAddr)>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            registries: RegistriesConfig::default(),
            credentials: Credentials::none(),
            parallelism: 4,
            retry: RetryPolicy::default(),
            chunk_size: 32 << 20,
            progress: Progress::none(),
            cancel: Cancel::new(),
            user_agent: format!("drydock/{}", env!("CARGO_PKG_VERSION")),
            connect_timeout: Duration::from_secs(15),
            tag_page_size: 1000,
            resolve: Vec::new(),
        }
    }
}

impl ClientOptions {
    /// Options from the environment: `registries.toml` under `drydock_home` (or `/etc/drydock`)
    /// and the standard credential sources.
    pub fn from_env(drydock_home: Option<&std::path::Path>) -> Result<Self, RegistryError> {
        let registries = RegistriesConfig::load(&crate::registries::default_paths(drydock_home))?;
        Ok(Self {
            registries,
            credentials: Credentials::from_env(),
            ..Self::default()
        })
    }
}

/// A registry API client; cheap to clone, safe to share between tasks.
#[derive(Clone, Debug)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    http: reqwest::Client,
    http_insecure: reqwest::Client,
    pub(crate) opts: ClientOptions,
    hosts: tokio::sync::Mutex<HashMap<String, Arc<HostState>>>,
    tokens: Mutex<HashMap<String, Token>>,
    /// Scopes a host asked for on top of ours (`insufficient_scope`), per request scope set.
    extra_scopes: Mutex<HashMap<String, BTreeSet<String>>>,
}

#[derive(Debug)]
pub(crate) struct HostState {
    pub(crate) base: Url,
    insecure_tls: bool,
    auth: Mutex<HostAuth>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostAuth {
    None,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

#[derive(Debug, Clone)]
struct Token {
    value: String,
    expires: Instant,
}

/// An access scope for the token service (`repository:acme/app:pull,push`).
pub fn scope(repository: &str, actions: &str) -> String {
    format!("repository:{repository}:{actions}")
}

/// How a request may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Safe to repeat: GET, HEAD, manifest PUT, a PUT or PATCH whose failure the caller will
    /// not inspect further.
    Idempotent,
    /// Send once (apart from authentication): the caller recovers (upload offsets).
    Once,
}

impl Client {
    pub fn new(opts: ClientOptions) -> Result<Self, RegistryError> {
        // One TLS stack: rustls with ring. Installing fails harmlessly when already done.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let build = |insecure: bool| {
            let mut b = reqwest::Client::builder();
            for (host, addr) in &opts.resolve {
                b = b.resolve(host, *addr);
            }
            b.user_agent(opts.user_agent.clone())
                .connect_timeout(opts.connect_timeout)
                .tcp_nodelay(true)
                .pool_max_idle_per_host(opts.parallelism.max(1) * 2)
                .tls_danger_accept_invalid_certs(insecure)
                // reqwest drops Authorization (and cookies) on redirects to another host, port
                // or scheme: blob downloads are redirected to CDNs that must not see our tokens.
                .redirect(reqwest::redirect::Policy::limited(10))
                .build()
                .map_err(|e| RegistryError::protocol("HTTP client", e.to_string()))
        };
        Ok(Self {
            inner: Arc::new(Inner {
                http: build(false)?,
                http_insecure: build(true)?,
                opts,
                hosts: tokio::sync::Mutex::new(HashMap::new()),
                tokens: Mutex::new(HashMap::new()),
                extra_scopes: Mutex::new(HashMap::new()),
            }),
        })
    }

    pub fn options(&self) -> &ClientOptions {
        &self.inner.opts
    }

    pub(crate) fn progress(&self) -> &Progress {
        &self.inner.opts.progress
    }

    pub(crate) fn cancel(&self) -> &Cancel {
        &self.inner.opts.cancel
    }

    pub(crate) fn http_for(&self, host: &HostState) -> &reqwest::Client {
        if host.insecure_tls {
            &self.inner.http_insecure
        } else {
            &self.inner.http
        }
    }

    /// How to reach `endpoint`'s host: pings `/v2/` once per host to learn the scheme (for
    /// insecure registries) and the authentication it wants.
    pub(crate) async fn host(&self, ep: &Endpoint) -> Result<Arc<HostState>, RegistryError> {
        let mut hosts = self.inner.hosts.lock().await;
        if let Some(h) = hosts.get(&ep.host) {
            return Ok(h.clone());
        }
        let candidates: Vec<(&str, bool)> = match ep.security {
            Security::Http => vec![("http", false)],
            Security::Https => vec![("https", false)],
            Security::Insecure => vec![("https", true), ("http", false)],
        };
        let mut last_err = None;
        let n = candidates.len();
        for (i, (scheme, insecure_tls)) in candidates.into_iter().enumerate() {
            let base = Url::parse(&format!("{scheme}://{}/", ep.host)).map_err(|e| {
                RegistryError::protocol(format!("registry host {}", ep.host), e.to_string())
            })?;
            let state = HostState {
                base,
                insecure_tls,
                auth: Mutex::new(HostAuth::None),
            };
            // Only the last candidate gets retries: an HTTP server answering a TLS handshake fails
            // at once and for good. Mirrors get one try: the next endpoint is the fallback.
            let retry = if i + 1 < n || ep.mirror {
                Retry::Once
            } else {
                Retry::Idempotent
            };
            match self.ping(&ep.host, &state, retry).await {
                Ok(auth) => {
                    *state.auth.lock().expect("auth lock") = auth;
                    let state = Arc::new(state);
                    hosts.insert(ep.host.clone(), state.clone());
                    return Ok(state);
                }
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.expect("at least one candidate"))
    }

    async fn ping(
        &self,
        host: &str,
        state: &HostState,
        retry: Retry,
    ) -> Result<HostAuth, RegistryError> {
        let url = state.base.join("v2/").expect("static path");
        let http = self.http_for(state).clone();
        let resp = self
            .send_with_retry(host, "ping", retry, || http.get(url.clone()))
            .await?;
        match resp.status() {
            StatusCode::UNAUTHORIZED => Ok(auth_from_challenges(&challenges_of(resp.headers()))),
            s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(HostAuth::None),
            s => Err(http_error("ping /v2/", host, s, resp).await),
        }
    }

    /// Sends a request with transport retries only (no authentication).
    pub(crate) async fn send_with_retry(
        &self,
        host: &str,
        what: &str,
        retry: Retry,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let policy = &self.inner.opts.retry;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            self.cancel().check()?;
            let result = tokio::select! {
                r = build().send() => r,
                _ = self.cancel().cancelled() => return Err(RegistryError::Cancelled),
            };
            let can_retry = retry == Retry::Idempotent && attempt < policy.attempts;
            match result {
                Ok(resp) => {
                    self.check_rate_limit(host, resp.headers());
                    let status = resp.status();
                    let transient = status == StatusCode::TOO_MANY_REQUESTS
                        || matches!(status.as_u16(), 500 | 502 | 503 | 504);
                    if transient && can_retry {
                        let wait = retry_after(resp.headers())
                            .map(|w| w.min(policy.max_retry_after))
                            .unwrap_or_else(|| backoff(policy, attempt));
                        self.progress().emit(Event::Retry {
                            what: what.to_string(),
                            attempt,
                            wait,
                            reason: format!("{host} answered {status}"),
                        });
                        self.sleep(wait).await?;
                        continue;
                    }
                    return Ok(resp);
                }
                Err(e) => {
                    let message = describe(&e);
                    if can_retry
                        && !is_certificate_error(&e)
                        && (e.is_connect() || e.is_timeout() || e.is_request() || e.is_body())
                    {
                        let wait = backoff(policy, attempt);
                        self.progress().emit(Event::Retry {
                            what: what.to_string(),
                            attempt,
                            wait,
                            reason: message,
                        });
                        self.sleep(wait).await?;
                        continue;
                    }
                    return Err(RegistryError::Connect {
                        host: host.to_string(),
                        message,
                    });
                }
            }
        }
    }

    pub(crate) async fn sleep(&self, d: Duration) -> Result<(), RegistryError> {
        tokio::select! {
            _ = tokio::time::sleep(d) => Ok(()),
            _ = self.cancel().cancelled() => Err(RegistryError::Cancelled),
        }
    }

    fn check_rate_limit(&self, host: &str, headers: &HeaderMap) {
        let num = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(';').next())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        if let (Some(remaining), Some(limit)) = (num("ratelimit-remaining"), num("ratelimit-limit"))
            && (remaining <= 10 || remaining * 10 <= limit)
        {
            self.progress().emit(Event::RateLimit {
                host: host.to_string(),
                remaining,
                limit,
            });
        }
    }

    /// Sends an authenticated request to `ep`'s host. `build` gets the HTTP client and the base
    /// URL (`scheme://host/`) and may be called several times (retries, re-authentication).
    pub(crate) async fn request(
        &self,
        ep: &Endpoint,
        what: &str,
        scopes: &[String],
        retry: Retry,
        build: impl Fn(&reqwest::Client, &Url) -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let host = self.host(ep).await?;
        let http = self.http_for(&host).clone();
        let mut reauthed = false;
        loop {
            let auth = self.authorization(ep, &host, scopes, false).await?;
            let resp = self
                .send_with_retry(&ep.host, what, retry, || {
                    let rb = build(&http, &host.base);
                    match &auth {
                        Some(v) => rb.header(header::AUTHORIZATION, v.clone()),
                        None => rb,
                    }
                })
                .await?;
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
            let challenges = challenges_of(resp.headers());
            if reauthed {
                return Err(self.unauthorized(ep, what, resp).await);
            }
            reauthed = true;
            // Learn the scheme (a registry that did not challenge the ping), extra scopes
            // (`insufficient_scope`), or drop an expired/revoked token, then try once more.
            let new_auth = auth_from_challenges(&challenges);
            let old = host.auth.lock().expect("auth lock").clone();
            if new_auth != HostAuth::None && new_auth != old {
                *host.auth.lock().expect("auth lock") = new_auth.clone();
            }
            let wanted: BTreeSet<String> = challenges
                .iter()
                .filter(|c| c.is_bearer())
                .flat_map(|c| c.scopes())
                .collect();
            let key = scopes.join(" ");
            if !wanted.is_empty() {
                self.inner
                    .extra_scopes
                    .lock()
                    .expect("scopes lock")
                    .entry(key)
                    .or_default()
                    .extend(wanted);
            }
            if auth.is_none() && new_auth == HostAuth::None {
                return Err(self.unauthorized(ep, what, resp).await);
            }
            self.forget_tokens(&host);
        }
    }

    async fn unauthorized(&self, ep: &Endpoint, what: &str, resp: Response) -> RegistryError {
        let had_credentials = matches!(self.inner.opts.credentials.lookup(&ep.host), Ok(Some(_)));
        let (code, message) = error_body(resp).await;
        RegistryError::Unauthorized {
            operation: what.to_string(),
            host: ep.host.clone(),
            code,
            message,
            had_credentials,
        }
    }

    fn forget_tokens(&self, host: &HostState) {
        if let HostAuth::Bearer { realm, .. } = &*host.auth.lock().expect("auth lock") {
            self.inner
                .tokens
                .lock()
                .expect("token lock")
                .retain(|k, _| !k.starts_with(&format!("{realm}\n")));
        }
    }

    /// The `Authorization` value for a request with `scopes`, fetching a token when needed.
    async fn authorization(
        &self,
        ep: &Endpoint,
        host: &HostState,
        scopes: &[String],
        force_credentials: bool,
    ) -> Result<Option<HeaderValue>, RegistryError> {
        let auth = host.auth.lock().expect("auth lock").clone();
        let sensitive = |s: String| {
            let mut v = HeaderValue::from_str(&s).map_err(|_| {
                RegistryError::protocol(
                    format!("credentials for {}", ep.host),
                    "not a valid header value",
                )
            })?;
            v.set_sensitive(true);
            Ok::<_, RegistryError>(Some(v))
        };
        match auth {
            HostAuth::None if !force_credentials => Ok(None),
            HostAuth::None | HostAuth::Basic => match self.inner.opts.credentials.lookup(&ep.host)? {
                Some(c) => match c.basic_header() {
                    Some(h) => sensitive(h),
                    None => Err(RegistryError::Unauthorized {
                        operation: "authenticate".into(),
                        host: ep.host.clone(),
                        code: None,
                        message: Some("an identity token needs a Bearer token service; this registry asks for Basic auth".into()),
                        had_credentials: true,
                    }),
                },
                None => Ok(None),
            },
            HostAuth::Bearer { realm, service } => {
                let mut all: BTreeSet<String> = scopes.iter().cloned().collect();
                if let Some(extra) = self.inner.extra_scopes.lock().expect("scopes lock").get(&scopes.join(" ")) {
                    all.extend(extra.iter().cloned());
                }
                let token = self.token(ep, &realm, service.as_deref(), &all).await?;
                sensitive(format!("Bearer {token}"))
            }
        }
    }

    async fn token(
        &self,
        ep: &Endpoint,
        realm: &str,
        service: Option<&str>,
        scopes: &BTreeSet<String>,
    ) -> Result<String, RegistryError> {
        let key = format!(
            "{realm}\n{}\n{}",
            service.unwrap_or_default(),
            scopes.iter().cloned().collect::<Vec<_>>().join(" ")
        );
        if let Some(t) = self.inner.tokens.lock().expect("token lock").get(&key)
            && t.expires > Instant::now()
        {
            return Ok(t.value.clone());
        }
        let credential = self.inner.opts.credentials.lookup(&ep.host)?;
        let (value, expires_in) = self
            .fetch_token(&ep.host, realm, service, scopes, credential.as_ref())
            .await?;
        // Renew a little early so a token never expires mid-request.
        let life = Duration::from_secs(expires_in.max(60)).saturating_sub(Duration::from_secs(10));
        self.inner.tokens.lock().expect("token lock").insert(
            key,
            Token {
                value: value.clone(),
                expires: Instant::now() + life,
            },
        );
        Ok(value)
    }

    /// Docker's token flow: POST (OAuth2) with a refresh token, else GET with Basic credentials
    /// or anonymously. Returns the token and its lifetime in seconds (default 60).
    async fn fetch_token(
        &self,
        host: &str,
        realm: &str,
        service: Option<&str>,
        scopes: &BTreeSet<String>,
        credential: Option<&Credential>,
    ) -> Result<(String, u64), RegistryError> {
        let terr = |message: String| RegistryError::Token {
            realm: realm.to_string(),
            message,
        };
        let mut url = Url::parse(realm).map_err(|e| terr(format!("invalid realm URL: {e}")))?;
        let http = if self
            .inner
            .opts
            .registries
            .is_insecure_host(url.host_str().unwrap_or_default())
        {
            &self.inner.http_insecure
        } else {
            &self.inner.http
        };
        let resp = match credential {
            Some(Credential::IdentityToken { token, .. }) => {
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                form.append_pair("grant_type", "refresh_token");
                form.append_pair("client_id", "drydock");
                form.append_pair("refresh_token", token);
                if let Some(s) = service {
                    form.append_pair("service", s);
                }
                if !scopes.is_empty() {
                    form.append_pair(
                        "scope",
                        &scopes.iter().cloned().collect::<Vec<_>>().join(" "),
                    );
                }
                let body = form.finish();
                self.send_with_retry(host, "token", Retry::Idempotent, || {
                    http.post(url.clone())
                        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                        .body(body.clone())
                })
                .await?
            }
            other => {
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                    for s in scopes {
                        q.append_pair("scope", s);
                    }
                    if let Some(c) = other {
                        q.append_pair("account", c.username());
                    }
                }
                let basic = match other.and_then(Credential::basic_header) {
                    Some(b) => {
                        let mut v = HeaderValue::from_str(&b)
                            .map_err(|_| terr("credentials are not a valid header".into()))?;
                        v.set_sensitive(true);
                        Some(v)
                    }
                    None => None,
                };
                self.send_with_retry(host, "token", Retry::Idempotent, || {
                    let rb = http.get(url.clone());
                    match &basic {
                        Some(b) => rb.header(header::AUTHORIZATION, b.clone()),
                        None => rb,
                    }
                })
                .await?
            }
        };
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let (code, message) = error_body(resp).await;
            return Err(RegistryError::Unauthorized {
                operation: "get a token".into(),
                host: host.to_string(),
                code,
                message,
                had_credentials: credential.is_some(),
            });
        }
        if !status.is_success() {
            let (code, message) = error_body(resp).await;
            return Err(terr(
                format!(
                    "answered {status}{}",
                    code.map(|c| format!(" ({c})")).unwrap_or_default()
                ) + &message.map(|m| format!(": {m}")).unwrap_or_default(),
            ));
        }
        let bytes = read_limited(resp, 1 << 20)
            .await
            .map_err(|e| terr(e.to_string()))?;
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
            expires_in: Option<u64>,
        }
        let t: TokenResponse = serde_json::from_slice(&bytes)
            .map_err(|e| terr(format!("invalid token response: {e}")))?;
        let value = t
            .token
            .or(t.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| terr("the response has neither `token` nor `access_token`".into()))?;
        Ok((value, t.expires_in.unwrap_or(60)))
    }

    /// Checks credentials against a registry without storing anything (`drydock login`).
    pub async fn check_login(
        &self,
        registry: &str,
        credential: &Credential,
    ) -> Result<(), RegistryError> {
        let reference = drydock_oci::Reference::parse(&format!("{registry}/drydock-login-check"))
            .map_err(|e| {
            RegistryError::protocol(format!("registry {registry}"), e.to_string())
        })?;
        let ep = self.inner.opts.registries.push_endpoint(&reference);
        let host = self.host(&ep).await?;
        let auth = host.auth.lock().expect("auth lock").clone();
        let http = self.http_for(&host).clone();
        let url = host.base.join("v2/").expect("static path");
        let header_value = match &auth {
            HostAuth::Bearer { realm, service } => {
                let (token, _) = self
                    .fetch_token(
                        &ep.host,
                        realm,
                        service.as_deref(),
                        &BTreeSet::new(),
                        Some(credential),
                    )
                    .await?;
                Some(format!("Bearer {token}"))
            }
            HostAuth::Basic | HostAuth::None => credential.basic_header(),
        };
        let resp = self
            .send_with_retry(&ep.host, "login", Retry::Idempotent, || {
                let rb = http.get(url.clone());
                match &header_value {
                    Some(v) => {
                        let mut v = HeaderValue::from_str(v)
                            .unwrap_or_else(|_| HeaderValue::from_static(""));
                        v.set_sensitive(true);
                        rb.header(header::AUTHORIZATION, v)
                    }
                    None => rb,
                }
            })
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(()),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                let (code, message) = error_body(resp).await;
                Err(RegistryError::Unauthorized {
                    operation: "login".into(),
                    host: ep.host,
                    code,
                    message,
                    had_credentials: true,
                })
            }
            s => Err(http_error("login", &ep.host, s, resp).await),
        }
    }

    /// The endpoint pushes (and reads for pushes) go to.
    pub fn push_endpoint(&self, reference: &drydock_oci::Reference) -> Endpoint {
        self.inner.opts.registries.push_endpoint(reference)
    }

    /// Where pulls go, mirrors first.
    pub fn pull_endpoints(&self, reference: &drydock_oci::Reference) -> Vec<Endpoint> {
        self.inner.opts.registries.pull_endpoints(reference)
    }

    /// Builds an absolute URL on `base` for `/v2/<path>`.
    pub(crate) fn v2(base: &Url, path: &str) -> Url {
        base.join(&format!("v2/{path}")).expect("valid path")
    }

    #[allow(dead_code)]
    pub(crate) fn method_name(m: &Method) -> &str {
        m.as_str()
    }
}

fn auth_from_challenges(challenges: &[Challenge]) -> HostAuth {
    if let Some(b) = challenges.iter().find(|c| c.is_bearer())
        && let Some(realm) = b.param("realm")
    {
        return HostAuth::Bearer {
            realm: realm.to_string(),
            service: b.param("service").map(str::to_string),
        };
    }
    if challenges.iter().any(Challenge::is_basic) {
        return HostAuth::Basic;
    }
    HostAuth::None
}

pub(crate) fn challenges_of(headers: &HeaderMap) -> Vec<Challenge> {
    challenge::parse_all(
        headers
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    )
}

/// Exponential backoff with jitter: `base * 2^(attempt-1)`, capped, then 50–100% of that.
pub(crate) fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let exp = policy
        .base
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let capped = exp.min(policy.max);
    capped.mul_f64(0.5 + rand::random::<f64>() * 0.5)
}

/// `Retry-After` as seconds or as an HTTP date (RFC 9110 IMF-fixdate).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    match http_date(v) {
        Some(at) => Some(Duration::from_secs(at.saturating_sub(now))),
        None => Some(Duration::from_secs(1)),
    }
}

/// Seconds since the epoch of `Sun, 06 Nov 1994 08:49:37 GMT`.
fn http_date(s: &str) -> Option<u64> {
    let mut parts = s.split_whitespace().skip(1);
    let day: i64 = parts.next()?.parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| Some(*m) == parts.clone().next())? as i64
        + 1;
    parts.next();
    let year: i64 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':').map(|x| x.parse::<i64>().ok());
    let (h, m, sec) = (hms.next()??, hms.next()??, hms.next()??);
    if parts.next()? != "GMT" {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + h * 3600 + m * 60 + sec).ok()
}

/// Whether a transport error is a TLS certificate rejection (retrying cannot help).
fn is_certificate_error(e: &reqwest::Error) -> bool {
    fn tls_error<'a>(mut e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
        // io::Error wraps its payload (sometimes another io::Error) without exposing it as a
        // source: unwrap it by hand.
        loop {
            if let Some(t) = e.downcast_ref::<rustls::Error>() {
                return Some(t);
            }
            e = e.downcast_ref::<std::io::Error>()?.get_ref()?;
        }
    }
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = src {
        if matches!(
            tls_error(s),
            Some(rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented)
        ) {
            return true;
        }
        src = s.source();
    }
    false
}

/// A transport error's message without URLs (which might carry query tokens).
fn describe(e: &reqwest::Error) -> String {
    let mut msg = match e.url() {
        Some(u) => e
            .to_string()
            .replace(&format!(" ({u})"), "")
            .replace(u.as_str(), "<url>"),
        None => e.to_string(),
    };
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

pub(crate) async fn read_limited(resp: Response, max: usize) -> Result<Vec<u8>, RegistryError> {
    use futures_util::StreamExt;
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| RegistryError::Connect {
            host: String::new(),
            message: describe(&e),
        })?;
        if out.len() + chunk.len() > max {
            return Err(RegistryError::protocol(
                "response",
                format!("larger than {max} bytes"),
            ));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// The OCI error body's first `code` and `message`.
pub(crate) async fn error_body(resp: Response) -> (Option<String>, Option<String>) {
    let Ok(bytes) = read_limited(resp, 64 << 10).await else {
        return (None, None);
    };
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorItem>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorItem {
        code: Option<String>,
        message: Option<String>,
    }
    match serde_json::from_slice::<Errors>(&bytes) {
        Ok(e) => e
            .errors
            .into_iter()
            .next()
            .map(|e| (e.code, e.message))
            .unwrap_or((None, None)),
        Err(_) => {
            let text = String::from_utf8_lossy(&bytes)
                .trim()
                .chars()
                .take(200)
                .collect::<String>();
            (None, (!text.is_empty()).then_some(text))
        }
    }
}

pub(crate) async fn http_error(
    what: &str,
    host: &str,
    status: StatusCode,
    resp: Response,
) -> RegistryError {
    let (code, message) = error_body(resp).await;
    RegistryError::Http {
        operation: what.to_string(),
        host: host.to_string(),
        status: status.as_u16(),
        code,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            attempts: 5,
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
            ..Default::default()
        };
        for attempt in 1..10 {
            let d = backoff(&p, attempt);
            let full =
                Duration::from_millis(100 * (1 << (attempt - 1))).min(Duration::from_secs(1));
            assert!(d >= full / 2 && d <= full, "{attempt}: {d:?}");
        }
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        // A date in the past: retry now.
        h.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(1)));
        assert_eq!(
            http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            http_date("Tue, 29 Feb 2028 12:00:00 GMT"),
            Some(1_835_438_400)
        );
        assert_eq!(http_date("Sun, 06 Nov 1994 08:49:37 UTC"), None);
    }

    #[test]
    fn bearer_is_preferred_over_basic() {
        let c =
            challenge::parse(r#"Basic realm="x", Bearer realm="https://auth/token",service="s""#);
        assert_eq!(
            auth_from_challenges(&c),
            HostAuth::Bearer {
                realm: "https://auth/token".into(),
                service: Some("s".into())
            }
        );
        assert_eq!(
            auth_from_challenges(&challenge::parse("Basic realm=x")),
            HostAuth::Basic
        );
    }
}
