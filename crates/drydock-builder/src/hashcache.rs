//! Content digests of context files, remembered between builds by `(path, device, inode, size,
//! mtime, ctime)` so an unchanged file is not read again. The digest is always of the content:
//! the stat data only decides whether a remembered digest still applies (like git's index). An
//! entry whose change time is within 100 ms of the read is not remembered: file times come from
//! a coarse clock (a few ms per tick), so a write in the same tick right after the read could
//! otherwise go unnoticed.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use drydock_oci::{Algorithm, Digest};

/// A file's identity and version: what says its bytes did not change (any write changes the
/// ctime). The hash cache and the COPY file pool trust it alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
}

impl Stat {
    pub fn of(m: &fs::Metadata) -> Self {
        Stat {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }

    pub fn of_stat(st: &rustix::fs::Stat) -> Self {
        Stat {
            dev: st.st_dev,
            ino: st.st_ino,
            size: st.st_size as u64,
            mtime: (st.st_mtime, st.st_mtime_nsec as i64),
            ctime: (st.st_ctime, st.st_ctime_nsec as i64),
        }
    }
}

/// The remembered digests of one `DRYDOCK_HOME`.
#[derive(Debug)]
pub struct HashCache {
    file: PathBuf,
    entries: Mutex<HashMap<Vec<u8>, (Stat, Digest)>>,
    dirty: Mutex<bool>,
}

const HEADER: &str = "drydock-file-hashes v1\n";

impl HashCache {
    /// Loads the cache file (a missing or unreadable file is an empty cache).
    pub fn load(file: PathBuf) -> Self {
        let mut entries = HashMap::new();
        if let Ok(bytes) = fs::read(&file)
            && bytes.starts_with(HEADER.as_bytes())
        {
            for line in bytes[HEADER.len()..].split(|&b| b == b'\n') {
                if let Some((path, stat, digest)) = parse_line(line) {
                    entries.insert(path, (stat, digest));
                }
            }
        }
        Self {
            file,
            entries: Mutex::new(entries),
            dirty: Mutex::new(false),
        }
    }

    /// sha256 of the file at `path` (whose `lstat` is `meta`).
    pub fn digest(&self, path: &Path, meta: &fs::Metadata) -> io::Result<Digest> {
        let key = path.as_os_str().as_bytes();
        let stat = Stat::of(meta);
        if let Some((s, d)) = self.entries.lock().expect("hash cache lock").get(key)
            && *s == stat
        {
            return Ok(d.clone());
        }
        let key = key.to_vec();
        let read_started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        let mut f = fs::File::open(path)?;
        let mut h = Algorithm::Sha256.hasher();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        let d = h.finish();
        let ns = |(s, n): (i64, i64)| s as i128 * 1_000_000_000 + n as i128;
        let margin = 100_000_000;
        if ns(stat.ctime) < read_started - margin && ns(stat.mtime) < read_started - margin {
            self.entries
                .lock()
                .expect("hash cache lock")
                .insert(key, (stat, d.clone()));
            *self.dirty.lock().expect("hash cache lock") = true;
        }
        Ok(d)
    }

    /// Writes the cache back when something was added (atomically; errors are ignored: the
    /// cache is an optimisation).
    pub fn save(&self) {
        if !*self.dirty.lock().expect("hash cache lock") {
            return;
        }
        let entries = self.entries.lock().expect("hash cache lock");
        let mut out = Vec::with_capacity(entries.len() * 120);
        out.extend_from_slice(HEADER.as_bytes());
        for (path, (s, d)) in entries.iter() {
            if path.contains(&b'\n') || path.contains(&0) {
                continue;
            }
            let _ = write!(
                out,
                "{} {} {} {} {} {} {} {}\t",
                d.hex(),
                s.dev,
                s.ino,
                s.size,
                s.mtime.0,
                s.mtime.1,
                s.ctime.0,
                s.ctime.1,
            );
            // The path goes last, raw (it may not be UTF-8).
            out.extend_from_slice(path);
            out.push(b'\n');
        }
        let Some(dir) = self.file.parent() else {
            return;
        };
        let _ = fs::create_dir_all(dir);
        let tmp = dir.join(format!(".file-hashes.{}.tmp", std::process::id()));
        if fs::write(&tmp, &out).is_ok() && fs::rename(&tmp, &self.file).is_err() {
            let _ = fs::remove_file(&tmp);
        }
    }
}

fn parse_line(line: &[u8]) -> Option<(Vec<u8>, Stat, Digest)> {
    let tab = line.iter().position(|&b| b == b'\t')?;
    let (head, path) = (&line[..tab], &line[tab + 1..]);
    let head = std::str::from_utf8(head).ok()?;
    let f: Vec<&str> = head.split(' ').collect();
    if f.len() != 8 || path.is_empty() {
        return None;
    }
    let n = |i: usize| f[i].parse::<i64>().ok();
    let digest = Digest::parse(&format!("sha256:{}", f[0])).ok()?;
    Some((
        path.to_vec(),
        Stat {
            dev: f[1].parse().ok()?,
            ino: f[2].parse().ok()?,
            size: f[3].parse().ok()?,
            mtime: (n(4)?, n(5)?),
            ctime: (n(6)?, n(7)?),
        },
        digest,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_and_notices_changes() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("file");
        fs::write(&f, "one").unwrap();
        // Old enough to be remembered.
        let old = SystemTime::now() - std::time::Duration::from_secs(60);
        fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let cache_file = t.path().join("hashes");
        let hc = HashCache::load(cache_file.clone());
        let d1 = hc.digest(&f, &fs::symlink_metadata(&f).unwrap()).unwrap();
        assert_eq!(d1, Digest::sha256(b"one"));
        hc.save();
        // ctime is now, so the entry is not remembered yet: that is the racy-write guard.
        let hc = HashCache::load(cache_file);
        fs::write(&f, "two").unwrap();
        let d2 = hc.digest(&f, &fs::symlink_metadata(&f).unwrap()).unwrap();
        assert_eq!(d2, Digest::sha256(b"two"));
    }

    #[test]
    fn lines_parse_back() {
        let line = format!(
            "{} 1 2 3 4 5 6 7\t/some/path with space",
            Digest::sha256(b"x").hex()
        );
        let (p, s, d) = parse_line(line.as_bytes()).unwrap();
        assert_eq!(p, b"/some/path with space");
        assert_eq!(s.ino, 2);
        assert_eq!(d, Digest::sha256(b"x"));
    }
}
