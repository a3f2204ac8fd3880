use std::path::Path;

use drydock_content::Store;
use drydock_content::transport::StoredLayer;
use drydock_layer::{CompressOptions, LayerWriter, TarOptions};
use drydock_oci::media_type::{self, Compression};
use drydock_oci::spec::{Descriptor, MediaType};
use drydock_oci::{Platform, Reference};

use crate::error::{KitError, io};

/// Writes `root` as one gzip layer, assembles an image around it and names it `tag`.
pub(crate) fn commit_tree(
    store: &Store,
    root: &Path,
    epoch: i64,
    tag: &Reference,
    history: &str,
    config: serde_json::Value,
) -> Result<Descriptor, KitError> {
    let blob = store.writer()?;
    let mut layer =
        LayerWriter::over_digesting_sink(blob, Compression::Gzip, &CompressOptions::default())
            .map_err(io("compress layer of", root))?;
    drydock_layer::write_tree(root, &mut layer, &TarOptions::with_epoch(epoch))?;
    let (digests, blob) = layer.finish().map_err(io("compress layer of", root))?;
    let (digest, size) = blob.commit()?;
    let stored = StoredLayer {
        descriptor: Descriptor::new(
            MediaType::from(media_type::oci_layer(Compression::Gzip)),
            size,
            drydock_oci::spec::Digest::from(&digest),
        ),
        diff_id: digests.diff_id,
    };
    let manifest = drydock_content::image::assemble(
        store,
        &Platform::host(),
        epoch,
        &[stored],
        &[history.to_string()],
        config,
    )?;
    drydock_content::names::set(store, tag, &manifest)?;
    Ok(manifest)
}
