//! What stored objects reference: the edges garbage collection and copies walk.

use std::collections::{BTreeSet, VecDeque};

use drydock_oci::Digest;
use drydock_oci::media_type::{self, Kind};
use drydock_oci::spec::{Descriptor, ImageIndex, ImageManifest};

use crate::{ContentError, Store};

/// A parsed manifest or index.
#[derive(Debug, Clone)]
pub enum Object {
    Manifest(ImageManifest),
    Index(ImageIndex),
}

/// The media type a manifest-like JSON document declares, or that its shape implies.
pub fn sniff_media_type(bytes: &[u8]) -> Option<&'static str> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let declared = v.get("mediaType").and_then(|m| m.as_str());
    match declared {
        Some(media_type::OCI_MANIFEST) => Some(media_type::OCI_MANIFEST),
        Some(media_type::OCI_INDEX) => Some(media_type::OCI_INDEX),
        Some(media_type::DOCKER_MANIFEST) => Some(media_type::DOCKER_MANIFEST),
        Some(media_type::DOCKER_MANIFEST_LIST) => Some(media_type::DOCKER_MANIFEST_LIST),
        Some(media_type::DOCKER_SCHEMA1) | Some(media_type::DOCKER_SCHEMA1_SIGNED) => {
            Some(media_type::DOCKER_SCHEMA1)
        }
        _ if v.get("schemaVersion").and_then(|s| s.as_u64()) == Some(1) => {
            Some(media_type::DOCKER_SCHEMA1)
        }
        _ if v.get("manifests").is_some() => Some(media_type::OCI_INDEX),
        _ if v.get("config").is_some() && v.get("layers").is_some() => {
            Some(media_type::OCI_MANIFEST)
        }
        _ => None,
    }
}

/// Parses a manifest or index, refusing Docker schema1 with a clear message.
pub fn parse(bytes: &[u8], declared_media_type: &str, what: &str) -> Result<Object, ContentError> {
    let digest = Digest::sha256(bytes);
    let bad = |reason: String| ContentError::BadObject {
        what: "manifest",
        digest: digest.clone(),
        reason,
    };
    let mt = match media_type::kind(declared_media_type) {
        Kind::Manifest | Kind::Index | Kind::Schema1 => declared_media_type,
        _ => {
            sniff_media_type(bytes).ok_or_else(|| bad("neither a manifest nor an index".into()))?
        }
    };
    match media_type::kind(mt) {
        Kind::Schema1 => Err(ContentError::Schema1 {
            reference: what.to_string(),
            media_type: mt.to_string(),
        }),
        Kind::Index => serde_json::from_slice(bytes)
            .map(Object::Index)
            .map_err(|e| bad(e.to_string())),
        Kind::Manifest => serde_json::from_slice(bytes)
            .map(Object::Manifest)
            .map_err(|e| bad(e.to_string())),
        _ => Err(bad(format!("unexpected media type {mt}"))),
    }
}

pub fn digest_of(d: &Descriptor) -> Result<Digest, ContentError> {
    Digest::try_from(d.digest())
        .map_err(|e| ContentError::Transport(format!("descriptor digest: {e}")))
}

/// The descriptors a manifest or index points at. The `subject` of a referrer is deliberately
/// not a child: a signature does not keep the image it signs alive, the image keeps it.
pub fn children(object: &Object) -> Vec<Descriptor> {
    match object {
        Object::Manifest(m) => {
            let mut out = vec![m.config().clone()];
            out.extend(m.layers().iter().cloned());
            out
        }
        Object::Index(i) => i.manifests().clone(),
    }
}

/// Loads the object a descriptor names when it is a manifest or index; `None` for plain blobs.
pub fn load(store: &Store, d: &Descriptor) -> Result<Option<Object>, ContentError> {
    if !media_type::is_manifest_like(d.media_type().as_ref())
        && !matches!(media_type::kind(d.media_type().as_ref()), Kind::Schema1)
    {
        return Ok(None);
    }
    let digest = digest_of(d)?;
    let bytes = store.read_blob(&digest)?;
    parse(&bytes, d.media_type().as_ref(), &digest.to_string()).map(Some)
}

/// Everything reachable from `roots` that is present in the store. Children that are absent
/// (an index whose other platforms were never pulled) are reported, not fatal.
#[derive(Debug, Default)]
pub struct Reachable {
    pub present: BTreeSet<Digest>,
    pub missing: BTreeSet<Digest>,
}

pub fn reachable(
    store: &Store,
    roots: impl IntoIterator<Item = Descriptor>,
) -> Result<Reachable, ContentError> {
    let mut out = Reachable::default();
    let mut queue: VecDeque<Descriptor> = roots.into_iter().collect();
    while let Some(d) = queue.pop_front() {
        let digest = digest_of(&d)?;
        if out.present.contains(&digest) || out.missing.contains(&digest) {
            continue;
        }
        if !store.contains(&digest) {
            out.missing.insert(digest);
            continue;
        }
        out.present.insert(digest);
        match load(store, &d) {
            Ok(Some(obj)) => queue.extend(children(&obj)),
            Ok(None) => {}
            // A corrupt manifest still keeps itself; its children cannot be known. Keeping data
            // we cannot interpret is the safe side for a collector.
            Err(
                ContentError::BadObject { .. }
                | ContentError::DigestMismatch { .. }
                | ContentError::Schema1 { .. },
            ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}
