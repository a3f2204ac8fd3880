//! Source spans and diagnostics for drydock's text formats (Dockerfiles, `drydock.yml`,
//! `.dockerignore`).
//!
//! Parsers are pure: they never print. They return [`Diagnostic`]s that carry a byte [`Span`]
//! into the source text, and the binary (or a test) renders them with [`render`], which produces
//! the `file:line:col`, the offending line, a caret under the span, and `hint:` lines.
//!
//! - [`Span`]: a half-open byte range into one source text.
//! - [`Diagnostic`], [`Severity`], [`Label`]: what went wrong, where, and how to fix it.
//! - [`LineIndex`]: byte offset to 1-based line and column (columns count chars, not bytes).
//! - [`render`] / [`render_all`]: plain-text rendering, stable for snapshot tests.
//! - [`suggest`]: edit distance and the closest candidate, for "did you mean" hints.

mod diagnostic;
mod line_index;
mod render;
mod span;
pub mod suggest;

pub use diagnostic::{Diagnostic, Label, Severity};
pub use line_index::{LineCol, LineIndex};
pub use render::{render, render_all};
pub use span::Span;
