//! Secrets at rest: XChaCha20-Poly1305 under a 32-byte key file created at first start (mode
//! 0600). A sealed value is `v1:<key id>:<base64(nonce || ciphertext)>`; the key id (the first
//! 8 hex digits of the key's SHA-256) says which key sealed it, so a rotation interrupted
//! half-way is detected instead of producing garbage.
//!
//! Rotation ([`SealBox::rotate`]): a new key is written to `secret.key.new`, every sealed value
//! in the database is re-sealed in one transaction, then the new key replaces the old one
//! (the old one is kept as `secret.key.old`). A crash before the transaction commits leaves
//! the old key in charge; after it, the next start finds `secret.key.new` and finishes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::util::{random_bytes, sha256_hex};

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("key file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key file {0} does not hold 32 bytes")]
    BadKey(PathBuf),
    #[error("sealed value is not in the form v1:<key id>:<data>")]
    Format,
    #[error(
        "sealed with key {found}, but the current key is {current} (was the key file replaced?)"
    )]
    WrongKey { found: String, current: String },
    #[error("sealed value does not decrypt (tampered with, or another key)")]
    Decrypt,
}

struct Key {
    id: String,
    cipher: XChaCha20Poly1305,
}

impl Key {
    fn new(bytes: &[u8]) -> Key {
        Key {
            id: sha256_hex(bytes)[..8].to_string(),
            cipher: XChaCha20Poly1305::new_from_slice(bytes).expect("32-byte key"),
        }
    }
}

/// Seals and opens values with the server's key.
pub struct SealBox {
    path: PathBuf,
    key: RwLock<Key>,
}

impl std::fmt::Debug for SealBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealBox").field("path", &self.path).finish()
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SealError + '_ {
    move |source| SealError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `secret.key` -> `secret.key.<suffix>`.
fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".");
    s.push(suffix);
    PathBuf::from(s)
}

fn write_key(path: &Path, bytes: &[u8]) -> Result<(), SealError> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = suffixed(path, "tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))?;
    Ok(())
}

fn read_key(path: &Path) -> Result<Vec<u8>, SealError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    if bytes.len() != 32 {
        return Err(SealError::BadKey(path.to_path_buf()));
    }
    Ok(bytes)
}

impl SealBox {
    /// Opens the key file at `path`, creating it (0600) when missing.
    pub fn open(path: &Path) -> Result<SealBox, SealError> {
        if !path.exists() {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io(dir))?;
            }
            write_key(path, &random_bytes(32))?;
        }
        let bytes = read_key(path)?;
        Ok(SealBox {
            path: path.to_path_buf(),
            key: RwLock::new(Key::new(&bytes)),
        })
    }

    /// The id of the current key.
    pub fn key_id(&self) -> String {
        self.key
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .id
            .clone()
    }

    pub fn seal(&self, plaintext: &str) -> String {
        let key = self.key.read().unwrap_or_else(|p| p.into_inner());
        seal_with(&key, plaintext)
    }

    pub fn open_value(&self, sealed: &str) -> Result<String, SealError> {
        let key = self.key.read().unwrap_or_else(|p| p.into_inner());
        open_with(&key, sealed)
    }

    /// A rotation that a crash interrupted: `secret.key.new` exists. If the values are sealed
    /// with the new key (the transaction committed), the new key takes over.
    pub fn finish_interrupted_rotation(&self, sample: Option<&str>) -> Result<bool, SealError> {
        let new_path = suffixed(&self.path, "new");
        if !new_path.exists() {
            return Ok(false);
        }
        let new = Key::new(&read_key(&new_path)?);
        let committed = sample.is_some_and(|s| s.split(':').nth(1) == Some(new.id.as_str()));
        if committed {
            let _ = std::fs::copy(&self.path, suffixed(&self.path, "old"));
            std::fs::rename(&new_path, &self.path).map_err(io(&self.path))?;
            *self.key.write().unwrap_or_else(|p| p.into_inner()) = new;
        } else {
            let _ = std::fs::remove_file(&new_path);
        }
        Ok(true)
    }

    /// Rotates the key: `reseal_all` gets a function re-sealing one value under the new key and
    /// must apply it to every sealed value atomically. Returns what it returned.
    pub fn rotate<T, E>(
        &self,
        reseal_all: impl FnOnce(&dyn Fn(&str) -> Result<String, String>) -> Result<T, E>,
    ) -> Result<Result<T, E>, SealError> {
        let mut current = self.key.write().unwrap_or_else(|p| p.into_inner());
        let new_bytes = random_bytes(32);
        let new_path = suffixed(&self.path, "new");
        write_key(&new_path, &new_bytes)?;
        let new = Key::new(&new_bytes);
        let out = {
            let old: &Key = &current;
            let reseal = |s: &str| -> Result<String, String> {
                let plain = open_with(old, s).map_err(|e| e.to_string())?;
                Ok(seal_with(&new, &plain))
            };
            reseal_all(&reseal)
        };
        if out.is_err() {
            let _ = std::fs::remove_file(&new_path);
            return Ok(out);
        }
        let _ = std::fs::copy(&self.path, suffixed(&self.path, "old"));
        std::fs::rename(&new_path, &self.path).map_err(io(&self.path))?;
        *current = new;
        Ok(out)
    }
}

fn seal_with(key: &Key, plaintext: &str) -> String {
    let nonce_bytes = random_bytes(24);
    let nonce = XNonce::from_slice(&nonce_bytes);
    let ct = key
        .cipher
        .encrypt(nonce, plaintext.as_bytes())
        .expect("XChaCha20-Poly1305 encryption does not fail");
    let mut data = nonce_bytes;
    data.extend_from_slice(&ct);
    format!(
        "v1:{}:{}",
        key.id,
        base64::engine::general_purpose::STANDARD.encode(data)
    )
}

fn open_with(key: &Key, sealed: &str) -> Result<String, SealError> {
    let mut parts = sealed.splitn(3, ':');
    let (Some("v1"), Some(id), Some(data)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(SealError::Format);
    };
    if id != key.id {
        return Err(SealError::WrongKey {
            found: id.to_string(),
            current: key.id.clone(),
        });
    }
    let data = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|_| SealError::Format)?;
    if data.len() < 24 {
        return Err(SealError::Format);
    }
    let (nonce, ct) = data.split_at(24);
    let plain = key
        .cipher
        .decrypt(XNonce::from_slice(nonce), ct)
        .map_err(|_| SealError::Decrypt)?;
    String::from_utf8(plain).map_err(|_| SealError::Decrypt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn seal_open_rotate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        let b = SealBox::open(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let s = b.seal("hunter2");
        assert!(!s.contains("hunter2"));
        assert_eq!(b.open_value(&s).unwrap(), "hunter2");
        // Tampering is detected.
        let mut t = s.clone();
        t.pop();
        t.push(if s.ends_with('A') { 'B' } else { 'A' });
        assert!(b.open_value(&t).is_err());
        // Reopening finds the same key.
        let b2 = SealBox::open(&path).unwrap();
        assert_eq!(b2.open_value(&s).unwrap(), "hunter2");
        // Rotation re-seals.
        let old_id = b.key_id();
        let mut values = vec![s.clone()];
        let r = b
            .rotate(|reseal| -> Result<(), String> {
                values = values.iter().map(|v| reseal(v)).collect::<Result<_, _>>()?;
                Ok(())
            })
            .unwrap();
        assert!(r.is_ok());
        assert_ne!(b.key_id(), old_id);
        assert_eq!(b.open_value(&values[0]).unwrap(), "hunter2");
        assert!(matches!(b.open_value(&s), Err(SealError::WrongKey { .. })));
        let b3 = SealBox::open(&path).unwrap();
        assert_eq!(b3.open_value(&values[0]).unwrap(), "hunter2");
    }
}
