//! Blobs: pull (with `Range`), delete, and every way to push one (monolithic POST, POST then
//! PUT, chunked PATCH, mount), plus upload status and cancel.

use std::io::{Read, Seek, SeekFrom};
use std::sync::atomic::Ordering::Relaxed;

use axum::body::Body;
use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use drydock_oci::Digest;

use super::{
    Ctx, DOCKER_CONTENT_DIGEST, DOCKER_UPLOAD_UUID, blocking, empty, query_get, query_pairs,
    with_body,
};
use crate::auth::Action;
use crate::error::ApiError;
use crate::events::{Event, EventAction, EventTarget};
use crate::uploads::Session;

/// Bytes read from disk at a time when serving a blob.
const READ_CHUNK: usize = 256 << 10;

fn parse_digest(s: &str) -> Result<Digest, ApiError> {
    Digest::parse(s).map_err(|e| {
        ApiError::digest_invalid(e.to_string()).with_detail(serde_json::json!({ "digest": s }))
    })
}

pub(super) async fn get(
    ctx: &Ctx,
    name: &str,
    digest: &str,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response, ApiError> {
    ctx.require(name, Action::Pull)?;
    let d = parse_digest(digest)?;
    let (repo, dd) = (name.to_string(), d.clone());
    let Some(size) = blocking(&ctx.reg, move |s| s.blob_size(&repo, &dd)).await? else {
        return Err(ApiError::blob_unknown(&d));
    };
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(r) if !head => match parse_range(r, size) {
            Some(r) => Some(r),
            None => {
                return Err(ApiError::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    crate::ErrorCode::BlobUnknown,
                    "requested range not satisfiable",
                )
                .with_header(header::CONTENT_RANGE, &format!("bytes */{size}")));
            }
        },
        _ => None,
    };
    let (start, len, status) = match range {
        Some((a, b)) => (a, b - a + 1, StatusCode::PARTIAL_CONTENT),
        None => (0, size, StatusCode::OK),
    };
    let body = if head || len == 0 {
        Body::empty()
    } else {
        let file = blocking(&ctx.reg, {
            let d = d.clone();
            move |s| s.open_blob(&d)
        })
        .await?;
        ctx.reg.inner.metrics.bytes_sent.fetch_add(len, Relaxed);
        stream_file(file, start, len)
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(DOCKER_CONTENT_DIGEST, hv(&d.to_string()));
    h.insert(header::ETAG, hv(&format!("\"{d}\"")));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=31536000"),
    );
    if status == StatusCode::PARTIAL_CONTENT {
        h.insert(
            header::CONTENT_RANGE,
            hv(&format!("bytes {}-{}/{size}", start, start + len - 1)),
        );
    }
    Ok(resp)
}

fn hv(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A single `bytes=a-b`, `bytes=a-` or `bytes=-n` range, inclusive, within `size`.
fn parse_range(r: &str, size: u64) -> Option<(u64, u64)> {
    let spec = r.trim().strip_prefix("bytes=")?;
    if spec.contains(',') || size == 0 {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 {
            return None;
        }
        return Some((size.saturating_sub(n), size - 1));
    }
    let start: u64 = a.parse().ok()?;
    let end: u64 = if b.is_empty() {
        size - 1
    } else {
        b.parse::<u64>().ok()?.min(size - 1)
    };
    (start <= end && start < size).then_some((start, end))
}

/// Streams `len` bytes of `file` from `start`, read on a blocking thread a chunk ahead of the
/// network.
fn stream_file(mut file: std::fs::File, start: u64, len: u64) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    tokio::task::spawn_blocking(move || {
        if start > 0
            && let Err(e) = file.seek(SeekFrom::Start(start))
        {
            let _ = tx.blocking_send(Err(e));
            return;
        }
        let mut left = len;
        while left > 0 {
            let want = left.min(READ_CHUNK as u64);
            // read_to_end fills spare capacity without zeroing it first
            let mut buf = Vec::with_capacity(want as usize);
            let filled = match (&mut file).take(want).read_to_end(&mut buf) {
                Ok(n) => n,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            };
            if filled == 0 {
                let _ = tx.blocking_send(Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "blob shorter than recorded",
                )));
                return;
            }
            left -= filled as u64;
            if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                return;
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Body::from_stream(stream)
}

pub(super) async fn delete(ctx: &Ctx, name: &str, digest: &str) -> Result<Response, ApiError> {
    ctx.require(name, Action::Delete)?;
    let d = parse_digest(digest)?;
    let (repo, dd) = (name.to_string(), d.clone());
    if !blocking(&ctx.reg, move |s| s.unlink_blob(&repo, &dd)).await? {
        return Err(ApiError::blob_unknown(&d));
    }
    ctx.reg.inner.metrics.deletes.fetch_add(1, Relaxed);
    let mut e = Event::new(EventAction::Delete, EventTarget::Blob, name);
    e.digest = Some(d.to_string());
    e.actor = ctx.principal.actor();
    ctx.reg.inner.events.publish(e);
    Ok(empty(StatusCode::ACCEPTED, &[]))
}

fn upload_location(name: &str, id: &str) -> String {
    format!("/v2/{name}/blobs/uploads/{id}")
}

/// `Range: 0-<last byte>` as registries have always reported it (`0-0` when empty).
fn range_header(len: u64) -> String {
    format!("0-{}", len.saturating_sub(1))
}

fn upload_headers(name: &str, s: &Session) -> Vec<(HeaderName, String)> {
    vec![
        (header::LOCATION, upload_location(name, &s.id)),
        (header::RANGE, range_header(s.len)),
        (DOCKER_UPLOAD_UUID, s.id.clone()),
    ]
}

pub(super) async fn start_upload(
    ctx: &Ctx,
    name: &str,
    req: Request,
) -> Result<Response, ApiError> {
    with_body(req, async |parts, body| {
        start_upload_with(ctx, name, parts, body).await
    })
    .await
}

async fn start_upload_with(
    ctx: &Ctx,
    name: &str,
    parts: &Parts,
    body: &mut Option<Body>,
) -> Result<Response, ApiError> {
    ctx.require(name, Action::Push)?;
    let q = query_pairs(&parts.uri);
    if let Some(mount) = query_get(&q, "mount") {
        let d = parse_digest(mount)?;
        if let Some(from) = query_get(&q, "from")
            && let Some(resp) = try_mount(ctx, name, from, &d).await?
        {
            return Ok(resp);
        }
        // No source, or not readable: fall back to an ordinary upload session (spec).
    }
    let session = {
        let reg = ctx.reg.clone();
        let repo = name.to_string();
        tokio::task::spawn_blocking(move || reg.inner.uploads.create(&repo))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))??
    };
    let mut s = session.lock().await;
    if let Some(digest) = query_get(&q, "digest") {
        // Monolithic upload: POST with the whole blob and its digest.
        let d = parse_digest(digest)?;
        let result = async {
            check_declared_length(&parts.headers, ctx)?;
            let body = body.take().unwrap_or_default();
            s.append(body, ctx.reg.inner.config.limits.max_blob_bytes)
                .await?;
            finish(ctx, name, &mut s, &d).await
        }
        .await;
        if result.is_err() {
            ctx.reg.inner.uploads.remove(&mut s);
        }
        return result;
    }
    Ok(empty(StatusCode::ACCEPTED, &upload_headers(name, &s)))
}

async fn try_mount(
    ctx: &Ctx,
    name: &str,
    from: &str,
    d: &Digest,
) -> Result<Option<Response>, ApiError> {
    if crate::names::valid_repository(from).is_err() || !ctx.principal.allows(from, Action::Pull) {
        return Ok(None);
    }
    let (src, dst, dd) = (from.to_string(), name.to_string(), d.clone());
    let mounted = blocking(&ctx.reg, move |s| {
        if s.blob_size(&src, &dd)?.is_none() {
            return Ok(false);
        }
        s.link_blob(&dst, &dd)
    })
    .await?;
    if !mounted {
        return Ok(None);
    }
    ctx.reg.inner.metrics.mounts.fetch_add(1, Relaxed);
    let mut e = Event::new(EventAction::Mount, EventTarget::Blob, name);
    e.digest = Some(d.to_string());
    e.from_repository = Some(from.to_string());
    e.actor = ctx.principal.actor();
    ctx.reg.inner.events.publish(e);
    Ok(Some(empty(
        StatusCode::CREATED,
        &[
            (header::LOCATION, format!("/v2/{name}/blobs/{d}")),
            (DOCKER_CONTENT_DIGEST, d.to_string()),
        ],
    )))
}

fn check_declared_length(headers: &HeaderMap, ctx: &Ctx) -> Result<Option<u64>, ApiError> {
    let declared = match headers.get(header::CONTENT_LENGTH) {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| ApiError::size_invalid("invalid Content-Length"))?,
        ),
        None => None,
    };
    if let (Some(len), Some(max)) = (declared, ctx.reg.inner.config.limits.max_blob_bytes)
        && len > max
    {
        return Err(ApiError::too_large(format!(
            "blob exceeds the registry's limit of {max} bytes"
        )));
    }
    Ok(declared)
}

async fn session_for(
    ctx: &Ctx,
    name: &str,
    id: &str,
) -> Result<crate::uploads::SessionRef, ApiError> {
    let (reg, repo, id) = (ctx.reg.clone(), name.to_string(), id.to_string());
    tokio::task::spawn_blocking(move || reg.inner.uploads.get(&repo, &id))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??
        .ok_or_else(ApiError::upload_unknown)
}

fn check_session(s: &Session, name: &str) -> Result<(), ApiError> {
    if s.gone || s.repository != name {
        return Err(ApiError::upload_unknown());
    }
    Ok(())
}

pub(super) async fn upload_status(ctx: &Ctx, name: &str, id: &str) -> Result<Response, ApiError> {
    ctx.require(name, Action::Push)?;
    let session = session_for(ctx, name, id).await?;
    let s = session.lock().await;
    check_session(&s, name)?;
    Ok(empty(StatusCode::NO_CONTENT, &upload_headers(name, &s)))
}

/// Checks `Content-Range: <start>-<end>` against the session: a chunk must start where the
/// previous one ended (416 otherwise) and its length must match `Content-Length`.
fn check_content_range(
    headers: &HeaderMap,
    name: &str,
    s: &Session,
) -> Result<Option<(u64, u64)>, ApiError> {
    let Some(v) = headers.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let out_of_order = || {
        ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            crate::ErrorCode::BlobUploadInvalid,
            "chunk out of order: it must start where the upload stands",
        )
        .with_detail(serde_json::json!({ "offset": s.len }))
        .with_header(header::LOCATION, &upload_location(name, &s.id))
        .with_header(header::RANGE, &range_header(s.len))
        .with_header(DOCKER_UPLOAD_UUID, &s.id)
    };
    let text = v.to_str().map_err(|_| out_of_order())?;
    let text = text
        .trim()
        .trim_start_matches("bytes")
        .trim_start_matches([' ', '=']);
    let text = text.split('/').next().unwrap_or(text);
    let (a, b) = text.split_once('-').ok_or_else(out_of_order)?;
    let (start, end): (u64, u64) = match (a.trim().parse(), b.trim().parse()) {
        (Ok(a), Ok(b)) if a <= b => (a, b),
        _ => return Err(out_of_order()),
    };
    if start != s.len {
        return Err(out_of_order());
    }
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len != end - start + 1
    {
        return Err(out_of_order());
    }
    Ok(Some((start, end)))
}

pub(super) async fn patch_upload(
    ctx: &Ctx,
    name: &str,
    id: &str,
    req: Request,
) -> Result<Response, ApiError> {
    with_body(req, async |parts, body| {
        ctx.require(name, Action::Push)?;
        let session = session_for(ctx, name, id).await?;
        let mut s = session.lock().await;
        check_session(&s, name)?;
        append_body(ctx, name, &mut s, &parts.headers, body).await?;
        Ok(empty(StatusCode::ACCEPTED, &upload_headers(name, &s)))
    })
    .await
}

/// Appends a PATCH or PUT body to the upload after checking its `Content-Range` (the next bytes)
/// and `Content-Length` (within the limit); a body whose length is not the one its range
/// announced is cut off again (the upload is truncated to where it was) and refused. The body is
/// taken only once the checks pass (a refused one is drained by [`with_body`]).
async fn append_body(
    ctx: &Ctx,
    name: &str,
    s: &mut Session,
    headers: &HeaderMap,
    body: &mut Option<Body>,
) -> Result<(), ApiError> {
    let range = check_content_range(headers, name, s)?;
    check_declared_length(headers, ctx)?;
    let start = s.len;
    let body = body.take().unwrap_or_default();
    let written = s
        .append(body, ctx.reg.inner.config.limits.max_blob_bytes)
        .await?;
    ctx.reg
        .inner
        .metrics
        .bytes_received
        .fetch_add(written, Relaxed);
    if let Some((a, b)) = range
        && written != b - a + 1
    {
        truncate(s, start).await?;
        return Err(ApiError::upload_invalid(format!(
            "Content-Range announced {} bytes, the body had {written}",
            b - a + 1
        )));
    }
    Ok(())
}

async fn truncate(s: &mut Session, len: u64) -> Result<(), ApiError> {
    let path = s.data_path();
    tokio::task::spawn_blocking(move || {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_len(len))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e| ApiError::internal(format!("truncate upload: {e}")))?;
    s.reset_to(len);
    Ok(())
}

pub(super) async fn finish_upload(
    ctx: &Ctx,
    name: &str,
    id: &str,
    req: Request,
) -> Result<Response, ApiError> {
    with_body(req, async |parts, body| {
        ctx.require(name, Action::Push)?;
        let q = query_pairs(&parts.uri);
        let session = session_for(ctx, name, id).await?;
        let mut s = session.lock().await;
        check_session(&s, name)?;
        let d = match query_get(&q, "digest") {
            Some(d) => parse_digest(d)?,
            None => {
                return Err(ApiError::digest_invalid(
                    "the digest query parameter is required to finish an upload",
                ));
            }
        };
        append_body(ctx, name, &mut s, &parts.headers, body).await?;
        finish(ctx, name, &mut s, &d).await
    })
    .await
}

/// Verifies the whole upload against `d` and publishes it.
async fn finish(ctx: &Ctx, name: &str, s: &mut Session, d: &Digest) -> Result<Response, ApiError> {
    let actual = s.digest(d.algorithm()).await?;
    if &actual != d {
        return Err(ApiError::digest_invalid("the uploaded content does not match the digest")
            .with_detail(serde_json::json!({ "expected": d.to_string(), "actual": actual.to_string(), "size": s.len })));
    }
    let (repo, data, dd) = (name.to_string(), s.data_path(), d.clone());
    blocking(&ctx.reg, move |st| st.publish_upload(&repo, &data, &dd)).await?;
    let size = s.len;
    ctx.reg.inner.uploads.remove(s);
    ctx.reg.inner.metrics.blobs_pushed.fetch_add(1, Relaxed);
    let mut e = Event::new(EventAction::Push, EventTarget::Blob, name);
    e.digest = Some(d.to_string());
    e.size = Some(size);
    e.actor = ctx.principal.actor();
    ctx.reg.inner.events.publish(e);
    Ok(empty(
        StatusCode::CREATED,
        &[
            (header::LOCATION, format!("/v2/{name}/blobs/{d}")),
            (DOCKER_CONTENT_DIGEST, d.to_string()),
        ],
    ))
}

pub(super) async fn cancel_upload(ctx: &Ctx, name: &str, id: &str) -> Result<Response, ApiError> {
    ctx.require(name, Action::Push)?;
    let session = session_for(ctx, name, id).await?;
    let mut s = session.lock().await;
    check_session(&s, name)?;
    ctx.reg.inner.uploads.remove(&mut s);
    Ok(empty(StatusCode::NO_CONTENT, &[]))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=95-200", 100), Some((95, 99)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=5-1", 100), None);
        assert_eq!(parse_range("bytes=0-1,3-4", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }
}
