//! Reading images out of a store: pick the manifest for a platform, load its config, and
//! summarise images for listings.

use drydock_oci::spec::{Descriptor, ImageConfiguration, ImageManifest, MediaType};
use drydock_oci::{Digest, Platform, Reference, canonical, media_type};

use crate::graph::{self, Object};
use crate::{ContentError, Store};

/// One single-platform image, fully loaded.
#[derive(Debug, Clone)]
pub struct Image {
    /// What the name points at (a manifest, or an index containing `manifest_descriptor`).
    pub top: Descriptor,
    pub manifest_descriptor: Descriptor,
    pub manifest: ImageManifest,
    pub config: ImageConfiguration,
    /// The config blob's digest: Docker's "image ID".
    pub config_digest: Digest,
}

impl Image {
    /// Sum of config and layer sizes as stored (compressed).
    pub fn size(&self) -> u64 {
        self.manifest.config().size() + self.manifest.layers().iter().map(|l| l.size()).sum::<u64>()
    }
}

fn platform_of(d: &Descriptor) -> Option<Platform> {
    let p = d.platform().as_ref()?;
    Some(Platform::new(
        &p.os().to_string(),
        &p.architecture().to_string(),
        p.variant().as_deref(),
    ))
}

/// Resolves `top` (a manifest, or an index) to the manifest for `platform`.
pub fn resolve(
    store: &Store,
    top: &Descriptor,
    platform: &Platform,
    what: &str,
) -> Result<Image, ContentError> {
    let mut current = top.clone();
    // Nested indexes are legal; bound the depth so a cycle cannot loop forever.
    for _ in 0..8 {
        match graph::load(store, &current)? {
            Some(Object::Manifest(manifest)) => {
                let config_digest = graph::digest_of(manifest.config())?;
                let config: ImageConfiguration = store.read_json(&config_digest, "image config")?;
                return Ok(Image {
                    top: top.clone(),
                    manifest_descriptor: current,
                    manifest,
                    config,
                    config_digest,
                });
            }
            Some(Object::Index(index)) => {
                let candidates: Vec<&Descriptor> = index
                    .manifests()
                    .iter()
                    .filter(|d| media_type::is_manifest_like(d.media_type().as_ref()))
                    .collect();
                let chosen = candidates
                    .iter()
                    .find(|d| platform_of(d).is_some_and(|p| p.matches(platform)))
                    .or_else(|| {
                        // A single entry without platform (attestations aside) is taken as is.
                        let unplatformed: Vec<_> = candidates
                            .iter()
                            .filter(|d| d.platform().is_none())
                            .collect();
                        (candidates.len() == 1 && unplatformed.len() == 1).then(|| unplatformed[0])
                    })
                    .ok_or_else(|| ContentError::NoMatchingPlatform {
                        reference: what.to_string(),
                        platform: platform.to_string(),
                        available: candidates
                            .iter()
                            .filter_map(|d| platform_of(d).map(|p| p.to_string()))
                            .collect::<Vec<_>>()
                            .join(", "),
                    })?;
                current = (*chosen).clone();
            }
            None => {
                return Err(ContentError::BadObject {
                    what: "image",
                    digest: graph::digest_of(&current)?,
                    reason: format!("{} is not a manifest or index", current.media_type()),
                });
            }
        }
    }
    Err(ContentError::BadObject {
        what: "index",
        digest: graph::digest_of(top)?,
        reason: "indexes nested more than 8 deep".into(),
    })
}

/// Looks up a name (or pinned digest) in the local store and resolves it for `platform`.
pub fn load(
    store: &Store,
    reference: &Reference,
    platform: &Platform,
) -> Result<Image, ContentError> {
    let top = crate::names::get(store, reference)?
        .ok_or_else(|| ContentError::NameNotFound(reference.clone()))?;
    resolve(store, &top, platform, &reference.familiar())
}

/// Stores a manifest (canonical JSON) and returns its descriptor.
pub fn put_manifest(store: &Store, manifest: &ImageManifest) -> Result<Descriptor, ContentError> {
    put_json(store, manifest, media_type::OCI_MANIFEST)
}

/// Stores an image config (canonical JSON) and returns its descriptor.
pub fn put_config(store: &Store, config: &ImageConfiguration) -> Result<Descriptor, ContentError> {
    put_json(store, config, media_type::OCI_CONFIG)
}

pub fn put_json<T: serde::Serialize>(
    store: &Store,
    value: &T,
    mt: &str,
) -> Result<Descriptor, ContentError> {
    let bytes = canonical::to_vec(value)
        .map_err(|e| ContentError::Transport(format!("encode {mt}: {e}")))?;
    let digest = store.put_bytes(&bytes)?;
    Ok(Descriptor::new(
        MediaType::from(mt),
        bytes.len() as u64,
        crate::names::oci_digest(&digest),
    ))
}

/// A row of `drydock images`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    pub reference: String,
    pub repository: String,
    pub tag: String,
    /// Digest of what the name points at (manifest or index).
    pub digest: Digest,
    /// Config digest of the host-platform image, when present.
    pub id: Option<Digest>,
    pub size: Option<u64>,
    pub created: Option<String>,
}

pub fn summaries(store: &Store) -> Result<Vec<Summary>, ContentError> {
    let host = Platform::host();
    let mut out = Vec::new();
    for (reference, top) in crate::names::list(store)? {
        let img = resolve(store, &top, &host, &reference.familiar()).ok();
        out.push(Summary {
            reference: reference.familiar(),
            repository: reference.repository_ref().familiar(),
            tag: reference.tag().unwrap_or_default().to_string(),
            digest: graph::digest_of(&top)?,
            id: img.as_ref().map(|i| i.config_digest.clone()),
            size: img.as_ref().map(Image::size),
            created: img.and_then(|i| i.config.created().clone()),
        });
    }
    Ok(out)
}

/// Builds and stores an image from stored layers: config (with `rootfs`, `history`, `created`,
/// platform) and manifest. `container_config` becomes the config's `config` object. Returns the
/// manifest descriptor. Pure data in, so the same inputs always give the same digest.
pub fn assemble(
    store: &Store,
    platform: &Platform,
    created: i64,
    layers: &[crate::transport::StoredLayer],
    history: &[String],
    container_config: serde_json::Value,
) -> Result<Descriptor, ContentError> {
    let created = rfc3339(created);
    let mut config = serde_json::json!({
        "architecture": platform.architecture,
        "os": platform.os,
        "created": created,
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>()},
        "history": history.iter().map(|h| serde_json::json!({"created": created, "created_by": h})).collect::<Vec<_>>(),
        "config": container_config,
    });
    if let Some(v) = &platform.variant {
        config["variant"] = v.clone().into();
    }
    let config_desc = put_json(store, &config, media_type::OCI_CONFIG)?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_MANIFEST,
        "config": config_desc,
        "layers": layers.iter().map(|l| l.descriptor.clone()).collect::<Vec<_>>(),
    });
    put_json(store, &manifest, media_type::OCI_MANIFEST)
}

/// Seconds since the epoch as RFC 3339 UTC (`1970-01-01T00:00:00Z`), without a clock or a
/// date crate: the civil-from-days algorithm.
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_known_values() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(super::rfc3339(-1), "1969-12-31T23:59:59Z");
    }
}
