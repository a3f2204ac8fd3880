//! The snapshot cache: each layer extracted once, into a directory named by its digest, and
//! shared (read-only, as an overlayfs lower dir) by every run that needs it.
//!
//! Extraction goes to a private temporary directory that is renamed into place, so concurrent
//! runs (threads or processes) never see a half-extracted layer; when two extract the same
//! layer at once, the first rename wins and the other copy is discarded.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use drydock_oci::Digest;

use crate::error::SandboxError;

/// Where layer contents come from (the content store, through `drydock-layer`'s safe extraction).
pub trait LayerSource {
    /// Extracts the layer `digest` into the empty directory `target`, with whiteouts in
    /// overlayfs format (0/0 character devices, `trusted.overlay.opaque=y` directories; in a user
    /// namespace the `user.overlay.*` equivalents).
    fn extract(
        &self,
        digest: &Digest,
        target: &Path,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>>;
}

impl<F> LayerSource for F
where
    F: Fn(&Digest, &Path) -> Result<(), Box<dyn std::error::Error + Send + Sync>>,
{
    fn extract(
        &self,
        digest: &Digest,
        target: &Path,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self(digest, target)
    }
}

/// A [`LayerSource`] over layer blobs (gzip, zstd or plain tar, detected): `open` gives the blob
/// of a digest (from the content store), extraction is `drydock-layer`'s safe [`apply`] with
/// whiteouts kept in overlayfs format.
///
/// [`apply`]: drydock_layer::apply
pub struct BlobLayerSource<F> {
    open: F,
    userxattr: bool,
}

impl<F> std::fmt::Debug for BlobLayerSource<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobLayerSource")
            .field("userxattr", &self.userxattr)
            .finish()
    }
}

impl<F> BlobLayerSource<F>
where
    F: Fn(&Digest) -> io::Result<Box<dyn io::Read>>,
{
    /// `userxattr`: write `user.overlay.*` whiteouts/opaque markers (for rootless sandboxes).
    pub fn new(open: F, userxattr: bool) -> Self {
        Self { open, userxattr }
    }
}

impl<F> LayerSource for BlobLayerSource<F>
where
    F: Fn(&Digest) -> io::Result<Box<dyn io::Read>>,
{
    fn extract(
        &self,
        digest: &Digest,
        target: &Path,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let blob = (self.open)(digest)?;
        let (_, tar) = drydock_layer::decompress_detect(blob)?;
        let opts = drydock_layer::ApplyOptions {
            whiteouts: drydock_layer::Whiteouts::Overlay {
                userxattr: self.userxattr,
            },
            ..Default::default()
        };
        drydock_layer::apply(tar, target, &opts)?;
        Ok(())
    }
}

/// Extracted layers under one directory: `<dir>/<algorithm>/<hex>/`.
#[derive(Debug, Clone)]
pub struct SnapshotCache {
    dir: PathBuf,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl SnapshotCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the layer's contents live once extracted.
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.dir
            .join(digest.algorithm().as_str())
            .join(digest.hex())
    }

    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_dir()
    }

    /// The layer's directory, extracting it first when absent.
    pub fn ensure(
        &self,
        digest: &Digest,
        source: &dyn LayerSource,
    ) -> Result<PathBuf, SandboxError> {
        let final_path = self.path(digest);
        if final_path.is_dir() {
            return Ok(final_path);
        }
        let snap_err = |message: String| SandboxError::Snapshot {
            digest: digest.to_string(),
            message,
        };
        let parent = final_path.parent().unwrap_or(&self.dir).to_path_buf();
        let tmp_root = self.dir.join("tmp");
        for d in [&parent, &tmp_root] {
            fs::create_dir_all(d)
                .map_err(|e| SandboxError::io("create directory", d.clone(), e))?;
        }
        let tmp = tmp_root.join(format!(
            "{}-{}-{}",
            digest.short(16),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir(&tmp).map_err(|e| SandboxError::io("create directory", tmp.clone(), e))?;
        if let Err(e) = source.extract(digest, &tmp) {
            let _ = crate::changes::remove_tree(&tmp);
            return Err(snap_err(format!(
                "extraction into {} failed: {e}",
                tmp.display()
            )));
        }
        match fs::rename(&tmp, &final_path) {
            Ok(()) => Ok(final_path),
            Err(e)
                if final_path.is_dir()
                    && matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EEXIST)) =>
            {
                // Another run extracted it first; theirs is identical.
                let _ = crate::changes::remove_tree(&tmp);
                Ok(final_path)
            }
            Err(e) => {
                let _ = crate::changes::remove_tree(&tmp);
                Err(SandboxError::io("rename snapshot into", final_path, e))
            }
        }
    }

    /// The directories of `layers` (bottom first), extracting the missing ones: ready for
    /// [`crate::Root::Layers`].
    pub fn ensure_all(
        &self,
        layers: &[Digest],
        source: &dyn LayerSource,
    ) -> Result<Vec<PathBuf>, SandboxError> {
        layers.iter().map(|d| self.ensure(d, source)).collect()
    }

    /// Deletes a snapshot (garbage collection; the caller ensures no run uses it).
    pub fn remove(&self, digest: &Digest) -> io::Result<()> {
        crate::changes::remove_tree(&self.path(digest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    type BoxErr = Box<dyn std::error::Error + Send + Sync>;

    fn digest(s: &str) -> Digest {
        Digest::sha256(s.as_bytes())
    }

    #[test]
    fn extracts_once_and_reuses() {
        let t = tempfile::tempdir().unwrap();
        let cache = SnapshotCache::new(t.path());
        let calls = AtomicUsize::new(0);
        let source = |_: &Digest, dir: &Path| -> Result<(), BoxErr> {
            calls.fetch_add(1, Ordering::SeqCst);
            fs::write(dir.join("file"), "layer")?;
            Ok(())
        };
        let d = digest("a");
        let p1 = cache.ensure(&d, &source).unwrap();
        let p2 = cache.ensure(&d, &source).unwrap();
        assert_eq!(p1, p2);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(fs::read_to_string(p1.join("file")).unwrap(), "layer");
        assert!(p1.ends_with(d.hex()));
    }

    #[test]
    fn failed_extraction_leaves_nothing() {
        let t = tempfile::tempdir().unwrap();
        let cache = SnapshotCache::new(t.path());
        let source = |_: &Digest, dir: &Path| -> Result<(), BoxErr> {
            fs::write(dir.join("partial"), "x")?;
            Err("corrupt tar".into())
        };
        let d = digest("b");
        let err = cache.ensure(&d, &source).unwrap_err().to_string();
        assert!(
            err.contains("corrupt tar") && err.contains(&d.to_string()),
            "{err}"
        );
        assert!(!cache.contains(&d));
        assert_eq!(fs::read_dir(t.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn concurrent_extractions_converge() {
        let t = tempfile::tempdir().unwrap();
        let cache = Arc::new(SnapshotCache::new(t.path()));
        let d = digest("c");
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let (cache, d) = (cache.clone(), d.clone());
                std::thread::spawn(move || {
                    let source = move |_: &Digest, dir: &Path| -> Result<(), BoxErr> {
                        for n in 0..50 {
                            fs::write(dir.join(format!("f{n}")), "same")?;
                        }
                        let _ = i;
                        Ok(())
                    };
                    cache.ensure(&d, &source).unwrap()
                })
            })
            .collect();
        let paths: Vec<PathBuf> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert!(paths.iter().all(|p| p == &paths[0]));
        assert_eq!(fs::read_dir(&paths[0]).unwrap().count(), 50);
        assert_eq!(fs::read_dir(t.path().join("tmp")).unwrap().count(), 0);
    }
}
