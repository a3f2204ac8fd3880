//! Who is asking: users with argon2 passwords, API tokens with scopes (stored as SHA-256
//! hashes; shown once), and browser sessions (a cookie holding a random token, stored hashed).
//!
//! Scopes: `read` (everything the UI shows), `run` (trigger, cancel, re-run, approve),
//! `admin` (projects, secrets, chains, users, tokens). An admin user has all three; other
//! users have `read` and `run`; a token has the scopes it was given, within its user's.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::http::HeaderMap;
use base64::Engine as _;
use drydock_db::{Db, DbError, User};

use crate::util::{now_ms, random_bytes, random_hex, sha256_hex};

pub const SCOPES: &[&str] = &["read", "run", "admin"];
pub const SESSION_COOKIE: &str = "drydock_session";
const SESSION_TTL_MS: i64 = 7 * 24 * 3600 * 1000;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: String,
    pub scopes: Vec<String>,
    /// Came with a session cookie (forms need the CSRF check).
    pub via_session: bool,
}

impl Principal {
    pub fn has(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope || s == "admin")
    }
}

pub fn hash_password(password: &str) -> String {
    let salt = SaltString::encode_b64(&random_bytes(16)).expect("16 bytes make a salt");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 hashing with default parameters works")
        .to_string()
}

pub fn verify_password(hash: &str, password: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(h) => Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
        Err(_) => false,
    }
}

pub fn user_scopes(u: &User) -> Vec<String> {
    if u.admin {
        SCOPES.iter().map(|s| s.to_string()).collect()
    } else {
        vec!["read".into(), "run".into()]
    }
}

/// Checks a scope list (space or comma separated); returns it normalised.
pub fn parse_scopes(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for p in s.split([' ', ',']).filter(|p| !p.is_empty()) {
        if !SCOPES.contains(&p) {
            return Err(format!("unknown scope {p:?} (read, run, admin)"));
        }
        if !out.iter().any(|x| x == p) {
            out.push(p.to_string());
        }
    }
    if out.is_empty() {
        return Err("a token needs at least one scope (read, run, admin)".into());
    }
    Ok(out)
}

/// Creates a token for `user`; returns its id and the secret value (shown once).
pub fn create_token(
    db: &Db,
    user: &User,
    name: &str,
    scopes: &[String],
) -> Result<Result<(i64, String), String>, DbError> {
    let allowed = user_scopes(user);
    if let Some(s) = scopes.iter().find(|s| !allowed.contains(s)) {
        return Ok(Err(format!("user {} cannot grant scope {s}", user.name)));
    }
    let value = format!("ddk_{}", random_hex(20));
    let id = db.create_token(
        user.id,
        name,
        &sha256_hex(value.as_bytes()),
        &scopes.join(" "),
        now_ms(),
    )?;
    Ok(Ok((id, value)))
}

/// Starts a browser session; returns the cookie value.
pub fn create_session(db: &Db, user: &User) -> Result<String, DbError> {
    let value = random_hex(24);
    db.create_session(
        &sha256_hex(value.as_bytes()),
        user.id,
        now_ms() + SESSION_TTL_MS,
    )?;
    Ok(value)
}

pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    for v in headers.get_all(axum::http::header::COOKIE) {
        let Ok(s) = v.to_str() else { continue };
        for part in s.split(';') {
            if let Some((k, v)) = part.trim().split_once('=')
                && k == SESSION_COOKIE
            {
                return Some(v.to_string());
            }
        }
    }
    None
}

/// The caller of a request, if any credentials check out.
pub fn authenticate(db: &Db, headers: &HeaderMap) -> Result<Option<Principal>, DbError> {
    if let Some(h) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if let Some(token) = h.strip_prefix("Bearer ") {
            let hash = sha256_hex(token.trim().as_bytes());
            return Ok(db.token_by_hash(&hash, now_ms())?.map(|(t, u)| {
                let allowed = user_scopes(&u);
                Principal {
                    user: u.name,
                    scopes: t
                        .scopes
                        .split(' ')
                        .filter(|s| allowed.iter().any(|a| a == s))
                        .map(String::from)
                        .collect(),
                    via_session: false,
                }
            }));
        }
        if let Some(b) = h.strip_prefix("Basic ") {
            let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b.trim()) else {
                return Ok(None);
            };
            let raw = String::from_utf8_lossy(&raw).into_owned();
            let Some((name, password)) = raw.split_once(':') else {
                return Ok(None);
            };
            return Ok(db
                .user(name)?
                .filter(|u| verify_password(&u.password_hash, password))
                .map(|u| Principal {
                    scopes: user_scopes(&u),
                    user: u.name,
                    via_session: false,
                }));
        }
        return Ok(None);
    }
    if let Some(c) = session_cookie(headers) {
        let hash = sha256_hex(c.as_bytes());
        return Ok(db.session_user(&hash, now_ms())?.map(|u| Principal {
            scopes: user_scopes(&u),
            user: u.name,
            via_session: true,
        }));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_tokens() {
        let h = hash_password("pw");
        assert!(verify_password(&h, "pw"));
        assert!(!verify_password(&h, "wrong"));
        let db = Db::in_memory().unwrap();
        db.create_user("ann", &h, false, 1).unwrap().unwrap();
        let ann = db.user("ann").unwrap().unwrap();
        assert!(
            create_token(&db, &ann, "t", &["admin".into()])
                .unwrap()
                .is_err()
        );
        let (_, value) = create_token(&db, &ann, "t", &["read".into()])
            .unwrap()
            .unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("authorization", format!("Bearer {value}").parse().unwrap());
        let p = authenticate(&db, &headers).unwrap().unwrap();
        assert_eq!(p.user, "ann");
        assert!(p.has("read") && !p.has("run"));
        headers.insert("authorization", "Bearer nope".parse().unwrap());
        assert!(authenticate(&db, &headers).unwrap().is_none());
        assert!(parse_scopes("read,bogus").is_err());
    }
}
