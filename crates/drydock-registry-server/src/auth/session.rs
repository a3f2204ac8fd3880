//! Session tokens issued by the token service: `ddt.<base64url claims>.<base64url HMAC-SHA256>`.
//! Only this registry validates them, so a symmetric key is enough.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::PrincipalKind;

/// One granted scope, as in Docker's token spec (`type`, `name`, `actions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Audience: the service name the token was issued for.
    pub aud: String,
    pub sub: String,
    pub kind: PrincipalKind,
    /// The access token the session was obtained with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<String>,
    pub iat: u64,
    pub exp: u64,
    pub access: Vec<Access>,
}

/// The signing key.
pub struct SessionKey {
    key: ring::hmac::Key,
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

pub const PREFIX: &str = "ddt.";

impl SessionKey {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret),
        }
    }

    pub fn sign(&self, claims: &Claims) -> String {
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialise"));
        let tag = ring::hmac::sign(&self.key, body.as_bytes());
        format!("{PREFIX}{body}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// Checks the signature, audience and expiry.
    pub fn verify(&self, token: &str, audience: &str, now: u64) -> Option<Claims> {
        let rest = token.strip_prefix(PREFIX)?;
        let (body, sig) = rest.split_once('.')?;
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        ring::hmac::verify(&self.key, body.as_bytes(), &sig).ok()?;
        let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()?;
        (claims.aud == audience && claims.exp > now).then_some(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> Claims {
        Claims {
            aud: "svc".into(),
            sub: "alice".into(),
            kind: PrincipalKind::User,
            tid: None,
            iat: 0,
            exp,
            access: vec![Access {
                kind: "repository".into(),
                name: "a".into(),
                actions: vec!["pull".into()],
            }],
        }
    }

    #[test]
    fn signed_tokens_verify_and_tampering_fails() {
        let k = SessionKey::new(b"0123456789abcdef0123456789abcdef");
        let t = k.sign(&claims(100));
        assert_eq!(k.verify(&t, "svc", 50), Some(claims(100)));
        assert!(k.verify(&t, "svc", 100).is_none(), "expired");
        assert!(k.verify(&t, "other", 50).is_none(), "audience");
        let other = SessionKey::new(b"another key, another key, anoth");
        assert!(other.verify(&t, "svc", 50).is_none());
        // swap in wider claims with the old signature
        let mut wide = claims(100);
        wide.access[0].actions.push("push".into());
        let forged_body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&wide).unwrap());
        let sig = t.rsplit_once('.').unwrap().1;
        assert!(
            k.verify(&format!("{PREFIX}{forged_body}.{sig}"), "svc", 50)
                .is_none()
        );
        assert!(k.verify("ddt.garbage", "svc", 0).is_none());
    }
}
