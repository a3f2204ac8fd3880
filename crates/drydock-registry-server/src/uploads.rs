//! Blob upload sessions, on disk so that they survive a restart.
//!
//! `<storage>/uploads/<id>/info.json` names the repository; `<id>/data` holds the bytes received
//! so far. The offset of a session is the length of `data`: after a crash, a client asking for
//! the status learns exactly how much the registry has and resumes from there. A running session
//! keeps a sha256 hasher over `data` in memory; after a restart it is rebuilt by reading the file
//! again on first use. Nothing under `uploads/` is ever served: bytes reach the content store
//! only after the digest the client names has been checked (see `Storage::publish_upload`).

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use bytes::Bytes;
use drydock_oci::{Algorithm, Digest, Hasher};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, IoContext, StorageError};

/// Bytes handed from the network to the writer thread at a time.
const CHUNK: usize = 256 << 10;
/// During long uploads, data is synced every this many bytes so the final sync is short.
const SYNC_EVERY: u64 = 64 << 20;

#[derive(Debug, Serialize, Deserialize)]
struct Info {
    repository: String,
    created: u64,
}

/// One upload session. Lock it (it sits behind an async mutex) for any operation.
#[derive(Debug)]
pub struct Session {
    pub id: String,
    pub repository: String,
    dir: PathBuf,
    /// Bytes received (the length of `data`).
    pub len: u64,
    hasher: Option<Hasher>,
    /// Set when the session was finished or cancelled: waiters must treat it as unknown.
    pub gone: bool,
    durable: bool,
}

pub type SessionRef = Arc<tokio::sync::Mutex<Session>>;

#[derive(Debug)]
pub struct Uploads {
    dir: PathBuf,
    live: Mutex<HashMap<String, SessionRef>>,
    durable: bool,
}

impl Uploads {
    pub fn new(dir: &Path, durable: bool) -> Self {
        Self {
            dir: dir.to_path_buf(),
            live: Mutex::new(HashMap::new()),
            durable,
        }
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, SessionRef>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a session for `repository`.
    pub fn create(&self, repository: &str) -> Result<SessionRef, StorageError> {
        let id = crate::random_hex(16);
        let dir = self.dir.join(&id);
        fs::create_dir_all(&dir).ctx("create upload directory", &dir)?;
        let data = dir.join("data");
        fs::File::create(&data).ctx("create", &data)?;
        let info = Info {
            repository: repository.to_string(),
            created: now_unix(),
        };
        crate::storage::write_atomic(
            &dir.join("info.json"),
            &serde_json::to_vec(&info).expect("serialises"),
            self.durable,
        )?;
        let session = Arc::new(tokio::sync::Mutex::new(Session {
            id: id.clone(),
            repository: repository.to_string(),
            dir,
            len: 0,
            hasher: Some(Algorithm::Sha256.hasher()),
            gone: false,
            durable: self.durable,
        }));
        self.live().insert(id, session.clone());
        Ok(session)
    }

    /// The session `id` of `repository`, from memory or, after a restart, from disk.
    pub fn get(&self, repository: &str, id: &str) -> Result<Option<SessionRef>, StorageError> {
        if !crate::names::valid_upload_id(id) {
            return Ok(None);
        }
        if let Some(s) = self.live().get(id).cloned() {
            // The repository is checked by the caller under the session lock.
            return Ok(Some(s));
        }
        let dir = self.dir.join(id);
        let info_path = dir.join("info.json");
        let info: Info = match fs::read(&info_path) {
            Ok(b) => match serde_json::from_slice(&b) {
                Ok(i) => i,
                Err(_) => return Ok(None),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).ctx("read", &info_path),
        };
        if info.repository != repository {
            return Ok(None);
        }
        let data = dir.join("data");
        let len = match fs::metadata(&data) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).ctx("stat", &data),
        };
        let session = Arc::new(tokio::sync::Mutex::new(Session {
            id: id.to_string(),
            repository: info.repository,
            dir,
            len,
            hasher: None,
            gone: false,
            durable: self.durable,
        }));
        let mut live = self.live();
        Ok(Some(live.entry(id.to_string()).or_insert(session).clone()))
    }

    /// Forgets a finished or cancelled session and deletes its files. The caller holds its lock.
    pub fn remove(&self, session: &mut Session) {
        session.gone = true;
        self.live().remove(&session.id);
        let _ = fs::remove_dir_all(&session.dir);
    }

    /// Sessions currently known in memory.
    pub fn active(&self) -> usize {
        self.live().len()
    }

    /// Deletes sessions untouched for `max_idle` (or, with `dry_run`, counts them).
    pub fn expire(&self, max_idle: Duration, dry_run: bool) -> Result<usize, StorageError> {
        let now = SystemTime::now();
        let mut n = 0;
        for name in crate::storage::list_names(&self.dir)? {
            let dir = self.dir.join(&name);
            let newest = [dir.join("data"), dir.join("info.json"), dir.clone()]
                .iter()
                .filter_map(|p| fs::metadata(p).and_then(|m| m.modified()).ok())
                .max();
            // A time after `now` (a session created while this runs) is not idle at all.
            let idle = match newest {
                Some(t) => now.duration_since(t).unwrap_or(Duration::ZERO),
                None => Duration::MAX,
            };
            if idle < max_idle {
                continue;
            }
            let live = self.live().get(&name).cloned();
            if let Some(s) = live {
                // In use right now: not idle, whatever the clock says.
                let Ok(mut guard) = s.try_lock() else {
                    continue;
                };
                n += 1;
                if !dry_run {
                    self.remove(&mut guard);
                }
            } else {
                n += 1;
                if !dry_run {
                    let _ = fs::remove_dir_all(&dir);
                }
            }
        }
        Ok(n)
    }
}

impl Session {
    pub fn data_path(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Rebuilds the hasher after a restart (or after a failed write) by reading `data`.
    async fn ensure_hasher(&mut self) -> Result<(), StorageError> {
        if self.hasher.is_some() {
            return Ok(());
        }
        let path = self.data_path();
        let (h, len) = tokio::task::spawn_blocking(move || hash_file(&path, Algorithm::Sha256))
            .await
            .map_err(|e| StorageError::Corrupt {
                path: PathBuf::new(),
                reason: e.to_string(),
            })??;
        self.hasher = Some(h);
        self.len = len;
        Ok(())
    }

    /// Appends a request body. `max_len` bounds the whole blob. Returns the bytes appended.
    pub async fn append(&mut self, body: Body, max_len: Option<u64>) -> Result<u64, ApiError> {
        self.ensure_hasher().await?;
        let hasher = self.hasher.take().expect("hasher ready");
        let path = self.data_path();
        let start = self.len;
        let durable = self.durable;
        // Frames go to the writer thread in batches, without copying.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Bytes>>(2);
        let writer = tokio::task::spawn_blocking(move || {
            let mut hasher = hasher;
            let mut written = 0u64;
            let mut since_sync = 0u64;
            let mut f = match OpenOptions::new().append(true).open(&path) {
                Ok(f) => f,
                Err(e) => return (hasher, written, Some(e)),
            };
            // Data is flushed to disk in the background as it arrives (a sync of the file
            // running beside the writes), so the final sync before publishing is short.
            let mut syncing: Option<std::thread::JoinHandle<()>> = None;
            while let Some(batch) = rx.blocking_recv() {
                if let Err(e) = write_all_vectored(&mut f, &batch) {
                    return (hasher, written, Some(e));
                }
                for chunk in &batch {
                    hasher.update(chunk);
                    written += chunk.len() as u64;
                    since_sync += chunk.len() as u64;
                }
                if durable
                    && since_sync >= SYNC_EVERY
                    && syncing.as_ref().is_none_or(|h| h.is_finished())
                {
                    since_sync = 0;
                    if let Ok(dup) = f.try_clone() {
                        syncing = Some(std::thread::spawn(move || {
                            let _ = dup.sync_data();
                        }));
                    }
                }
            }
            (hasher, written, None)
        });
        let mut stream = body.into_data_stream();
        let mut batch: Vec<Bytes> = Vec::new();
        let mut batch_len = 0usize;
        let mut received = 0u64;
        let mut failure: Option<ApiError> = None;
        while let Some(frame) = stream.next().await {
            match frame {
                Ok(bytes) => {
                    received += bytes.len() as u64;
                    if max_len.is_some_and(|m| start + received > m) {
                        failure = Some(ApiError::too_large(format!(
                            "blob exceeds the registry's limit of {} bytes",
                            max_len.unwrap_or(0)
                        )));
                        break;
                    }
                    batch_len += bytes.len();
                    batch.push(bytes);
                    if batch_len >= CHUNK {
                        batch_len = 0;
                        if tx.send(std::mem::take(&mut batch)).await.is_err() {
                            break;
                        }
                    }
                }
                Err(e) => {
                    failure = Some(ApiError::upload_invalid(format!(
                        "reading the request body: {e}"
                    )));
                    break;
                }
            }
        }
        if failure.is_none() && !batch.is_empty() {
            let _ = tx.send(batch).await;
        }
        drop(tx);
        let (hasher, written, io_error) = writer
            .await
            .map_err(|e| ApiError::internal(format!("upload writer: {e}")))?;
        if let Some(e) = io_error {
            // The file may hold part of a chunk the hasher has not seen: rebuild on next use.
            self.hasher = None;
            self.len = fs::metadata(self.data_path())
                .map(|m| m.len())
                .unwrap_or(start);
            return Err(StorageError::Io {
                action: "write upload",
                path: self.data_path(),
                source: e,
            }
            .into());
        }
        self.hasher = Some(hasher);
        self.len = start + written;
        match failure {
            Some(e) => Err(e),
            None => Ok(written),
        }
    }

    /// Forgets bytes past `len` (already truncated on disk by the caller).
    pub fn reset_to(&mut self, len: u64) {
        self.len = len;
        self.hasher = None;
    }

    /// The digest of everything received, under `algorithm`.
    pub async fn digest(&mut self, algorithm: Algorithm) -> Result<Digest, StorageError> {
        if algorithm == Algorithm::Sha256 {
            self.ensure_hasher().await?;
            return Ok(self.hasher.clone().expect("hasher ready").finish());
        }
        let path = self.data_path();
        let (h, _) = tokio::task::spawn_blocking(move || hash_file(&path, algorithm))
            .await
            .map_err(|e| StorageError::Corrupt {
                path: PathBuf::new(),
                reason: e.to_string(),
            })??;
        Ok(h.finish())
    }
}

/// Writes every buffer, in order, with as few system calls as the kernel allows.
fn write_all_vectored(f: &mut fs::File, bufs: &[Bytes]) -> std::io::Result<()> {
    let mut slices: Vec<std::io::IoSlice<'_>> =
        bufs.iter().map(|b| std::io::IoSlice::new(b)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match f.write_vectored(rest) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => std::io::IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn hash_file(path: &Path, algorithm: Algorithm) -> Result<(Hasher, u64), StorageError> {
    let mut f = fs::File::open(path).ctx("open", path)?;
    let mut h = algorithm.hasher();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf).ctx("read", path)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        len += n as u64;
    }
    Ok((h, len))
}

pub(crate) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
