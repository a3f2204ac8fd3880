//! Secrets: values that must never reach a log line, an image layer, a cache key or a database
//! in plaintext.
//!
//! - [`Secret`]: a string whose `Debug` and `Display` print `***`; read it with
//!   [`Secret::expose`], a name that shows up in review.
//! - [`Masker`]: replaces every occurrence of registered values, and of their base64,
//!   URL-encoded and JSON-escaped forms, with `***`.
//! - [`LineMasker`]: a streaming masker for process output that masks whole lines, so a secret
//!   split across two reads is still caught.
//! - [`dotenv`]: `KEY=value` files for `--secret-file`.

mod dotenv_file;
mod masker;
mod secret;

pub use dotenv_file::{DotenvError, dotenv};
pub use masker::{LineMasker, MASK, Masker};
pub use secret::Secret;
