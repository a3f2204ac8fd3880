//! `oci:DIR[:TAG]`: OCI image layout directories, the format `skopeo` and `umoci` read.

use std::io;

use drydock_oci::Platform;
use drydock_oci::spec::Descriptor;

use crate::error::IoContext;
use crate::graph::{self, digest_of};
use crate::{ContentError, Store};

/// Copies every blob reachable from `roots` from `from` into `to`, verifying each digest.
pub(crate) fn copy_blobs(
    from: &Store,
    to: &Store,
    roots: &[Descriptor],
) -> Result<(), ContentError> {
    let reach = graph::reachable(from, roots.iter().cloned())?;
    if let Some(missing) = reach.missing.iter().next() {
        return Err(ContentError::BlobNotFound(missing.clone()));
    }
    for digest in &reach.present {
        if to.contains(digest) {
            continue;
        }
        let mut src = from.open_blob(digest)?;
        let mut w = to.writer_expecting(digest, None)?;
        io::copy(&mut src, &mut w).ctx("copy blob", from.blob_path(digest))?;
        w.commit()?;
    }
    Ok(())
}

/// Writes the image `top` of `store` to a layout at `dir`, named `tag` (default `latest`).
///
/// When `top` is an index whose other platforms were never pulled, only the manifest for
/// `platform` is exported, so the layout is complete.
pub fn export_oci_dir(
    store: &Store,
    top: &Descriptor,
    dir: &std::path::Path,
    tag: Option<&str>,
    platform: &Platform,
) -> Result<Descriptor, ContentError> {
    let reach = graph::reachable(store, [top.clone()])?;
    let root = if reach.missing.is_empty() {
        top.clone()
    } else {
        crate::image::resolve(store, top, platform, &digest_of(top)?.to_string())?
            .manifest_descriptor
    };
    let out = Store::open(dir)?;
    copy_blobs(store, &out, std::slice::from_ref(&root))?;
    crate::names::set_raw(&out, tag.unwrap_or("latest"), &root, None)?;
    // Leave a clean layout: our scratch directory is not part of the format.
    let _ = std::fs::remove_dir_all(out.ingest_dir());
    Ok(root)
}

/// Reads the image named `tag` (or the only image) of the layout at `dir` into `store`.
pub fn import_oci_dir(
    store: &Store,
    dir: &std::path::Path,
    tag: Option<&str>,
) -> Result<Descriptor, ContentError> {
    let layout = Store::open_existing(dir)?;
    let entries = crate::names::entries(&layout)?;
    let chosen = match tag {
        Some(t) => entries
            .into_iter()
            .find(|(n, _)| n.as_deref() == Some(t))
            .map(|(_, d)| d)
            .ok_or_else(|| {
                ContentError::Transport(format!(
                    "no image tagged {t:?} in OCI layout {}",
                    dir.display()
                ))
            })?,
        None => {
            if entries.len() != 1 {
                return Err(ContentError::Transport(format!(
                    "OCI layout {} holds {} images; name one with oci:{}:TAG",
                    dir.display(),
                    entries.len(),
                    dir.display()
                )));
            }
            entries
                .into_iter()
                .next()
                .map(|(_, d)| d)
                .expect("one entry")
        }
    };
    let mut clean = chosen.clone();
    clean.set_annotations(None);
    copy_blobs(&layout, store, std::slice::from_ref(&clean))?;
    Ok(clean)
}
