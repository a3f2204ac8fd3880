//! Where drydock keeps its state: `DRYDOCK_HOME`, else `$XDG_DATA_HOME/drydock`, else
//! `/var/lib/drydock` as root, else `~/.local/share/drydock`.

use std::path::PathBuf;

pub fn drydock_home() -> PathBuf {
    if let Some(h) = std::env::var_os("DRYDOCK_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(x).join("drydock");
    }
    if rustix::process::geteuid().is_root() {
        return PathBuf::from("/var/lib/drydock");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".local/share/drydock"),
        None => PathBuf::from("/var/lib/drydock"),
    }
}

/// The local image store, `$DRYDOCK_HOME/content`.
pub fn open_store() -> anyhow::Result<drydock_content::Store> {
    let dir = drydock_home().join("content");
    drydock_content::Store::open(&dir)
        .map_err(|e| anyhow::anyhow!("cannot open the local store at {}: {e}", dir.display()))
}
