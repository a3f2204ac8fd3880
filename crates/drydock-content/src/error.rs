use std::path::PathBuf;

use drydock_oci::{Digest, Reference};

#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("blob {0} is not in the content store")]
    BlobNotFound(Digest),
    #[error(
        "digest mismatch: expected {expected}, got {actual} ({size} bytes); the data was discarded"
    )]
    DigestMismatch {
        expected: Digest,
        actual: Digest,
        size: u64,
    },
    #[error(
        "size mismatch for {digest}: expected {expected} bytes, got {actual}; the data was discarded"
    )]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("no image named {0} in the local store")]
    NameNotFound(Reference),
    #[error("{path} is not a drydock content store: {reason}")]
    BadLayout { path: PathBuf, reason: String },
    #[error("invalid {what} {digest}: {reason}")]
    BadObject {
        what: &'static str,
        digest: Digest,
        reason: String,
    },
    #[error(
        "{reference} is a Docker schema1 manifest ({media_type}); schema1 is deprecated and unsupported: rebuild or re-push the image with a current client"
    )]
    Schema1 {
        reference: String,
        media_type: String,
    },
    #[error("{0}")]
    Transport(String),
    #[error("no manifest in {reference} matches platform {platform} (available: {available})")]
    NoMatchingPlatform {
        reference: String,
        platform: String,
        available: String,
    },
}

pub(crate) trait IoContext<T> {
    fn ctx(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T, ContentError>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T, ContentError> {
        self.map_err(|source| ContentError::Io {
            action,
            path: path.into(),
            source,
        })
    }
}
