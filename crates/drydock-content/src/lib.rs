//! The content store: where drydock keeps images, on disk, without ever exposing a partial blob.
//!
//! The store is an [OCI image layout](https://github.com/opencontainers/image-spec/blob/main/image-layout.md)
//! directory (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`) plus an `ingest/` directory for
//! writes in progress, so `skopeo`/`umoci` can read it as it is.
//!
//! - [`Store`]: open a layout, look blobs up, read them (verified for small JSON).
//! - [`BlobWriter`]: hash while writing, then verify and rename into place ([`Store::writer`]).
//! - [`names`]: the name index, reference -> manifest or index descriptor, kept in `index.json`.
//! - [`graph`]: what a manifest or index references (config, layers, children, subject).
//! - [`gc`]: garbage collection by reachability from the name index.
//! - [`image`]: reading images: platform selection, manifest + config, summaries for listings.
//! - [`transport`]: `local:`, `oci:DIR[:TAG]`, `docker-archive:FILE[:REF]` and copies between them.
//!
//! Invariant: a file under `blobs/` always holds exactly the bytes its name promises. Writers go
//! through `ingest/` and are renamed only after the digest (and expected size) matched.

mod error;
pub mod gc;
pub mod graph;
pub mod image;
mod ingest;
mod lock;
pub mod names;
mod store;
pub mod transport;

pub use error::ContentError;
pub use ingest::BlobWriter;
pub use store::{BlobInfo, Store};
