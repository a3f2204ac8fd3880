//! How a registry is set up. Every field has a default suitable for a laptop.

use std::path::PathBuf;
use std::time::Duration;

use crate::ratelimit::RateLimit;
use crate::webhooks::WebhookConfig;

#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Root of everything the registry stores.
    pub storage: PathBuf,
    /// Whether clients without credentials may pull. With no users and no access tokens at all,
    /// anonymous clients may also push and delete (a laptop registry); once any account exists,
    /// anonymous push is refused.
    pub anonymous_read: bool,
    /// The externally visible base URL (`https://registry.example.com`), used for the token
    /// service's realm. Derived from the request's `Host` when unset.
    pub public_url: Option<String>,
    /// Name of the token service (the `service` of Docker's token auth).
    pub service: String,
    /// Lifetime of session tokens issued by `/v2/token`.
    pub session_ttl: Duration,
    pub limits: Limits,
    /// Per-client rate limit; none when unset.
    pub rate_limit: Option<RateLimit>,
    /// How often the online garbage collector runs; never when unset.
    pub gc_interval: Option<Duration>,
    /// Objects younger than this are never collected (uploads and pushes in flight).
    pub gc_grace: Duration,
    /// Upload sessions untouched for this long are deleted.
    pub upload_expiry: Duration,
    pub webhooks: Vec<WebhookConfig>,
    /// fsync data and metadata before acknowledging writes (survives power loss, not only
    /// crashes).
    pub durable: bool,
    /// Events buffered for slow subscribers of the event bus.
    pub event_capacity: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest manifest accepted (the spec asks registries to accept at least 4 MiB).
    pub max_manifest_bytes: u64,
    /// Largest blob accepted; unlimited when unset.
    pub max_blob_bytes: Option<u64>,
    /// Largest page of `_catalog` and tag lists.
    pub max_page: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_manifest_bytes: 4 << 20,
            max_blob_bytes: None,
            max_page: 10_000,
        }
    }
}

impl RegistryConfig {
    pub fn new(storage: impl Into<PathBuf>) -> Self {
        Self {
            storage: storage.into(),
            anonymous_read: true,
            public_url: None,
            service: "drydock-registry".into(),
            session_ttl: Duration::from_secs(300),
            limits: Limits::default(),
            rate_limit: None,
            gc_interval: Some(Duration::from_secs(3600)),
            gc_grace: Duration::from_secs(3600),
            upload_expiry: Duration::from_secs(24 * 3600),
            webhooks: Vec::new(),
            durable: true,
            event_capacity: 1024,
        }
    }
}
