//! Manifests: pull by tag or digest, push (validated: everything referenced must be in the
//! repository), delete by digest (manifest) or by tag (tag only).

use std::sync::atomic::Ordering::Relaxed;

use axum::body::Body;
use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use drydock_oci::Digest;
use http_body_util::BodyExt;

use super::{
    Ctx, DOCKER_CONTENT_DIGEST, OCI_SUBJECT, blocking, drain_rest, empty, query_pairs, with_body,
};
use crate::auth::Action;
use crate::error::ApiError;
use crate::events::{Event, EventAction, EventTarget};
use crate::names::{ManifestRef, RefError, parse_reference};

enum BodyError {
    TooLarge,
    Read(String),
}

/// Reads a manifest body of at most `max` bytes (declared or sent). A declared larger one is
/// left in `slot` unread (the caller drains it as it drains every refused body); one that turns
/// out larger while streaming is read to its end, up to [`DRAIN_LIMIT`](super::DRAIN_LIMIT) in all, then refused.
async fn read_manifest_body(
    headers: &HeaderMap,
    slot: &mut Option<Body>,
    max: u64,
) -> Result<Vec<u8>, BodyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|d| d > max) {
        return Err(BodyError::TooLarge);
    }
    let Some(mut body) = slot.take() else {
        return Ok(Vec::new());
    };
    let mut kept = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Read(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let seen = (kept.len() + data.len()) as u64;
        if seen > max {
            drain_rest(body, seen).await;
            return Err(BodyError::TooLarge);
        }
        kept.extend_from_slice(&data);
    }
    Ok(kept)
}

fn reference_for_read(reference: &str) -> Result<ManifestRef, ApiError> {
    parse_reference(reference).map_err(|e| match e {
        RefError::Digest(m) => {
            ApiError::digest_invalid(m).with_detail(serde_json::json!({ "reference": reference }))
        }
        RefError::Tag => ApiError::manifest_unknown(reference),
    })
}

async fn resolve(ctx: &Ctx, name: &str, r: &ManifestRef) -> Result<Option<Digest>, ApiError> {
    match r {
        ManifestRef::Digest(d) => Ok(Some(d.clone())),
        ManifestRef::Tag(t) => {
            let (repo, tag) = (name.to_string(), t.clone());
            blocking(&ctx.reg, move |s| s.resolve_tag(&repo, &tag)).await
        }
    }
}

pub(super) async fn get(
    ctx: &Ctx,
    name: &str,
    reference: &str,
    head: bool,
) -> Result<Response, ApiError> {
    ctx.require(name, Action::Pull)?;
    let r = reference_for_read(reference)?;
    let Some(d) = resolve(ctx, name, &r).await? else {
        return Err(ApiError::manifest_unknown(reference));
    };
    let (repo, dd) = (name.to_string(), d.clone());
    let Some((meta, bytes)) = blocking(&ctx.reg, move |s| s.read_manifest(&repo, &dd)).await?
    else {
        return Err(ApiError::manifest_unknown(reference));
    };
    let len = bytes.len();
    let mut resp = Response::new(if head {
        Body::empty()
    } else {
        Body::from(bytes)
    });
    if !head {
        ctx.reg
            .inner
            .metrics
            .bytes_sent
            .fetch_add(len as u64, Relaxed);
    }
    let h = resp.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(v) = HeaderValue::from_str(&meta.media_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&d.to_string()) {
        h.insert(DOCKER_CONTENT_DIGEST, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{d}\"")) {
        h.insert(header::ETAG, v);
    }
    Ok(resp)
}

pub(super) async fn put(
    ctx: &Ctx,
    name: &str,
    reference: &str,
    req: Request,
) -> Result<Response, ApiError> {
    with_body(req, async |parts, body| {
        put_with(ctx, name, reference, parts, body).await
    })
    .await
}

async fn put_with(
    ctx: &Ctx,
    name: &str,
    reference: &str,
    parts: &Parts,
    body: &mut Option<Body>,
) -> Result<Response, ApiError> {
    ctx.require(name, Action::Push)?;
    let r = parse_reference(reference).map_err(|e| match e {
        RefError::Digest(m) => ApiError::digest_invalid(m).with_detail(serde_json::json!({ "reference": reference })),
        RefError::Tag => ApiError::manifest_invalid(format!(
            "invalid tag {reference:?}: a tag is 1 to 128 characters of [A-Za-z0-9_.-] and starts with a letter, digit or '_'"
        )),
    })?;
    let q = query_pairs(&parts.uri);
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let max = ctx.reg.inner.config.limits.max_manifest_bytes;
    let too_large = || {
        ApiError::too_large(format!(
            "manifest exceeds the registry's limit of {max} bytes"
        ))
    };
    let bytes = match read_manifest_body(&parts.headers, body, max).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => return Err(too_large()),
        Err(BodyError::Read(e)) => {
            return Err(ApiError::manifest_invalid(format!(
                "reading the manifest: {e}"
            )));
        }
    };
    let parsed = crate::manifest::parse(&bytes, content_type.as_deref())
        .map_err(ApiError::manifest_invalid)?;
    let mut tags = Vec::new();
    let d = match &r {
        ManifestRef::Digest(d) => {
            if !d.verify(&bytes) {
                return Err(ApiError::digest_invalid("the manifest does not match the digest it was pushed by")
                    .with_detail(serde_json::json!({ "expected": d.to_string(), "actual": Digest::compute(d.algorithm(), &bytes).to_string() })));
            }
            d.clone()
        }
        ManifestRef::Tag(t) => {
            tags.push(t.clone());
            Digest::sha256(&bytes)
        }
    };
    // Extra tags in one request (`?tag=a&tag=b`), as distribution-spec 1.1 allows.
    for (k, v) in &q {
        if k == "tag" {
            if !crate::names::valid_tag(v) {
                return Err(ApiError::manifest_invalid(format!("invalid tag {v:?}")));
            }
            if !tags.contains(v) {
                tags.push(v.clone());
            }
        }
    }
    let missing = {
        let (repo, dd, parsed, tags, bytes) = (
            name.to_string(),
            d.clone(),
            parsed.clone(),
            tags.clone(),
            bytes.clone(),
        );
        blocking(&ctx.reg, move |s| {
            s.put_manifest(&repo, &dd, &bytes, &parsed, &tags)
        })
        .await?
    };
    if !missing.is_empty() {
        let first = missing[0].to_string();
        return Err(ApiError::new(StatusCode::BAD_REQUEST, crate::ErrorCode::ManifestBlobUnknown, "manifest references blobs or manifests unknown to this repository")
            .with_detail(serde_json::json!({ "digest": first, "missing": missing.iter().map(|m| m.to_string()).collect::<Vec<_>>() })));
    }
    let m = &ctx.reg.inner.metrics;
    m.manifests_pushed.fetch_add(1, Relaxed);
    m.bytes_received.fetch_add(bytes.len() as u64, Relaxed);
    let mut base = Event::new(EventAction::Push, EventTarget::Manifest, name);
    base.digest = Some(d.to_string());
    base.media_type = Some(parsed.media_type.clone());
    base.size = Some(bytes.len() as u64);
    base.actor = ctx.principal.actor();
    if tags.is_empty() {
        ctx.reg.inner.events.publish(base);
    } else {
        for t in &tags {
            let mut e = base.clone();
            e.id = crate::random_hex(16);
            e.tag = Some(t.clone());
            ctx.reg.inner.events.publish(e);
        }
    }
    let mut headers = vec![
        (header::LOCATION, format!("/v2/{name}/manifests/{d}")),
        (DOCKER_CONTENT_DIGEST, d.to_string()),
    ];
    if let Some(s) = &parsed.subject {
        headers.push((OCI_SUBJECT, s.to_string()));
    }
    Ok(empty(StatusCode::CREATED, &headers))
}

pub(super) async fn delete(ctx: &Ctx, name: &str, reference: &str) -> Result<Response, ApiError> {
    ctx.require(name, Action::Delete)?;
    let r = reference_for_read(reference)?;
    let m = &ctx.reg.inner.metrics;
    match r {
        ManifestRef::Tag(tag) => {
            let (repo, t) = (name.to_string(), tag.clone());
            let removed = blocking(&ctx.reg, move |s| {
                let d = s.resolve_tag(&repo, &t)?;
                Ok(if s.delete_tag(&repo, &t)? { d } else { None })
            })
            .await?;
            let Some(d) = removed else {
                return Err(ApiError::manifest_unknown(reference));
            };
            m.deletes.fetch_add(1, Relaxed);
            let mut e = Event::new(EventAction::Delete, EventTarget::Tag, name);
            e.tag = Some(tag);
            e.digest = Some(d.to_string());
            e.actor = ctx.principal.actor();
            ctx.reg.inner.events.publish(e);
        }
        ManifestRef::Digest(d) => {
            let (repo, dd) = (name.to_string(), d.clone());
            let Some((meta, tags)) =
                blocking(&ctx.reg, move |s| s.delete_manifest(&repo, &dd)).await?
            else {
                return Err(ApiError::manifest_unknown(reference));
            };
            m.deletes.fetch_add(1, Relaxed);
            for t in tags {
                let mut e = Event::new(EventAction::Delete, EventTarget::Tag, name);
                e.tag = Some(t);
                e.digest = Some(d.to_string());
                e.actor = ctx.principal.actor();
                ctx.reg.inner.events.publish(e);
            }
            let mut e = Event::new(EventAction::Delete, EventTarget::Manifest, name);
            e.digest = Some(d.to_string());
            e.media_type = Some(meta.media_type);
            e.actor = ctx.principal.actor();
            ctx.reg.inner.events.publish(e);
        }
    }
    Ok(empty(StatusCode::ACCEPTED, &[]))
}
