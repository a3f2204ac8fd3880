//! The one error type of this crate, naming the path or layer entry involved.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why a layer entry was refused by [`crate::apply`]. Nothing is written for a refused entry, and
/// the apply stops there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reject {
    /// The path (or hard-link target) has a `..` component.
    DotDot,
    /// A whiteout whose name is empty, `.` or `..`.
    BadWhiteout,
    /// A character or block device while [`crate::ApplyOptions::allow_devices`] is off.
    Device,
    /// A hard link whose target does not exist (yet) in the target tree.
    HardlinkTargetMissing(String),
    /// A hard link whose target is a directory.
    HardlinkToDirectory(String),
    /// A path whose parent goes through a symlink that points outside the target, while
    /// [`crate::SymlinkPolicy::RejectEscapes`] is in force.
    SymlinkEscape,
    /// A parent component is an existing non-directory.
    ParentNotDirectory,
    /// A tar entry type that has no meaning in a layer (sockets, volume labels, ...).
    UnsupportedType(u8),
    /// The path has a NUL byte.
    Nul,
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reject::DotDot => f.write_str("path has a `..` component; layers may not climb out"),
            Reject::BadWhiteout => f.write_str("whiteout names `.`, `..` or nothing"),
            Reject::Device => f.write_str(
                "device nodes are not allowed here (ApplyOptions::allow_devices is off)",
            ),
            Reject::HardlinkTargetMissing(t) => {
                write!(
                    f,
                    "hard link target {t:?} does not exist in the target tree"
                )
            }
            Reject::HardlinkToDirectory(t) => {
                write!(f, "hard link target {t:?} is a directory")
            }
            Reject::SymlinkEscape => {
                f.write_str("a parent path component is a symlink that points outside the target")
            }
            Reject::ParentNotDirectory => f.write_str("a parent path component is not a directory"),
            Reject::UnsupportedType(t) => {
                write!(f, "unsupported tar entry type {:?}", char::from(*t))
            }
            Reject::Nul => f.write_str("path has a NUL byte"),
        }
    }
}

/// Errors of writing, compressing, applying and diffing layers.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// A filesystem operation on a source tree (or target directory) failed.
    #[error("{path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    /// A source file changed size while it was being archived.
    #[error("{path}: changed while it was being archived: {detail}")]
    Changed { path: PathBuf, detail: String },
    /// A source path that a layer cannot hold (for example overlayfs redirects).
    #[error("{path}: cannot put this in a layer: {reason}")]
    Unsupported { path: PathBuf, reason: String },
    /// Writing the layer to its output failed.
    #[error("writing the layer: {0}")]
    Write(#[source] io::Error),
    /// Reading the layer tar failed (corrupt archive, decompression error, short read).
    #[error("reading the layer tar{}: {source}", entry_suffix(.entry))]
    Read {
        entry: Option<String>,
        #[source]
        source: io::Error,
    },
    /// A layer entry was refused by apply; nothing was written for it.
    #[error("layer entry {entry:?} refused: {reason}")]
    Rejected { entry: String, reason: Reject },
    /// Applying a layer entry failed in the filesystem.
    #[error("layer entry {entry:?}: {op}: {source}")]
    Apply {
        entry: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

fn entry_suffix(entry: &Option<String>) -> String {
    match entry {
        Some(e) => format!(" at entry {e:?}"),
        None => String::new(),
    }
}

impl LayerError {
    pub(crate) fn io(path: impl Into<PathBuf>, op: &'static str, source: io::Error) -> Self {
        LayerError::Io {
            path: path.into(),
            op,
            source,
        }
    }

    /// The reason, when this is a refused entry.
    pub fn reject_reason(&self) -> Option<&Reject> {
        match self {
            LayerError::Rejected { reason, .. } => Some(reason),
            _ => None,
        }
    }
}
