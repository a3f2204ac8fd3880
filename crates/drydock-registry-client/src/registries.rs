//! The `registries.toml` file: mirrors and insecure registries, shared by the client and the
//! builder. [`RegistriesConfig::parse`] is pure; [`RegistriesConfig::load`] reads the file from
//! `$DRYDOCK_HOME/registries.toml`, else `/etc/drydock/registries.toml`.
//!
//! ```toml
//! # Pull docker.io images through a local mirror first, then from Docker Hub.
//! [[registry]]
//! prefix = "docker.io"
//! mirrors = ["localhost:5000", "mirror.example.com/dockerhub"]
//!
//! # A company registry with a self-signed certificate: HTTPS without verification, then HTTP.
//! [[registry]]
//! prefix = "registry.internal:5000"
//! insecure = true
//!
//! # Redirect a namespace to another place (pulls and pushes).
//! [[registry]]
//! prefix = "registry.example.com/team"
//! location = "localhost:5001/team"
//! ```
//!
//! - `prefix` matches a normalised reference's `registry/repository` at a `/` boundary (or the
//!   whole registry); the longest matching prefix wins.
//! - `location` replaces the prefix for every request (default: the prefix itself).
//! - `mirrors` are tried in order for pulls only, each with the prefix replaced by the mirror;
//!   the location itself comes last. Pushes never go to mirrors.
//! - `insecure = true` allows unverified TLS, then plain HTTP, for the location and the mirrors.
//!   `localhost` and loopback addresses are plain HTTP by default (as Docker does) unless listed
//!   as insecure, which makes them try HTTPS first.

use std::path::{Path, PathBuf};

use drydock_oci::Reference;
use serde::Deserialize;

/// Where the config file is looked for, in order.
pub fn default_paths(drydock_home: Option<&Path>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(h) = drydock_home {
        out.push(h.join("registries.toml"));
    }
    out.push(PathBuf::from("/etc/drydock/registries.toml"));
    out
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistriesConfig {
    #[serde(default, rename = "registry")]
    pub registries: Vec<RegistryEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryEntry {
    pub prefix: String,
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    pub mirrors: Vec<String>,
    #[serde(default)]
    pub insecure: bool,
}

/// A config file that could not be read or understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}{}: {message}", .line.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default())]
pub struct ConfigError {
    pub origin: String,
    /// 1-based line and column, when known.
    pub line: Option<(usize, usize)>,
    pub message: String,
}

/// How to reach a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Security {
    /// HTTPS with certificate verification (the default).
    Https,
    /// Plain HTTP (localhost and loopback, as Docker does).
    Http,
    /// HTTPS without verification, falling back to plain HTTP (`insecure = true`).
    Insecure,
}

/// One place to send requests for a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host[:port]` to connect to (`registry-1.docker.io` for Docker Hub).
    pub host: String,
    /// The repository path on that host.
    pub repository: String,
    pub security: Security,
    pub mirror: bool,
}

impl RegistriesConfig {
    /// Parses the TOML text; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let cfg: RegistriesConfig = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|span| line_col(text, span.start));
            ConfigError {
                origin: origin.to_string(),
                line,
                message: e.message().to_string(),
            }
        })?;
        for (i, r) in cfg.registries.iter().enumerate() {
            let err = |message: String| ConfigError {
                origin: origin.to_string(),
                line: None,
                message,
            };
            validate_prefix(&r.prefix)
                .map_err(|m| err(format!("registry[{i}].prefix {:?}: {m}", r.prefix)))?;
            if let Some(l) = &r.location {
                validate_prefix(l)
                    .map_err(|m| err(format!("registry[{i}].location {l:?}: {m}")))?;
            }
            for m in &r.mirrors {
                validate_prefix(m).map_err(|e| err(format!("registry[{i}].mirrors {m:?}: {e}")))?;
            }
        }
        Ok(cfg)
    }

    /// Reads the first existing file of `paths`; none at all is an empty config.
    pub fn load(paths: &[PathBuf]) -> Result<Self, ConfigError> {
        for p in paths {
            match std::fs::read_to_string(p) {
                Ok(text) => return Self::parse(&text, &p.display().to_string()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(ConfigError {
                        origin: p.display().to_string(),
                        line: None,
                        message: e.to_string(),
                    });
                }
            }
        }
        Ok(Self::default())
    }

    /// The entry whose prefix is the longest match for `registry/repository`.
    pub fn entry_for(&self, reference: &Reference) -> Option<&RegistryEntry> {
        let full = reference.name();
        self.registries
            .iter()
            .filter(|e| prefix_matches(&e.prefix, reference.registry(), &full))
            .max_by_key(|e| e.prefix.len())
    }

    /// Whether a host (as written in a reference or mirror) is listed as insecure.
    pub fn is_insecure_host(&self, host: &str) -> bool {
        self.registries.iter().any(|e| {
            e.insecure
                && (host_of(&e.prefix) == host
                    || e.location.as_deref().map(host_of) == Some(host)
                    || e.mirrors.iter().any(|m| host_of(m) == host))
        })
    }

    /// Where to pull `reference` from, in order: mirrors, then the location.
    pub fn pull_endpoints(&self, reference: &Reference) -> Vec<Endpoint> {
        let mut out = Vec::new();
        if let Some(e) = self.entry_for(reference) {
            for m in &e.mirrors {
                out.push(self.endpoint_for(&rewrite(reference, &e.prefix, m), e.insecure, true));
            }
        }
        out.push(self.push_endpoint(reference));
        out
    }

    /// Where to push `reference` (and where to read it for a push or delete): never a mirror.
    pub fn push_endpoint(&self, reference: &Reference) -> Endpoint {
        match self.entry_for(reference) {
            Some(e) => {
                let full = match &e.location {
                    Some(l) => rewrite(reference, &e.prefix, l),
                    None => reference.name(),
                };
                self.endpoint_for(&full, e.insecure, false)
            }
            None => self.endpoint_for(&reference.name(), false, false),
        }
    }

    fn endpoint_for(&self, full_name: &str, insecure: bool, mirror: bool) -> Endpoint {
        let (registry, repository) = full_name.split_once('/').unwrap_or((full_name, ""));
        let host = if registry == drydock_oci::DEFAULT_REGISTRY {
            "registry-1.docker.io"
        } else {
            registry
        };
        let security = if insecure || self.is_insecure_host(registry) {
            Security::Insecure
        } else if is_loopback(host) {
            Security::Http
        } else {
            Security::Https
        };
        Endpoint {
            host: host.to_string(),
            repository: repository.to_string(),
            security,
            mirror,
        }
    }
}

/// Whether a host is reached over plain HTTP by default (`localhost`, 127.0.0.0/8, `::1`).
pub fn is_loopback(host: &str) -> bool {
    let h = host_of(host);
    let h = if h.starts_with('[') {
        h.find(']').map_or(h, |i| &h[..=i])
    } else {
        h.rsplit_once(':').map_or(h, |(h, _)| h)
    };
    h == "localhost"
        || h.ends_with(".localhost")
        || h.starts_with("127.")
        || h == "[::1]"
        || h == "::1"
}

fn host_of(prefix: &str) -> &str {
    prefix.split('/').next().unwrap_or(prefix)
}

fn prefix_matches(prefix: &str, registry: &str, full: &str) -> bool {
    prefix == registry
        || full == prefix
        || (full.starts_with(prefix) && full.as_bytes().get(prefix.len()) == Some(&b'/'))
}

/// `registry/repository` with `prefix` replaced by `with`.
fn rewrite(reference: &Reference, prefix: &str, with: &str) -> String {
    let full = reference.name();
    if prefix == reference.registry() && !full.starts_with(&format!("{prefix}/")) {
        return format!("{with}/{}", reference.repository());
    }
    format!("{with}{}", &full[prefix.len().min(full.len())..])
}

fn validate_prefix(p: &str) -> Result<(), String> {
    if p.is_empty() {
        return Err("must not be empty".into());
    }
    if p.contains("://") {
        return Err("write host[:port][/path] without a scheme".into());
    }
    if p.ends_with('/') || p.split('/').any(str::is_empty) {
        return Err("empty path component".into());
    }
    if p.chars().any(char::is_whitespace) {
        return Err("must not contain spaces".into());
    }
    Ok(())
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = r#"
[[registry]]
prefix = "docker.io"
mirrors = ["localhost:5000", "mirror.example.com/hub"]

[[registry]]
prefix = "registry.internal:5000"
insecure = true

[[registry]]
prefix = "registry.example.com/team"
location = "localhost:5001/elsewhere"
"#;

    fn r(s: &str) -> Reference {
        Reference::parse(s).unwrap()
    }

    #[test]
    fn mirrors_come_first_for_pulls_only() {
        let c = RegistriesConfig::parse(CFG, "test").unwrap();
        let eps = c.pull_endpoints(&r("alpine"));
        let got: Vec<_> = eps
            .iter()
            .map(|e| (e.host.as_str(), e.repository.as_str(), e.security, e.mirror))
            .collect();
        assert_eq!(
            got,
            [
                ("localhost:5000", "library/alpine", Security::Http, true),
                (
                    "mirror.example.com",
                    "hub/library/alpine",
                    Security::Https,
                    true
                ),
                (
                    "registry-1.docker.io",
                    "library/alpine",
                    Security::Https,
                    false
                ),
            ]
        );
        assert_eq!(c.push_endpoint(&r("alpine")).host, "registry-1.docker.io");
    }

    #[test]
    fn insecure_and_location_rewrites() {
        let c = RegistriesConfig::parse(CFG, "test").unwrap();
        assert_eq!(
            c.push_endpoint(&r("registry.internal:5000/a/b")).security,
            Security::Insecure
        );
        let e = c.push_endpoint(&r("registry.example.com/team/app:1"));
        assert_eq!(
            (e.host.as_str(), e.repository.as_str()),
            ("localhost:5001", "elsewhere/app")
        );
        // prefix boundaries are path components
        let e = c.push_endpoint(&r("registry.example.com/teamx/app"));
        assert_eq!(e.host, "registry.example.com");
        assert_eq!(e.security, Security::Https);
    }

    #[test]
    fn loopback_is_plain_http_without_config() {
        let c = RegistriesConfig::default();
        assert_eq!(
            c.push_endpoint(&r("localhost:5000/x")).security,
            Security::Http
        );
        assert_eq!(
            c.push_endpoint(&r("127.0.0.1:40000/x")).security,
            Security::Http
        );
        assert_eq!(c.push_endpoint(&r("[::1]:5000/x")).security, Security::Http);
        assert_eq!(c.push_endpoint(&r("ghcr.io/x")).security, Security::Https);
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let e = RegistriesConfig::parse(
            "[[registry]]\nprefix = \"docker.io\"\nmirors = []\n",
            "/etc/drydock/registries.toml",
        )
        .unwrap_err();
        assert_eq!(e.line.map(|l| l.0), Some(3), "{e}");
        assert!(
            e.to_string().starts_with("/etc/drydock/registries.toml:3:"),
            "{e}"
        );
        let e = RegistriesConfig::parse("[[registry]]\nprefix = \"https://x\"\n", "f").unwrap_err();
        assert!(e.to_string().contains("without a scheme"), "{e}");
    }
}
