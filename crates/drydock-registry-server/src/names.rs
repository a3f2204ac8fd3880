//! Repository names, tags and the `/v2/` routes, validated by the grammar of the distribution
//! spec. Pure: no IO.

use drydock_oci::Digest;

/// Longest repository name we accept (the spec leaves it to registries; Docker uses 255).
pub const MAX_NAME_LEN: usize = 255;

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`
pub fn valid_repository(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty name");
    }
    if name.len() > MAX_NAME_LEN {
        return Err("longer than 255 characters");
    }
    for component in name.split('/') {
        if !valid_component(component) {
            return Err(
                "path components are lowercase letters and digits separated by '.', '_', '__' or dashes",
            );
        }
    }
    Ok(())
}

fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() {
        return false;
    }
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    let mut i = 0;
    let mut need_alnum = true;
    while i < b.len() {
        if alnum(b[i]) {
            need_alnum = false;
            i += 1;
            continue;
        }
        if need_alnum {
            return false;
        }
        // a separator: '.', '_', '__' or one or more '-'
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        need_alnum = true;
    }
    !need_alnum
}

/// `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`
pub fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// A manifest reference: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestRef {
    Tag(String),
    Digest(Digest),
}

impl ManifestRef {
    pub fn as_string(&self) -> String {
        match self {
            ManifestRef::Tag(t) => t.clone(),
            ManifestRef::Digest(d) => d.to_string(),
        }
    }
}

/// Why a reference did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefError {
    Tag,
    Digest(String),
}

pub fn parse_reference(s: &str) -> Result<ManifestRef, RefError> {
    if s.contains(':') {
        Digest::parse(s)
            .map(ManifestRef::Digest)
            .map_err(|e| RefError::Digest(e.to_string()))
    } else if valid_tag(s) {
        Ok(ManifestRef::Tag(s.to_string()))
    } else {
        Err(RefError::Tag)
    }
}

/// Upload session ids are 32 lowercase hex digits: anything else is unknown (and can never
/// name a path outside the uploads directory).
pub fn valid_upload_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// One `/v2/` endpoint, with the repository name split off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/v2/`
    Base,
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/token` (the built-in token service)
    Token,
    /// `/v2/<name>/tags/list`
    Tags { name: String },
    /// `/v2/<name>/manifests/<reference>`
    Manifest { name: String, reference: String },
    /// `/v2/<name>/blobs/<digest>`
    Blob { name: String, digest: String },
    /// `/v2/<name>/blobs/uploads/`
    UploadStart { name: String },
    /// `/v2/<name>/blobs/uploads/<id>`
    Upload { name: String, id: String },
    /// `/v2/<name>/referrers/<digest>`
    Referrers { name: String, digest: String },
    /// Anything else under `/v2/`.
    Unknown,
}

impl Route {
    /// Short label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Route::Base => "base",
            Route::Catalog => "catalog",
            Route::Token => "token",
            Route::Tags { .. } => "tags",
            Route::Manifest { .. } => "manifest",
            Route::Blob { .. } => "blob",
            Route::UploadStart { .. } => "upload_start",
            Route::Upload { .. } => "upload",
            Route::Referrers { .. } => "referrers",
            Route::Unknown => "unknown",
        }
    }

    pub fn repository(&self) -> Option<&str> {
        match self {
            Route::Tags { name }
            | Route::Manifest { name, .. }
            | Route::Blob { name, .. }
            | Route::UploadStart { name }
            | Route::Upload { name, .. }
            | Route::Referrers { name, .. } => Some(name),
            _ => None,
        }
    }
}

/// Splits a request path into a route. Names contain slashes, so endpoints are recognised from
/// the end of the path; the name itself is validated by the caller (so that a bad name gets
/// `NAME_INVALID` rather than a 404).
pub fn parse_route(path: &str) -> Route {
    let Some(rest) = path.strip_prefix("/v2/") else {
        return if path == "/v2" {
            Route::Base
        } else {
            Route::Unknown
        };
    };
    if rest.is_empty() {
        return Route::Base;
    }
    if rest == "_catalog" {
        return Route::Catalog;
    }
    if rest == "token" {
        return Route::Token;
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Route::Tags {
            name: name.to_string(),
        };
    }
    if let Some(name) = rest
        .strip_suffix("/blobs/uploads/")
        .or_else(|| rest.strip_suffix("/blobs/uploads"))
    {
        return Route::UploadStart {
            name: name.to_string(),
        };
    }
    let segments: Vec<&str> = rest.split('/').collect();
    let n = segments.len();
    if n >= 4
        && segments[n - 3] == "blobs"
        && segments[n - 2] == "uploads"
        && !segments[n - 1].is_empty()
    {
        return Route::Upload {
            name: segments[..n - 3].join("/"),
            id: segments[n - 1].to_string(),
        };
    }
    if n >= 3 && !segments[n - 1].is_empty() {
        let name = segments[..n - 2].join("/");
        let last = segments[n - 1].to_string();
        match segments[n - 2] {
            "manifests" => {
                return Route::Manifest {
                    name,
                    reference: last,
                };
            }
            "blobs" => return Route::Blob { name, digest: last },
            "referrers" => return Route::Referrers { name, digest: last },
            _ => {}
        }
    }
    Route::Unknown
}

/// A repository pattern of a grant: `acme/app` (exact), `acme/*` (one level), `acme/**` (any
/// depth below `acme/`), `*` or `**` (everything).
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    if pattern == "**" {
        return true;
    }
    let p: Vec<&str> = pattern.split('/').collect();
    let n: Vec<&str> = name.split('/').collect();
    match_segments(&p, &n)
}

fn match_segments(p: &[&str], n: &[&str]) -> bool {
    match (p.first(), n.first()) {
        (None, None) => true,
        (Some(&"**"), _) => {
            // `**` matches one or more segments
            (1..=n.len()).any(|k| match_segments(&p[1..], &n[k..]))
        }
        (Some(ps), Some(ns)) => glob_segment(ps, ns) && match_segments(&p[1..], &n[1..]),
        _ => false,
    }
}

/// `*` inside a segment matches any run of characters within that segment.
fn glob_segment(p: &str, s: &str) -> bool {
    if !p.contains('*') {
        return p == s;
    }
    let parts: Vec<&str> = p.split('*').collect();
    let mut rest = s;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(pos) => rest = &rest[pos + part.len()..],
                None => return false,
            }
        }
    }
    true
}

/// Validates a grant pattern for the CLI: names and globs only.
pub fn valid_pattern(pattern: &str) -> bool {
    !pattern.is_empty()
        && pattern.len() <= MAX_NAME_LEN
        && pattern.split('/').all(|seg| {
            seg == "**"
                || (!seg.is_empty()
                    && seg.bytes().all(|b| {
                        b.is_ascii_lowercase()
                            || b.is_ascii_digit()
                            || matches!(b, b'.' | b'_' | b'-' | b'*')
                    }))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_follow_the_spec_grammar() {
        for ok in ["a", "acme/app", "a.b_c__d---e/f9", "x/y/z", "0"] {
            assert!(valid_repository(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "A", "a/", "/a", "a//b", "-a", "a-", "a___b", "a..b", "a/_b", "a:b", "a b",
        ] {
            assert!(valid_repository(bad).is_err(), "{bad}");
        }
        assert!(valid_repository(&"a".repeat(256)).is_err());
    }

    #[test]
    fn tags_follow_the_spec_grammar() {
        assert!(valid_tag("latest"));
        assert!(valid_tag("_x.Y-1"));
        assert!(!valid_tag(".x"));
        assert!(!valid_tag("-x"));
        assert!(!valid_tag(""));
        assert!(valid_tag(&"a".repeat(128)));
        assert!(!valid_tag(&"a".repeat(129)));
    }

    #[test]
    fn routes_are_recognised_from_the_end() {
        assert_eq!(parse_route("/v2/"), Route::Base);
        assert_eq!(parse_route("/v2/_catalog"), Route::Catalog);
        assert_eq!(
            parse_route("/v2/a/b/tags/list"),
            Route::Tags { name: "a/b".into() }
        );
        assert_eq!(
            parse_route("/v2/a/manifests/b/manifests/latest"),
            Route::Manifest {
                name: "a/manifests/b".into(),
                reference: "latest".into()
            }
        );
        assert_eq!(
            parse_route("/v2/a/blobs/uploads/"),
            Route::UploadStart { name: "a".into() }
        );
        assert_eq!(
            parse_route("/v2/a/blobs/uploads/0123"),
            Route::Upload {
                name: "a".into(),
                id: "0123".into()
            }
        );
        assert_eq!(
            parse_route("/v2/x/blobs/sha256:00"),
            Route::Blob {
                name: "x".into(),
                digest: "sha256:00".into()
            }
        );
        assert_eq!(
            parse_route("/v2/x/referrers/sha256:00"),
            Route::Referrers {
                name: "x".into(),
                digest: "sha256:00".into()
            }
        );
        assert_eq!(parse_route("/v2/x/nothing"), Route::Unknown);
    }

    #[test]
    fn patterns() {
        assert!(pattern_matches("acme/app", "acme/app"));
        assert!(!pattern_matches("acme/app", "acme/other"));
        assert!(!pattern_matches("acme/app", "acme/app/sub"));
        assert!(pattern_matches("acme/*", "acme/app"));
        assert!(!pattern_matches("acme/*", "acme/app/sub"));
        assert!(pattern_matches("acme/**", "acme/app/sub"));
        assert!(!pattern_matches("acme/**", "acme"));
        assert!(pattern_matches("**", "x/y"));
        assert!(pattern_matches("*", "x"));
        assert!(!pattern_matches("*", "x/y"));
        assert!(pattern_matches("acme/app-*", "acme/app-dev"));
        assert!(!pattern_matches("acme/app-*", "acme/other"));
    }
}
