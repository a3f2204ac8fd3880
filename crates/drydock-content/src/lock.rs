//! Advisory file locks between drydock processes sharing one store.

use std::fs::{File, OpenOptions};
use std::path::Path;

use crate::ContentError;
use crate::error::IoContext;

/// An exclusive lock held until dropped (the OS releases it when the file is closed).
#[derive(Debug)]
pub(crate) struct FileLock {
    _file: File,
}

impl FileLock {
    pub(crate) fn exclusive(path: &Path) -> Result<Self, ContentError> {
        let file = open(path)?;
        file.lock().ctx("lock", path)?;
        Ok(Self { _file: file })
    }

    /// Takes the lock only if nobody holds it.
    pub(crate) fn try_exclusive(path: &Path) -> Result<Option<Self>, ContentError> {
        let file = open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Self { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e).ctx("lock", path),
        }
    }
}

/// The lock file, created if missing and never truncated.
fn open(path: &Path) -> Result<File, ContentError> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .ctx("open lock file", path)
}
