//! Where images come from and go to: skopeo-style transport names.
//!
//! - `local:REF` (or a bare reference): drydock's own store.
//! - `oci:DIR[:TAG]`: an OCI image layout directory.
//! - `docker-archive:FILE[:REF]`: a `docker save` / `docker load` tar archive.
//! - `docker://REF`: a registry; parsed here so there is one parser, copied by the registry
//!   client.

mod docker_archive;
mod location;
mod oci_dir;
mod rootfs;

pub use docker_archive::{ImportedImage, export_docker_archive, import_docker_archive};
pub use location::Location;
pub use oci_dir::{export_oci_dir, import_oci_dir};
pub use rootfs::{StoredLayer, import_rootfs};

use drydock_oci::spec::Descriptor;
use drydock_oci::{Platform, Reference};

use crate::{ContentError, Store};

/// What a copy produced.
#[derive(Debug, Clone)]
pub struct Copied {
    /// What was written at the destination (manifest or index).
    pub descriptor: Descriptor,
    pub names: Vec<Reference>,
}

/// Copies between `local:`, `oci:` and `docker-archive:` locations. Sources other than the
/// local store pass through it (verified on the way in), so their blobs stay as unnamed content
/// until the next `drydock gc` after the grace period. `docker://` is the registry client's.
pub fn copy(
    store: &Store,
    src: &Location,
    dst: &Location,
    platform: &Platform,
) -> Result<Copied, ContentError> {
    let (top, names) = open_source(store, src)?;
    write_destination(store, &top, &names, dst, platform)
}

/// Brings a source into `store` and returns what it names and the names it carries.
pub fn open_source(
    store: &Store,
    src: &Location,
) -> Result<(Descriptor, Vec<Reference>), ContentError> {
    match src {
        Location::Local(r) => {
            let d = crate::names::get(store, r)?
                .ok_or_else(|| ContentError::NameNotFound(r.clone()))?;
            Ok((d, vec![r.clone()]))
        }
        Location::OciDir { path, tag } => {
            Ok((import_oci_dir(store, path, tag.as_deref())?, Vec::new()))
        }
        Location::DockerArchive { path, reference } => {
            let mut images = import_docker_archive(store, path, reference.as_ref())?;
            if images.len() > 1 {
                let tags: Vec<String> = images
                    .iter()
                    .flat_map(|i| i.repo_tags.iter().map(Reference::familiar))
                    .collect();
                return Err(ContentError::Transport(format!(
                    "{} holds {} images; pick one with docker-archive:{}:NAME (names: {})",
                    path.display(),
                    images.len(),
                    path.display(),
                    tags.join(", ")
                )));
            }
            let img = images.remove(0);
            let names = match reference {
                Some(r) => vec![r.clone()],
                None => img.repo_tags,
            };
            Ok((img.manifest, names))
        }
        Location::Registry(_) => Err(registry_unsupported()),
    }
}

/// Writes `top` (already in `store`) to `dst`.
pub fn write_destination(
    store: &Store,
    top: &Descriptor,
    names: &[Reference],
    dst: &Location,
    platform: &Platform,
) -> Result<Copied, ContentError> {
    match dst {
        Location::Local(r) => {
            crate::names::set(store, r, top)?;
            Ok(Copied {
                descriptor: top.clone(),
                names: vec![r.clone()],
            })
        }
        Location::OciDir { path, tag } => {
            let d = export_oci_dir(store, top, path, tag.as_deref(), platform)?;
            Ok(Copied {
                descriptor: d,
                names: Vec::new(),
            })
        }
        Location::DockerArchive { path, reference } => {
            let what = names
                .first()
                .map(Reference::familiar)
                .unwrap_or_else(|| "image".into());
            let image = crate::image::resolve(store, top, platform, &what)?;
            let refs: Vec<Reference> = match reference {
                Some(r) => vec![r.clone()],
                None => names.to_vec(),
            };
            export_docker_archive(store, &image, &refs, path)?;
            Ok(Copied {
                descriptor: image.manifest_descriptor,
                names: refs,
            })
        }
        Location::Registry(_) => Err(registry_unsupported()),
    }
}

fn registry_unsupported() -> ContentError {
    ContentError::Transport("docker:// locations are handled by the registry client".into())
}
