//! Progress reports and cancellation, owned by the caller (only the CLI prints).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use drydock_oci::Digest;

/// What happened to one blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobOutcome {
    /// Sent to the registry.
    Uploaded,
    /// The registry already had it (HEAD answered 200).
    Exists,
    /// Mounted from another repository of the same registry.
    Mounted,
    /// Downloaded (verified) into the local store.
    Downloaded,
    /// Already in the local store.
    Cached,
    /// Streamed from one registry to another.
    Copied,
}

/// Events reported while an operation runs.
#[derive(Debug, Clone)]
pub enum Event {
    /// A blob transfer starts. `what` is `config`, `layer`, `manifest`, …
    BlobStart {
        digest: Digest,
        size: u64,
        what: &'static str,
    },
    /// Bytes done so far for a blob (sent or received).
    BlobProgress {
        digest: Digest,
        done: u64,
        size: u64,
    },
    BlobDone {
        digest: Digest,
        size: u64,
        outcome: BlobOutcome,
    },
    /// A manifest or index was written (pushes) or read (pulls).
    Manifest {
        reference: String,
        digest: Digest,
        media_type: String,
    },
    /// A request is retried after `wait`.
    Retry {
        what: String,
        attempt: u32,
        wait: Duration,
        reason: String,
    },
    /// Docker Hub's rate limit is low (`ratelimit-remaining` / `ratelimit-limit`).
    RateLimit {
        host: String,
        remaining: u64,
        limit: u64,
    },
    /// Free-form notes (fell back from mount to upload, pushed one platform of an index, …).
    Note(String),
}

/// A progress callback; cheap to clone.
#[derive(Clone)]
pub struct Progress(Arc<dyn Fn(&Event) + Send + Sync>);

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress")
    }
}

impl Progress {
    pub fn new(f: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// Reports nothing.
    pub fn none() -> Self {
        Self::new(|_| {})
    }

    pub fn emit(&self, e: Event) {
        (self.0)(&e)
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::none()
    }
}

/// A cancellation flag the caller sets (Ctrl-C, a job timeout); operations stop at the next
/// chunk or request boundary and return [`crate::RegistryError::Cancelled`].
#[derive(Debug, Clone, Default)]
pub struct Cancel {
    flag: Arc<AtomicBool>,
    notify: Arc<tokio::sync::Notify>,
}

impl Cancel {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cancel(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    pub(crate) fn check(&self) -> Result<(), crate::RegistryError> {
        if self.is_cancelled() {
            Err(crate::RegistryError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Resolves when cancelled.
    pub async fn cancelled(&self) {
        loop {
            let notified = self.notify.notified();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}
