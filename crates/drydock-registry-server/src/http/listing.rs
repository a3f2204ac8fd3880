//! Listings: tags, the catalog (both paginated with `n`/`last` and `Link`), and referrers.

use axum::http::Uri;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use drydock_oci::{Digest, media_type};

use super::{
    Ctx, OCI_FILTERS_APPLIED, blocking, json_response, link_next, paginate, pagination, query_get,
    query_pairs,
};
use crate::auth::Action;
use crate::error::ApiError;

pub(super) async fn tags(ctx: &Ctx, name: &str, uri: &Uri) -> Result<Response, ApiError> {
    ctx.require(name, Action::Pull)?;
    let q = query_pairs(uri);
    let max = ctx.reg.inner.config.limits.max_page;
    let (n, last) = pagination(&q, max)?;
    let repo = name.to_string();
    let all = blocking(&ctx.reg, move |s| {
        Ok(if s.repo_exists(&repo) {
            Some(s.tags(&repo)?)
        } else {
            None
        })
    })
    .await?;
    let Some(all) = all else {
        return Err(ApiError::name_unknown(name));
    };
    let (page, more) = paginate(all, n, last.as_deref(), max);
    let body =
        serde_json::to_vec(&serde_json::json!({ "name": name, "tags": page })).unwrap_or_default();
    let mut resp = json_response(StatusCode::OK, body);
    if more && let Some(l) = page.last() {
        let link = link_next(&format!("/v2/{name}/tags/list"), n.unwrap_or(max), l);
        if let Ok(v) = HeaderValue::from_str(&link) {
            resp.headers_mut().insert(header::LINK, v);
        }
    }
    Ok(resp)
}

pub(super) async fn catalog(ctx: &Ctx, uri: &Uri) -> Result<Response, ApiError> {
    if !ctx.principal.may_list_catalog() {
        if ctx.principal.kind == crate::auth::PrincipalKind::Anonymous
            || ctx.principal.scope.is_some()
        {
            return Err(super::challenge(ctx, Some("registry:catalog:*".into())));
        }
        return Err(ApiError::denied("listing the catalog is not allowed"));
    }
    let q = query_pairs(uri);
    let max = ctx.reg.inner.config.limits.max_page;
    let (n, last) = pagination(&q, max)?;
    let all = blocking(&ctx.reg, |s| s.repositories()).await?;
    // Only what the principal may pull is listed (its account grants: the catalog scope of a
    // session token does not name repositories).
    let visible: Vec<String> = all
        .into_iter()
        .filter(|r| ctx.principal.account_allows(r, Action::Pull))
        .collect();
    let (page, more) = paginate(visible, n, last.as_deref(), max);
    let body = serde_json::to_vec(&serde_json::json!({ "repositories": page })).unwrap_or_default();
    let mut resp = json_response(StatusCode::OK, body);
    if more
        && let Some(l) = page.last()
        && let Ok(v) = HeaderValue::from_str(&link_next("/v2/_catalog", n.unwrap_or(max), l))
    {
        resp.headers_mut().insert(header::LINK, v);
    }
    Ok(resp)
}

pub(super) async fn referrers(
    ctx: &Ctx,
    name: &str,
    digest: &str,
    uri: &Uri,
) -> Result<Response, ApiError> {
    ctx.require(name, Action::Pull)?;
    let d = Digest::parse(digest).map_err(|e| {
        ApiError::digest_invalid(e.to_string()).with_detail(serde_json::json!({ "digest": digest }))
    })?;
    let q = query_pairs(uri);
    let filter = query_get(&q, "artifactType")
        .filter(|f| !f.is_empty())
        .map(str::to_string);
    let repo = name.to_string();
    let mut list = blocking(&ctx.reg, move |s| s.referrers(&repo, &d)).await?;
    if let Some(f) = &filter {
        list.retain(|desc| desc.artifact_type.as_deref() == Some(f.as_str()));
    }
    let body = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_INDEX,
        "manifests": list,
    }))
    .unwrap_or_default();
    let mut resp = json_response(StatusCode::OK, body);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(media_type::OCI_INDEX),
    );
    if filter.is_some() {
        resp.headers_mut().insert(
            OCI_FILTERS_APPLIED,
            HeaderValue::from_static("artifactType"),
        );
    }
    Ok(resp)
}
