//! Inbound webhooks: signature checks and payload parsing for GitHub, Gitea, Forgejo, GitLab
//! (secret token, or the signed standard-webhooks form) and a generic JSON form, turning each
//! delivery into a [`Trigger`]. Pure: no database, no network.
//!
//! Order of checks (the HTTP layer keeps it): signature (401, nothing starts), then the body
//! (400 with the reason), then the delivery id (a replay starts nothing).

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::util::ct_eq;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forge {
    GitHub,
    Gitea,
    Forgejo,
    GitLab,
    Generic,
}

impl Forge {
    pub fn parse(s: &str) -> Option<Forge> {
        Some(match s {
            "github" => Forge::GitHub,
            "gitea" => Forge::Gitea,
            "forgejo" => Forge::Forgejo,
            "gitlab" => Forge::GitLab,
            "generic" => Forge::Generic,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Forge::GitHub => "github",
            Forge::Gitea => "gitea",
            Forge::Forgejo => "forgejo",
            Forge::GitLab => "gitlab",
            Forge::Generic => "generic",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookError {
    /// 401: missing or wrong signature.
    Unauthorized(String),
    /// 400: the body or headers are malformed.
    BadRequest(String),
}

/// What a delivery asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    /// `push` (branches and tags) or `pull_request`.
    pub event: String,
    pub git_ref: String,
    pub sha: String,
    pub pull_request: Option<PullRequest>,
    pub repository: Option<String>,
    pub clone_url: Option<String>,
    pub default_branch: Option<String>,
    pub actor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    pub number: u64,
    pub base: String,
    pub head: String,
    pub fork: bool,
    /// Where the head commit lives (the fork's clone URL).
    pub head_clone_url: Option<String>,
    pub action: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Trigger(Trigger),
    /// A delivery that starts nothing (a ping, a closed pull request, a deleted branch).
    Ignored(String),
}

/// A delivery's headers, lower-cased names.
pub trait Headers {
    fn get(&self, name: &str) -> Option<&str>;
}

impl Headers for axum::http::HeaderMap {
    fn get(&self, name: &str) -> Option<&str> {
        axum::http::HeaderMap::get(self, name).and_then(|v| v.to_str().ok())
    }
}

impl Headers for Vec<(String, String)> {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub fn hmac_sha256(key: &[u8], data: &[&[u8]]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    for d in data {
        mac.update(d);
    }
    mac.finalize().into_bytes().to_vec()
}

fn check_hex_sig(secret: &str, body: &[u8], given: &str, header: &str) -> Result<(), HookError> {
    let given = given.trim();
    let Ok(bytes) = hex::decode(given) else {
        return Err(HookError::Unauthorized(format!(
            "{header} is not a hex HMAC-SHA256"
        )));
    };
    let want = hmac_sha256(secret.as_bytes(), &[body]);
    if ct_eq(&bytes, &want) {
        Ok(())
    } else {
        Err(HookError::Unauthorized(format!(
            "{header} does not match the body signed with the project's webhook secret"
        )))
    }
}

/// Standard Webhooks (GitLab's signed form): `webhook-id`, `webhook-timestamp`,
/// `webhook-signature: v1,<base64>` over `id.timestamp.body`; secrets may carry `whsec_`.
fn check_standard(
    secret: &str,
    body: &[u8],
    h: &dyn Headers,
    now_s: i64,
) -> Result<String, HookError> {
    let id = h.get("webhook-id").unwrap_or_default();
    let ts = h.get("webhook-timestamp").unwrap_or_default();
    let sigs = h.get("webhook-signature").unwrap_or_default();
    let t: i64 = ts.trim().parse().map_err(|_| {
        HookError::Unauthorized("webhook-timestamp is not a Unix time in seconds".into())
    })?;
    if (now_s - t).abs() > 300 {
        return Err(HookError::Unauthorized(format!(
            "webhook-timestamp {t} is more than 5 minutes from now (a replay?)"
        )));
    }
    let key = match secret.strip_prefix("whsec_") {
        Some(b) => base64::engine::general_purpose::STANDARD
            .decode(b)
            .map_err(|_| {
                HookError::Unauthorized("the project's whsec_ secret is not base64".into())
            })?,
        None => secret.as_bytes().to_vec(),
    };
    let want = hmac_sha256(&key, &[id.as_bytes(), b".", ts.as_bytes(), b".", body]);
    for s in sigs.split(' ') {
        if let Some(b) = s.strip_prefix("v1,")
            && let Ok(given) = base64::engine::general_purpose::STANDARD.decode(b)
            && ct_eq(&given, &want)
        {
            return Ok(id.to_string());
        }
    }
    Err(HookError::Unauthorized(
        "webhook-signature has no v1 signature matching the body".into(),
    ))
}

/// Checks the signature of a delivery. Returns the delivery id (from the forge's header, or
/// the body's SHA-256 when the forge sends none).
pub fn verify(
    forge: Forge,
    secret: &str,
    headers: &dyn Headers,
    body: &[u8],
    now_s: i64,
) -> Result<String, HookError> {
    let body_id = || crate::util::sha256_hex(body);
    match forge {
        Forge::GitHub => {
            let sig = headers
                .get("x-hub-signature-256")
                .ok_or_else(|| HookError::Unauthorized("missing X-Hub-Signature-256".into()))?;
            let hex = sig.strip_prefix("sha256=").ok_or_else(|| {
                HookError::Unauthorized("X-Hub-Signature-256 must start with sha256=".into())
            })?;
            check_hex_sig(secret, body, hex, "X-Hub-Signature-256")?;
            Ok(headers
                .get("x-github-delivery")
                .map(String::from)
                .unwrap_or_else(body_id))
        }
        Forge::Gitea | Forge::Forgejo => {
            let (sig, name) = match headers.get("x-forgejo-signature") {
                Some(s) => (s, "X-Forgejo-Signature"),
                None => match headers.get("x-gitea-signature") {
                    Some(s) => (s, "X-Gitea-Signature"),
                    None => {
                        return Err(HookError::Unauthorized(
                            "missing X-Gitea-Signature (or X-Forgejo-Signature)".into(),
                        ));
                    }
                },
            };
            check_hex_sig(secret, body, sig, name)?;
            Ok(headers
                .get("x-forgejo-delivery")
                .or_else(|| headers.get("x-gitea-delivery"))
                .map(String::from)
                .unwrap_or_else(body_id))
        }
        Forge::GitLab => {
            if headers.get("webhook-signature").is_some() {
                return check_standard(secret, body, headers, now_s);
            }
            let token = headers.get("x-gitlab-token").ok_or_else(|| {
                HookError::Unauthorized("missing X-Gitlab-Token (or webhook-signature)".into())
            })?;
            if !ct_eq(token.as_bytes(), secret.as_bytes()) {
                return Err(HookError::Unauthorized(
                    "X-Gitlab-Token does not match the project's webhook secret".into(),
                ));
            }
            Ok(headers
                .get("x-gitlab-event-uuid")
                .or_else(|| headers.get("idempotency-key"))
                .or_else(|| headers.get("x-gitlab-webhook-uuid"))
                .map(String::from)
                .unwrap_or_else(body_id))
        }
        Forge::Generic => {
            if headers.get("webhook-signature").is_some() {
                return check_standard(secret, body, headers, now_s);
            }
            let sig = headers
                .get("x-drydock-signature")
                .or_else(|| headers.get("x-hub-signature-256"))
                .ok_or_else(|| {
                    HookError::Unauthorized("missing X-Drydock-Signature: sha256=<hex>".into())
                })?;
            let hex = sig.strip_prefix("sha256=").unwrap_or(sig);
            check_hex_sig(secret, body, hex, "X-Drydock-Signature")?;
            Ok(headers
                .get("x-drydock-delivery")
                .map(String::from)
                .unwrap_or_else(body_id))
        }
    }
}

fn bad(msg: impl Into<String>) -> HookError {
    HookError::BadRequest(msg.into())
}

fn s<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

fn req<'a>(v: &'a Value, path: &[&str]) -> Result<&'a str, HookError> {
    s(v, path).ok_or_else(|| bad(format!("the payload has no string at {}", path.join("."))))
}

fn is_sha(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn zero_sha(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b == b'0')
}

fn sha(v: &str, what: &str) -> Result<String, HookError> {
    if is_sha(v) {
        Ok(v.to_ascii_lowercase())
    } else {
        Err(bad(format!("{what} {v:?} is not a commit id")))
    }
}

/// The event name of a delivery, from its headers.
pub fn event_name(forge: Forge, headers: &dyn Headers) -> Option<String> {
    let h = match forge {
        Forge::GitHub => headers.get("x-github-event"),
        Forge::Gitea | Forge::Forgejo => headers
            .get("x-forgejo-event")
            .or_else(|| headers.get("x-gitea-event")),
        Forge::GitLab => headers.get("x-gitlab-event"),
        Forge::Generic => headers.get("x-drydock-event"),
    };
    h.map(String::from)
}

/// Parses a (verified) delivery.
pub fn parse(forge: Forge, headers: &dyn Headers, body: &[u8]) -> Result<Parsed, HookError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| bad(format!("the body is not JSON: {e}")))?;
    if !v.is_object() {
        return Err(bad("the body is not a JSON object"));
    }
    match forge {
        Forge::GitHub | Forge::Gitea | Forge::Forgejo => {
            let event = event_name(forge, headers).ok_or_else(|| {
                bad(match forge {
                    Forge::GitHub => "missing X-GitHub-Event",
                    _ => "missing X-Gitea-Event (or X-Forgejo-Event)",
                })
            })?;
            match event.as_str() {
                "ping" => Ok(Parsed::Ignored("ping".into())),
                "push" => github_push(&v),
                "pull_request" => github_pr(&v, forge),
                other => Ok(Parsed::Ignored(format!("event {other} starts nothing"))),
            }
        }
        Forge::GitLab => gitlab(&v, headers),
        Forge::Generic => generic(&v),
    }
}

fn repo_facts(v: &Value) -> (Option<String>, Option<String>, Option<String>) {
    let r = v.get("repository");
    (
        r.and_then(|r| s(r, &["full_name"])).map(String::from),
        r.and_then(|r| s(r, &["clone_url"])).map(String::from),
        r.and_then(|r| s(r, &["default_branch"])).map(String::from),
    )
}

fn github_push(v: &Value) -> Result<Parsed, HookError> {
    let git_ref = req(v, &["ref"])?;
    if !git_ref.starts_with("refs/heads/") && !git_ref.starts_with("refs/tags/") {
        return Err(bad(format!(
            "ref {git_ref:?} is neither refs/heads/* nor refs/tags/*"
        )));
    }
    let after = req(v, &["after"])?;
    if v.get("deleted").and_then(Value::as_bool) == Some(true) || zero_sha(after) {
        return Ok(Parsed::Ignored(format!("{git_ref} was deleted")));
    }
    let (repository, clone_url, default_branch) = repo_facts(v);
    Ok(Parsed::Trigger(Trigger {
        event: "push".into(),
        git_ref: git_ref.to_string(),
        sha: sha(after, "after")?,
        pull_request: None,
        repository,
        clone_url,
        default_branch,
        actor: s(v, &["sender", "login"])
            .or_else(|| s(v, &["pusher", "name"]))
            .or_else(|| s(v, &["pusher", "login"]))
            .map(String::from),
    }))
}

fn github_pr(v: &Value, forge: Forge) -> Result<Parsed, HookError> {
    let action = req(v, &["action"])?;
    let runs = matches!(
        action,
        "opened" | "synchronize" | "synchronized" | "reopened"
    );
    if !runs {
        return Ok(Parsed::Ignored(format!(
            "pull request action {action} starts nothing"
        )));
    }
    let pr = v
        .get("pull_request")
        .ok_or_else(|| bad("the payload has no pull_request"))?;
    let number = pr
        .get("number")
        .or_else(|| v.get("number"))
        .and_then(Value::as_u64)
        .ok_or_else(|| bad("the payload has no pull_request.number"))?;
    let head = req(pr, &["head", "ref"])?;
    let base = req(pr, &["base", "ref"])?;
    let head_sha = sha(req(pr, &["head", "sha"])?, "pull_request.head.sha")?;
    let head_repo = s(pr, &["head", "repo", "full_name"]);
    let base_repo = s(pr, &["base", "repo", "full_name"]);
    let fork = match (head_repo, base_repo) {
        (Some(h), Some(b)) => h != b,
        // The head repository was deleted: treat it as a fork (no secrets).
        (None, _) => true,
        _ => pr
            .get("head")
            .and_then(|h| h.get("repo"))
            .and_then(|r| r.get("fork"))
            .and_then(Value::as_bool)
            .unwrap_or(true),
    };
    let (repository, clone_url, default_branch) = repo_facts(v);
    let _ = forge;
    Ok(Parsed::Trigger(Trigger {
        event: "pull_request".into(),
        git_ref: format!("refs/pull/{number}/head"),
        sha: head_sha,
        pull_request: Some(PullRequest {
            number,
            base: base.to_string(),
            head: head.to_string(),
            fork,
            head_clone_url: s(pr, &["head", "repo", "clone_url"]).map(String::from),
            action: if action == "synchronized" {
                "synchronize".into()
            } else {
                action.to_string()
            },
        }),
        repository,
        clone_url,
        default_branch,
        actor: s(v, &["sender", "login"])
            .or_else(|| s(v, &["sender", "username"]))
            .map(String::from),
    }))
}

fn gitlab(v: &Value, headers: &dyn Headers) -> Result<Parsed, HookError> {
    let kind = s(v, &["object_kind"])
        .map(String::from)
        .or_else(|| {
            headers.get("x-gitlab-event").map(|e| match e {
                "Push Hook" => "push".into(),
                "Tag Push Hook" => "tag_push".into(),
                "Merge Request Hook" => "merge_request".into(),
                o => o.to_string(),
            })
        })
        .ok_or_else(|| bad("the payload has no object_kind and there is no X-Gitlab-Event"))?;
    let project = v.get("project");
    let repository = project
        .and_then(|p| s(p, &["path_with_namespace"]))
        .map(String::from);
    let clone_url = project
        .and_then(|p| s(p, &["git_http_url"]))
        .map(String::from);
    let default_branch = project
        .and_then(|p| s(p, &["default_branch"]))
        .map(String::from);
    match kind.as_str() {
        "push" | "tag_push" => {
            let git_ref = req(v, &["ref"])?;
            let after = s(v, &["checkout_sha"])
                .filter(|x| !x.is_empty())
                .or_else(|| s(v, &["after"]))
                .ok_or_else(|| bad("the payload has no checkout_sha or after"))?;
            if zero_sha(after) || v.get("checkout_sha").is_some_and(Value::is_null) {
                return Ok(Parsed::Ignored(format!("{git_ref} was deleted")));
            }
            Ok(Parsed::Trigger(Trigger {
                event: "push".into(),
                git_ref: git_ref.to_string(),
                sha: sha(after, "checkout_sha")?,
                pull_request: None,
                repository,
                clone_url,
                default_branch,
                actor: s(v, &["user_username"]).map(String::from),
            }))
        }
        "merge_request" => {
            let a = v
                .get("object_attributes")
                .ok_or_else(|| bad("the payload has no object_attributes"))?;
            let action = s(a, &["action"]).unwrap_or("");
            let action = match action {
                "open" => "opened",
                "reopen" => "reopened",
                // An update without new commits (title, labels) has no oldrev.
                "update" if a.get("oldrev").is_some_and(|o| o.is_string()) => "synchronize",
                other => {
                    return Ok(Parsed::Ignored(format!(
                        "merge request action {other:?} starts nothing"
                    )));
                }
            };
            let number = a
                .get("iid")
                .and_then(Value::as_u64)
                .ok_or_else(|| bad("the payload has no object_attributes.iid"))?;
            let head_sha = sha(req(a, &["last_commit", "id"])?, "last_commit.id")?;
            let fork = match (
                a.get("source_project_id").and_then(Value::as_i64),
                a.get("target_project_id").and_then(Value::as_i64),
            ) {
                (Some(x), Some(y)) => x != y,
                _ => true,
            };
            Ok(Parsed::Trigger(Trigger {
                event: "pull_request".into(),
                git_ref: format!("refs/merge-requests/{number}/head"),
                sha: head_sha,
                pull_request: Some(PullRequest {
                    number,
                    base: req(a, &["target_branch"])?.to_string(),
                    head: req(a, &["source_branch"])?.to_string(),
                    fork,
                    head_clone_url: s(a, &["source", "git_http_url"]).map(String::from),
                    action: action.to_string(),
                }),
                repository,
                clone_url,
                default_branch,
                actor: s(v, &["user", "username"]).map(String::from),
            }))
        }
        other => Ok(Parsed::Ignored(format!(
            "GitLab event {other} starts nothing"
        ))),
    }
}

/// `{"event": "push", "ref": "refs/heads/main", "sha": "<40 hex>", "actor": "ann"}` or
/// `{"event": "pull_request", "sha": ..., "pull_request": {"number": 7, "base": "main",
/// "head": "feature", "fork": false}}`.
fn generic(v: &Value) -> Result<Parsed, HookError> {
    let event = req(v, &["event"])?;
    let sha_v = sha(req(v, &["sha"])?, "sha")?;
    match event {
        "push" => {
            let git_ref = req(v, &["ref"])?;
            if !git_ref.starts_with("refs/heads/") && !git_ref.starts_with("refs/tags/") {
                return Err(bad(format!(
                    "ref {git_ref:?} is neither refs/heads/* nor refs/tags/*"
                )));
            }
            Ok(Parsed::Trigger(Trigger {
                event: "push".into(),
                git_ref: git_ref.into(),
                sha: sha_v,
                pull_request: None,
                repository: s(v, &["repository"]).map(String::from),
                clone_url: None,
                default_branch: None,
                actor: s(v, &["actor"]).map(String::from),
            }))
        }
        "pull_request" => {
            let pr = v
                .get("pull_request")
                .ok_or_else(|| bad("the payload has no pull_request"))?;
            let number = pr
                .get("number")
                .and_then(Value::as_u64)
                .ok_or_else(|| bad("the payload has no pull_request.number"))?;
            Ok(Parsed::Trigger(Trigger {
                event: "pull_request".into(),
                git_ref: format!("refs/pull/{number}/head"),
                sha: sha_v,
                pull_request: Some(PullRequest {
                    number,
                    base: req(pr, &["base"])?.into(),
                    head: req(pr, &["head"])?.into(),
                    fork: pr.get("fork").and_then(Value::as_bool).unwrap_or(false),
                    head_clone_url: s(pr, &["clone_url"]).map(String::from),
                    action: s(pr, &["action"]).unwrap_or("opened").into(),
                }),
                repository: s(v, &["repository"]).map(String::from),
                clone_url: None,
                default_branch: None,
                actor: s(v, &["actor"]).map(String::from),
            }))
        }
        other => Err(bad(format!("event {other:?} is not push or pull_request"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn github_signature() {
        let body = br#"{"zen":"x"}"#;
        let sig = format!("sha256={}", hex::encode(hmac_sha256(b"s3cret", &[body])));
        let ok = h(&[("X-Hub-Signature-256", &sig), ("X-GitHub-Delivery", "d-1")]);
        assert_eq!(
            verify(Forge::GitHub, "s3cret", &ok, body, 0).unwrap(),
            "d-1"
        );
        assert!(matches!(
            verify(Forge::GitHub, "other", &ok, body, 0),
            Err(HookError::Unauthorized(_))
        ));
        assert!(matches!(
            verify(Forge::GitHub, "s3cret", &h(&[]), body, 0),
            Err(HookError::Unauthorized(_))
        ));
    }

    #[test]
    fn standard_webhooks_signature() {
        let body = br#"{"object_kind":"push"}"#;
        let key = b"0123456789abcdef";
        let secret = format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(key)
        );
        let sig = hmac_sha256(key, &[b"msg_1.1000.", body]);
        let sig = format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(sig)
        );
        let hs = h(&[
            ("webhook-id", "msg_1"),
            ("webhook-timestamp", "1000"),
            ("webhook-signature", &sig),
        ]);
        assert_eq!(
            verify(Forge::GitLab, &secret, &hs, body, 1100).unwrap(),
            "msg_1"
        );
        assert!(verify(Forge::GitLab, &secret, &hs, body, 5000).is_err());
        assert!(verify(Forge::GitLab, "whsec_AAAA", &hs, body, 1100).is_err());
    }

    #[test]
    fn malformed_bodies_say_why() {
        let hs = h(&[("x-github-event", "push")]);
        let e = parse(Forge::GitHub, &hs, b"{not json").unwrap_err();
        assert!(matches!(e, HookError::BadRequest(m) if m.contains("not JSON")));
        let e = parse(
            Forge::GitHub,
            &hs,
            br#"{"ref":"refs/heads/main","after":"xyz"}"#,
        )
        .unwrap_err();
        assert!(matches!(e, HookError::BadRequest(m) if m.contains("not a commit id")));
    }

    #[test]
    fn pull_request_fork_detection() {
        let sha = "a".repeat(40);
        let body = serde_json::json!({
            "action": "opened", "number": 3,
            "pull_request": {"number": 3,
                "head": {"ref": "feat", "sha": sha, "repo": {"full_name": "eve/app", "clone_url": "x"}},
                "base": {"ref": "main", "sha": sha, "repo": {"full_name": "acme/app"}}},
            "repository": {"full_name": "acme/app"}, "sender": {"login": "eve"}
        });
        let hs = h(&[("x-github-event", "pull_request")]);
        let Parsed::Trigger(t) = parse(Forge::GitHub, &hs, body.to_string().as_bytes()).unwrap()
        else {
            panic!()
        };
        let pr = t.pull_request.unwrap();
        assert!(pr.fork);
        assert_eq!(pr.number, 3);
        assert_eq!(t.sha, sha);
    }
}
