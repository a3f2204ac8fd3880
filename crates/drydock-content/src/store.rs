use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use drydock_oci::{Algorithm, Digest};

use crate::error::IoContext;
use crate::{BlobWriter, ContentError};

const OCI_LAYOUT: &str = "{\"imageLayoutVersion\":\"1.0.0\"}";
/// Blobs bigger than this are never read whole into memory by [`Store::read_blob`].
const MAX_IN_MEMORY_BLOB: u64 = 64 << 20;

/// A content store rooted at an OCI image layout directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// What the store knows about a blob without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub digest: Digest,
    pub size: u64,
    /// Last write or re-ingest, used for the GC grace period.
    pub modified: std::time::SystemTime,
}

impl Store {
    /// Opens the layout at `root`, creating it (and its parents) when missing.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, ContentError> {
        let root = root.into();
        fs::create_dir_all(&root).ctx("create store directory", &root)?;
        let store = Self { root };
        for dir in [
            store.ingest_dir(),
            store.root.join("blobs/sha256"),
            store.root.join("blobs/sha512"),
        ] {
            fs::create_dir_all(&dir).ctx("create directory", &dir)?;
        }
        let layout = store.root.join("oci-layout");
        match fs::read_to_string(&layout) {
            Ok(text) => {
                let v: serde_json::Value =
                    serde_json::from_str(&text).map_err(|e| ContentError::BadLayout {
                        path: store.root.clone(),
                        reason: format!("oci-layout: {e}"),
                    })?;
                if v.get("imageLayoutVersion")
                    .and_then(|v| v.as_str())
                    .is_none()
                {
                    return Err(ContentError::BadLayout {
                        path: store.root.clone(),
                        reason: "oci-layout has no imageLayoutVersion".into(),
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                store.write_file_atomic(&layout, OCI_LAYOUT.as_bytes())?;
            }
            Err(e) => return Err(e).ctx("read", &layout),
        }
        if !store.index_path().exists() {
            crate::names::init_index(&store)?;
        }
        Ok(store)
    }

    /// Opens an existing layout written by anyone (skopeo, umoci, docker) without creating or
    /// changing anything; for reading only.
    pub fn open_existing(root: impl Into<PathBuf>) -> Result<Self, ContentError> {
        let root = root.into();
        let layout = root.join("oci-layout");
        if !layout.is_file() {
            return Err(ContentError::BadLayout {
                path: root,
                reason: "no oci-layout file (not an OCI image layout)".into(),
            });
        }
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn ingest_dir(&self) -> PathBuf {
        self.root.join("ingest")
    }

    pub(crate) fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    pub(crate) fn lock_path(&self, name: &str) -> PathBuf {
        self.ingest_dir().join(format!("{name}.lock"))
    }

    /// Where a blob lives (whether or not it exists).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm().as_str())
            .join(digest.hex())
    }

    pub fn contains(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    pub fn info(&self, digest: &Digest) -> Result<Option<BlobInfo>, ContentError> {
        let path = self.blob_path(digest);
        match fs::metadata(&path) {
            Ok(m) => Ok(Some(BlobInfo {
                digest: digest.clone(),
                size: m.len(),
                modified: m.modified().ctx("stat", &path)?,
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).ctx("stat", path),
        }
    }

    /// Opens a blob for streaming. The caller verifies when it matters (see [`Self::read_blob`]).
    pub fn open_blob(&self, digest: &Digest) -> Result<File, ContentError> {
        let path = self.blob_path(digest);
        File::open(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                ContentError::BlobNotFound(digest.clone())
            } else {
                ContentError::Io {
                    action: "open blob",
                    path,
                    source: e,
                }
            }
        })
    }

    /// Reads a small blob (a manifest, index or config) whole, verifying its digest so that a
    /// corrupted file on disk is never trusted.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, ContentError> {
        let mut f = self.open_blob(digest)?;
        let path = self.blob_path(digest);
        let len = f.metadata().ctx("stat", &path)?.len();
        if len > MAX_IN_MEMORY_BLOB {
            return Err(ContentError::BadObject {
                what: "blob",
                digest: digest.clone(),
                reason: format!("{len} bytes is too large to read into memory"),
            });
        }
        let mut buf = Vec::with_capacity(len as usize);
        f.read_to_end(&mut buf).ctx("read blob", &path)?;
        let actual = Digest::compute(digest.algorithm(), &buf);
        if &actual != digest {
            return Err(ContentError::DigestMismatch {
                expected: digest.clone(),
                actual,
                size: buf.len() as u64,
            });
        }
        Ok(buf)
    }

    pub fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        digest: &Digest,
        what: &'static str,
    ) -> Result<T, ContentError> {
        let bytes = self.read_blob(digest)?;
        serde_json::from_slice(&bytes).map_err(|e| ContentError::BadObject {
            what,
            digest: digest.clone(),
            reason: e.to_string(),
        })
    }

    /// Starts a sha256 write.
    pub fn writer(&self) -> Result<BlobWriter, ContentError> {
        BlobWriter::new(self.clone(), Algorithm::Sha256, None, None)
    }

    /// Starts a write that must produce `expected` (and `size`, when known); anything else is
    /// discarded at commit.
    pub fn writer_expecting(
        &self,
        expected: &Digest,
        size: Option<u64>,
    ) -> Result<BlobWriter, ContentError> {
        BlobWriter::new(
            self.clone(),
            expected.algorithm(),
            Some(expected.clone()),
            size,
        )
    }

    /// Resumes (or starts) a download of `expected`, keeping the partial bytes across crashes in
    /// `ingest/`. [`BlobWriter::offset`] says where to continue. Falls back to a fresh private
    /// write when another process is resuming the same blob.
    pub fn writer_resumable(
        &self,
        expected: &Digest,
        size: Option<u64>,
    ) -> Result<BlobWriter, ContentError> {
        BlobWriter::resumable(self.clone(), expected.clone(), size)
    }

    /// Stores bytes and returns their sha256 digest; idempotent.
    pub fn put_bytes(&self, data: &[u8]) -> Result<Digest, ContentError> {
        let mut w = self.writer()?;
        w.write_all(data).ctx("write blob", self.ingest_dir())?;
        Ok(w.commit()?.0)
    }

    /// Stores bytes that must hash to `expected`.
    pub fn put_bytes_expecting(&self, expected: &Digest, data: &[u8]) -> Result<(), ContentError> {
        let mut w = self.writer_expecting(expected, Some(data.len() as u64))?;
        w.write_all(data).ctx("write blob", self.ingest_dir())?;
        w.commit()?;
        Ok(())
    }

    /// Every blob in the store.
    pub fn list_blobs(&self) -> Result<Vec<BlobInfo>, ContentError> {
        let mut out = Vec::new();
        for alg in [Algorithm::Sha256, Algorithm::Sha512] {
            let dir = self.root.join("blobs").join(alg.as_str());
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).ctx("list", dir),
            };
            for entry in entries {
                let entry = entry.ctx("list", &dir)?;
                let name = entry.file_name();
                // Foreign files (editor droppings, tools' temp files) are not blobs: leave them be.
                let Ok(digest) =
                    Digest::parse(&format!("{}:{}", alg.as_str(), name.to_string_lossy()))
                else {
                    continue;
                };
                let meta = entry.metadata().ctx("stat", entry.path())?;
                if meta.is_file() {
                    out.push(BlobInfo {
                        digest,
                        size: meta.len(),
                        modified: meta.modified().ctx("stat", entry.path())?,
                    });
                }
            }
        }
        out.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(out)
    }

    /// Replaces a small metadata file atomically: write a temp file, fsync, rename, fsync the dir.
    pub(crate) fn write_file_atomic(&self, path: &Path, data: &[u8]) -> Result<(), ContentError> {
        write_file_atomic(path, data)
    }
}

/// Atomic whole-file replacement; a crash leaves the old or the new content, never a mix.
pub fn write_file_atomic(path: &Path, data: &[u8]) -> Result<(), ContentError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id(),
        crate::ingest::unique_suffix()
    ));
    let result = (|| {
        let mut f = File::create(&tmp).ctx("create", &tmp)?;
        f.write_all(data).ctx("write", &tmp)?;
        f.sync_all().ctx("sync", &tmp)?;
        fs::rename(&tmp, path).ctx("rename into place", path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), ContentError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx("sync directory", dir)
}
