//! The built-in token service of Docker's token auth: `GET /v2/token?service=&scope=` with Basic
//! credentials (or none, for anonymous access), and the OAuth2 `POST` form with
//! `grant_type=password`. The session token grants, per requested scope, the requested actions
//! that the account holds: never more.

use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::response::Response;
use http_body_util::BodyExt;

use super::{Ctx, json_response, query_get, query_pairs};
use crate::auth::{Access, Action, Claims, Principal, PrincipalKind};
use crate::error::ApiError;

pub(super) async fn issue(ctx: &Ctx, req: Request) -> Result<Response, ApiError> {
    let mut params = query_pairs(req.uri());
    let mut principal = ctx.principal.clone();
    if req.method() == Method::POST {
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        let body = http_body_util::Limited::new(req.into_body(), 64 << 10)
            .collect()
            .await
            .map_err(|_| oauth_error("invalid_request", "unreadable request body"))?
            .to_bytes();
        if is_form {
            let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&body)
                .map_err(|_| oauth_error("invalid_request", "malformed form"))?;
            match query_get(&form, "grant_type") {
                Some("password") => {
                    let user = query_get(&form, "username").unwrap_or_default();
                    let password = query_get(&form, "password").unwrap_or_default();
                    principal = ctx
                        .reg
                        .inner
                        .auth
                        .check_password(user, password)
                        .ok_or_else(|| {
                            ApiError::unauthorized("authentication failed: invalid credentials")
                        })?;
                }
                Some("refresh_token") => {
                    return Err(oauth_error(
                        "unsupported_grant_type",
                        "this registry issues no refresh tokens: log in with a password or access token",
                    ));
                }
                Some(other) => {
                    return Err(oauth_error(
                        "unsupported_grant_type",
                        &format!("grant_type {other} is not supported"),
                    ));
                }
                None => {}
            }
            params.extend(form);
        }
    }
    let cfg = &ctx.reg.inner.config;
    if let Some(service) = query_get(&params, "service")
        && service != cfg.service
    {
        return Err(oauth_error(
            "invalid_request",
            &format!("this token service is {:?}, not {service:?}", cfg.service),
        ));
    }
    let access = grant(
        &principal,
        params
            .iter()
            .filter(|(k, _)| k == "scope")
            .flat_map(|(_, v)| v.split(' ')),
    );
    let now = crate::uploads::now_unix();
    let ttl = cfg.session_ttl.as_secs().max(60);
    let claims = Claims {
        aud: cfg.service.clone(),
        sub: principal.name.clone(),
        kind: principal.kind,
        tid: principal.token_id.clone(),
        iat: now,
        exp: now + ttl,
        access,
    };
    let token = ctx.reg.inner.auth.session_key().sign(&claims);
    let body = serde_json::json!({
        "token": token,
        "access_token": token,
        "expires_in": ttl,
        "issued_at": crate::events::rfc3339(std::time::SystemTime::now()),
    });
    Ok(json_response(
        StatusCode::OK,
        serde_json::to_vec(&body).unwrap_or_default(),
    ))
}

fn oauth_error(code: &str, description: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        crate::ErrorCode::Unsupported,
        description.to_string(),
    )
    .with_detail(serde_json::json!({ "error": code }))
}

/// Intersects requested scopes with what the principal's account holds.
fn grant<'a>(p: &Principal, scopes: impl Iterator<Item = &'a str>) -> Vec<Access> {
    let mut out: Vec<Access> = Vec::new();
    for scope in scopes.filter(|s| !s.is_empty()) {
        let Some((kind, rest)) = scope.split_once(':') else {
            continue;
        };
        let Some((name, actions)) = rest.rsplit_once(':') else {
            continue;
        };
        match kind {
            "repository" => {
                if crate::names::valid_repository(name).is_err() {
                    continue;
                }
                let mut granted: Vec<String> = Vec::new();
                for a in actions.split(',') {
                    let wanted: Vec<Action> = if a == "*" {
                        vec![Action::Pull, Action::Push, Action::Delete]
                    } else {
                        Action::parse(a).into_iter().collect()
                    };
                    for w in wanted {
                        if p.account_allows(name, w) && !granted.iter().any(|g| g == w.as_str()) {
                            granted.push(w.as_str().to_string());
                        }
                    }
                }
                match out
                    .iter_mut()
                    .find(|e| e.kind == "repository" && e.name == name)
                {
                    Some(e) => {
                        for g in granted {
                            if !e.actions.contains(&g) {
                                e.actions.push(g);
                            }
                        }
                    }
                    None => out.push(Access {
                        kind: "repository".into(),
                        name: name.into(),
                        actions: granted,
                    }),
                }
            }
            "registry" if name == "catalog" => {
                let allowed = !p.grants.is_empty() || p.kind != PrincipalKind::Anonymous;
                if allowed && !out.iter().any(|e| e.kind == "registry") {
                    out.push(Access {
                        kind: "registry".into(),
                        name: "catalog".into(),
                        actions: vec!["*".into()],
                    });
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Grant;

    #[test]
    fn grants_are_the_intersection_of_request_and_account() {
        let p = Principal {
            kind: PrincipalKind::Token,
            name: "ci".into(),
            grants: vec![Grant {
                repositories: "acme/app".into(),
                actions: vec![Action::Pull, Action::Push],
            }],
            scope: None,
            token_id: Some("t".into()),
        };
        let a = grant(
            &p,
            [
                "repository:acme/app:pull,push,delete",
                "repository:acme/other:pull",
                "bogus",
            ]
            .into_iter(),
        );
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].actions, vec!["pull".to_string(), "push".to_string()]);
        assert!(a[1].actions.is_empty());
    }
}
