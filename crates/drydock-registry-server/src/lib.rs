//! drydock's embedded OCI registry: the distribution spec 1.1 over the content store.
//!
//! What it is: a [`Registry`] that owns a storage directory and hands out an [`axum::Router`]
//! serving `/v2/` (to merge into `drydock serve`, or to run alone with [`serve`]), an
//! [`EventBus`] of pushes, deletes and mounts, webhooks, scoped access tokens and an online
//! garbage collector. What it is not: a pull-through cache or a client (that is
//! `drydock-registry-client`).
//!
//! - [`config`]: [`RegistryConfig`] and its limits.
//! - [`storage`]: blobs (deduplicated in a `drydock-content` store) and per-repository metadata.
//! - [`uploads`]: upload sessions on disk that survive restarts.
//! - [`manifest`]: what a pushed manifest references, validated.
//! - [`auth`]: users (argon2), access tokens, the token service's signed session tokens.
//! - [`http`]: the endpoints and their spec error codes.
//! - [`gc`]: online garbage collection with a grace period.
//! - [`events`] and [`webhooks`]: the event bus and signed webhook deliveries.
//! - [`metrics`], [`ratelimit`], [`server`]: operations (Prometheus text, token buckets, TLS).
//!
//! Embedding (what `drydock serve` does):
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use drydock_registry_server::{Registry, RegistryConfig};
//! let mut cfg = RegistryConfig::new("/var/lib/drydock/registry");
//! cfg.public_url = Some("https://ci.example.com".into()); // realm of the token service
//! let registry = Registry::open(cfg)?;
//! registry.start_background(); // webhooks, periodic GC, upload expiry
//! let mut events = registry.events().subscribe(); // pushes, deletes, mounts
//! tokio::spawn(async move {
//!     while let Ok(e) = events.recv().await {
//!         let _ = (e.repository, e.tag, e.digest); // e.g. fire `image` triggers
//!     }
//! });
//! // Merge (not nest): the routes carry their `/v2/...` paths. Serve with
//! // `into_make_service_with_connect_info::<SocketAddr>()` for per-client rate limits.
//! let app = axum::Router::new().merge(registry.router());
//! # let _ = app; Ok(()) }
//! ```

pub mod auth;
pub mod config;
pub mod error;
pub mod events;
pub mod gc;
pub mod http;
pub mod manifest;
pub mod metrics;
pub mod names;
pub mod ratelimit;
pub mod server;
pub mod storage;
pub mod uploads;
pub mod webhooks;

use std::sync::Arc;
use std::time::Instant;

pub use auth::{Action, AuthStore, Grant, Principal};
pub use config::{Limits, RegistryConfig};
pub use error::{ApiError, ErrorCode, StorageError};
pub use events::{Event, EventAction, EventBus, EventTarget};
pub use gc::{GcOptions, GcReport};
pub use ratelimit::RateLimit;
pub use server::{ServeOptions, TlsFiles, serve};
pub use webhooks::WebhookConfig;

/// A registry: storage, accounts, events and metrics. Cheap to clone (shared state).
#[derive(Clone, Debug)]
pub struct Registry {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: RegistryConfig,
    pub(crate) storage: storage::Storage,
    pub(crate) uploads: uploads::Uploads,
    pub(crate) auth: AuthStore,
    pub(crate) events: EventBus,
    pub(crate) metrics: Arc<metrics::Metrics>,
    pub(crate) limiter: Option<ratelimit::Limiter>,
    pub(crate) started: Instant,
}

impl Registry {
    /// Opens (creating when missing) the registry's storage. Starts nothing: see
    /// [`Registry::start_background`].
    pub fn open(config: RegistryConfig) -> Result<Self, StorageError> {
        // reqwest (webhooks) and rustls need a process-wide crypto provider: ring, as everywhere
        // in drydock. Someone else may have installed it already, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let storage = storage::Storage::open(&config.storage, config.durable)?;
        let uploads = uploads::Uploads::new(storage.uploads_dir(), config.durable);
        let auth = AuthStore::open(&config.storage)?;
        let events = EventBus::new(config.event_capacity);
        let limiter = config.rate_limit.map(ratelimit::Limiter::new);
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                storage,
                uploads,
                auth,
                events,
                metrics: Arc::new(metrics::Metrics::default()),
                limiter,
                started: Instant::now(),
            }),
        })
    }

    pub fn config(&self) -> &RegistryConfig {
        &self.inner.config
    }

    /// The distribution API: every route under `/v2/` (including the token service at
    /// `/v2/token`). Routes carry their full paths, so merge this router (`Router::merge`)
    /// rather than nesting it.
    pub fn router(&self) -> axum::Router {
        http::router(self.clone())
    }

    /// `/healthz` and `/metrics` (Prometheus text format).
    pub fn ops_router(&self) -> axum::Router {
        http::ops::router(self.clone())
    }

    /// Both routers: what `drydock registry serve` serves.
    pub fn app(&self) -> axum::Router {
        self.router().merge(self.ops_router())
    }

    /// The event bus: subscribe to receive every push, delete and mount.
    pub fn events(&self) -> &EventBus {
        &self.inner.events
    }

    pub fn auth(&self) -> &AuthStore {
        &self.inner.auth
    }

    pub fn storage(&self) -> &storage::Storage {
        &self.inner.storage
    }

    /// Starts webhook deliveries and, when configured, the periodic garbage collector and
    /// upload expiry. Call once, inside a tokio runtime.
    pub fn start_background(&self) {
        webhooks::spawn(
            &self.inner.config.webhooks,
            &self.inner.events,
            self.inner.metrics.clone(),
        );
        if let Some(every) = self.inner.config.gc_interval {
            let reg = self.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let opts = GcOptions {
                        dry_run: false,
                        grace: reg.inner.config.gc_grace,
                        upload_expiry: reg.inner.config.upload_expiry,
                    };
                    match reg.collect_garbage(opts).await {
                        Ok(r) => tracing::info!(
                            manifests = r.manifests_removed.len(),
                            blobs = r.blobs_removed.len(),
                            bytes = r.bytes_reclaimed,
                            uploads = r.uploads_expired,
                            "garbage collection"
                        ),
                        Err(e) => tracing::error!(error = %e, "garbage collection failed"),
                    }
                }
            });
        }
    }

    /// Runs one garbage collection while the registry keeps serving.
    pub async fn collect_garbage(&self, opts: GcOptions) -> Result<GcReport, StorageError> {
        let reg = self.clone();
        let report = tokio::task::spawn_blocking(move || {
            gc::collect(&reg.inner.storage, &reg.inner.uploads, &opts)
        })
        .await
        .map_err(|e| StorageError::Corrupt {
            path: Default::default(),
            reason: format!("gc task: {e}"),
        })??;
        use std::sync::atomic::Ordering::Relaxed;
        let m = &self.inner.metrics;
        m.gc_runs.fetch_add(1, Relaxed);
        m.gc_blobs_removed
            .fetch_add(report.blobs_removed.len() as u64, Relaxed);
        m.gc_manifests_removed
            .fetch_add(report.manifests_removed.len() as u64, Relaxed);
        m.gc_bytes_reclaimed
            .fetch_add(report.bytes_reclaimed, Relaxed);
        Ok(report)
    }
}

/// `n` random bytes from the operating system.
pub(crate) fn random_bytes(n: usize) -> Vec<u8> {
    use ring::rand::SecureRandom;
    let mut buf = vec![0u8; n];
    ring::rand::SystemRandom::new()
        .fill(&mut buf)
        .expect("the OS random source works");
    buf
}

/// `n` random bytes as lowercase hex.
pub(crate) fn random_hex(n: usize) -> String {
    hex::encode(random_bytes(n))
}
