use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Digest, DigestError};

/// The registry that names without a domain refer to, as Docker spells it.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The tag a reference without tag or digest gets.
pub const DEFAULT_TAG: &str = "latest";
const DOCKER_API_HOST: &str = "registry-1.docker.io";
const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("invalid reference format: empty reference")]
    Empty,
    #[error("invalid reference format {reference:?}: repository name must be lowercase")]
    Uppercase { reference: String },
    #[error("invalid reference format {reference:?}: {reason}")]
    Invalid {
        reference: String,
        reason: &'static str,
    },
    #[error(
        "invalid reference format {reference:?}: repository name is longer than 255 characters"
    )]
    NameTooLong { reference: String },
    #[error("invalid digest in reference {reference:?}: {source}")]
    Digest {
        reference: String,
        source: DigestError,
    },
}

/// A normalised image reference: `registry/repository[:tag][@digest]`.
///
/// Parsing follows Docker's rules (`ParseNormalizedNamed`): a first path component is a registry
/// only when it contains `.` or `:` or is `localhost`; otherwise the registry is `docker.io`, and
/// single-component Docker Hub names get `library/`. A reference with neither tag nor digest gets
/// the tag `latest`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses and normalises; a missing tag (and digest) becomes `latest`.
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        let mut r = Self::parse_inner(s)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some(DEFAULT_TAG.to_string());
        }
        Ok(r)
    }

    /// Parses a repository name with no tag or digest (for `tags list REPO`).
    pub fn parse_repository(s: &str) -> Result<Self, ReferenceError> {
        let r = Self::parse_inner(s)?;
        if r.tag.is_some() || r.digest.is_some() {
            return Err(ReferenceError::Invalid {
                reference: s.to_string(),
                reason: "expected a repository name without tag or digest",
            });
        }
        Ok(r)
    }

    fn parse_inner(s: &str) -> Result<Self, ReferenceError> {
        let invalid = |reason| ReferenceError::Invalid {
            reference: s.to_string(),
            reason,
        };
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (rest, digest) = match s.split_once('@') {
            Some((rest, d)) => {
                let digest = Digest::parse(d).map_err(|source| ReferenceError::Digest {
                    reference: s.to_string(),
                    source,
                })?;
                (rest, Some(digest))
            }
            None => (s, None),
        };
        // The tag separator is the last ':' after the last '/' (a ':' before it is a port).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag
            && !valid_tag(tag)
        {
            return Err(invalid(
                "a tag is 1 to 128 characters of [A-Za-z0-9_.-] and cannot start with '.' or '-'",
            ));
        }
        if name.is_empty() {
            return Err(invalid("missing repository name"));
        }
        let (registry, path) = split_domain(name);
        if let Some(reg) = &registry
            && !valid_domain(reg)
        {
            return Err(invalid("invalid registry host"));
        }
        if path.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase {
                reference: s.to_string(),
            });
        }
        if path.is_empty() || !path.split('/').all(valid_path_component) {
            return Err(invalid(
                "repository path components are lowercase letters and digits separated by '.', '_', '__' or '-'",
            ));
        }
        if name.len() > MAX_NAME_LEN {
            return Err(ReferenceError::NameTooLong {
                reference: s.to_string(),
            });
        }
        let mut registry = registry.unwrap_or_else(|| DEFAULT_REGISTRY.to_string());
        if registry == "index.docker.io" || registry == DOCKER_API_HOST {
            registry = DEFAULT_REGISTRY.to_string();
        }
        let repository = if registry == DEFAULT_REGISTRY && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        Ok(Self {
            registry,
            repository,
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// Builds a reference from parts that were validated elsewhere (tests and stores).
    pub fn new(
        registry: &str,
        repository: &str,
        tag: Option<&str>,
        digest: Option<Digest>,
    ) -> Result<Self, ReferenceError> {
        let mut s = format!("{registry}/{repository}");
        if let Some(t) = tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
        Self::parse_inner(&s)
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The host to send API requests to (`registry-1.docker.io` for Docker Hub).
    pub fn api_host(&self) -> &str {
        if self.registry == DEFAULT_REGISTRY {
            DOCKER_API_HOST
        } else {
            &self.registry
        }
    }

    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// What to ask the registry for: the digest when pinned, else the tag.
    pub fn manifest_ref(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.to_string(),
        }
    }

    pub fn with_tag(&self, tag: &str) -> Result<Self, ReferenceError> {
        Self::new(&self.registry, &self.repository, Some(tag), None)
    }

    #[must_use]
    pub fn with_digest(&self, digest: Digest) -> Self {
        Self {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The reference without tag or digest.
    pub fn repository_ref(&self) -> Self {
        Self {
            tag: None,
            digest: None,
            ..self.clone()
        }
    }

    /// `registry/repository` (always with the registry).
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// Whether the registry is reached over plain HTTP by default, as Docker does for
    /// `localhost` and loopback addresses.
    pub fn is_loopback_registry(&self) -> bool {
        let host = host_of(&self.registry);
        host == "localhost"
            || host.ends_with(".localhost")
            || host.starts_with("127.")
            || host == "[::1]"
            || host == "::1"
    }

    /// The short form people type and `docker images` shows: no `docker.io/`, no `library/`.
    pub fn familiar(&self) -> String {
        let mut s = if self.registry == DEFAULT_REGISTRY {
            self.repository
                .strip_prefix("library/")
                .unwrap_or(&self.repository)
                .to_string()
        } else {
            self.name()
        };
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
        s
    }
}

fn host_of(domain: &str) -> &str {
    if domain.starts_with('[') {
        return domain.find(']').map_or(domain, |i| &domain[..=i]);
    }
    domain.rsplit_once(':').map_or(domain, |(h, _)| h)
}

fn split_domain(name: &str) -> (Option<String>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains('.')
                || first.contains(':')
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (Some(first.to_string()), rest)
        }
        _ => (None, name),
    }
}

fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_TAG_LEN
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn valid_path_component(c: &str) -> bool {
    // [a-z0-9]+ ((\.|_|__|-+)[a-z0-9]+)*
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn valid_domain(d: &str) -> bool {
    let (host, port) = if d.starts_with('[') {
        match d.find(']') {
            Some(i) => (&d[..=i], d[i + 1..].strip_prefix(':')),
            None => return false,
        }
    } else {
        match d.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        }
    };
    if let Some(p) = port
        && (p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.trim_end_matches(']');
        return !inner.is_empty()
            && inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        })
}

impl fmt::Display for Reference {
    /// The full, normalised form: `docker.io/library/alpine:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

impl Serialize for Reference {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Reference {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Reference::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        Reference::parse(s).unwrap().to_string()
    }

    #[test]
    fn docker_normalisation() {
        assert_eq!(norm("alpine"), "docker.io/library/alpine:latest");
        assert_eq!(norm("alpine:3.19"), "docker.io/library/alpine:3.19");
        assert_eq!(norm("acme/app"), "docker.io/acme/app:latest");
        assert_eq!(
            norm("index.docker.io/alpine"),
            "docker.io/library/alpine:latest"
        );
        assert_eq!(norm("localhost/app"), "localhost/app:latest");
        assert_eq!(norm("localhost:5000/a/b:v1"), "localhost:5000/a/b:v1");
        assert_eq!(norm("ghcr.io/owner/repo:sha-1"), "ghcr.io/owner/repo:sha-1");
        assert_eq!(norm("[::1]:5000/app"), "[::1]:5000/app:latest");
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(
            norm(&format!("alpine@{d}")),
            format!("docker.io/library/alpine@{d}")
        );
        assert_eq!(
            norm(&format!("alpine:3@{d}")),
            format!("docker.io/library/alpine:3@{d}")
        );
    }

    #[test]
    fn familiar_form_and_api_host() {
        let r = Reference::parse("alpine").unwrap();
        assert_eq!(r.familiar(), "alpine:latest");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        let r = Reference::parse("localhost:5000/x:1").unwrap();
        assert_eq!(r.familiar(), "localhost:5000/x:1");
        assert!(r.is_loopback_registry());
        assert!(
            Reference::parse("127.0.0.1:5000/x")
                .unwrap()
                .is_loopback_registry()
        );
        assert!(
            !Reference::parse("ghcr.io/x")
                .unwrap()
                .is_loopback_registry()
        );
    }

    #[test]
    fn rejects_bad_references() {
        assert!(matches!(
            Reference::parse("Alpine"),
            Err(ReferenceError::Uppercase { .. })
        ));
        assert!(Reference::parse("").is_err());
        assert!(Reference::parse("a:").is_err());
        assert!(Reference::parse("a:-x").is_err());
        assert!(Reference::parse("a//b").is_err());
        assert!(Reference::parse("a_-b").is_err());
        assert!(Reference::parse("-a").is_err());
        assert!(Reference::parse("a@sha256:zz").is_err());
        assert!(Reference::parse("host:port/a").is_err());
        assert!(Reference::parse(&"a".repeat(300)).is_err());
        assert!(Reference::parse(&format!("a:{}", "t".repeat(129))).is_err());
        // separators that are allowed
        assert!(Reference::parse("a__b/c.d/e---f").is_ok());
    }

    #[test]
    fn repository_only() {
        assert!(Reference::parse_repository("alpine").is_ok());
        assert!(Reference::parse_repository("alpine:3").is_err());
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics_and_round_trips(s in "[a-zA-Z0-9:/@._\\[\\]-]{0,80}") {
            if let Ok(r) = Reference::parse(&s) {
                let again = Reference::parse(&r.to_string()).unwrap();
                proptest::prop_assert_eq!(again, r);
            }
        }
    }
}
