//! `drydock import rootfs.tar`: a root filesystem tarball as a one-layer image.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use drydock_oci::spec::{Descriptor, MediaType};
use drydock_oci::{Digest, Platform, media_type};

use crate::error::IoContext;
use crate::names::oci_digest;
use crate::{ContentError, Store};

/// A layer already in the store, with its uncompressed digest.
#[derive(Debug, Clone)]
pub struct StoredLayer {
    pub descriptor: Descriptor,
    pub diff_id: Digest,
}

/// Imports a (possibly compressed) rootfs tar as one uncompressed layer and builds an image
/// around it. `created` is seconds since the epoch (reproducible builds pass
/// `SOURCE_DATE_EPOCH`); `comment` lands in the history.
pub fn import_rootfs(
    store: &Store,
    file: &Path,
    platform: &Platform,
    created: i64,
    comment: &str,
) -> Result<Descriptor, ContentError> {
    let f = File::open(file).ctx("open", file)?;
    let (_, mut reader) = drydock_layer::decompress_detect(f).ctx("decompress", file)?;
    let mut w = store.writer()?;
    io::copy(&mut reader, &mut w).ctx("read", file)?;
    let (digest, size) = w.commit()?;
    validate_tar(store, &digest, file)?;
    let layer = StoredLayer {
        descriptor: Descriptor::new(
            MediaType::from(media_type::OCI_LAYER_TAR),
            size,
            oci_digest(&digest),
        ),
        diff_id: digest,
    };
    crate::image::assemble(
        store,
        platform,
        created,
        &[layer],
        &[comment.to_string()],
        serde_json::json!({}),
    )
}

/// Refuses files that are not tar archives before they become images.
fn validate_tar(store: &Store, digest: &Digest, file: &Path) -> Result<(), ContentError> {
    let f = store.open_blob(digest)?;
    let mut archive = tar::Archive::new(f);
    let entries = archive.entries().map_err(|e| {
        ContentError::Transport(format!("{} is not a tar archive: {e}", file.display()))
    })?;
    for entry in entries {
        let mut entry = entry.map_err(|e| {
            ContentError::Transport(format!(
                "{} is not a valid tar archive: {e}",
                file.display()
            ))
        })?;
        io::copy(&mut entry.by_ref(), &mut io::sink()).map_err(|e| {
            ContentError::Transport(format!("{} is truncated: {e}", file.display()))
        })?;
    }
    Ok(())
}
