//! Where a built image goes: names in the local store, an OCI layout, a `docker load` archive,
//! its files (a directory or one tar).

use std::fs;
use std::path::Path;

use drydock_content::Store;
use drydock_layer::{ApplyOptions, TarOptions};
use drydock_oci::spec::Descriptor;
use drydock_oci::{Platform, Reference};

use crate::chain::LayerRef;
use crate::error::{BuildError, IoCtx};

fn out_err(what: &Path, e: impl std::fmt::Display) -> BuildError {
    BuildError::Output {
        what: what.display().to_string(),
        message: e.to_string(),
    }
}

/// Applies `layers` (bottom first) onto the directory `dest` (created when missing), with the
/// layers' owners.
pub fn flatten(store: &Store, layers: &[LayerRef], dest: &Path) -> Result<(), BuildError> {
    flatten_with(store, layers, dest, false)
}

/// `for_user`: the files are handed to the person who ran a rootless build (see below).
fn flatten_with(
    store: &Store,
    layers: &[LayerRef],
    dest: &Path,
    for_user: bool,
) -> Result<(), BuildError> {
    fs::create_dir_all(dest).ctx("create directory", dest)?;
    for l in layers {
        let blob = store.open_blob(&l.digest)?;
        let (_, tar) =
            drydock_layer::decompress_detect(std::io::BufReader::with_capacity(1 << 20, blob))
                .ctx("read layer", store.blob_path(&l.digest))?;
        let opts = if drydock_sandbox::in_user_namespace() {
            // A rootless build: devices cannot be made and are left out; files handed to the
            // user belong to the user (as BuildKit's local exporter writes them), not to
            // subordinate ids the user could not delete.
            ApplyOptions {
                chown: Some(!for_user),
                skip_devices: true,
                ..Default::default()
            }
        } else {
            ApplyOptions {
                allow_devices: rustix::process::geteuid().is_root(),
                ..Default::default()
            }
        };
        drydock_layer::apply(tar, dest, &opts)?;
    }
    Ok(())
}

/// `-o type=local,dest=DIR`.
pub fn local_dir(store: &Store, layers: &[LayerRef], dest: &Path) -> Result<(), BuildError> {
    flatten_with(store, layers, dest, true).map_err(|e| out_err(dest, e))
}

/// `-o type=tar,dest=FILE`: the image's files as one tar (timestamps clamped to `epoch`).
pub fn tar_file(
    store: &Store,
    layers: &[LayerRef],
    dest: &Path,
    tmp: &Path,
    epoch: i64,
) -> Result<(), BuildError> {
    fs::create_dir_all(tmp).ctx("create directory", tmp)?;
    let t = tempfile::Builder::new()
        .prefix("export-")
        .tempdir_in(tmp)
        .ctx("create temporary directory in", tmp)?;
    flatten(store, layers, t.path())?;
    let partial = dest.with_extension("partial");
    let f = fs::File::create(&partial).map_err(|e| out_err(dest, e))?;
    drydock_layer::write_tree(t.path(), f, &TarOptions::with_epoch(epoch))
        .map_err(|e| out_err(dest, e))?;
    fs::rename(&partial, dest).map_err(|e| out_err(dest, e))?;
    Ok(())
}

/// `-o type=oci,dest=DIR`.
pub fn oci_dir(
    store: &Store,
    top: &Descriptor,
    dest: &Path,
    tags: &[Reference],
    platform: &Platform,
) -> Result<(), BuildError> {
    let tag = tags.first().and_then(|t| t.tag()).unwrap_or("latest");
    drydock_content::transport::export_oci_dir(store, top, dest, Some(tag), platform)
        .map_err(|e| out_err(dest, e))?;
    Ok(())
}

/// `-o type=docker,dest=FILE`.
pub fn docker_archive(
    store: &Store,
    top: &Descriptor,
    dest: &Path,
    tags: &[Reference],
    platform: &Platform,
) -> Result<(), BuildError> {
    let image = drydock_content::image::resolve(store, top, platform, "the built image")?;
    drydock_content::transport::export_docker_archive(store, &image, tags, dest)
        .map_err(|e| out_err(dest, e))?;
    Ok(())
}
