//! Users and access tokens, in `<storage>/auth/{users,tokens}.json`, plus the session signing key.
//!
//! The CLI (`drydock registry user/token ...`) edits these files while a registry may be
//! running: edits take a file lock, re-read, change, and replace the file atomically; the server
//! notices a changed file (size, time, inode) on the next request and reloads it.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::{Deserialize, Serialize};

use super::{Grant, Principal, PrincipalKind, SessionKey};
use crate::error::{IoContext, StorageError};
use crate::uploads::now_unix;

const TOKEN_PREFIX: &str = "ddk_";
/// How long a successful password check is remembered (argon2 is slow on purpose).
const VERIFIED_TTL: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct UserRecord {
    name: String,
    password: String,
    grants: Vec<Grant>,
    created: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TokenRecord {
    id: String,
    name: String,
    /// sha256 of the secret part, hex. Secrets are 192 random bits: a fast hash is enough.
    secret_sha256: String,
    grants: Vec<Grant>,
    created: u64,
    #[serde(default)]
    expires: Option<u64>,
    #[serde(default)]
    revoked: Option<u64>,
}

/// A user as listed (no password hash).
#[derive(Debug, Clone, Serialize)]
pub struct UserInfo {
    pub name: String,
    pub grants: Vec<Grant>,
    pub created: u64,
}

/// An access token as listed (no secret).
#[derive(Debug, Clone, Serialize)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub grants: Vec<Grant>,
    pub created: u64,
    pub expires: Option<u64>,
    pub revoked: Option<u64>,
}

impl From<&TokenRecord> for TokenInfo {
    fn from(t: &TokenRecord) -> Self {
        Self {
            id: t.id.clone(),
            name: t.name.clone(),
            grants: t.grants.clone(),
            created: t.created,
            expires: t.expires,
            revoked: t.revoked,
        }
    }
}

/// Why an account change was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("user {0:?} already exists (remove it first to change its password)")]
    UserExists(String),
    #[error("no user named {0:?}")]
    NoSuchUser(String),
    #[error("no access token with id or name {0:?}")]
    NoSuchToken(String),
    #[error("invalid name {0:?}: use 1 to 64 characters of [A-Za-z0-9._-]")]
    BadName(String),
    #[error(
        "invalid repository pattern {0:?}: use a repository name, `*` for one path level or `**` for any depth"
    )]
    BadPattern(String),
    #[error("the password is empty")]
    EmptyPassword,
    #[error("hashing the password: {0}")]
    Hash(String),
}

type Stamp = (i64, i64, u64, u64);

#[derive(Debug)]
struct Cached<T> {
    path: PathBuf,
    state: RwLock<(Option<Stamp>, Arc<Vec<T>>)>,
}

impl<T: serde::de::DeserializeOwned> Cached<T> {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            state: RwLock::new((None, Arc::new(Vec::new()))),
        }
    }

    fn stamp(&self) -> Option<Stamp> {
        fs::metadata(&self.path)
            .ok()
            .map(|m| (m.mtime(), m.mtime_nsec(), m.len(), m.ino()))
    }

    fn get(&self) -> Arc<Vec<T>> {
        let stamp = self.stamp();
        {
            let s = self.state.read().unwrap_or_else(|e| e.into_inner());
            if s.0 == stamp {
                return s.1.clone();
            }
        }
        let fresh: Vec<T> = match fs::read(&self.path) {
            Ok(b) => match serde_json::from_slice(&b) {
                Ok(v) => v,
                Err(e) => {
                    // Refuse everything rather than guess: a corrupt account file locks the
                    // registry down instead of opening it.
                    tracing::error!(path = %self.path.display(), error = %e, "unreadable account file");
                    Vec::new()
                }
            },
            Err(_) => Vec::new(),
        };
        let fresh = Arc::new(fresh);
        let mut s = self.state.write().unwrap_or_else(|e| e.into_inner());
        *s = (stamp, fresh.clone());
        fresh
    }
}

#[derive(Debug)]
pub struct AuthStore {
    dir: PathBuf,
    users: Cached<UserRecord>,
    tokens: Cached<TokenRecord>,
    key: SessionKey,
    verified: Mutex<HashMap<[u8; 32], (String, Instant)>>,
}

impl AuthStore {
    /// Opens `<storage>/auth`, creating the signing key on first use.
    pub fn open(storage: &Path) -> Result<Self, StorageError> {
        let dir = storage.join("auth");
        fs::create_dir_all(&dir).ctx("create directory", &dir)?;
        let key_path = dir.join("signing.key");
        let secret = match fs::read_to_string(&key_path) {
            Ok(s) => hex::decode(s.trim()).map_err(|e| StorageError::Corrupt {
                path: key_path.clone(),
                reason: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let secret = crate::random_bytes(32);
                let tmp = dir.join(format!(".signing.key.{}", crate::random_hex(4)));
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&tmp)
                    .ctx("create", &tmp)?;
                std::io::Write::write_all(&mut f, hex::encode(&secret).as_bytes())
                    .ctx("write", &tmp)?;
                f.sync_all().ctx("sync", &tmp)?;
                // Two processes starting at once: the first key wins, the other reads it.
                match fs::hard_link(&tmp, &key_path) {
                    Ok(()) => {
                        let _ = fs::remove_file(&tmp);
                        secret
                    }
                    Err(_) => {
                        let _ = fs::remove_file(&tmp);
                        let s = fs::read_to_string(&key_path).ctx("read", &key_path)?;
                        hex::decode(s.trim()).map_err(|e| StorageError::Corrupt {
                            path: key_path.clone(),
                            reason: e.to_string(),
                        })?
                    }
                }
            }
            Err(e) => return Err(e).ctx("read", &key_path),
        };
        Ok(Self {
            users: Cached::new(dir.join("users.json")),
            tokens: Cached::new(dir.join("tokens.json")),
            dir,
            key: SessionKey::new(&secret),
            verified: Mutex::new(HashMap::new()),
        })
    }

    pub fn session_key(&self) -> &SessionKey {
        &self.key
    }

    /// Whether any user or (unrevoked) access token exists: then anonymous clients may at most
    /// read.
    pub fn has_accounts(&self) -> bool {
        !self.users.get().is_empty() || self.tokens.get().iter().any(|t| t.revoked.is_none())
    }

    /// Checks a user's password (Basic auth or the token service).
    pub fn check_password(&self, name: &str, password: &str) -> Option<Principal> {
        if password.starts_with(TOKEN_PREFIX) {
            return self.check_token(password);
        }
        let users = self.users.get();
        let user = users.iter().find(|u| u.name == name)?;
        let cache_key = {
            let mut h = ring::digest::Context::new(&ring::digest::SHA256);
            h.update(name.as_bytes());
            h.update(&[0]);
            h.update(password.as_bytes());
            h.update(&[0]);
            h.update(user.password.as_bytes());
            let mut k = [0u8; 32];
            k.copy_from_slice(h.finish().as_ref());
            k
        };
        let hit = {
            let mut v = self.verified.lock().unwrap_or_else(|e| e.into_inner());
            v.retain(|_, (_, t)| t.elapsed() < VERIFIED_TTL);
            v.contains_key(&cache_key)
        };
        if !hit {
            let parsed = PasswordHash::new(&user.password).ok()?;
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .ok()?;
            self.verified
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(cache_key, (name.to_string(), Instant::now()));
        }
        Some(Principal {
            kind: PrincipalKind::User,
            name: user.name.clone(),
            grants: user.grants.clone(),
            scope: None,
            token_id: None,
        })
    }

    /// Checks an access token `ddk_<id>_<secret>`.
    pub fn check_token(&self, token: &str) -> Option<Principal> {
        let rest = token.strip_prefix(TOKEN_PREFIX)?;
        let (id, secret) = rest.split_once('_')?;
        let tokens = self.tokens.get();
        let t = tokens.iter().find(|t| t.id == id)?;
        let digest = hex::encode(ring::digest::digest(
            &ring::digest::SHA256,
            secret.as_bytes(),
        ));
        if !constant_time_eq(digest.as_bytes(), t.secret_sha256.as_bytes()) || !token_usable(t) {
            return None;
        }
        Some(Principal {
            kind: PrincipalKind::Token,
            name: t.name.clone(),
            grants: t.grants.clone(),
            scope: None,
            token_id: Some(t.id.clone()),
        })
    }

    /// Re-resolves the account behind a session token: `None` when it is gone or revoked.
    pub fn principal_for(
        &self,
        kind: PrincipalKind,
        name: &str,
        token_id: Option<&str>,
    ) -> Option<Principal> {
        match kind {
            PrincipalKind::User => {
                let users = self.users.get();
                let u = users.iter().find(|u| u.name == name)?;
                Some(Principal {
                    kind,
                    name: u.name.clone(),
                    grants: u.grants.clone(),
                    scope: None,
                    token_id: None,
                })
            }
            PrincipalKind::Token => {
                let tokens = self.tokens.get();
                let t = tokens.iter().find(|t| Some(t.id.as_str()) == token_id)?;
                token_usable(t).then(|| Principal {
                    kind,
                    name: t.name.clone(),
                    grants: t.grants.clone(),
                    scope: None,
                    token_id: Some(t.id.clone()),
                })
            }
            PrincipalKind::Anonymous => None,
        }
    }

    fn lock(&self) -> Result<fs::File, StorageError> {
        let path = self.dir.join(".lock");
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .ctx("open lock", &path)?;
        f.lock().ctx("lock", &path)?;
        Ok(f)
    }

    fn read_all<T: serde::de::DeserializeOwned>(&self, file: &str) -> Result<Vec<T>, StorageError> {
        let path = self.dir.join(file);
        match fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| StorageError::Corrupt {
                path,
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e).ctx("read", &path),
        }
    }

    fn write_all<T: Serialize>(&self, file: &str, items: &[T]) -> Result<(), StorageError> {
        let path = self.dir.join(file);
        crate::storage::write_atomic(
            &path,
            &serde_json::to_vec_pretty(items).expect("serialises"),
            true,
        )?;
        let _ = fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600));
        Ok(())
    }

    pub fn add_user(
        &self,
        name: &str,
        password: &str,
        grants: Vec<Grant>,
    ) -> Result<(), AuthError> {
        check_name(name)?;
        check_grants(&grants)?;
        if password.is_empty() {
            return Err(AuthError::EmptyPassword);
        }
        let salt = SaltString::encode_b64(&crate::random_bytes(16))
            .map_err(|e| AuthError::Hash(e.to_string()))?;
        let hash = argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| AuthError::Hash(e.to_string()))?
            .to_string();
        let _lock = self.lock()?;
        let mut users: Vec<UserRecord> = self.read_all("users.json")?;
        if users.iter().any(|u| u.name == name) {
            return Err(AuthError::UserExists(name.to_string()));
        }
        users.push(UserRecord {
            name: name.to_string(),
            password: hash,
            grants,
            created: now_unix(),
        });
        users.sort_by(|a, b| a.name.cmp(&b.name));
        self.write_all("users.json", &users)?;
        Ok(())
    }

    pub fn remove_user(&self, name: &str) -> Result<(), AuthError> {
        let _lock = self.lock()?;
        let mut users: Vec<UserRecord> = self.read_all("users.json")?;
        let before = users.len();
        users.retain(|u| u.name != name);
        if users.len() == before {
            return Err(AuthError::NoSuchUser(name.to_string()));
        }
        self.write_all("users.json", &users)?;
        Ok(())
    }

    pub fn users(&self) -> Result<Vec<UserInfo>, StorageError> {
        let users: Vec<UserRecord> = self.read_all("users.json")?;
        Ok(users
            .iter()
            .map(|u| UserInfo {
                name: u.name.clone(),
                grants: u.grants.clone(),
                created: u.created,
            })
            .collect())
    }

    /// Creates an access token; returns it with the secret, which is shown once and never stored.
    pub fn create_token(
        &self,
        name: &str,
        grants: Vec<Grant>,
        expires_in: Option<Duration>,
    ) -> Result<(TokenInfo, String), AuthError> {
        check_name(name)?;
        check_grants(&grants)?;
        let id = crate::random_hex(6);
        let secret = crate::random_hex(24);
        let now = now_unix();
        let record = TokenRecord {
            id: id.clone(),
            name: name.to_string(),
            secret_sha256: hex::encode(ring::digest::digest(
                &ring::digest::SHA256,
                secret.as_bytes(),
            )),
            grants,
            created: now,
            expires: expires_in.map(|d| now.saturating_add(d.as_secs())),
            revoked: None,
        };
        let _lock = self.lock()?;
        let mut tokens: Vec<TokenRecord> = self.read_all("tokens.json")?;
        tokens.push(record.clone());
        self.write_all("tokens.json", &tokens)?;
        Ok((
            TokenInfo::from(&record),
            format!("{TOKEN_PREFIX}{id}_{secret}"),
        ))
    }

    pub fn tokens(&self) -> Result<Vec<TokenInfo>, StorageError> {
        let tokens: Vec<TokenRecord> = self.read_all("tokens.json")?;
        Ok(tokens.iter().map(TokenInfo::from).collect())
    }

    /// Revokes tokens by id, or every token with that name. Returns how many were revoked.
    pub fn revoke_token(&self, id_or_name: &str) -> Result<usize, AuthError> {
        let _lock = self.lock()?;
        let mut tokens: Vec<TokenRecord> = self.read_all("tokens.json")?;
        let now = now_unix();
        let mut n = 0;
        for t in tokens
            .iter_mut()
            .filter(|t| t.id == id_or_name || t.name == id_or_name)
        {
            if t.revoked.is_none() {
                t.revoked = Some(now);
                n += 1;
            }
        }
        if n == 0
            && !tokens
                .iter()
                .any(|t| t.id == id_or_name || t.name == id_or_name)
        {
            return Err(AuthError::NoSuchToken(id_or_name.to_string()));
        }
        self.write_all("tokens.json", &tokens)?;
        Ok(n)
    }
}

fn token_usable(t: &TokenRecord) -> bool {
    t.revoked.is_none() && t.expires.is_none_or(|e| e > now_unix())
}

fn check_name(name: &str) -> Result<(), AuthError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(AuthError::BadName(name.to_string()))
    }
}

fn check_grants(grants: &[Grant]) -> Result<(), AuthError> {
    for g in grants {
        if !crate::names::valid_pattern(&g.repositories) {
            return Err(AuthError::BadPattern(g.repositories.clone()));
        }
    }
    Ok(())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Action;

    #[test]
    fn users_tokens_and_revocation() {
        let dir = tempfile::tempdir().unwrap();
        let s = AuthStore::open(dir.path()).unwrap();
        assert!(!s.has_accounts());
        s.add_user("alice", "s3cret", vec![Grant::everything()])
            .unwrap();
        assert!(s.has_accounts());
        assert!(matches!(
            s.add_user("alice", "x", vec![]),
            Err(AuthError::UserExists(_))
        ));
        assert!(s.check_password("alice", "s3cret").is_some());
        assert!(s.check_password("alice", "s3cret").is_some(), "cached");
        assert!(s.check_password("alice", "wrong").is_none());
        assert!(s.check_password("bob", "s3cret").is_none());

        let grant = Grant {
            repositories: "acme/app".into(),
            actions: vec![Action::Pull],
        };
        let (info, secret) = s
            .create_token("ci", vec![grant], Some(Duration::from_secs(3600)))
            .unwrap();
        let p = s.check_token(&secret).unwrap();
        assert!(p.allows("acme/app", Action::Pull));
        assert!(!p.allows("acme/app", Action::Push));
        assert!(!p.allows("acme/other", Action::Pull));
        assert!(
            s.check_password("whoever", &secret).is_some(),
            "token as a Basic password"
        );
        let mut wrong = secret.clone();
        wrong.pop();
        wrong.push('x');
        assert!(s.check_token(&wrong).is_none());
        // a second handle (another process) sees the revocation at once
        let other = AuthStore::open(dir.path()).unwrap();
        assert_eq!(other.revoke_token(&info.id).unwrap(), 1);
        assert!(s.check_token(&secret).is_none());
        assert!(
            s.principal_for(PrincipalKind::Token, "ci", Some(&info.id))
                .is_none()
        );
    }

    #[test]
    fn expired_tokens_do_not_work() {
        let dir = tempfile::tempdir().unwrap();
        let s = AuthStore::open(dir.path()).unwrap();
        let (_, secret) = s
            .create_token("old", vec![Grant::everything()], Some(Duration::ZERO))
            .unwrap();
        assert!(s.check_token(&secret).is_none());
    }
}
