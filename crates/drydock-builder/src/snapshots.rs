//! Layers as directories: the sandbox's [`SnapshotCache`] filled from the content store, with
//! whiteouts in overlayfs format, plus adoption of directories the builder already has (a RUN's
//! upper dir, a COPY's staging dir) so a layer it just made is never extracted again.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use drydock_content::Store;
use drydock_layer::{ApplyOptions, Whiteouts};
use drydock_oci::Digest;
use drydock_sandbox::SnapshotCache;

use crate::chain::LayerRef;
use crate::error::BuildError;

/// Extracted layers, shared by every build under one `DRYDOCK_HOME` (and safe to fill from
/// several threads or processes at once).
#[derive(Debug, Clone)]
pub struct Snapshots {
    cache: SnapshotCache,
    store: Store,
    userxattr: bool,
    /// Device nodes left out of extracted layers (cannot be made in a user namespace), for the
    /// build to report.
    warnings: Arc<Mutex<Vec<String>>>,
}

impl Snapshots {
    pub fn new(dir: PathBuf, store: Store, userxattr: bool) -> Self {
        Self {
            cache: SnapshotCache::new(dir),
            store,
            userxattr,
            warnings: Arc::default(),
        }
    }

    /// Warnings collected since the last call (device nodes left out of snapshots).
    pub fn take_warnings(&self) -> Vec<String> {
        self.warnings
            .lock()
            .map(|mut w| std::mem::take(&mut *w))
            .unwrap_or_default()
    }

    pub fn dir(&self) -> &Path {
        self.cache.dir()
    }

    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.cache.path(digest)
    }

    /// The layer's directory, extracted on first use.
    pub fn ensure(&self, layer: &LayerRef) -> Result<PathBuf, BuildError> {
        let store = self.store.clone();
        let userxattr = self.userxattr;
        let warnings = self.warnings.clone();
        let source = move |digest: &Digest,
                           target: &Path|
              -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
            let blob = store.open_blob(digest)?;
            let (_, tar) =
                drydock_layer::decompress_detect(std::io::BufReader::with_capacity(1 << 20, blob))?;
            let opts = ApplyOptions {
                whiteouts: Whiteouts::Overlay { userxattr },
                // Images carry device nodes (/dev/console in debootstrap roots); only the
                // host's root can make them. In a user namespace they are left out, with a
                // warning (RUN steps get their own /dev anyway).
                allow_devices: !userxattr,
                skip_devices: userxattr,
                ..Default::default()
            };
            let stats = drydock_layer::apply(tar, target, &opts).map_err(|e| match e {
                drydock_layer::LayerError::Apply {
                    entry,
                    op: "chown",
                    source,
                } if userxattr && source.raw_os_error() == Some(libc_einval()) => {
                    unmapped_owner(&entry)
                }
                e => Box::new(e) as Box<dyn std::error::Error + Send + Sync>,
            })?;
            if !stats.skipped_devices.is_empty()
                && let Ok(mut w) = warnings.lock()
            {
                w.push(skipped_devices_warning(digest, &stats.skipped_devices));
            }
            Ok(())
        };
        Ok(self.cache.ensure(&layer.digest, &source)?)
    }

    /// The directories of `chain`, bottom first, extracting missing layers in parallel.
    pub fn ensure_chain(&self, chain: &[LayerRef]) -> Result<Vec<PathBuf>, BuildError> {
        let missing: Vec<&LayerRef> = chain
            .iter()
            .filter(|l| !self.cache.contains(&l.digest))
            .collect();
        if missing.len() > 1 {
            std::thread::scope(|s| {
                let handles: Vec<_> = missing
                    .iter()
                    .map(|l| s.spawn(move || self.ensure(l)))
                    .collect();
                for h in handles {
                    h.join()
                        .map_err(|_| BuildError::Cache("layer extraction panicked".into()))??;
                }
                Ok::<(), BuildError>(())
            })?;
        }
        chain.iter().map(|l| self.ensure(l)).collect()
    }

    /// Makes `dir` (an overlayfs-format upper dir holding exactly what the layer `digest`
    /// describes, modulo unchanged copy-ups) the snapshot of that layer, unless one exists.
    /// `dir` is moved or removed either way.
    pub fn adopt(&self, digest: &Digest, dir: &Path) {
        let target = self.cache.path(digest);
        if target.is_dir() {
            let _ = remove_tree(dir);
            return;
        }
        if let Some(parent) = target.parent() {
            let _ = fs::create_dir_all(parent);
        }
        if fs::rename(dir, &target).is_err() {
            let _ = remove_tree(dir);
        }
    }

    /// Removes the snapshots whose digest `keep` rejects (cache pruning).
    pub fn retain(&self, keep: &dyn Fn(&Digest) -> bool) -> u64 {
        let mut removed = 0;
        let Ok(algs) = fs::read_dir(self.cache.dir()) else {
            return 0;
        };
        for alg in algs.flatten() {
            let name = alg.file_name().to_string_lossy().into_owned();
            if name == "tmp" {
                let _ = remove_tree(&alg.path());
                continue;
            }
            let Ok(entries) = fs::read_dir(alg.path()) else {
                continue;
            };
            for e in entries.flatten() {
                let d = format!("{name}:{}", e.file_name().to_string_lossy());
                match Digest::parse(&d) {
                    Ok(d) if keep(&d) => {}
                    _ => {
                        if remove_tree(&e.path()).is_ok() {
                            removed += 1;
                        }
                    }
                }
            }
        }
        removed
    }
}

fn libc_einval() -> i32 {
    rustix::io::Errno::INVAL.raw_os_error()
}

/// A layer file whose owner the rootless build's user namespace does not map.
fn unmapped_owner(entry: &str) -> Box<dyn std::error::Error + Send + Sync> {
    let mapped = std::fs::read_to_string("/proc/self/uid_map")
        .ok()
        .map(|t| {
            let mut ranges: Vec<(u64, u64)> = drydock_sandbox::userns::parse_map(&t)
                .iter()
                .map(|r| (r.inside as u64, r.inside as u64 + r.count as u64))
                .collect();
            ranges.sort_unstable();
            let mut merged: Vec<(u64, u64)> = Vec::new();
            for (a, b) in ranges {
                match merged.last_mut() {
                    Some(last) if last.1 == a => last.1 = b,
                    _ => merged.push((a, b)),
                }
            }
            merged
                .iter()
                .map(|(a, b)| format!("{a}-{}", b - 1))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    format!(
        "layer entry {entry:?} is owned by a uid or gid this rootless build's user namespace does not map (mapped ids: {mapped})\n  = hint: give the user a larger range in /etc/subuid and /etc/subgid (65536 ids cover most images), or build as root"
    )
    .into()
}

fn skipped_devices_warning(digest: &Digest, paths: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut list = paths
        .iter()
        .take(SHOWN)
        .map(|p| format!("/{}", p.trim_start_matches("./").trim_start_matches('/')))
        .collect::<Vec<_>>()
        .join(", ");
    if paths.len() > SHOWN {
        list.push_str(&format!(" and {} more", paths.len() - SHOWN));
    }
    format!(
        "warning: layer {digest}: {} device node(s) left out of its snapshot ({list}): devices cannot be created in a rootless build's user namespace\n  = hint: RUN steps still get their own /dev; a COPY --from of these paths will not find them (build as root if it must)\n",
        paths.len()
    )
}

/// Removes a tree, including directories left without write permission.
pub fn remove_tree(dir: &Path) -> std::io::Result<()> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) => {
            make_writable(dir);
            fs::remove_dir_all(dir)
        }
    }
}

fn make_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(md) = fs::symlink_metadata(dir)
        && md.is_dir()
    {
        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
        if let Ok(rd) = fs::read_dir(dir) {
            for e in rd.flatten() {
                make_writable(&e.path());
            }
        }
    }
}
