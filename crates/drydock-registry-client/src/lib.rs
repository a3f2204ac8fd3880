//! drydock's registry client: the client side of the OCI distribution spec 1.1, with the
//! credentials people already have.
//!
//! - [`Client`] (async) and [`BlockingClient`] (owns a small runtime): one per process.
//!   - [`Client::push`]: an image of the local store to one or more references.
//!   - [`Client::pull`]: a reference into the local store, for a platform, verified.
//!   - [`Client::resolve`]: a reference to digests, without downloading layers.
//!   - [`Client::copy`]: registry to registry, streaming, mounting within one registry.
//!   - tags, referrers (with the tag-schema fallback), deletion, raw manifests.
//! - [`credentials`]: Docker's `config.json` (auths, credsStore, credHelpers), podman's
//!   `auth.json`, environment variables for CI; `login`/`logout` writes.
//! - [`registries`]: the `registries.toml` format (mirrors, insecure registries), pure.
//! - [`challenge`]: `WWW-Authenticate` parsing, pure.
//! - [`Progress`] and [`Cancel`]: owned by the caller; this crate never prints.
//!
//! Not here: the local store and its transports (`drydock-content`), the registry server.
//! Network access only goes where references point; Authorization never follows a redirect
//! to another host.

mod api;
pub mod blocking;
pub mod challenge;
mod client;
pub mod credentials;
mod error;
mod ops;
mod progress;
pub mod registries;
mod upload;

pub use api::{MAX_MANIFEST, Manifest, PutManifest, referrers_tag};
pub use blocking::BlockingClient;
pub use client::{Client, ClientOptions, RetryPolicy, scope};
pub use credentials::{Credential, Credentials};
pub use error::RegistryError;
pub use ops::{Pulled, PushOptions, Pushed, Resolved};
pub use progress::{BlobOutcome, Cancel, Event, Progress};
pub use registries::{Endpoint, RegistriesConfig, Security};
pub use upload::{BlobSource, ChunkPolicy, chunk_policy};
