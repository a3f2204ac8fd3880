//! Base images made from the host, for machines that cannot reach Docker Hub.
//!
//! - [`busybox`]: Debian's static busybox, its applet links, and a minimal `/etc/passwd` and
//!   `/etc/group`. Reproducible: the same host package gives the same image digest.
//! - [`debian`]: a `debootstrap --variant=minbase` root, cleaned of caches and logs.
//!
//! Both write one gzip layer into the content store and name the image. Missing host tools are
//! reported with the Debian package to install.

mod busybox;
mod debian;
mod error;
mod layer;

pub use busybox::{BusyboxOptions, busybox};
pub use debian::{DebianOptions, debian};
pub use error::KitError;

/// The `PATH` Docker's official images set.
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
