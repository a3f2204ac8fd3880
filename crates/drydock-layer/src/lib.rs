//! Layers: reproducible layer tars, their compression, safe extraction, and tree diffs.
//!
//! This crate turns directory trees into OCI layer blobs and back. It is not the content store
//! (`drydock-content` keeps blobs) and knows nothing of manifests beyond digests.
//!
//! - [`write_tree`] / [`TarOptions`] / [`TarStats`] / [`PathFilter`]: a deterministic tar of a
//!   directory tree (sorted, mtimes clamped to an epoch, numeric owners, PAX for long names, big
//!   values and xattrs, hard links as links).
//! - [`Encoder`], [`decompress`], [`decompress_detect`], [`detect`], [`compress_bytes`],
//!   [`CompressOptions`], [`ParGzEncoder`], [`ZstdEncoder`], [`ReadAhead`]: gzip (parallel,
//!   pigz-style) and zstd (libzstd multithreaded, fed from its own thread), both with output that
//!   does not depend on the thread count or on how the input was split into writes; the
//!   compression enum is [`Compression`] from `drydock-oci`.
//! - [`LayerWriter`] / [`LayerDigests`]: tar in, compressed layer out, with diff ID, digest and
//!   size computed in the same pass; [`DigestReader`] for the reading side.
//! - [`apply`] / [`ApplyOptions`] / [`ApplyStats`] / [`SymlinkPolicy`] / [`Whiteouts`]: extraction
//!   onto an existing tree with OCI whiteouts (applied, or kept in overlayfs format for a lower
//!   dir), never writing outside the target.
//! - [`diff_trees`] / [`diff_overlay_upper`] / [`DiffOptions`]: changes between two trees, or an
//!   overlayfs upper directory, as a layer tar with whiteouts.
//! - [`LayerError`] / [`Reject`]: errors that name the path or entry involved.
//!
//! Decisions worth knowing:
//! - Tar entries are ustar with PAX records where needed, sorted component-wise by path bytes
//!   (a directory's subtree right after it, like `tar --sort=name`); the root itself is not an
//!   entry; mtimes are whole seconds; whiteout entries are empty files, mode 0644, owner 0:0.
//! - Apply strips a leading `/` (like Docker and containerd), refuses any `..`, and resolves
//!   parents inside the target with `openat2(RESOLVE_IN_ROOT)` (or `RESOLVE_BENEATH` under
//!   [`SymlinkPolicy::RejectEscapes`]), falling back to a component-by-component walk where
//!   `openat2` is missing. Xattrs are restored on files and directories only.
//! - The overlay diff expects an upper dir from a mount without `redirect_dir` and `metacopy`.
//!
//! No `unsafe`: syscalls go through `rustix`.

mod apply;
mod bghash;
mod compress;
mod diff;
mod digests;
mod error;
mod pargz;
mod parzstd;
mod resolve;
mod tarfmt;
mod tarread;
mod walk;
mod write;

pub use apply::{ApplyOptions, ApplyStats, Whiteouts, apply};
pub use compress::{
    CompressOptions, Compression, DEFAULT_GZIP_BLOCK, Decoder, Encoder, ReadAhead, compress_bytes,
    decompress, decompress_detect, detect,
};
pub use diff::{DiffOptions, diff_overlay_upper, diff_trees};
pub use digests::{DigestReader, DigestingSink, LayerDigests, LayerWriter};
pub use error::{LayerError, Reject};
pub use pargz::ParGzEncoder;
pub use parzstd::ZstdEncoder;
pub use resolve::SymlinkPolicy;
pub use walk::PathFilter;
pub use write::{TarOptions, TarStats, write_tree};
