//! Where registry credentials come from, and `login`/`logout`'s writes.
//!
//! Lookup order for a registry (the name as written in references: `docker.io`, `ghcr.io`,
//! `localhost:5000`):
//! 1. credentials given by the caller ([`Credentials::insert`]; the pipeline passes its secrets);
//! 2. environment variables for CI: `DRYDOCK_REGISTRY_USER` and `DRYDOCK_REGISTRY_PASSWORD`,
//!    restricted to one registry when `DRYDOCK_REGISTRY` is set (else used for every registry);
//! 3. `$REGISTRY_AUTH_FILE` when set (podman/skopeo's `auth.json` format);
//! 4. Docker's `$DOCKER_CONFIG/config.json` (default `~/.docker/config.json`): `credHelpers`
//!    for the registry, else `credsStore`, else `auths` (base64 `auth`, `username`/`password`,
//!    `identitytoken`), running `docker-credential-<name> get` for helpers;
//! 5. `${XDG_RUNTIME_DIR}/containers/auth.json` (podman's default).
//!
//! Secrets never reach logs or errors: [`Credential`]'s `Debug` is redacted, and helpers get the
//! server name on stdin, never on a command line.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Docker Hub's key in `config.json`, as `docker login` writes it.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// A secret for one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// Username and password (or a personal access token used as password).
    Basic { username: String, password: String },
    /// An OAuth2 refresh token (`identitytoken` in `config.json`), exchanged at the token
    /// service with `grant_type=refresh_token`.
    IdentityToken { username: String, token: String },
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Credential::IdentityToken { username, .. } => {
                write!(f, "IdentityToken({username}, <redacted>)")
            }
        }
    }
}

impl Credential {
    pub fn username(&self) -> &str {
        match self {
            Credential::Basic { username, .. } | Credential::IdentityToken { username, .. } => {
                username
            }
        }
    }

    /// `Basic base64(user:password)`, for Basic auth and the token service's GET.
    pub fn basic_header(&self) -> Option<String> {
        match self {
            Credential::Basic { username, password } => Some(format!(
                "Basic {}",
                STANDARD.encode(format!("{username}:{password}"))
            )),
            Credential::IdentityToken { .. } => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("credential helper docker-credential-{helper} failed for {registry}: {message}")]
    Helper {
        helper: String,
        registry: String,
        message: String,
    },
}

/// Where to look for credentials; see the module docs for the order.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    explicit: BTreeMap<String, Credential>,
    env: Option<(Option<String>, Credential)>,
    registry_auth_file: Option<PathBuf>,
    docker_config: Option<PathBuf>,
    containers_auth: Option<PathBuf>,
    /// `PATH` for credential helpers (tests); the process's own when `None`.
    helper_path: Option<std::ffi::OsString>,
}

impl Credentials {
    /// No sources at all: anonymous unless [`Self::insert`] adds some.
    pub fn none() -> Self {
        Self::default()
    }

    /// The standard sources, from the process environment.
    pub fn from_env() -> Self {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// The standard sources, with environment variables read through `get`.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Self {
        let var = |k: &str| get(k).filter(|v| !v.is_empty());
        let env = match (
            var("DRYDOCK_REGISTRY_USER"),
            var("DRYDOCK_REGISTRY_PASSWORD"),
        ) {
            (Some(username), Some(password)) => Some((
                var("DRYDOCK_REGISTRY").map(|r| normalize_key(&r)),
                Credential::Basic { username, password },
            )),
            _ => None,
        };
        Self {
            explicit: BTreeMap::new(),
            env,
            registry_auth_file: var("REGISTRY_AUTH_FILE").map(PathBuf::from),
            docker_config: Some(docker_config_path_from(var)),
            containers_auth: var("XDG_RUNTIME_DIR")
                .map(|d| PathBuf::from(d).join("containers/auth.json")),
            helper_path: None,
        }
    }

    /// Uses only this Docker config file (tests, `--authfile`).
    pub fn with_docker_config(path: impl Into<PathBuf>) -> Self {
        Self {
            docker_config: Some(path.into()),
            ..Self::default()
        }
    }

    /// Adds a credential for `registry` that wins over every file.
    pub fn insert(&mut self, registry: &str, credential: Credential) {
        self.explicit.insert(normalize_key(registry), credential);
    }

    /// The credential for `registry` (`docker.io`, `host:port`), if any source has one.
    pub fn lookup(&self, registry: &str) -> Result<Option<Credential>, CredentialError> {
        let key = normalize_key(registry);
        if let Some(c) = self.explicit.get(&key) {
            return Ok(Some(c.clone()));
        }
        if let Some((only, c)) = &self.env
            && only.as_ref().is_none_or(|o| *o == key)
        {
            return Ok(Some(c.clone()));
        }
        if let Some(p) = &self.registry_auth_file
            && let Some(c) = lookup_file(p, &key, true, self.helper_path.as_deref())?
        {
            return Ok(Some(c));
        }
        if let Some(p) = &self.docker_config
            && let Some(c) = lookup_file(p, &key, false, self.helper_path.as_deref())?
        {
            return Ok(Some(c));
        }
        if let Some(p) = &self.containers_auth
            && let Some(c) = lookup_file(p, &key, true, self.helper_path.as_deref())?
        {
            return Ok(Some(c));
        }
        Ok(None)
    }

    pub fn docker_config(&self) -> Option<&Path> {
        self.docker_config.as_deref()
    }
}

/// `$DOCKER_CONFIG/config.json`, default `~/.docker/config.json`.
pub fn docker_config_path() -> PathBuf {
    docker_config_path_from(|k| std::env::var(k).ok())
}

fn docker_config_path_from(get: impl Fn(&str) -> Option<String>) -> PathBuf {
    if let Some(d) = get("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("config.json");
    }
    let home = get("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".docker/config.json")
}

/// The comparable form of a registry name or `config.json` key: no scheme, no path, Docker
/// Hub's aliases folded into `docker.io`.
pub fn normalize_key(s: &str) -> String {
    let s = s.trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or(s);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.docker.io" | "docker.io" => {
            "docker.io".into()
        }
        h => h.to_ascii_lowercase(),
    }
}

/// The key `docker login` writes for a registry.
pub fn config_key(registry: &str) -> String {
    match normalize_key(registry).as_str() {
        "docker.io" => DOCKER_HUB_KEY.to_string(),
        other => other.to_string(),
    }
}

fn read_json(path: &Path) -> Result<Option<serde_json::Value>, CredentialError> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(None),
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| CredentialError::File {
                path: path.to_path_buf(),
                message: format!("invalid JSON: {e}"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CredentialError::File {
            path: path.to_path_buf(),
            message: e.to_string(),
        }),
    }
}

fn lookup_file(
    path: &Path,
    key: &str,
    podman: bool,
    helper_path: Option<&std::ffi::OsStr>,
) -> Result<Option<Credential>, CredentialError> {
    let Some(v) = read_json(path)? else {
        return Ok(None);
    };
    let helper = v
        .get("credHelpers")
        .and_then(|h| h.as_object())
        .and_then(|h| h.iter().find(|(k, _)| normalize_key(k) == key))
        .and_then(|(_, v)| v.as_str())
        .or_else(|| v.get("credsStore").and_then(|s| s.as_str()))
        .filter(|s| !s.is_empty());
    if let Some(helper) = helper
        && let Some(c) = helper_get(helper, key, helper_path)?
    {
        return Ok(Some(c));
    }
    let Some(auths) = v.get("auths").and_then(|a| a.as_object()) else {
        return Ok(None);
    };
    // podman allows `registry/namespace` keys; the registry-wide key is the fallback.
    let entry = auths.iter().find(|(k, _)| {
        normalize_key(k) == key && (!podman || !k.contains('/') || k.starts_with("http"))
    });
    let entry = entry.or_else(|| auths.iter().find(|(k, _)| normalize_key(k) == key));
    let Some((_, e)) = entry else { return Ok(None) };
    parse_auth_entry(e).map_err(|message| CredentialError::File {
        path: path.to_path_buf(),
        message,
    })
}

fn parse_auth_entry(e: &serde_json::Value) -> Result<Option<Credential>, String> {
    let s = |k: &str| {
        e.get(k)
            .and_then(|v| v.as_str())
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let (mut username, mut password) = (s("username"), s("password"));
    if let Some(auth) = s("auth") {
        let decoded = STANDARD
            .decode(auth.trim())
            .map_err(|_| "an `auth` entry is not valid base64".to_string())?;
        let decoded =
            String::from_utf8(decoded).map_err(|_| "an `auth` entry is not UTF-8".to_string())?;
        let (u, p) = decoded
            .split_once(':')
            .ok_or("an `auth` entry is not base64(user:password)")?;
        username = Some(u.to_string());
        password = Some(p.to_string());
    }
    if let Some(token) = s("identitytoken") {
        return Ok(Some(Credential::IdentityToken {
            username: username.unwrap_or_default(),
            token,
        }));
    }
    Ok(match (username, password) {
        (Some(username), Some(password)) => Some(Credential::Basic { username, password }),
        _ => None,
    })
}

fn helper_server_url(key: &str) -> String {
    if key == "docker.io" {
        DOCKER_HUB_KEY.to_string()
    } else {
        key.to_string()
    }
}

fn run_helper(
    helper: &str,
    action: &str,
    input: &str,
    registry: &str,
    path: Option<&std::ffi::OsStr>,
) -> Result<(bool, String), CredentialError> {
    let err = |message: String| CredentialError::Helper {
        helper: helper.into(),
        registry: registry.into(),
        message,
    };
    let mut cmd = Command::new(format!("docker-credential-{helper}"));
    if let Some(p) = path {
        cmd.env("PATH", p);
    }
    let mut child = cmd
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| err(format!("cannot run it: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| err(e.to_string()))?;
    }
    let out = child.wait_with_output().map_err(|e| err(e.to_string()))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    Ok((out.status.success(), stdout))
}

fn helper_get(
    helper: &str,
    key: &str,
    helper_path: Option<&std::ffi::OsStr>,
) -> Result<Option<Credential>, CredentialError> {
    let (ok, stdout) = run_helper(helper, "get", &helper_server_url(key), key, helper_path)?;
    if !ok {
        // "credentials not found" is a normal miss; anything else is too, for lookups: fall back.
        return Ok(None);
    }
    let v: serde_json::Value =
        serde_json::from_str(&stdout).map_err(|_| CredentialError::Helper {
            helper: helper.into(),
            registry: key.into(),
            message: "its output is not JSON".into(),
        })?;
    let username = v
        .get("Username")
        .and_then(|u| u.as_str())
        .unwrap_or_default()
        .to_string();
    let secret = v
        .get("Secret")
        .and_then(|u| u.as_str())
        .unwrap_or_default()
        .to_string();
    if secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(if username == "<token>" {
        Credential::IdentityToken {
            username: String::new(),
            token: secret,
        }
    } else {
        Credential::Basic {
            username,
            password: secret,
        }
    }))
}

/// Saves a login the way `docker login` does: through the registry's credential helper (or
/// `credsStore`) when configured, else as base64 `auth` in `auths`. Every other key of the file
/// is kept; the file is replaced atomically and readable by its owner only.
pub fn save_login(
    config: &Path,
    registry: &str,
    credential: &Credential,
) -> Result<(), CredentialError> {
    let file_err = |message: String| CredentialError::File {
        path: config.to_path_buf(),
        message,
    };
    let mut v = read_json(config)?.unwrap_or_else(|| serde_json::json!({}));
    let key = normalize_key(registry);
    if let Some(helper) = helper_for(&v, &key) {
        let (username, secret) = match credential {
            Credential::Basic { username, password } => (username.clone(), password.clone()),
            Credential::IdentityToken { token, .. } => ("<token>".to_string(), token.clone()),
        };
        let input = serde_json::json!({"ServerURL": helper_server_url(&key), "Username": username, "Secret": secret});
        let (ok, _) = run_helper(&helper, "store", &input.to_string(), &key, None)?;
        if !ok {
            return Err(CredentialError::Helper {
                helper,
                registry: key,
                message: "store failed".into(),
            });
        }
        return Ok(());
    }
    let obj = v
        .as_object_mut()
        .ok_or_else(|| file_err("expected a JSON object".into()))?;
    let auths = obj.entry("auths").or_insert_with(|| serde_json::json!({}));
    let auths = auths
        .as_object_mut()
        .ok_or_else(|| file_err("`auths` is not an object".into()))?;
    auths.retain(|k, _| normalize_key(k) != key);
    let entry = match credential {
        Credential::Basic { username, password } => {
            serde_json::json!({"auth": STANDARD.encode(format!("{username}:{password}"))})
        }
        Credential::IdentityToken { username, token } => {
            serde_json::json!({"auth": STANDARD.encode(format!("{username}:")), "identitytoken": token})
        }
    };
    auths.insert(config_key(registry), entry);
    write_private(config, &v).map_err(|e| file_err(e.to_string()))
}

/// Removes a login; returns whether there was one.
pub fn remove_login(config: &Path, registry: &str) -> Result<bool, CredentialError> {
    let file_err = |message: String| CredentialError::File {
        path: config.to_path_buf(),
        message,
    };
    let Some(mut v) = read_json(config)? else {
        return Ok(false);
    };
    let key = normalize_key(registry);
    let mut removed = false;
    if let Some(helper) = helper_for(&v, &key) {
        removed |= run_helper(&helper, "erase", &helper_server_url(&key), &key, None)?.0;
    }
    if let Some(auths) = v.get_mut("auths").and_then(|a| a.as_object_mut()) {
        let before = auths.len();
        auths.retain(|k, _| normalize_key(k) != key);
        if auths.len() != before {
            removed = true;
            write_private(config, &v).map_err(|e| file_err(e.to_string()))?;
        }
    }
    Ok(removed)
}

fn helper_for(v: &serde_json::Value, key: &str) -> Option<String> {
    v.get("credHelpers")
        .and_then(|h| h.as_object())
        .and_then(|h| h.iter().find(|(k, _)| normalize_key(k) == key))
        .and_then(|(_, v)| v.as_str())
        .or_else(|| v.get("credsStore").and_then(|s| s.as_str()))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn write_private(path: &Path, v: &serde_json::Value) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".config.json.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        let mut bytes = serde_json::to_vec_pretty(v).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, v: serde_json::Value) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, v.to_string()).unwrap();
        p
    }

    #[test]
    fn reads_auths_with_base64_and_identity_tokens() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "config.json",
            serde_json::json!({"auths": {
                "https://index.docker.io/v1/": {"auth": STANDARD.encode("hub:pw:with:colons")},
                "localhost:5000": {"username": "u", "password": "p"},
                "ghcr.io": {"auth": STANDARD.encode("me:"), "identitytoken": "refresh"},
            }, "other": {"kept": true}}),
        );
        let c = Credentials::with_docker_config(&p);
        assert_eq!(
            c.lookup("docker.io").unwrap(),
            Some(Credential::Basic {
                username: "hub".into(),
                password: "pw:with:colons".into()
            })
        );
        assert_eq!(
            c.lookup("registry-1.docker.io")
                .unwrap()
                .unwrap()
                .username(),
            "hub"
        );
        assert_eq!(c.lookup("localhost:5000").unwrap().unwrap().username(), "u");
        assert_eq!(
            c.lookup("ghcr.io").unwrap(),
            Some(Credential::IdentityToken {
                username: "me".into(),
                token: "refresh".into()
            })
        );
        assert_eq!(c.lookup("quay.io").unwrap(), None);
    }

    #[test]
    fn environment_variables_for_ci() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "config.json",
            serde_json::json!({"auths": {"file.io": {"username": "f", "password": "p"}}}),
        );
        let dir = d.path().to_str().unwrap().to_string();
        let env = |only: Option<&'static str>| {
            let dir = dir.clone();
            Credentials::from_vars(move |k| match k {
                "DRYDOCK_REGISTRY_USER" => Some("ci".into()),
                "DRYDOCK_REGISTRY_PASSWORD" => Some("token".into()),
                "DRYDOCK_REGISTRY" => only.map(str::to_string),
                "DOCKER_CONFIG" => Some(dir.clone()),
                _ => None,
            })
        };
        let all = env(None);
        assert_eq!(all.lookup("ghcr.io").unwrap().unwrap().username(), "ci");
        assert_eq!(all.lookup("file.io").unwrap().unwrap().username(), "ci");
        let one = env(Some("ghcr.io"));
        assert_eq!(one.lookup("ghcr.io").unwrap().unwrap().username(), "ci");
        assert_eq!(
            one.lookup("file.io").unwrap().unwrap().username(),
            "f",
            "other registries use the files"
        );
    }

    #[test]
    fn podman_auth_files_registry_auth_file_first() {
        let d = tempfile::tempdir().unwrap();
        let runtime = d.path().join("run");
        std::fs::create_dir_all(runtime.join("containers")).unwrap();
        write(
            &runtime.join("containers"),
            "auth.json",
            serde_json::json!({"auths": {
                "quay.io": {"auth": STANDARD.encode("podman:pw")},
                "docker.io": {"auth": STANDARD.encode("hub-podman:pw")},
            }}),
        );
        let explicit = write(
            d.path(),
            "explicit.json",
            serde_json::json!({"auths": {"quay.io/team": {"auth": STANDARD.encode("ns:pw")}, "quay.io": {"auth": STANDARD.encode("file:pw")}}}),
        );
        write(d.path(), "config.json", serde_json::json!({"auths": {}}));
        let dir = d.path().to_str().unwrap().to_string();
        let runtime = runtime.to_str().unwrap().to_string();
        let explicit = explicit.to_str().unwrap().to_string();
        let vars = move |with_file: bool| {
            let (dir, runtime, explicit) = (dir.clone(), runtime.clone(), explicit.clone());
            Credentials::from_vars(move |k| match k {
                "DOCKER_CONFIG" => Some(dir.clone()),
                "XDG_RUNTIME_DIR" => Some(runtime.clone()),
                "REGISTRY_AUTH_FILE" if with_file => Some(explicit.clone()),
                _ => None,
            })
        };
        // containers/auth.json when nothing else knows the registry.
        assert_eq!(
            vars(false).lookup("quay.io").unwrap().unwrap().username(),
            "podman"
        );
        assert_eq!(
            vars(false).lookup("docker.io").unwrap().unwrap().username(),
            "hub-podman"
        );
        // $REGISTRY_AUTH_FILE before it; its registry-wide entry, not a namespace's.
        assert_eq!(
            vars(true).lookup("quay.io").unwrap().unwrap().username(),
            "file"
        );
    }

    #[test]
    fn debug_never_shows_secrets() {
        let c = Credential::Basic {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        let c = Credential::IdentityToken {
            username: "u".into(),
            token: "tok-secret".into(),
        };
        assert!(!format!("{c:?}").contains("tok-secret"));
    }

    #[test]
    fn explicit_wins_over_files() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "config.json",
            serde_json::json!({"auths": {"x.io": {"username": "file", "password": "f"}}}),
        );
        let mut c = Credentials::with_docker_config(&p);
        c.insert(
            "https://x.io/v2/",
            Credential::Basic {
                username: "mine".into(),
                password: "m".into(),
            },
        );
        assert_eq!(c.lookup("x.io").unwrap().unwrap().username(), "mine");
    }

    #[test]
    fn login_keeps_other_keys_and_logout_removes() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "config.json",
            serde_json::json!({"auths": {"a.io": {"auth": "YTpi"}}, "psFormat": "x"}),
        );
        save_login(
            &p,
            "docker.io",
            &Credential::Basic {
                username: "u".into(),
                password: "p".into(),
            },
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(v["psFormat"], "x");
        assert_eq!(v["auths"]["a.io"]["auth"], "YTpi");
        assert_eq!(v["auths"][DOCKER_HUB_KEY]["auth"], STANDARD.encode("u:p"));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(remove_login(&p, "docker.io").unwrap());
        assert!(!remove_login(&p, "docker.io").unwrap());
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert!(v["auths"].get(DOCKER_HUB_KEY).is_none());
        assert_eq!(v["auths"]["a.io"]["auth"], "YTpi");
    }

    #[test]
    fn credential_helpers_are_run_with_the_server_on_stdin() {
        let d = tempfile::tempdir().unwrap();
        let bin = d.path().join("docker-credential-fake");
        // A helper that answers for exactly one server URL, read from stdin.
        std::fs::write(
            &bin,
            "#!/bin/sh\nread url\nif [ \"$1\" = get ] && [ \"$url\" = helped.io ]; then echo '{\"ServerURL\":\"helped.io\",\"Username\":\"hu\",\"Secret\":\"hs\"}'; else echo 'credentials not found in native keychain'; exit 1; fi\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let p = write(
            d.path(),
            "config.json",
            serde_json::json!({"credHelpers": {"helped.io": "fake"}, "auths": {"other.io": {"username": "o", "password": "p"}}}),
        );
        let mut c = Credentials::with_docker_config(&p);
        c.helper_path = Some(d.path().as_os_str().to_owned());
        assert_eq!(
            c.lookup("helped.io").unwrap(),
            Some(Credential::Basic {
                username: "hu".into(),
                password: "hs".into()
            })
        );
        assert_eq!(c.lookup("other.io").unwrap().unwrap().username(), "o");
        // A store for everything that does not know the registry falls back to auths.
        let p = write(
            d.path(),
            "c2.json",
            serde_json::json!({"credsStore": "fake", "auths": {"x.io": {"username": "x", "password": "p"}}}),
        );
        let mut c = Credentials::with_docker_config(&p);
        c.helper_path = Some(d.path().as_os_str().to_owned());
        assert_eq!(c.lookup("x.io").unwrap().unwrap().username(), "x");
    }
}
