//! drydock's shared vocabulary: the names every other crate uses to talk about images.
//!
//! - [`Digest`] / [`Algorithm`]: content addresses (`sha256:…`, `sha512:…`), validated on parse.
//! - [`Reference`]: image references with Docker's normalisation (`alpine` ->
//!   `docker.io/library/alpine:latest`), tags and pinned digests.
//! - [`Platform`]: `os/arch[/variant]`, normalised the way containerd does, and the host's.
//! - [`media_type`]: OCI and Docker media type strings and what kind of object each names.
//! - [`canonical`]: sorted-key JSON for everything that gets hashed.
//! - [`spec`]: the OCI image-spec types (manifest, index, config, descriptor) from `oci-spec`.
//!
//! Everything here is pure: no IO, no clock, no panics on user input.

pub mod canonical;
mod digest;
pub mod media_type;
mod platform;
mod reference;

pub use digest::{Algorithm, Digest, DigestError, Hasher};
pub use platform::{Platform, PlatformError};
pub use reference::{DEFAULT_REGISTRY, DEFAULT_TAG, Reference, ReferenceError};

/// The OCI image-spec types, re-exported so every crate uses the same version.
pub use oci_spec::image as spec;
