//! Access control: who is asking (a [`Principal`]) and what they may do.
//!
//! - Users have argon2 password hashes and log in with Basic auth (or through the token
//!   service).
//! - Access tokens (robot accounts) are random secrets `ddk_<id>_<secret>`, restricted to
//!   repository patterns and actions, with an expiry, and revocable. They work as the password
//!   of Basic auth (so `docker login -p <token>`) and as a Bearer token.
//! - The token service (`/v2/token`, Docker's token auth) issues short-lived session tokens
//!   `ddt.<claims>.<hmac>` signed with a key only this registry knows. A session token carries the
//!   scopes it was granted; each use re-checks the account behind it, so revoking a token or
//!   removing a user takes effect at once.
//!
//! A request is allowed when the principal's grants allow it *and* (for session tokens) the
//! token's scope contains it: nothing can act outside its scope.

mod session;
mod store;

use serde::{Deserialize, Serialize};

pub use session::{Access, Claims, SessionKey};
pub use store::{AuthStore, TokenInfo, UserInfo};

/// What can be done to a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Pull,
    Push,
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "pull" => Some(Action::Pull),
            "push" => Some(Action::Push),
            "delete" => Some(Action::Delete),
            _ => None,
        }
    }

    /// Parses `pull,push` (or `*` for all three).
    pub fn parse_list(s: &str) -> Result<Vec<Action>, String> {
        if s.trim() == "*" {
            return Ok(vec![Action::Pull, Action::Push, Action::Delete]);
        }
        let mut out = Vec::new();
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            let a = Action::parse(part)
                .ok_or_else(|| format!("unknown action {part:?}: expected pull, push or delete"))?;
            if !out.contains(&a) {
                out.push(a);
            }
        }
        if out.is_empty() {
            return Err("no actions given: expected pull, push and/or delete".into());
        }
        out.sort();
        Ok(out)
    }
}

/// Permission to do `actions` on repositories matching `repositories` (see
/// [`crate::names::pattern_matches`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub repositories: String,
    pub actions: Vec<Action>,
}

impl Grant {
    pub fn everything() -> Self {
        Self {
            repositories: "**".into(),
            actions: vec![Action::Pull, Action::Push, Action::Delete],
        }
    }

    pub fn allows(&self, repo: &str, action: Action) -> bool {
        self.actions.contains(&action) && crate::names::pattern_matches(&self.repositories, repo)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrincipalKind {
    Anonymous,
    User,
    Token,
}

/// Who a request acts for, and what it may do.
#[derive(Debug, Clone)]
pub struct Principal {
    pub kind: PrincipalKind,
    /// User name, token name, or `anonymous`.
    pub name: String,
    pub grants: Vec<Grant>,
    /// Set for requests made with a session token: the scopes it carries.
    pub scope: Option<Vec<Access>>,
    /// The access token id behind the principal, if any.
    pub token_id: Option<String>,
}

impl Principal {
    pub fn anonymous(grants: Vec<Grant>) -> Self {
        Self {
            kind: PrincipalKind::Anonymous,
            name: "anonymous".into(),
            grants,
            scope: None,
            token_id: None,
        }
    }

    /// Whether the account (ignoring a session token's narrower scope) may do this.
    pub fn account_allows(&self, repo: &str, action: Action) -> bool {
        self.grants.iter().any(|g| g.allows(repo, action))
    }

    pub fn allows(&self, repo: &str, action: Action) -> bool {
        self.account_allows(repo, action)
            && self.scope.as_ref().is_none_or(|s| {
                s.iter().any(|a| {
                    a.kind == "repository"
                        && a.name == repo
                        && a.actions.iter().any(|x| x == action.as_str())
                })
            })
    }

    /// Whether the catalog may be listed (its entries are filtered by `pull` anyway).
    pub fn may_list_catalog(&self) -> bool {
        match &self.scope {
            None => !self.grants.is_empty(),
            Some(s) => s
                .iter()
                .any(|a| a.kind == "registry" && a.name == "catalog"),
        }
    }

    /// The actor recorded in events.
    pub fn actor(&self) -> Option<String> {
        match self.kind {
            PrincipalKind::Anonymous => None,
            _ => Some(self.name.clone()),
        }
    }
}

/// Parses a duration such as `30d`, `12h`, `90m`, `45s`, `2w`, `1y`.
pub fn parse_duration(s: &str) -> Option<std::time::Duration> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = num.parse().ok()?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "y" => 365 * 86_400,
        _ => return None,
    };
    Some(std::time::Duration::from_secs(n.checked_mul(secs)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoped_principal_never_exceeds_its_scope() {
        let p = Principal {
            kind: PrincipalKind::Token,
            name: "ci".into(),
            grants: vec![Grant {
                repositories: "acme/app".into(),
                actions: vec![Action::Pull, Action::Push],
            }],
            scope: None,
            token_id: Some("x".into()),
        };
        assert!(p.allows("acme/app", Action::Push));
        assert!(!p.allows("acme/app", Action::Delete));
        assert!(!p.allows("acme/other", Action::Pull));
        let mut s = p.clone();
        s.scope = Some(vec![Access {
            kind: "repository".into(),
            name: "acme/app".into(),
            actions: vec!["pull".into()],
        }]);
        assert!(s.allows("acme/app", Action::Pull));
        assert!(!s.allows("acme/app", Action::Push));
        // a scope wider than the account grants nothing more
        s.scope = Some(vec![Access {
            kind: "repository".into(),
            name: "acme/other".into(),
            actions: vec!["pull".into()],
        }]);
        assert!(!s.allows("acme/other", Action::Pull));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d").unwrap().as_secs(), 30 * 86_400);
        assert_eq!(parse_duration("90m").unwrap().as_secs(), 5400);
        assert!(parse_duration("30").is_none());
        assert!(parse_duration("d").is_none());
        assert!(parse_duration("5x").is_none());
    }

    #[test]
    fn action_lists() {
        assert_eq!(
            Action::parse_list("push,pull").unwrap(),
            vec![Action::Pull, Action::Push]
        );
        assert!(Action::parse_list("pull,admin").is_err());
        assert_eq!(Action::parse_list("*").unwrap().len(), 3);
    }
}
