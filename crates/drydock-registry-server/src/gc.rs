//! Online garbage collection.
//!
//! Per repository, the live set is: tagged manifests, manifests younger than the grace period
//! (pushes in flight, pushes by digest), the children of every live index, and the referrers
//! of every live manifest, to a fixed point. Untagged manifests outside it are removed, then the
//! blob links no live manifest needs. Finally blobs of the content store that no repository
//! links any more are deleted, and upload sessions idle for too long expire.
//!
//! Nothing younger than the grace period is removed: every push refreshes the time of what it
//! relies on (see `storage`). The decisions are re-checked under the storage gate, which pushes
//! hold while they add references, so a reference made while the collector runs either shows a
//! fresh time (and is kept) or finds its target gone (and the push fails cleanly).

use std::collections::{HashMap, HashSet};
use std::fs;
use std::time::{Duration, SystemTime};

use drydock_oci::Digest;
use serde::Serialize;

use crate::error::{IoContext, StorageError};
use crate::storage::{Storage, mtime};
use crate::uploads::Uploads;

#[derive(Debug, Clone)]
pub struct GcOptions {
    pub dry_run: bool,
    pub grace: Duration,
    pub upload_expiry: Duration,
}

impl Default for GcOptions {
    fn default() -> Self {
        Self {
            dry_run: false,
            grace: Duration::from_secs(3600),
            upload_expiry: Duration::from_secs(24 * 3600),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RemovedManifest {
    pub repository: String,
    pub digest: String,
    pub media_type: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RemovedLink {
    pub repository: String,
    pub digest: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RemovedBlob {
    pub digest: String,
    pub size: u64,
}

/// What a collection removed (or, in a dry run, would remove).
#[derive(Debug, Default, Clone, Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    pub repositories: usize,
    pub manifests_removed: Vec<RemovedManifest>,
    pub links_removed: Vec<RemovedLink>,
    pub blobs_removed: Vec<RemovedBlob>,
    pub bytes_reclaimed: u64,
    /// Unreferenced objects kept because they are younger than the grace period.
    pub kept_recent: usize,
    pub repositories_pruned: Vec<String>,
    pub uploads_expired: usize,
}

struct Refs {
    blobs: Vec<Digest>,
    children: Vec<Digest>,
    subject: Option<Digest>,
    media_type: String,
}

pub fn collect(
    storage: &Storage,
    uploads: &Uploads,
    opts: &GcOptions,
) -> Result<GcReport, StorageError> {
    let lock_path = storage.root().join("gc.lock");
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .ctx("open", &lock_path)?;
    lock.lock().ctx("lock", &lock_path)?;

    let now = SystemTime::now();
    let old = |t: SystemTime| {
        now.duration_since(t)
            .map(|age| age >= opts.grace)
            .unwrap_or(false)
    };
    let mut report = GcReport {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let mut live: HashSet<Digest> = HashSet::new();

    for repo in storage.repositories()? {
        report.repositories += 1;
        // Mark, without holding the gate.
        let manifests = storage.manifest_links(&repo)?;
        let tags = storage.tag_map(&repo)?;
        let mut refs: HashMap<Digest, Refs> = HashMap::new();
        for (d, _) in &manifests {
            let Some(meta) = storage.manifest_meta(&repo, d)? else {
                continue;
            };
            let (blobs, children, subject) = match storage.content().read_blob(d) {
                Ok(bytes) => crate::manifest::references(&bytes, &meta.media_type),
                Err(_) => (vec![], vec![], None),
            };
            refs.insert(
                d.clone(),
                Refs {
                    blobs,
                    children,
                    subject,
                    media_type: meta.media_type,
                },
            );
        }
        let mut keep: HashSet<Digest> = tags.iter().map(|(_, d)| d.clone()).collect();
        keep.extend(
            manifests
                .iter()
                .filter(|(_, t)| !old(*t))
                .map(|(d, _)| d.clone()),
        );
        loop {
            let mut added = Vec::new();
            for (d, r) in &refs {
                if keep.contains(d) {
                    added.extend(r.children.iter().filter(|c| !keep.contains(*c)).cloned());
                } else if r.subject.as_ref().is_some_and(|s| keep.contains(s)) {
                    added.push(d.clone());
                }
            }
            if added.is_empty() {
                break;
            }
            keep.extend(added);
        }
        let needed: HashSet<Digest> = keep
            .iter()
            .filter_map(|d| refs.get(d))
            .flat_map(|r| r.blobs.iter().cloned())
            .collect();
        let blob_links = storage.blob_links(&repo)?;

        // Sweep, re-checking times under the gate.
        let _gate = storage.gate.write().unwrap_or_else(|e| e.into_inner());
        for (d, _) in &manifests {
            if keep.contains(d) {
                live.insert(d.clone());
                continue;
            }
            match storage.manifest_link_mtime(&repo, d)? {
                Some(t) if old(t) => {}
                Some(_) => {
                    report.kept_recent += 1;
                    live.insert(d.clone());
                    continue;
                }
                None => continue,
            }
            let media_type = refs
                .get(d)
                .map(|r| r.media_type.clone())
                .unwrap_or_default();
            if !opts.dry_run {
                storage.delete_manifest(&repo, d)?;
            }
            report.manifests_removed.push(RemovedManifest {
                repository: repo.clone(),
                digest: d.to_string(),
                media_type,
            });
        }
        for (d, _) in &blob_links {
            if needed.contains(d) {
                live.insert(d.clone());
                continue;
            }
            match storage.blob_link_mtime(&repo, d)? {
                Some(t) if old(t) => {}
                Some(_) => {
                    report.kept_recent += 1;
                    live.insert(d.clone());
                    continue;
                }
                None => continue,
            }
            if !opts.dry_run {
                storage.unlink_blob(&repo, d)?;
            }
            report.links_removed.push(RemovedLink {
                repository: repo.clone(),
                digest: d.to_string(),
            });
        }
        if !opts.dry_run && storage.prune_repo(&repo)? {
            report.repositories_pruned.push(repo.clone());
        }
    }

    {
        let _gate = storage.gate.write().unwrap_or_else(|e| e.into_inner());
        for blob in storage.content().list_blobs()? {
            if live.contains(&blob.digest) {
                continue;
            }
            // Re-stat: a push may have refreshed it since the listing.
            let path = storage.content().blob_path(&blob.digest);
            match mtime(&path)? {
                Some(t) if old(t) => {}
                Some(_) => {
                    report.kept_recent += 1;
                    continue;
                }
                None => continue,
            }
            if !opts.dry_run {
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e).ctx("remove blob", &path),
                }
            }
            report.bytes_reclaimed += blob.size;
            report.blobs_removed.push(RemovedBlob {
                digest: blob.digest.to_string(),
                size: blob.size,
            });
        }
    }

    // Temporary files a crash left in the content store's ingest directory.
    let ingest = storage.content().root().join("ingest");
    for name in crate::storage::list_names(&ingest)?
        .into_iter()
        .chain(hidden_names(&ingest))
    {
        if name.ends_with(".lock") {
            continue;
        }
        let path = ingest.join(&name);
        if let Some(t) = mtime(&path)?
            && old(t)
            && !opts.dry_run
        {
            let _ = fs::remove_file(&path);
        }
    }
    report.uploads_expired = uploads.expire(opts.upload_expiry, opts.dry_run)?;
    Ok(report)
}

fn hidden_names(dir: &std::path::Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|it| {
            it.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}
