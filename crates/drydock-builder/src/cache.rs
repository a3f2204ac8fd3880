//! The persistent build cache: content-addressed records under `$DRYDOCK_HOME/cache/records`.
//!
//! A record maps a cache key (sha256 of an op's digest, its inputs' keys and, for sources, the
//! content digests of the files they provide) to the layer chain the op produced. Records name
//! layer blobs of the content store, so `drydock gc` treats them as roots ([`BuildCache::roots`]).
//! The last use of a record is its file's mtime; pruning drops the least recently used first.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use drydock_content::Store;
use drydock_oci::Digest;
use drydock_oci::spec::{Descriptor, MediaType};
use serde::{Deserialize, Serialize};

use crate::chain::LayerRef;
use crate::error::{BuildError, IoCtx};

/// What a record holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The op's result, bottom layer first.
    pub layers: Vec<LayerRef>,
    /// What made it (`RUN make`), for listings.
    #[serde(default)]
    pub description: String,
}

/// The cache directories of one `DRYDOCK_HOME`.
#[derive(Debug, Clone)]
pub struct BuildCache {
    dir: PathBuf,
}

/// What a prune did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PruneReport {
    pub records_removed: usize,
    pub records_kept: usize,
    pub snapshots_removed: u64,
    pub mounts_removed: usize,
    /// Bytes of layer blobs referenced only by the removed records.
    pub reclaimed_bytes: u64,
    pub blobs_removed: usize,
}

/// How much to prune.
#[derive(Debug, Clone, Default)]
pub struct PruneOptions {
    /// Drop every record, cache mount and build snapshot (snapshots of named images stay).
    pub all: bool,
    /// Drop least recently used records until the cache's blobs fit in this many bytes.
    pub keep_storage: Option<u64>,
    /// Drop records not used for this long.
    pub older_than: Option<Duration>,
}

impl BuildCache {
    /// The cache under `home` (`$DRYDOCK_HOME`): `home/cache`.
    pub fn new(home: &Path) -> Self {
        Self {
            dir: home.join("cache"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn records_dir(&self) -> PathBuf {
        self.dir.join("records")
    }
    pub fn snapshots_dir(&self) -> PathBuf {
        self.dir.join("snapshots")
    }
    pub fn mounts_dir(&self) -> PathBuf {
        self.dir.join("mounts")
    }
    pub fn tmp_dir(&self) -> PathBuf {
        self.dir.join("tmp")
    }
    /// Large copied files shared between layers (`fileop::FilePool`).
    pub fn files_dir(&self) -> PathBuf {
        self.dir.join("files")
    }
    pub fn file_hashes(&self) -> PathBuf {
        self.dir.join("file-hashes")
    }

    fn record_path(&self, key: &Digest) -> PathBuf {
        let hex = key.hex();
        self.records_dir()
            .join(&hex[..2])
            .join(format!("{hex}.json"))
    }

    /// Takes the cache lock: shared for builds, exclusive for pruning. Held while the returned
    /// file lives.
    pub fn lock(&self, exclusive: bool) -> Result<fs::File, BuildError> {
        fs::create_dir_all(&self.dir).ctx("create directory", &self.dir)?;
        let p = self.dir.join("lock");
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .ctx("open", &p)?;
        let op = if exclusive {
            rustix::fs::FlockOperation::LockExclusive
        } else {
            rustix::fs::FlockOperation::LockShared
        };
        rustix::fs::flock(f.as_fd(), op)
            .map_err(io::Error::from)
            .ctx("lock", &p)?;
        Ok(f)
    }

    /// The record for `key`, when every blob it names is still in `store`; marks it used.
    pub fn get(&self, key: &Digest, store: &Store) -> Option<Record> {
        let p = self.record_path(key);
        let bytes = fs::read(&p).ok()?;
        let rec: Record = serde_json::from_slice(&bytes).ok()?;
        if !rec.layers.iter().all(|l| store.contains(&l.digest)) {
            return None;
        }
        if let Ok(f) = fs::File::options().write(true).open(&p) {
            let _ = f.set_modified(SystemTime::now());
        }
        Some(rec)
    }

    /// Stores a record (atomically; a concurrent writer of the same key writes the same data).
    pub fn put(&self, key: &Digest, rec: &Record) -> Result<(), BuildError> {
        let p = self.record_path(key);
        let dir = p.parent().expect("record paths have a parent");
        fs::create_dir_all(dir).ctx("create directory", dir)?;
        let bytes = serde_json::to_vec(rec).map_err(|e| BuildError::Cache(e.to_string()))?;
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            key.hex(),
            std::process::id() as u64 * 1_000_003 + unique()
        ));
        fs::write(&tmp, &bytes).ctx("write", &tmp)?;
        fs::rename(&tmp, &p).ctx("rename into place", &p)?;
        Ok(())
    }

    /// Every record with its path and last use.
    pub fn list(&self) -> Vec<(PathBuf, Record, SystemTime)> {
        let mut out = Vec::new();
        let Ok(shards) = fs::read_dir(self.records_dir()) else {
            return out;
        };
        for shard in shards.flatten() {
            let Ok(files) = fs::read_dir(shard.path()) else {
                continue;
            };
            for f in files.flatten() {
                let p = f.path();
                if p.extension().is_none_or(|e| e != "json") {
                    continue;
                }
                let Ok(bytes) = fs::read(&p) else { continue };
                let Ok(rec) = serde_json::from_slice::<Record>(&bytes) else {
                    let _ = fs::remove_file(&p);
                    continue;
                };
                let used = f
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                out.push((p, rec, used));
            }
        }
        out
    }

    /// The layer blobs the records keep alive, as descriptors for
    /// [`drydock_content::gc::GcOptions::extra_roots`].
    pub fn roots(&self) -> Vec<Descriptor> {
        let mut seen = BTreeMap::new();
        for (_, rec, _) in self.list() {
            for l in rec.layers {
                seen.entry(l.digest.clone()).or_insert(l);
            }
        }
        seen.into_values()
            .map(|l| {
                Descriptor::new(
                    MediaType::from(l.media_type.as_str()),
                    l.size,
                    drydock_oci::spec::Digest::from(&l.digest),
                )
            })
            .collect()
    }

    /// Drops records (least recently used first), then cache mounts and snapshots nothing needs,
    /// then the layer blobs only the dropped records named (no image, no remaining record).
    pub fn prune(&self, store: &Store, opts: &PruneOptions) -> Result<PruneReport, BuildError> {
        let _lock = self.lock(true)?;
        let mut report = PruneReport::default();
        let mut records = self.list();
        records.sort_by_key(|(_, _, used)| *used);
        // Blobs that named images keep alive do not count against the cache.
        let image_blobs: HashSet<Digest> = {
            let roots = drydock_content::names::entries(store)?
                .into_iter()
                .map(|(_, d)| d);
            drydock_content::graph::reachable(store, roots)?
                .present
                .into_iter()
                .collect()
        };
        let mut refcount: BTreeMap<Digest, (usize, u64)> = BTreeMap::new();
        for (_, rec, _) in &records {
            for l in &rec.layers {
                if !image_blobs.contains(&l.digest) {
                    let e = refcount.entry(l.digest.clone()).or_insert((0, l.size));
                    e.0 += 1;
                }
            }
        }
        let mut total: u64 = refcount.values().map(|(_, s)| *s).sum();
        let now = SystemTime::now();
        let mut keep = Vec::new();
        let mut dropped: BTreeSet<Digest> = BTreeSet::new();
        for (path, rec, used) in records {
            let too_old = opts
                .older_than
                .is_some_and(|age| now.duration_since(used).is_ok_and(|d| d >= age));
            let over = opts.keep_storage.is_some_and(|k| total > k);
            if opts.all || too_old || over {
                let _ = fs::remove_file(&path);
                report.records_removed += 1;
                dropped.extend(rec.layers.iter().map(|l| l.digest.clone()));
                for l in &rec.layers {
                    if let Some(e) = refcount.get_mut(&l.digest) {
                        e.0 -= 1;
                        if e.0 == 0 {
                            total -= e.1;
                            report.reclaimed_bytes += e.1;
                        }
                    }
                }
            } else {
                keep.push(rec);
            }
        }
        report.records_kept = keep.len();
        if opts.all {
            if let Ok(rd) = fs::read_dir(self.mounts_dir()) {
                for e in rd.flatten() {
                    if crate::snapshots::remove_tree(&e.path()).is_ok() {
                        report.mounts_removed += 1;
                    }
                }
            }
            let _ = fs::remove_file(self.file_hashes());
        }
        let mut live: BTreeSet<Digest> = image_blobs.into_iter().collect();
        for rec in &keep {
            live.extend(rec.layers.iter().map(|l| l.digest.clone()));
        }
        let snaps = crate::snapshots::Snapshots::new(self.snapshots_dir(), store.clone(), false);
        // Snapshots of named images' layers stay (the unpacked image store, as Docker keeps
        // images unpacked); those only build results used go with their records.
        report.snapshots_removed = snaps.retain(&|d| live.contains(d));
        // Pooled files no snapshot links any more hold only their pool entry.
        if let Ok(rd) = fs::read_dir(self.files_dir()) {
            for e in rd.flatten() {
                use std::os::unix::fs::MetadataExt;
                if opts.all || e.metadata().is_ok_and(|m| m.nlink() <= 1) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        let _ = crate::snapshots::remove_tree(&self.tmp_dir());
        // Blobs only the dropped records named: no image and no remaining record needs them.
        for d in dropped.difference(&live) {
            if fs::remove_file(store.blob_path(d)).is_ok() {
                report.blobs_removed += 1;
            }
        }
        Ok(report)
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(store: &Store, data: &[u8]) -> LayerRef {
        let d = store.put_bytes(data).unwrap();
        LayerRef {
            digest: d.clone(),
            diff_id: d,
            size: data.len() as u64,
            media_type: drydock_oci::media_type::OCI_LAYER_TAR.into(),
        }
    }

    #[test]
    fn records_round_trip_and_need_their_blobs() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(t.path().join("content")).unwrap();
        let cache = BuildCache::new(t.path());
        let key = Digest::sha256(b"key");
        let rec = Record {
            layers: vec![layer(&store, b"one")],
            description: "RUN x".into(),
        };
        cache.put(&key, &rec).unwrap();
        assert_eq!(cache.get(&key, &store), Some(rec.clone()));
        assert_eq!(cache.roots().len(), 1);
        let missing = Record {
            layers: vec![LayerRef {
                digest: Digest::sha256(b"not stored"),
                ..rec.layers[0].clone()
            }],
            description: String::new(),
        };
        let k2 = Digest::sha256(b"k2");
        cache.put(&k2, &missing).unwrap();
        assert_eq!(cache.get(&k2, &store), None);
    }

    #[test]
    fn keep_storage_drops_least_recently_used() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(t.path().join("content")).unwrap();
        let cache = BuildCache::new(t.path());
        let old = Digest::sha256(b"old");
        let new = Digest::sha256(b"new");
        cache
            .put(
                &old,
                &Record {
                    layers: vec![layer(&store, &[1u8; 100])],
                    description: String::new(),
                },
            )
            .unwrap();
        let f = fs::File::options()
            .write(true)
            .open(cache.record_path(&old))
            .unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(3600))
            .unwrap();
        cache
            .put(
                &new,
                &Record {
                    layers: vec![layer(&store, &[2u8; 100])],
                    description: String::new(),
                },
            )
            .unwrap();
        let r = cache
            .prune(
                &store,
                &PruneOptions {
                    keep_storage: Some(150),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!((r.records_removed, r.records_kept), (1, 1));
        assert_eq!(r.reclaimed_bytes, 100);
        assert!(cache.get(&old, &store).is_none());
        assert!(cache.get(&new, &store).is_some());
    }
}
