//! The name index: which manifest or index a name points at, kept in the layout's `index.json`.
//!
//! Each entry is a descriptor with the annotation `org.opencontainers.image.ref.name`. In
//! drydock's own store the value is the full normalised reference
//! (`docker.io/library/busybox:latest`); in layouts exported for other tools it is the bare tag,
//! as the OCI image-layout convention has it. Updates take a lock and replace `index.json`
//! atomically, so concurrent drydock processes never lose each other's names.

use std::collections::BTreeMap;

use drydock_oci::spec::{Descriptor, MediaType};
use drydock_oci::{Digest, Reference, canonical, media_type};
use serde::{Deserialize, Serialize};

use crate::error::IoContext;
use crate::lock::FileLock;
use crate::{ContentError, Store};

pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// containerd's name annotation, written too so its tooling recognises our layouts.
pub const CONTAINERD_NAME: &str = "io.containerd.image.name";

/// The `index.json` of a layout, kept in our own types so field order and key order are stable.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LayoutIndex {
    schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    annotations: Option<BTreeMap<String, String>>,
}

pub(crate) fn init_index(store: &Store) -> Result<(), ContentError> {
    let _lock = FileLock::exclusive(&store.lock_path("index"))?;
    if store.index_path().exists() {
        return Ok(());
    }
    write_index(store, &empty_index())
}

fn empty_index() -> LayoutIndex {
    LayoutIndex {
        schema_version: 2,
        media_type: Some(media_type::OCI_INDEX.to_string()),
        manifests: Vec::new(),
        annotations: None,
    }
}

fn read_index(store: &Store) -> Result<LayoutIndex, ContentError> {
    let path = store.index_path();
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(empty_index()),
        Err(e) => return Err(e).ctx("read", path),
    };
    serde_json::from_slice(&bytes).map_err(|e| ContentError::BadLayout {
        path: store.root().to_path_buf(),
        reason: format!("index.json: {e}"),
    })
}

fn write_index(store: &Store, index: &LayoutIndex) -> Result<(), ContentError> {
    let bytes = canonical::to_vec_pretty(index).map_err(|e| ContentError::BadLayout {
        path: store.root().to_path_buf(),
        reason: format!("cannot encode index.json: {e}"),
    })?;
    store.write_file_atomic(&store.index_path(), &bytes)
}

fn name_of(d: &Descriptor) -> Option<&str> {
    d.annotations().as_ref()?.get(REF_NAME).map(String::as_str)
}

/// Points `name` at `target`, replacing any previous entry of that name.
pub fn set_raw(
    store: &Store,
    name: &str,
    target: &Descriptor,
    containerd_name: Option<&str>,
) -> Result<(), ContentError> {
    let _lock = FileLock::exclusive(&store.lock_path("index"))?;
    let mut index = read_index(store)?;
    index.manifests.retain(|d| name_of(d) != Some(name));
    let mut entry = target.clone();
    let mut ann = entry.annotations().clone().unwrap_or_default();
    ann.insert(REF_NAME.to_string(), name.to_string());
    if let Some(c) = containerd_name {
        ann.insert(CONTAINERD_NAME.to_string(), c.to_string());
    }
    entry.set_annotations(Some(ann));
    index.manifests.push(entry);
    index.manifests.sort_by(|a, b| name_of(a).cmp(&name_of(b)));
    write_index(store, &index)
}

pub fn get_raw(store: &Store, name: &str) -> Result<Option<Descriptor>, ContentError> {
    Ok(read_index(store)?
        .manifests
        .into_iter()
        .find(|d| name_of(d) == Some(name)))
}

pub fn remove_raw(store: &Store, name: &str) -> Result<Option<Descriptor>, ContentError> {
    let _lock = FileLock::exclusive(&store.lock_path("index"))?;
    let mut index = read_index(store)?;
    let pos = index
        .manifests
        .iter()
        .position(|d| name_of(d) == Some(name));
    let removed = pos.map(|i| index.manifests.remove(i));
    if removed.is_some() {
        write_index(store, &index)?;
    }
    Ok(removed)
}

/// Every entry of `index.json`, named or not, in file order.
pub fn entries(store: &Store) -> Result<Vec<(Option<String>, Descriptor)>, ContentError> {
    Ok(read_index(store)?
        .manifests
        .into_iter()
        .map(|d| (name_of(&d).map(str::to_string), d))
        .collect())
}

/// Names `reference` (which must carry a tag) in drydock's store.
pub fn set(store: &Store, reference: &Reference, target: &Descriptor) -> Result<(), ContentError> {
    let name = tagged_name(reference)?;
    set_raw(store, &name, target, Some(&name))
}

/// Looks a reference up: by name when it has a tag, by digest when it is pinned.
pub fn get(store: &Store, reference: &Reference) -> Result<Option<Descriptor>, ContentError> {
    // For `name:tag@digest` the digest wins, as Docker does.
    if let Some(digest) = reference.digest() {
        return descriptor_for_digest(store, digest);
    }
    get_raw(store, &reference.to_string())
}

/// Removes a name; returns what it pointed at.
pub fn remove(store: &Store, reference: &Reference) -> Result<Option<Descriptor>, ContentError> {
    remove_raw(store, &tagged_name(reference)?)
}

/// Every named image in the store, sorted by name.
pub fn list(store: &Store) -> Result<Vec<(Reference, Descriptor)>, ContentError> {
    let mut out = Vec::new();
    for (name, d) in entries(store)? {
        // Entries we cannot parse as references were written by other tools: skip, don't fail.
        if let Some(r) = name.and_then(|n| Reference::parse(&n).ok()) {
            out.push((r, d));
        }
    }
    out.sort_by_key(|(r, _)| r.to_string());
    Ok(out)
}

fn tagged_name(reference: &Reference) -> Result<String, ContentError> {
    match reference.tag() {
        Some(tag) => Ok(format!("{}:{tag}", reference.name())),
        None => Err(ContentError::Transport(format!(
            "{reference} has no tag: a name in the local store needs one"
        ))),
    }
}

/// A descriptor for a stored manifest or index known only by digest.
pub fn descriptor_for_digest(
    store: &Store,
    digest: &Digest,
) -> Result<Option<Descriptor>, ContentError> {
    let Some(info) = store.info(digest)? else {
        return Ok(None);
    };
    let bytes = store.read_blob(digest)?;
    let mt = crate::graph::sniff_media_type(&bytes).unwrap_or(media_type::OCI_MANIFEST);
    Ok(Some(Descriptor::new(
        MediaType::from(mt),
        info.size,
        oci_digest(digest),
    )))
}

pub(crate) fn oci_digest(d: &Digest) -> drydock_oci::spec::Digest {
    d.into()
}
