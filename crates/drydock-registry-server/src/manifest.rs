//! What the registry needs to know about a pushed manifest: its kind, what it references, its
//! subject and artifact type. Parsed leniently (only these fields), validated strictly.

use drydock_oci::{Digest, media_type};
use serde::{Deserialize, Serialize};

/// A descriptor as it appears in manifests and in the referrers response.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<i64>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
    subject: Option<Descriptor>,
    annotations: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A validated manifest or index.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub media_type: String,
    pub is_index: bool,
    /// Blobs that must be in the repository (config and layers).
    pub blobs: Vec<Digest>,
    /// Manifests that must be in the repository (children of an index).
    pub manifests: Vec<Digest>,
    pub subject: Option<Digest>,
    pub artifact_type: Option<String>,
    pub annotations: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Parses `bytes` pushed with `content_type`. Errors are messages for `MANIFEST_INVALID`.
pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Parsed, String> {
    let raw: RawManifest =
        serde_json::from_slice(bytes).map_err(|e| format!("manifest is not valid JSON: {e}"))?;
    let content_type = content_type.map(|c| c.split(';').next().unwrap_or(c).trim().to_string());
    let declared = raw.media_type.clone();
    let media_type = match (&content_type, &declared) {
        (Some(ct), Some(d)) if ct != d => {
            return Err(format!(
                "Content-Type {ct} does not match the manifest's mediaType {d}"
            ));
        }
        (Some(ct), _) => ct.clone(),
        (None, Some(d)) => d.clone(),
        (None, None) => {
            if raw.manifests.is_some() {
                media_type::OCI_INDEX.to_string()
            } else {
                media_type::OCI_MANIFEST.to_string()
            }
        }
    };
    if raw.schema_version != Some(2) {
        return match media_type::kind(&media_type) {
            media_type::Kind::Schema1 => Err("Docker schema1 manifests are not supported".into()),
            _ => Err(format!(
                "schemaVersion must be 2, got {:?}",
                raw.schema_version
            )),
        };
    }
    let digest_of = |d: &Descriptor, what: &str| -> Result<Digest, String> {
        Digest::parse(&d.digest).map_err(|e| format!("{what}: {e}"))
    };
    let check_size = |d: &Descriptor, what: &str| -> Result<(), String> {
        if d.size < 0 {
            return Err(format!("{what}: negative size"));
        }
        Ok(())
    };
    let subject = match &raw.subject {
        Some(s) => {
            check_size(s, "subject")?;
            Some(digest_of(s, "subject")?)
        }
        None => None,
    };
    match media_type::kind(&media_type) {
        media_type::Kind::Manifest => {
            let config = raw.config.as_ref().ok_or("manifest has no config")?;
            let layers = raw.layers.as_ref().ok_or("manifest has no layers")?;
            if raw.manifests.is_some() {
                return Err("an image manifest cannot have manifests".into());
            }
            let mut blobs = vec![];
            check_size(config, "config")?;
            blobs.push(digest_of(config, "config")?);
            for (i, l) in layers.iter().enumerate() {
                check_size(l, "layer")?;
                let d = digest_of(l, &format!("layers[{i}]"))?;
                // Foreign layers live elsewhere: the registry does not need them.
                let foreign = l.urls.as_ref().is_some_and(|u| !u.is_empty())
                    && (l.media_type.contains("nondistributable")
                        || l.media_type.contains("foreign"));
                if !foreign {
                    blobs.push(d);
                }
            }
            // Spec (listing referrers): without artifactType, a manifest's artifact type is its
            // config's media type.
            let artifact_type = raw
                .artifact_type
                .clone()
                .or_else(|| Some(config.media_type.clone()));
            Ok(Parsed {
                media_type,
                is_index: false,
                blobs,
                manifests: vec![],
                subject,
                artifact_type,
                annotations: raw.annotations,
            })
        }
        media_type::Kind::Index => {
            let manifests = raw.manifests.as_ref().ok_or("index has no manifests")?;
            if raw.config.is_some() || raw.layers.is_some() {
                return Err("an index cannot have config or layers".into());
            }
            let mut children = vec![];
            for (i, m) in manifests.iter().enumerate() {
                check_size(m, "manifest")?;
                children.push(digest_of(m, &format!("manifests[{i}]"))?);
            }
            Ok(Parsed {
                media_type,
                is_index: true,
                blobs: vec![],
                manifests: children,
                subject,
                artifact_type: raw.artifact_type,
                annotations: raw.annotations,
            })
        }
        media_type::Kind::Schema1 => Err("Docker schema1 manifests are not supported".into()),
        _ => Err(format!("unsupported manifest media type {media_type}")),
    }
}

/// What a manifest references, for garbage collection (subject excluded on purpose: a referrer
/// does not keep its subject alive; the subject keeps its referrers).
pub fn references(bytes: &[u8], media_type: &str) -> (Vec<Digest>, Vec<Digest>, Option<Digest>) {
    match parse(bytes, Some(media_type)) {
        Ok(p) => (p.blobs, p.manifests, p.subject),
        Err(_) => (vec![], vec![], None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_an_artifact_with_subject() {
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","artifactType":"application/x-sig","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{D}","size":2}},"layers":[],"subject":{{"mediaType":"{}","digest":"{D}","size":10}}}}"#,
            media_type::OCI_MANIFEST,
            media_type::OCI_MANIFEST
        );
        let p = parse(m.as_bytes(), Some(media_type::OCI_MANIFEST)).unwrap();
        assert_eq!(p.artifact_type.as_deref(), Some("application/x-sig"));
        assert_eq!(p.subject.unwrap().to_string(), D);
    }

    #[test]
    fn refuses_mismatched_content_type_and_bad_digests() {
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[]}}"#,
            media_type::OCI_INDEX
        );
        assert!(parse(m.as_bytes(), Some(media_type::OCI_MANIFEST)).is_err());
        assert!(parse(m.as_bytes(), Some(media_type::OCI_INDEX)).is_ok());
        let bad = r#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:zz","size":1},"layers":[]}"#;
        assert!(parse(bad.as_bytes(), Some(media_type::OCI_MANIFEST)).is_err());
        assert!(parse(b"{", None).is_err());
        assert!(parse(b"[]", None).is_err());
    }
}
