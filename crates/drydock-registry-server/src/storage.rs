//! On-disk state of the registry.
//!
//! ```text
//! <storage>/content/                      drydock-content store: every blob and manifest once
//! <storage>/repositories/<name>/_meta/    one repository (names nest: acme/_meta, acme/app/_meta)
//!     blobs/<alg>/<hex>                   empty link file: the blob is visible in this repository
//!     manifests/<alg>/<hex>               JSON ManifestMeta: the manifest is in this repository
//!     tags/<tag>                          the digest the tag points at
//!     referrers/<alg>/<hex>/<alg>-<hex>   descriptor of a manifest whose subject is <alg>:<hex>
//! <storage>/uploads/<id>/                 upload sessions (see `uploads`)
//! <storage>/auth/                         users, access tokens, signing key (see `auth`)
//! ```
//!
//! `_meta` cannot clash with a repository path component (those never start with `_`). Every
//! file with content is written to a temporary name, synced, then renamed; link files are empty,
//! so creating one is atomic by itself. A link's modification time is refreshed whenever a push
//! relies on it, which is what the garbage collector's grace period looks at.
//!
//! Writers that add references hold `gate` for reading; the collector's sweep holds it for
//! writing, so a reference is either made before the sweep looked (and is fresh) or after it
//! (and finds the object gone, which the push reports instead of storing a dangling reference).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::SystemTime;

use drydock_content::Store;
use drydock_oci::{Algorithm, Digest};
use serde::{Deserialize, Serialize};

use crate::error::{IoContext, StorageError};
use crate::manifest::{Descriptor, Parsed};

/// What the registry records about a manifest in one repository.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestMeta {
    pub media_type: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

#[derive(Debug)]
pub struct Storage {
    root: PathBuf,
    content: Store,
    repos: PathBuf,
    uploads: PathBuf,
    pub(crate) gate: RwLock<()>,
    durable: bool,
}

impl Storage {
    /// Opens (creating when missing) the registry storage at `root`. With `durable`, every
    /// metadata write is fsynced along with its directory before it is acknowledged.
    pub fn open(root: &Path, durable: bool) -> Result<Self, StorageError> {
        fs::create_dir_all(root).ctx("create storage directory", root)?;
        let content = Store::open(root.join("content"))?;
        let repos = root.join("repositories");
        let uploads = root.join("uploads");
        for d in [&repos, &uploads, &root.join("auth")] {
            fs::create_dir_all(d).ctx("create directory", d)?;
        }
        Ok(Self {
            root: root.to_path_buf(),
            content,
            repos,
            uploads,
            gate: RwLock::new(()),
            durable,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn content(&self) -> &Store {
        &self.content
    }

    pub fn uploads_dir(&self) -> &Path {
        &self.uploads
    }

    pub fn durable(&self) -> bool {
        self.durable
    }

    pub(crate) fn meta_dir(&self, repo: &str) -> PathBuf {
        self.repos.join(repo).join("_meta")
    }

    fn blob_link(&self, repo: &str, d: &Digest) -> PathBuf {
        self.meta_dir(repo)
            .join("blobs")
            .join(d.algorithm().as_str())
            .join(d.hex())
    }

    fn manifest_link(&self, repo: &str, d: &Digest) -> PathBuf {
        self.meta_dir(repo)
            .join("manifests")
            .join(d.algorithm().as_str())
            .join(d.hex())
    }

    fn tag_path(&self, repo: &str, tag: &str) -> PathBuf {
        self.meta_dir(repo).join("tags").join(tag)
    }

    fn referrer_dir(&self, repo: &str, subject: &Digest) -> PathBuf {
        self.meta_dir(repo)
            .join("referrers")
            .join(subject.algorithm().as_str())
            .join(subject.hex())
    }

    pub fn repo_exists(&self, repo: &str) -> bool {
        self.meta_dir(repo).is_dir()
    }

    /// The size of a blob when it is linked into `repo` and present.
    pub fn blob_size(&self, repo: &str, d: &Digest) -> Result<Option<u64>, StorageError> {
        if !self.blob_link(repo, d).exists() {
            return Ok(None);
        }
        Ok(self.content.info(d)?.map(|i| i.size))
    }

    pub fn open_blob(&self, d: &Digest) -> Result<File, StorageError> {
        Ok(self.content.open_blob(d)?)
    }

    /// Links a stored blob into `repo`, refreshing the blob's and the link's times. Returns
    /// false when the content store does not have the blob. The caller holds `gate` (read).
    pub(crate) fn link_blob_locked(&self, repo: &str, d: &Digest) -> Result<bool, StorageError> {
        if !touch(&self.content.blob_path(d))? {
            return Ok(false);
        }
        let link = self.blob_link(repo, d);
        if touch(&link)? {
            return Ok(true);
        }
        let dir = link.parent().expect("link has a parent");
        fs::create_dir_all(dir).ctx("create directory", dir)?;
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&link)
            .ctx("create link", &link)?;
        if self.durable {
            sync_dir(dir)?;
        }
        Ok(true)
    }

    /// Links a blob already in the content store into `repo` (a mount, or a finished upload).
    pub fn link_blob(&self, repo: &str, d: &Digest) -> Result<bool, StorageError> {
        let _g = self.gate.read().unwrap_or_else(|e| e.into_inner());
        self.link_blob_locked(repo, d)
    }

    pub fn unlink_blob(&self, repo: &str, d: &Digest) -> Result<bool, StorageError> {
        remove_if_exists(&self.blob_link(repo, d))
    }

    /// Moves a verified upload file into the content store (or drops it when the blob is
    /// already there) and links it into `repo`. `data` must hash to `d`: the caller verified it.
    pub fn publish_upload(&self, repo: &str, data: &Path, d: &Digest) -> Result<(), StorageError> {
        let _g = self.gate.read().unwrap_or_else(|e| e.into_inner());
        let dest = self.content.blob_path(d);
        // An upload whose blob is already stored keeps its data until the repository link is
        // made: killed in between, the session is still there to finish again.
        let already = dest.is_file();
        if !already {
            if self.durable {
                File::open(data)
                    .and_then(|f| f.sync_all())
                    .ctx("sync", data)?;
            }
            fs::rename(data, &dest).ctx("rename into place", &dest)?;
            if self.durable {
                sync_dir(dest.parent().expect("blob path has a parent"))?;
            }
        }
        if !self.link_blob_locked(repo, d)? {
            return Err(StorageError::Corrupt {
                path: dest,
                reason: "blob vanished right after it was stored".into(),
            });
        }
        if already {
            let _ = fs::remove_file(data);
        }
        Ok(())
    }

    pub fn manifest_meta(
        &self,
        repo: &str,
        d: &Digest,
    ) -> Result<Option<ManifestMeta>, StorageError> {
        let path = self.manifest_link(repo, d);
        match fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| StorageError::Corrupt {
                        path,
                        reason: e.to_string(),
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).ctx("read", &path),
        }
    }

    /// A manifest of `repo` with its bytes, verified against its digest.
    pub fn read_manifest(
        &self,
        repo: &str,
        d: &Digest,
    ) -> Result<Option<(ManifestMeta, Vec<u8>)>, StorageError> {
        let Some(meta) = self.manifest_meta(repo, d)? else {
            return Ok(None);
        };
        match self.content.read_blob(d) {
            Ok(bytes) => Ok(Some((meta, bytes))),
            Err(drydock_content::ContentError::BlobNotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Stores a validated manifest and points `tags` at it. Returns the referenced blobs and
    /// manifests that are missing from `repo` (nothing is stored then).
    pub fn put_manifest(
        &self,
        repo: &str,
        d: &Digest,
        bytes: &[u8],
        parsed: &Parsed,
        tags: &[String],
    ) -> Result<Vec<Digest>, StorageError> {
        let _g = self.gate.read().unwrap_or_else(|e| e.into_inner());
        let mut missing = Vec::new();
        for b in &parsed.blobs {
            let linked = self.blob_link(repo, b);
            if !(self.content.contains(b) && touch(&linked)?) {
                missing.push(b.clone());
            }
        }
        for m in &parsed.manifests {
            if !(self.content.contains(m) && touch(&self.manifest_link(repo, m))?) {
                missing.push(m.clone());
            }
        }
        if !missing.is_empty() {
            return Ok(missing);
        }
        self.content.put_bytes_expecting(d, bytes)?;
        let meta = ManifestMeta {
            media_type: parsed.media_type.clone(),
            size: bytes.len() as u64,
            artifact_type: parsed.artifact_type.clone(),
            subject: parsed.subject.as_ref().map(|s| s.to_string()),
        };
        if let Some(subject) = &parsed.subject {
            let desc = Descriptor {
                media_type: parsed.media_type.clone(),
                digest: d.to_string(),
                size: bytes.len() as i64,
                artifact_type: parsed.artifact_type.clone(),
                annotations: parsed.annotations.clone(),
                urls: None,
                platform: None,
            };
            let dir = self.referrer_dir(repo, subject);
            fs::create_dir_all(&dir).ctx("create directory", &dir)?;
            let file = dir.join(format!("{}-{}", d.algorithm(), d.hex()));
            self.write_atomic(
                &file,
                &serde_json::to_vec(&desc).expect("descriptor serialises"),
            )?;
        }
        let link = self.manifest_link(repo, d);
        fs::create_dir_all(link.parent().expect("parent")).ctx("create directory", &link)?;
        self.write_atomic(&link, &serde_json::to_vec(&meta).expect("meta serialises"))?;
        for tag in tags {
            self.set_tag_locked(repo, tag, d)?;
        }
        Ok(Vec::new())
    }

    fn set_tag_locked(&self, repo: &str, tag: &str, d: &Digest) -> Result<(), StorageError> {
        let path = self.tag_path(repo, tag);
        fs::create_dir_all(path.parent().expect("parent")).ctx("create directory", &path)?;
        self.write_atomic(&path, d.to_string().as_bytes())
    }

    pub fn resolve_tag(&self, repo: &str, tag: &str) -> Result<Option<Digest>, StorageError> {
        let path = self.tag_path(repo, tag);
        match fs::read_to_string(&path) {
            Ok(s) => Digest::parse(s.trim())
                .map(Some)
                .map_err(|e| StorageError::Corrupt {
                    path,
                    reason: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).ctx("read", &path),
        }
    }

    /// Tags of `repo`, sorted lexically.
    pub fn tags(&self, repo: &str) -> Result<Vec<String>, StorageError> {
        let mut out: Vec<String> = list_names(&self.meta_dir(repo).join("tags"))?
            .into_iter()
            .filter(|n| crate::names::valid_tag(n))
            .collect();
        out.sort();
        Ok(out)
    }

    /// Every tag of `repo` with its digest.
    pub fn tag_map(&self, repo: &str) -> Result<Vec<(String, Digest)>, StorageError> {
        let mut out = Vec::new();
        for t in self.tags(repo)? {
            if let Some(d) = self.resolve_tag(repo, &t)? {
                out.push((t, d));
            }
        }
        Ok(out)
    }

    pub fn delete_tag(&self, repo: &str, tag: &str) -> Result<bool, StorageError> {
        remove_if_exists(&self.tag_path(repo, tag))
    }

    /// Removes a manifest from `repo`, with the tags that point at it and its referrer entry.
    /// Returns the removed metadata and tags, or `None` when it was not there.
    pub fn delete_manifest(
        &self,
        repo: &str,
        d: &Digest,
    ) -> Result<Option<(ManifestMeta, Vec<String>)>, StorageError> {
        let Some(meta) = self.manifest_meta(repo, d)? else {
            return Ok(None);
        };
        let mut removed_tags = Vec::new();
        for (tag, target) in self.tag_map(repo)? {
            if &target == d && self.delete_tag(repo, &tag)? {
                removed_tags.push(tag);
            }
        }
        if let Some(subject) = meta.subject.as_deref().and_then(|s| Digest::parse(s).ok()) {
            let dir = self.referrer_dir(repo, &subject);
            remove_if_exists(&dir.join(format!("{}-{}", d.algorithm(), d.hex())))?;
            let _ = fs::remove_dir(&dir);
        }
        remove_if_exists(&self.manifest_link(repo, d))?;
        Ok(Some((meta, removed_tags)))
    }

    /// Descriptors of the manifests in `repo` whose subject is `subject`, sorted by digest.
    pub fn referrers(&self, repo: &str, subject: &Digest) -> Result<Vec<Descriptor>, StorageError> {
        let dir = self.referrer_dir(repo, subject);
        let mut out = Vec::new();
        for name in list_names(&dir)? {
            let Some((alg, hex)) = name.split_once('-') else {
                continue;
            };
            let Ok(d) = Digest::parse(&format!("{alg}:{hex}")) else {
                continue;
            };
            // An entry whose manifest link is gone (deleted, or a crash between the two
            // writes) is not a referrer.
            if !self.manifest_link(repo, &d).exists() {
                continue;
            }
            let path = dir.join(&name);
            match fs::read(&path) {
                Ok(bytes) => {
                    if let Ok(desc) = serde_json::from_slice::<Descriptor>(&bytes) {
                        out.push(desc);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).ctx("read", &path),
            }
        }
        out.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(out)
    }

    /// Every repository, sorted lexically.
    pub fn repositories(&self) -> Result<Vec<String>, StorageError> {
        let mut out = Vec::new();
        walk_repos(&self.repos, "", &mut out)?;
        out.sort();
        Ok(out)
    }

    /// Manifests linked into `repo`, with the modification time of their link.
    pub(crate) fn manifest_links(
        &self,
        repo: &str,
    ) -> Result<Vec<(Digest, SystemTime)>, StorageError> {
        self.links(&self.meta_dir(repo).join("manifests"))
    }

    /// Blobs linked into `repo`, with the modification time of their link.
    pub(crate) fn blob_links(&self, repo: &str) -> Result<Vec<(Digest, SystemTime)>, StorageError> {
        self.links(&self.meta_dir(repo).join("blobs"))
    }

    fn links(&self, dir: &Path) -> Result<Vec<(Digest, SystemTime)>, StorageError> {
        let mut out = Vec::new();
        for alg in [Algorithm::Sha256, Algorithm::Sha512] {
            let sub = dir.join(alg.as_str());
            for name in list_names(&sub)? {
                let Ok(d) = Digest::parse(&format!("{alg}:{name}")) else {
                    continue;
                };
                if let Some(t) = mtime(&sub.join(&name))? {
                    out.push((d, t));
                }
            }
        }
        Ok(out)
    }

    pub(crate) fn manifest_link_mtime(
        &self,
        repo: &str,
        d: &Digest,
    ) -> Result<Option<SystemTime>, StorageError> {
        mtime(&self.manifest_link(repo, d))
    }

    pub(crate) fn blob_link_mtime(
        &self,
        repo: &str,
        d: &Digest,
    ) -> Result<Option<SystemTime>, StorageError> {
        mtime(&self.blob_link(repo, d))
    }

    /// Removes the metadata of a repository with nothing left in it, and empty parents.
    pub(crate) fn prune_repo(&self, repo: &str) -> Result<bool, StorageError> {
        let meta = self.meta_dir(repo);
        let empty = |sub: &str| -> Result<bool, StorageError> {
            let p = meta.join(sub);
            Ok(match sub {
                "tags" => list_names(&p)?.is_empty(),
                _ => self.links(&p)?.is_empty(),
            })
        };
        if !(empty("tags")? && empty("manifests")? && empty("blobs")?) {
            return Ok(false);
        }
        if let Err(e) = fs::remove_dir_all(&meta)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(e).ctx("remove", &meta);
        }
        let mut dir = meta.parent().map(Path::to_path_buf);
        while let Some(d) = dir {
            if d == self.repos || fs::remove_dir(&d).is_err() {
                break;
            }
            dir = d.parent().map(Path::to_path_buf);
        }
        Ok(true)
    }

    pub(crate) fn write_atomic(&self, path: &Path, data: &[u8]) -> Result<(), StorageError> {
        write_atomic(path, data, self.durable)
    }
}

/// Replaces `path` by `data` atomically: temporary file, optional fsync, rename, fsync of the
/// directory. A crash leaves the old or the new content, never a mix.
pub(crate) fn write_atomic(path: &Path, data: &[u8], durable: bool) -> Result<(), StorageError> {
    let dir = path.parent().expect("path has a parent");
    let tmp = dir.join(format!(".tmp-{}", crate::random_hex(8)));
    let result = (|| {
        let mut f = File::create(&tmp).ctx("create", &tmp)?;
        f.write_all(data).ctx("write", &tmp)?;
        if durable {
            f.sync_all().ctx("sync", &tmp)?;
        }
        fs::rename(&tmp, path).ctx("rename into place", path)?;
        if durable {
            sync_dir(dir)?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx("sync directory", dir)
}

/// Refreshes a file's modification time; false when it does not exist.
pub(crate) fn touch(path: &Path) -> Result<bool, StorageError> {
    match OpenOptions::new().write(true).open(path) {
        Ok(f) => {
            f.set_modified(SystemTime::now()).ctx("touch", path)?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).ctx("open", path),
    }
}

pub(crate) fn mtime(path: &Path) -> Result<Option<SystemTime>, StorageError> {
    match fs::metadata(path) {
        Ok(m) => Ok(Some(m.modified().ctx("stat", path)?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).ctx("stat", path),
    }
}

pub(crate) fn remove_if_exists(path: &Path) -> Result<bool, StorageError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).ctx("remove", path),
    }
}

/// File names in `dir` (none when it does not exist), skipping temporary files.
pub(crate) fn list_names(dir: &Path) -> Result<Vec<String>, StorageError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).ctx("list", dir),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.ctx("list", dir)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') {
            out.push(name);
        }
    }
    Ok(out)
}

fn walk_repos(dir: &Path, prefix: &str, out: &mut Vec<String>) -> Result<(), StorageError> {
    for name in list_names(dir)? {
        if name.starts_with('_') {
            continue;
        }
        let path = dir.join(&name);
        if !path.is_dir() {
            continue;
        }
        let full = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        if path.join("_meta").is_dir() {
            out.push(full.clone());
        }
        walk_repos(&path, &full, out)?;
    }
    Ok(())
}
