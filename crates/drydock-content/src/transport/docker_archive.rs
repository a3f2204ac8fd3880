//! `docker-archive:FILE[:REF]`: the tar archives of `docker save` and `docker load`.
//!
//! We write the layout Docker 25+ writes, which older engines also load: an OCI layout
//! (`oci-layout`, `index.json`, `blobs/sha256/…`) plus Docker's `manifest.json`, with layers
//! stored uncompressed (named by their diff ID) as `docker load` expects. We read both that and
//! the classic layout (`<id>/layer.tar`, `<config>.json`, symlinks for repeated layers).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};

use drydock_oci::spec::{Descriptor, ImageConfiguration, MediaType};
use drydock_oci::{Digest, Reference, canonical, media_type};
use serde::{Deserialize, Serialize};

use crate::error::IoContext;
use crate::graph::digest_of;
use crate::image::Image;
use crate::names::oci_digest;
use crate::{ContentError, Store};

#[derive(Debug, Serialize, Deserialize)]
struct ManifestEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

fn archive_err(path: &Path, msg: impl std::fmt::Display) -> ContentError {
    ContentError::Transport(format!("docker archive {}: {msg}", path.display()))
}

fn header(path: &str, size: u64, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(if kind == tar::EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    // Paths here are short ASCII (blobs/sha256/<64 hex>), always within ustar limits.
    h.set_path(path).expect("short archive path");
    h.set_cksum();
    h
}

/// Writes `image` as a `docker load`-able archive at `file`, naming it `references`.
/// The archive is written to a temporary file and renamed, so a failure leaves nothing behind.
pub fn export_docker_archive(
    store: &Store,
    image: &Image,
    references: &[Reference],
    file: &Path,
) -> Result<(), ContentError> {
    let dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.partial-{}",
        file.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    let result = write_archive(store, image, references, &tmp);
    match result {
        Ok(()) => std::fs::rename(&tmp, file).ctx("rename into place", file),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

fn write_archive(
    store: &Store,
    image: &Image,
    references: &[Reference],
    out: &Path,
) -> Result<(), ContentError> {
    let diff_ids: Vec<Digest> = image
        .config
        .rootfs()
        .diff_ids()
        .iter()
        .map(|d| {
            Digest::parse(d).map_err(|e| ContentError::BadObject {
                what: "image config",
                digest: image.config_digest.clone(),
                reason: e.to_string(),
            })
        })
        .collect::<Result<_, _>>()?;
    if diff_ids.len() != image.manifest.layers().len() {
        return Err(ContentError::BadObject {
            what: "image",
            digest: digest_of(&image.manifest_descriptor)?,
            reason: format!(
                "{} layers but {} diff IDs in the config",
                image.manifest.layers().len(),
                diff_ids.len()
            ),
        });
    }
    let f = File::create(out).ctx("create", out)?;
    let mut tar = tar::Builder::new(io::BufWriter::with_capacity(1 << 20, f));
    let add_bytes = |tar: &mut tar::Builder<io::BufWriter<File>>, path: &str, data: &[u8]| {
        let h = header(path, data.len() as u64, tar::EntryType::Regular);
        tar.append(&h, data).ctx("write archive", out)?;
        Ok::<_, ContentError>(())
    };
    for d in ["blobs/", "blobs/sha256/"] {
        tar.append(&header(d, 0, tar::EntryType::Directory), io::empty())
            .ctx("write archive", out)?;
    }
    // Blobs in digest order, each once, so the same image always gives the same archive.
    let mut blobs: BTreeMap<String, BlobSource> = BTreeMap::new();
    blobs.insert(
        image.config_digest.hex().to_string(),
        BlobSource::Store(image.config_digest.clone()),
    );
    let mut layer_descs = Vec::new();
    for (layer, diff_id) in image.manifest.layers().iter().zip(&diff_ids) {
        blobs.insert(
            diff_id.hex().to_string(),
            BlobSource::Layer(layer.clone(), diff_id.clone()),
        );
        layer_descs.push(diff_id.clone());
    }
    let mut sizes: HashMap<Digest, u64> = HashMap::new();
    for (hex, source) in &blobs {
        let path = format!("blobs/sha256/{hex}");
        match source {
            BlobSource::Store(d) => add_bytes(&mut tar, &path, &store.read_blob(d)?)?,
            BlobSource::Layer(desc, diff_id) => {
                let (mut tmp, size) = uncompressed_layer(store, desc, diff_id)?;
                let h = header(&path, size, tar::EntryType::Regular);
                tar.append(&h, &mut tmp).ctx("write archive", out)?;
                sizes.insert(diff_id.clone(), size);
            }
        }
    }
    // An OCI manifest over the uncompressed layers, for engines that read the OCI layout.
    let layers = layer_descs
        .iter()
        .map(|d| {
            Descriptor::new(
                MediaType::from(media_type::OCI_LAYER_TAR),
                sizes[d],
                oci_digest(d),
            )
        })
        .collect();
    let manifest = oci_manifest(
        Descriptor::new(
            MediaType::from(media_type::OCI_CONFIG),
            image.manifest.config().size(),
            oci_digest(&image.config_digest),
        ),
        layers,
    );
    let manifest_bytes = canonical::to_vec(&manifest).map_err(|e| archive_err(out, e))?;
    let manifest_digest = Digest::sha256(&manifest_bytes);
    add_bytes(
        &mut tar,
        &format!("blobs/sha256/{}", manifest_digest.hex()),
        &manifest_bytes,
    )?;

    let tags: Vec<String> = references.iter().map(Reference::familiar).collect();
    let mut index_manifests = Vec::new();
    for r in references
        .iter()
        .map(Some)
        .chain(references.is_empty().then_some(None))
    {
        let mut ann = serde_json::Map::new();
        if let Some(r) = r {
            ann.insert("io.containerd.image.name".into(), r.to_string().into());
            ann.insert(
                "org.opencontainers.image.ref.name".into(),
                r.tag().unwrap_or("latest").into(),
            );
        }
        let mut entry = serde_json::json!({
            "mediaType": media_type::OCI_MANIFEST,
            "digest": manifest_digest.to_string(),
            "size": manifest_bytes.len(),
        });
        if !ann.is_empty() {
            entry["annotations"] = ann.into();
        }
        index_manifests.push(entry);
    }
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": media_type::OCI_INDEX, "manifests": index_manifests});
    add_bytes(
        &mut tar,
        "index.json",
        &canonical::to_vec(&index).map_err(|e| archive_err(out, e))?,
    )?;
    let docker_manifest = vec![ManifestEntry {
        config: format!("blobs/sha256/{}", image.config_digest.hex()),
        repo_tags: Some(tags),
        layers: layer_descs
            .iter()
            .map(|d| format!("blobs/sha256/{}", d.hex()))
            .collect(),
    }];
    add_bytes(
        &mut tar,
        "manifest.json",
        &canonical::to_vec(&docker_manifest).map_err(|e| archive_err(out, e))?,
    )?;
    add_bytes(
        &mut tar,
        "oci-layout",
        b"{\"imageLayoutVersion\":\"1.0.0\"}",
    )?;
    let mut w = tar.into_inner().ctx("write archive", out)?;
    w.flush().ctx("write archive", out)?;
    w.get_ref().sync_all().ctx("sync", out)?;
    Ok(())
}

fn oci_manifest(config: Descriptor, layers: Vec<Descriptor>) -> serde_json::Value {
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_MANIFEST,
        "config": config,
        "layers": layers,
    })
}

enum BlobSource {
    Store(Digest),
    Layer(Descriptor, Digest),
}

/// The uncompressed bytes of a layer in a temporary file, checked against its diff ID.
fn uncompressed_layer(
    store: &Store,
    desc: &Descriptor,
    diff_id: &Digest,
) -> Result<(File, u64), ContentError> {
    let digest = digest_of(desc)?;
    let src = store.open_blob(&digest)?;
    // Trust the bytes, not the media type: some tools label gzip layers as plain tar.
    let (_, mut reader) =
        drydock_layer::decompress_detect(src).ctx("decompress layer", store.blob_path(&digest))?;
    let mut tmp = tempfile_in(&store.root().join("ingest"))?;
    let mut hasher = diff_id.algorithm().hasher();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = reader
            .read(&mut buf)
            .ctx("decompress layer", store.blob_path(&digest))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        tmp.write_all(&buf[..n])
            .ctx("write temporary file", store.root())?;
        size += n as u64;
    }
    let actual = hasher.finish();
    if &actual != diff_id {
        return Err(ContentError::BadObject {
            what: "layer",
            digest,
            reason: format!(
                "uncompressed content is {actual}, but the config's diff ID is {diff_id}"
            ),
        });
    }
    tmp.seek(SeekFrom::Start(0)).ctx("seek", store.root())?;
    Ok((tmp, size))
}

/// An anonymous temporary file: unlinked at once, so nothing survives a crash.
fn tempfile_in(dir: &Path) -> Result<File, ContentError> {
    let path = dir.join(format!("export-{}", crate::ingest::unique_suffix()));
    let f = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .ctx("create", &path)?;
    let _ = std::fs::remove_file(&path);
    Ok(f)
}

/// One image found in an archive and copied into the store.
#[derive(Debug, Clone)]
pub struct ImportedImage {
    pub manifest: Descriptor,
    pub repo_tags: Vec<Reference>,
}

/// Reads every image of a `docker save` archive (or only the one tagged `select`) into `store`.
/// Layers are kept uncompressed, as Docker keeps them; each is checked against its diff ID.
pub fn import_docker_archive(
    store: &Store,
    file: &Path,
    select: Option<&Reference>,
) -> Result<Vec<ImportedImage>, ContentError> {
    let mut f = File::open(file).ctx("open", file)?;
    let entries = index_tar(&mut f, file)?;
    let read_entry = |f: &mut File, name: &str| -> Result<Vec<u8>, ContentError> {
        let (off, len) =
            lookup(&entries, name).ok_or_else(|| archive_err(file, format!("missing {name}")))?;
        f.seek(SeekFrom::Start(off)).ctx("seek", file)?;
        let mut buf = Vec::with_capacity(len as usize);
        Read::by_ref(f)
            .take(len)
            .read_to_end(&mut buf)
            .ctx("read", file)?;
        Ok(buf)
    };
    let manifest_json = read_entry(&mut f, "manifest.json")?;
    let manifest: Vec<ManifestEntry> = serde_json::from_slice(&manifest_json)
        .map_err(|e| archive_err(file, format!("manifest.json: {e}")))?;
    let mut out = Vec::new();
    for entry in &manifest {
        let repo_tags: Vec<Reference> = entry
            .repo_tags
            .iter()
            .flatten()
            .map(|t| Reference::parse(t).map_err(|e| archive_err(file, format!("RepoTags: {e}"))))
            .collect::<Result<_, _>>()?;
        if let Some(sel) = select
            && manifest.len() > 1
            && !repo_tags.contains(sel)
        {
            continue;
        }
        let config_bytes = read_entry(&mut f, &entry.config)?;
        let config_digest = store.put_bytes(&config_bytes)?;
        let config: ImageConfiguration = serde_json::from_slice(&config_bytes)
            .map_err(|e| archive_err(file, format!("{}: {e}", entry.config)))?;
        let diff_ids = config.rootfs().diff_ids();
        if diff_ids.len() != entry.layers.len() {
            return Err(archive_err(
                file,
                format!(
                    "{} lists {} layers but its config has {} diff IDs",
                    entry.config,
                    entry.layers.len(),
                    diff_ids.len()
                ),
            ));
        }
        let mut layers = Vec::new();
        for (path, want) in entry.layers.iter().zip(diff_ids) {
            let want =
                Digest::parse(want).map_err(|e| archive_err(file, format!("diff ID: {e}")))?;
            let (off, len) = lookup(&entries, path)
                .ok_or_else(|| archive_err(file, format!("missing layer {path}")))?;
            f.seek(SeekFrom::Start(off)).ctx("seek", file)?;
            let section = Read::by_ref(&mut f).take(len);
            let (_, mut reader) =
                drydock_layer::decompress_detect(section).ctx("decompress layer", file)?;
            let mut w = store.writer_expecting(&want, None)?;
            io::copy(&mut reader, &mut w)
                .map_err(|e| archive_err(file, format!("layer {path}: {e}")))?;
            let (digest, size) = w
                .commit()
                .map_err(|e| archive_err(file, format!("layer {path}: {e}")))?;
            layers.push(Descriptor::new(
                MediaType::from(media_type::OCI_LAYER_TAR),
                size,
                oci_digest(&digest),
            ));
        }
        let m = oci_manifest(
            Descriptor::new(
                MediaType::from(media_type::OCI_CONFIG),
                config_bytes.len() as u64,
                oci_digest(&config_digest),
            ),
            layers,
        );
        let desc = crate::image::put_json(store, &m, media_type::OCI_MANIFEST)?;
        out.push(ImportedImage {
            manifest: desc,
            repo_tags,
        });
    }
    if out.is_empty() {
        return Err(archive_err(
            file,
            match select {
                Some(s) => format!("no image tagged {} in the archive", s.familiar()),
                None => "the archive holds no image".to_string(),
            },
        ));
    }
    Ok(out)
}

/// Regular files of the archive by normalised path: (data offset, length). Symlinks, which
/// classic `docker save` uses for repeated layers, are resolved to their targets.
fn index_tar(f: &mut File, file: &Path) -> Result<HashMap<String, (u64, u64)>, ContentError> {
    let mut files = HashMap::new();
    let mut links = Vec::new();
    let mut archive = tar::Archive::new(&mut *f);
    for entry in archive.entries().ctx("read archive", file)? {
        let entry = entry.ctx("read archive", file)?;
        let path = entry.path().ctx("read archive", file)?.into_owned();
        let Some(name) = normalise(&path) else {
            continue;
        };
        match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                files.insert(name, (entry.raw_file_position(), entry.size()));
            }
            tar::EntryType::Symlink => {
                if let Ok(Some(target)) = entry.link_name() {
                    let base = path.parent().unwrap_or(Path::new(""));
                    if let Some(t) = normalise(&base.join(target)) {
                        links.push((name, t));
                    }
                }
            }
            _ => {}
        }
    }
    for (name, target) in links {
        if let Some(v) = files.get(&target).copied() {
            files.insert(name, v);
        }
    }
    Ok(files)
}

fn normalise(p: &Path) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop()?;
            }
            _ => {}
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

fn lookup(entries: &HashMap<String, (u64, u64)>, name: &str) -> Option<(u64, u64)> {
    normalise(&PathBuf::from(name)).and_then(|n| entries.get(&n).copied())
}
