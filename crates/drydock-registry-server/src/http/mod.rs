//! The `/v2/` endpoints. One handler receives every request under `/v2/`, splits the path into
//! a [`Route`] (repository names contain slashes, so a router pattern cannot), authenticates,
//! applies the rate limit, dispatches, and records a log line and metrics.

mod blobs;
mod listing;
mod manifests;
pub mod ops;
mod token;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use base64::Engine as _;
use futures_util::StreamExt;

use crate::Registry;
use crate::auth::{Action, Principal, PrincipalKind};
use crate::error::{ApiError, StorageError};
use crate::names::{Route, parse_route};

pub(crate) const DOCKER_CONTENT_DIGEST: HeaderName =
    HeaderName::from_static("docker-content-digest");
pub(crate) const DOCKER_UPLOAD_UUID: HeaderName = HeaderName::from_static("docker-upload-uuid");
pub(crate) const OCI_SUBJECT: HeaderName = HeaderName::from_static("oci-subject");
pub(crate) const OCI_FILTERS_APPLIED: HeaderName = HeaderName::from_static("oci-filters-applied");
const API_VERSION: HeaderName = HeaderName::from_static("docker-distribution-api-version");

/// How much of a refused request body is read (and dropped) before the error is sent. Answering
/// while the client is still writing and then closing the connection with its data unread makes
/// the kernel reset the connection: the client sees a broken pipe instead of the answer.
pub(crate) const DRAIN_LIMIT: u64 = 64 << 20;

/// Reads what is left of a request body that will not be used, up to [`DRAIN_LIMIT`], so that
/// the error answered for it reaches the client and the connection stays usable. Not when the
/// client waits for `100 Continue` (it has sent nothing) or announced more than the limit (the
/// connection is closed anyway).
pub(crate) async fn drain_body(headers: &HeaderMap, body: Body) {
    let expects_continue = headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let declared_over = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > DRAIN_LIMIT);
    if expects_continue || declared_over {
        return;
    }
    drain_rest(body, 0).await;
}

/// Reads and drops what is left of `body`, of which `seen` bytes were read already, until
/// [`DRAIN_LIMIT`] bytes in all.
pub(crate) async fn drain_rest(body: Body, mut seen: u64) {
    let mut stream = body.into_data_stream();
    while seen <= DRAIN_LIMIT
        && let Some(Ok(data)) = stream.next().await
    {
        seen += data.len() as u64;
    }
}

/// Requests that carry a body take it only once they have accepted the request. A body left
/// unread (the request was refused first, or had no use for one) is read to its end before the
/// answer goes out, so that a client still sending it gets the answer rather than a reset
/// connection: see [`drain_body`].
pub(crate) async fn with_body(
    req: Request,
    handler: impl AsyncFnOnce(&Parts, &mut Option<Body>) -> Result<Response, ApiError>,
) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let mut body = Some(body);
    // The handler (and any lock it took) is done before the body is drained.
    let result = handler(&parts, &mut body).await;
    if let Some(body) = body {
        drain_body(&parts.headers, body).await;
    }
    result
}

/// Set by the server on TLS connections, so that derived URLs say `https`.
#[derive(Debug, Clone, Copy)]
pub struct Tls;

/// The principal a response was produced for, for the request log.
#[derive(Debug, Clone)]
struct Actor(String);

pub(crate) fn router(reg: Registry) -> Router {
    Router::new()
        .route("/v2", any(dispatch))
        .route("/v2/", any(dispatch))
        .route("/v2/{*rest}", any(dispatch))
        .with_state(reg)
}

/// Everything one request handler needs.
pub(crate) struct Ctx {
    pub reg: Registry,
    pub principal: Principal,
    /// Whether credentials were presented at all (decides 401 against 403).
    pub base_url: String,
}

async fn dispatch(State(reg): State<Registry>, req: Request) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let client = client_ip(&req);
    let route = parse_route(&path);
    let label = route.label();

    let mut resp = match &reg.inner.limiter {
        Some(l) => match l.check(client) {
            Ok(()) => None,
            Err(wait) => {
                reg.inner
                    .metrics
                    .rate_limited
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Some(
                    ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        crate::ErrorCode::TooManyRequests,
                        "too many requests",
                    )
                    .with_header(header::RETRY_AFTER, &wait.as_secs().max(1).to_string())
                    .into_response(),
                )
            }
        },
        None => None,
    }
    .unwrap_or_else(Response::default);
    if resp.status() != StatusCode::TOO_MANY_REQUESTS {
        resp = match handle(&reg, route, req).await {
            Ok(r) => r,
            Err(e) => e.into_response(),
        };
    }
    resp.headers_mut()
        .insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
    let status = resp.status().as_u16();
    let elapsed = start.elapsed();
    reg.inner
        .metrics
        .observe(method.as_str(), label, status, elapsed);
    let actor = resp
        .extensions()
        .get::<Actor>()
        .map(|a| a.0.clone())
        .unwrap_or_else(|| "-".into());
    tracing::info!(
        target: "drydock_registry::access",
        method = %method,
        path = %path,
        route = label,
        status,
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        client = %client,
        actor = %actor,
        "request"
    );
    resp
}

async fn handle(reg: &Registry, route: Route, req: Request) -> Result<Response, ApiError> {
    let principal = authenticate(reg, req.headers())?;
    let base_url = base_url(reg, &req);
    let actor = principal.name.clone();
    let ctx = Ctx {
        reg: reg.clone(),
        principal,
        base_url,
    };
    if let Some(name) = route.repository() {
        crate::names::valid_repository(name)
            .map_err(|reason| ApiError::name_invalid(name, reason))?;
    }
    let method = req.method().clone();
    let head = method == Method::HEAD;
    let mut resp = match (route, method) {
        (Route::Base, Method::GET | Method::HEAD) => base(&ctx),
        (Route::Token, Method::GET | Method::POST) => token::issue(&ctx, req).await,
        (Route::Catalog, Method::GET) => listing::catalog(&ctx, req.uri()).await,
        (Route::Tags { name }, Method::GET) => listing::tags(&ctx, &name, req.uri()).await,
        (Route::Referrers { name, digest }, Method::GET) => {
            listing::referrers(&ctx, &name, &digest, req.uri()).await
        }
        (Route::Manifest { name, reference }, Method::GET | Method::HEAD) => {
            manifests::get(&ctx, &name, &reference, head).await
        }
        (Route::Manifest { name, reference }, Method::PUT) => {
            manifests::put(&ctx, &name, &reference, req).await
        }
        (Route::Manifest { name, reference }, Method::DELETE) => {
            manifests::delete(&ctx, &name, &reference).await
        }
        (Route::Blob { name, digest }, Method::GET | Method::HEAD) => {
            blobs::get(&ctx, &name, &digest, req.headers(), head).await
        }
        (Route::Blob { name, digest }, Method::DELETE) => blobs::delete(&ctx, &name, &digest).await,
        (Route::UploadStart { name }, Method::POST) => blobs::start_upload(&ctx, &name, req).await,
        (Route::Upload { name, id }, Method::GET) => blobs::upload_status(&ctx, &name, &id).await,
        (Route::Upload { name, id }, Method::PATCH) => {
            blobs::patch_upload(&ctx, &name, &id, req).await
        }
        (Route::Upload { name, id }, Method::PUT) => {
            blobs::finish_upload(&ctx, &name, &id, req).await
        }
        (Route::Upload { name, id }, Method::DELETE) => {
            blobs::cancel_upload(&ctx, &name, &id).await
        }
        (Route::Unknown, _) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            crate::ErrorCode::Unsupported,
            "no such endpoint",
        )),
        (_, m) => Err(ApiError::unsupported(format!(
            "method {m} is not allowed here"
        ))),
    }?;
    resp.extensions_mut().insert(Actor(actor));
    Ok(resp)
}

fn base(ctx: &Ctx) -> Result<Response, ApiError> {
    // With accounts configured, an anonymous client is told how to log in (what `docker login`
    // and every client's token dance start from), even when it may read anonymously.
    if ctx.principal.kind == PrincipalKind::Anonymous
        && (ctx.reg.inner.auth.has_accounts() || ctx.principal.grants.is_empty())
    {
        return Err(challenge(ctx, None));
    }
    Ok(json_response(StatusCode::OK, b"{}".to_vec()))
}

/// Who is asking. No credentials: the anonymous principal. Bad credentials: 401.
fn authenticate(reg: &Registry, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let auth = &reg.inner.auth;
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(anonymous(reg));
    };
    let value = value.to_str().map_err(|_| bad_credentials(reg))?;
    let (scheme, rest) = value.split_once(' ').ok_or_else(|| bad_credentials(reg))?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(|_| bad_credentials(reg))?;
        let decoded = String::from_utf8(decoded).map_err(|_| bad_credentials(reg))?;
        let (user, password) = decoded
            .split_once(':')
            .ok_or_else(|| bad_credentials(reg))?;
        return auth
            .check_password(user, password)
            .ok_or_else(|| bad_credentials(reg));
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        if rest.starts_with("ddk_") {
            return auth.check_token(rest).ok_or_else(|| bad_credentials(reg));
        }
        let now = crate::uploads::now_unix();
        let claims = auth
            .session_key()
            .verify(rest, &reg.inner.config.service, now)
            .ok_or_else(|| bad_credentials(reg))?;
        let mut principal = match claims.kind {
            PrincipalKind::Anonymous => anonymous(reg),
            kind => auth
                .principal_for(kind, &claims.sub, claims.tid.as_deref())
                .ok_or_else(|| bad_credentials(reg))?,
        };
        principal.scope = Some(claims.access);
        return Ok(principal);
    }
    Err(bad_credentials(reg))
}

fn bad_credentials(_reg: &Registry) -> ApiError {
    ApiError::unauthorized("authentication failed: invalid credentials")
}

pub(crate) fn anonymous(reg: &Registry) -> Principal {
    let cfg = &reg.inner.config;
    let grants = if !cfg.anonymous_read {
        vec![]
    } else if reg.inner.auth.has_accounts() {
        vec![crate::Grant {
            repositories: "**".into(),
            actions: vec![Action::Pull],
        }]
    } else {
        vec![crate::Grant::everything()]
    };
    Principal::anonymous(grants)
}

impl Ctx {
    /// Refuses unless the principal may do `action` on `repo`: 401 with a challenge when
    /// logging in (or a token with a wider scope) could help, 403 otherwise.
    pub fn require(&self, repo: &str, action: Action) -> Result<(), ApiError> {
        if self.principal.allows(repo, action) {
            return Ok(());
        }
        let could_help = self.principal.kind == PrincipalKind::Anonymous
            || (self.principal.scope.is_some() && self.principal.account_allows(repo, action));
        if could_help {
            let actions = match action {
                Action::Pull => "pull",
                Action::Push => "pull,push",
                Action::Delete => "delete",
            };
            return Err(challenge(
                self,
                Some(format!("repository:{repo}:{actions}")),
            ));
        }
        Err(ApiError::denied(format!(
            "{} may not {} {repo}",
            self.principal.name,
            action.as_str()
        ))
        .with_detail(serde_json::json!({ "repository": repo, "action": action.as_str() })))
    }
}

/// 401 with `WWW-Authenticate` pointing at the token service.
pub(crate) fn challenge(ctx: &Ctx, scope: Option<String>) -> ApiError {
    let cfg = &ctx.reg.inner.config;
    let mut value = format!(
        "Bearer realm=\"{}/v2/token\",service=\"{}\"",
        ctx.base_url, cfg.service
    );
    if let Some(s) = &scope {
        value.push_str(&format!(",scope=\"{s}\""));
    }
    let mut e = ApiError::unauthorized("authentication required");
    if let Some(s) = scope {
        e = e.with_detail(serde_json::json!({ "scope": s }));
    }
    e.with_header(header::WWW_AUTHENTICATE, &value)
}

fn base_url(reg: &Registry, req: &Request) -> String {
    if let Some(u) = &reg.inner.config.public_url {
        return u.trim_end_matches('/').to_string();
    }
    let headers = req.headers();
    let proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| {
            if req.extensions().get::<Tls>().is_some() {
                "https".into()
            } else {
                "http".into()
            }
        });
    let host = headers
        .get("x-forwarded-host")
        .or_else(|| headers.get(header::HOST))
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("localhost");
    format!("{proto}://{host}")
}

fn client_ip(req: &Request) -> IpAddr {
    let ext = req.extensions();
    ext.get::<ConnectInfo<crate::server::ClientAddr>>()
        .map(|c| c.0.0.ip())
        .or_else(|| ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()))
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

pub(crate) fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// An empty response with headers (`Content-Length: 0`).
pub(crate) fn empty(status: StatusCode, headers: &[(HeaderName, String)]) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    for (k, v) in headers {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(k.clone(), v);
        }
    }
    r
}

/// Runs blocking storage work off the async threads.
pub(crate) async fn blocking<T, F>(reg: &Registry, f: F) -> Result<T, ApiError>
where
    F: FnOnce(&crate::storage::Storage) -> Result<T, StorageError> + Send + 'static,
    T: Send + 'static,
{
    let reg = reg.clone();
    tokio::task::spawn_blocking(move || f(&reg.inner.storage))
        .await
        .map_err(|e| ApiError::internal(format!("storage task: {e}")))?
        .map_err(ApiError::from)
}

/// Query parameters, in order, repeated keys kept.
pub(crate) fn query_pairs(req_uri: &axum::http::Uri) -> Vec<(String, String)> {
    req_uri
        .query()
        .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
        .unwrap_or_default()
}

pub(crate) fn query_get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `n` and `last` of the paginated listings, validated.
pub(crate) fn pagination(
    pairs: &[(String, String)],
    max: usize,
) -> Result<(Option<usize>, Option<String>), ApiError> {
    let n = match query_get(pairs, "n") {
        None | Some("") => None,
        Some(s) => Some(
            s.parse::<usize>()
                .map_err(|_| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        crate::ErrorCode::Unsupported,
                        format!("invalid n={s:?}: expected a non-negative integer"),
                    )
                })?
                .min(max),
        ),
    };
    Ok((
        n,
        query_get(pairs, "last")
            .filter(|l| !l.is_empty())
            .map(str::to_string),
    ))
}

/// Applies `last`/`n` to a sorted list; returns the page and whether more follow.
pub(crate) fn paginate(
    items: Vec<String>,
    n: Option<usize>,
    last: Option<&str>,
    max: usize,
) -> (Vec<String>, bool) {
    let after: Vec<String> = match last {
        Some(l) => items.into_iter().filter(|i| i.as_str() > l).collect(),
        None => items,
    };
    let limit = n.unwrap_or(max);
    let more = after.len() > limit;
    (after.into_iter().take(limit).collect(), more)
}

/// `Link: <path?n=N&last=X>; rel="next"`.
pub(crate) fn link_next(path: &str, n: usize, last: &str) -> String {
    let q = serde_urlencoded::to_string([("n", n.to_string()), ("last", last.to_string())])
        .unwrap_or_default();
    format!("<{path}?{q}>; rel=\"next\"")
}
