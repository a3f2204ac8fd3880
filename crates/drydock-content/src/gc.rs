//! Garbage collection by reachability from the name index.
//!
//! Roots are the entries of `index.json`, plus the caller's [`GcOptions::extra_roots`] (the build
//! cache's records keep their layer blobs this way). A blob that is unreachable is removed only when it is
//! older than the grace period: a writer commits its blobs before it names the manifest, so a
//! fresh unreferenced blob may belong to a write in flight. Re-ingesting an existing blob
//! refreshes its modification time for the same reason. Stale temporary files in `ingest/` are
//! removed under the same rule.

use std::time::{Duration, SystemTime};

use drydock_oci::spec::Descriptor;

use crate::error::IoContext;
use crate::lock::FileLock;
use crate::{BlobInfo, ContentError, Store};

#[derive(Debug, Clone)]
pub struct GcOptions {
    pub dry_run: bool,
    pub grace: Duration,
    /// More roots besides the name index (descriptors of manifests, indexes or plain blobs),
    /// such as the layers the build cache's records reference.
    pub extra_roots: Vec<Descriptor>,
}

impl Default for GcOptions {
    fn default() -> Self {
        Self {
            dry_run: false,
            grace: Duration::from_secs(15 * 60),
            extra_roots: Vec::new(),
        }
    }
}

#[derive(Debug, Default)]
pub struct GcReport {
    /// Blobs removed (or, in a dry run, that would be).
    pub removed: Vec<BlobInfo>,
    pub reclaimed_bytes: u64,
    pub kept: usize,
    /// Unreachable blobs kept because they are younger than the grace period.
    pub kept_recent: usize,
    pub stale_ingest_files: usize,
}

pub fn collect(store: &Store, opts: &GcOptions) -> Result<GcReport, ContentError> {
    let _lock = FileLock::exclusive(&store.lock_path("gc"))?;
    let now = SystemTime::now();
    let old_enough = |t: SystemTime| {
        now.duration_since(t)
            .map(|age| age >= opts.grace)
            .unwrap_or(false)
    };
    let roots = crate::names::entries(store)?
        .into_iter()
        .map(|(_, d)| d)
        .chain(opts.extra_roots.iter().cloned());
    let live = crate::graph::reachable(store, roots)?;
    let mut report = GcReport::default();
    for blob in store.list_blobs()? {
        if live.present.contains(&blob.digest) {
            report.kept += 1;
        } else if !old_enough(blob.modified) {
            report.kept_recent += 1;
        } else {
            if !opts.dry_run {
                let path = store.blob_path(&blob.digest);
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e).ctx("remove blob", path),
                }
            }
            report.reclaimed_bytes += blob.size;
            report.removed.push(blob);
        }
    }
    report.stale_ingest_files = clean_ingest(store, opts, &old_enough)?;
    Ok(report)
}

fn clean_ingest(
    store: &Store,
    opts: &GcOptions,
    old_enough: &dyn Fn(SystemTime) -> bool,
) -> Result<usize, ContentError> {
    let dir = store.ingest_dir();
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).ctx("list", &dir)? {
        let entry = entry.ctx("list", &dir)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".lock") {
            continue;
        }
        let meta = entry.metadata().ctx("stat", entry.path())?;
        if !old_enough(meta.modified().ctx("stat", entry.path())?) {
            continue;
        }
        // A partial download is in use while its lock is held; leave it to its owner.
        let _guard = if let Some(key) = name.strip_suffix(".partial") {
            match FileLock::try_exclusive(&store.lock_path(key))? {
                Some(g) => Some(g),
                None => continue,
            }
        } else {
            None
        };
        n += 1;
        if !opts.dry_run {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use drydock_oci::spec::MediaType;

    #[test]
    fn extra_roots_keep_plain_blobs() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(t.path()).unwrap();
        let kept = store.put_bytes(b"a layer the build cache uses").unwrap();
        let dropped = store.put_bytes(b"garbage").unwrap();
        let opts = GcOptions {
            grace: Duration::ZERO,
            extra_roots: vec![Descriptor::new(
                MediaType::from(drydock_oci::media_type::OCI_LAYER_GZIP),
                28,
                drydock_oci::spec::Digest::from(&kept),
            )],
            ..Default::default()
        };
        let report = collect(&store, &opts).unwrap();
        assert_eq!(report.removed.len(), 1);
        assert!(store.contains(&kept));
        assert!(!store.contains(&dropped));
    }
}
