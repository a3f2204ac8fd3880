//! Filesystem states as layer chains: an ordered list of stored layers, bottom first.

use drydock_oci::Digest;
use drydock_oci::spec::{Descriptor, MediaType};
use serde::{Deserialize, Serialize};

/// One layer blob in the content store.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LayerRef {
    /// The blob's digest (compressed bytes).
    pub digest: Digest,
    /// The uncompressed tar's digest (`rootfs.diff_ids`).
    pub diff_id: Digest,
    pub size: u64,
    pub media_type: String,
}

impl LayerRef {
    /// The descriptor for a manifest, with the media type converted to OCI's.
    pub fn oci_descriptor(&self) -> Descriptor {
        Descriptor::new(
            MediaType::from(oci_media_type(&self.media_type)),
            self.size,
            drydock_oci::spec::Digest::from(&self.digest),
        )
    }
}

/// Docker's layer media types mapped onto OCI's (the bytes are the same).
pub fn oci_media_type(mt: &str) -> &str {
    use drydock_oci::media_type as m;
    match mt {
        m::DOCKER_LAYER_GZIP => m::OCI_LAYER_GZIP,
        m::DOCKER_LAYER_FOREIGN_GZIP => m::OCI_LAYER_NONDIST_GZIP,
        "application/vnd.docker.image.rootfs.diff.tar" => m::OCI_LAYER_TAR,
        other => other,
    }
}

/// A file-system state: the layers that make it, bottom first.
pub type Chain = Vec<LayerRef>;
