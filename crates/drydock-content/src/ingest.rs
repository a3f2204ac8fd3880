use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use drydock_oci::{Algorithm, Digest, Hasher};

use crate::error::IoContext;
use crate::lock::FileLock;
use crate::store::sync_dir;
use crate::{ContentError, Store};

const BUFFER: usize = 1 << 20;

/// A write of one blob into the store.
///
/// Bytes go to a temporary file under `ingest/` and are hashed as they are written. Nothing is
/// visible under `blobs/` until [`BlobWriter::commit`] has checked the digest (and size) and
/// renamed the file into place. Dropping an uncommitted writer deletes its temporary file, except
/// for resumable writes, whose partial bytes are kept for the next attempt.
pub struct BlobWriter {
    store: Store,
    file: Option<BufWriter<File>>,
    temp: PathBuf,
    hasher: Option<Hasher>,
    written: u64,
    expected: Option<Digest>,
    expected_size: Option<u64>,
    resumable: bool,
    _lock: Option<FileLock>,
}

impl std::fmt::Debug for BlobWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobWriter")
            .field("temp", &self.temp)
            .field("written", &self.written)
            .field("expected", &self.expected)
            .finish()
    }
}

pub(crate) fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}-{n}-{nanos:x}", std::process::id())
}

impl BlobWriter {
    pub(crate) fn new(
        store: Store,
        algorithm: Algorithm,
        expected: Option<Digest>,
        expected_size: Option<u64>,
    ) -> Result<Self, ContentError> {
        let temp = store
            .ingest_dir()
            .join(format!("write-{}", unique_suffix()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .ctx("create", &temp)?;
        Ok(Self {
            store,
            file: Some(BufWriter::with_capacity(BUFFER, file)),
            temp,
            hasher: Some(algorithm.hasher()),
            written: 0,
            expected,
            expected_size,
            resumable: false,
            _lock: None,
        })
    }

    pub(crate) fn resumable(
        store: Store,
        expected: Digest,
        size: Option<u64>,
    ) -> Result<Self, ContentError> {
        let key = format!("{}-{}", expected.algorithm(), expected.hex());
        let Some(lock) = FileLock::try_exclusive(&store.lock_path(&key))? else {
            return Self::new(store, expected.algorithm(), Some(expected), size);
        };
        let temp = store.ingest_dir().join(format!("{key}.partial"));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&temp)
            .ctx("open partial download", &temp)?;
        let mut hasher = expected.algorithm().hasher();
        let mut len = file.metadata().ctx("stat", &temp)?.len();
        if size.is_some_and(|s| len > s) {
            // More bytes than the blob has: the partial file is garbage, start over.
            file.set_len(0).ctx("truncate", &temp)?;
            len = 0;
        }
        let mut buf = vec![0u8; BUFFER];
        let mut seen = 0u64;
        while seen < len {
            let n = file.read(&mut buf).ctx("read partial download", &temp)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            seen += n as u64;
        }
        file.seek(io::SeekFrom::Start(seen)).ctx("seek", &temp)?;
        Ok(Self {
            store,
            file: Some(BufWriter::with_capacity(BUFFER, file)),
            temp,
            hasher: Some(hasher),
            written: seen,
            expected: Some(expected),
            expected_size: size,
            resumable: true,
            _lock: Some(lock),
        })
    }

    /// Bytes written so far, including those recovered by a resumed write.
    pub fn offset(&self) -> u64 {
        self.written
    }

    /// Throws away everything written so far (a resumed download whose server ignored `Range`).
    pub fn reset(&mut self) -> Result<(), ContentError> {
        let algorithm = self
            .hasher
            .as_ref()
            .map_or(Algorithm::Sha256, Hasher::algorithm);
        if let Some(f) = self.file.as_mut() {
            f.flush().ctx("write", &self.temp)?;
            let file = f.get_mut();
            file.set_len(0).ctx("truncate", &self.temp)?;
            file.seek(io::SeekFrom::Start(0)).ctx("seek", &self.temp)?;
        }
        self.hasher = Some(algorithm.hasher());
        self.written = 0;
        Ok(())
    }

    /// Verifies and publishes the blob; returns its digest and size. Idempotent: when the blob
    /// already exists (another writer won the race), the new copy is dropped and the existing
    /// blob's modification time is refreshed so garbage collection sees it as recently used.
    pub fn commit(mut self) -> Result<(Digest, u64), ContentError> {
        let mut file = self.file.take().expect("file present until commit");
        file.flush().ctx("write", &self.temp)?;
        let file = file.into_inner().map_err(|e| ContentError::Io {
            action: "write",
            path: self.temp.clone(),
            source: e.into_error(),
        })?;
        let actual = self
            .hasher
            .take()
            .expect("hasher present until commit")
            .finish();
        let size = self.written;
        let discard = |this: &Self| {
            let _ = fs::remove_file(&this.temp);
        };
        if let Some(expected) = &self.expected {
            if let Some(want) = self.expected_size.filter(|w| *w != size) {
                discard(&self);
                return Err(ContentError::SizeMismatch {
                    digest: expected.clone(),
                    expected: want,
                    actual: size,
                });
            }
            if *expected != actual {
                discard(&self);
                return Err(ContentError::DigestMismatch {
                    expected: expected.clone(),
                    actual,
                    size,
                });
            }
        }
        let dest = self.store.blob_path(&actual);
        if dest.is_file() {
            discard(&self);
            let _ = File::options()
                .write(true)
                .open(&dest)
                .and_then(|f| f.set_modified(std::time::SystemTime::now()));
            return Ok((actual, size));
        }
        file.sync_all().ctx("sync", &self.temp)?;
        drop(file);
        if let Err(e) = fs::rename(&self.temp, &dest) {
            discard(&self);
            return Err(ContentError::Io {
                action: "rename into place",
                path: dest,
                source: e,
            });
        }
        if let Some(parent) = dest.parent() {
            sync_dir(parent)?;
        }
        Ok((actual, size))
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.as_mut().expect("not committed").write(buf)?;
        self.hasher
            .as_mut()
            .expect("not committed")
            .update(&buf[..n]);
        self.written += n as u64;
        if let Some(max) = self.expected_size
            && self.written > max
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("blob is larger than the expected {max} bytes"),
            ));
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().map_or(Ok(()), |f| f.flush())
    }
}

impl drydock_layer::DigestingSink for BlobWriter {
    fn digest_so_far(&self) -> Digest {
        self.hasher
            .clone()
            .expect("hasher present until commit")
            .finish()
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if self.file.is_some() {
            if self.resumable {
                if let Some(f) = self.file.as_mut() {
                    let _ = f.flush();
                }
            } else {
                let _ = fs::remove_file(&self.temp);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path().join("content")).unwrap();
        (dir, s)
    }

    fn ingest_is_empty(s: &Store) -> bool {
        fs::read_dir(s.ingest_dir())
            .unwrap()
            .filter_map(Result::ok)
            .all(|e| e.file_name().to_string_lossy().ends_with(".lock"))
    }

    #[test]
    fn commit_publishes_verified_blob() {
        let (_d, s) = store();
        let d = s.put_bytes(b"hello").unwrap();
        assert_eq!(d, Digest::sha256(b"hello"));
        assert_eq!(s.read_blob(&d).unwrap(), b"hello");
        assert!(ingest_is_empty(&s));
    }

    #[test]
    fn wrong_digest_is_discarded_and_nothing_is_visible() {
        let (_d, s) = store();
        let want = Digest::sha256(b"expected");
        let err = s.put_bytes_expecting(&want, b"something else").unwrap_err();
        assert!(matches!(
            err,
            ContentError::SizeMismatch { .. } | ContentError::DigestMismatch { .. }
        ));
        let err = s.put_bytes_expecting(&want, b"expectex").unwrap_err();
        assert!(matches!(err, ContentError::DigestMismatch { .. }), "{err}");
        assert!(!s.contains(&want));
        assert!(!s.contains(&Digest::sha256(b"expectex")));
        assert!(ingest_is_empty(&s));
        assert!(s.list_blobs().unwrap().is_empty());
    }

    #[test]
    fn dropped_writer_leaves_nothing() {
        let (_d, s) = store();
        {
            let mut w = s.writer().unwrap();
            w.write_all(b"partial").unwrap();
        }
        assert!(ingest_is_empty(&s));
        assert!(s.list_blobs().unwrap().is_empty());
    }

    #[test]
    fn concurrent_writers_of_the_same_blob_all_succeed() {
        let (_d, s) = store();
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let want = Digest::sha256(&data);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                let s = s.clone();
                let data = &data;
                let want = &want;
                scope.spawn(move || {
                    let mut w = s.writer_expecting(want, Some(data.len() as u64)).unwrap();
                    for chunk in data.chunks(65_537) {
                        w.write_all(chunk).unwrap();
                    }
                    assert_eq!(&w.commit().unwrap().0, want);
                });
            }
        });
        assert_eq!(s.read_blob(&want).unwrap(), data);
        assert!(ingest_is_empty(&s));
    }

    #[test]
    fn resumable_write_continues_after_interruption() {
        let (_d, s) = store();
        let data = vec![7u8; 300_000];
        let want = Digest::sha256(&data);
        {
            let mut w = s.writer_resumable(&want, Some(data.len() as u64)).unwrap();
            assert_eq!(w.offset(), 0);
            w.write_all(&data[..100_000]).unwrap();
            // dropped: simulates a broken connection
        }
        assert!(!s.contains(&want));
        let mut w = s.writer_resumable(&want, Some(data.len() as u64)).unwrap();
        assert_eq!(w.offset(), 100_000);
        w.write_all(&data[100_000..]).unwrap();
        w.commit().unwrap();
        assert_eq!(s.read_blob(&want).unwrap(), data);
    }

    #[test]
    fn oversized_write_fails_early() {
        let (_d, s) = store();
        let want = Digest::sha256(b"abc");
        let mut w = s.writer_expecting(&want, Some(3)).unwrap();
        assert!(w.write_all(b"abcd").is_err());
    }
}
