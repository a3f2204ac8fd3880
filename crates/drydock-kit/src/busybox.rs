use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use drydock_content::Store;
use drydock_oci::Reference;
use drydock_oci::spec::Descriptor;

use crate::error::{KitError, io};
use crate::layer::commit_tree;

#[derive(Debug, Clone)]
pub struct BusyboxOptions {
    /// The static busybox binary (Debian's busybox-static installs `/bin/busybox`).
    pub binary: PathBuf,
    pub tag: Reference,
    /// Timestamps in the layer and config (`SOURCE_DATE_EPOCH`).
    pub epoch: i64,
}

impl Default for BusyboxOptions {
    fn default() -> Self {
        Self {
            binary: PathBuf::from("/bin/busybox"),
            tag: Reference::parse("busybox:latest").expect("valid default tag"),
            epoch: 0,
        }
    }
}

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\ndaemon:x:1:\ntty:x:5:\nnogroup:x:65534:\n";

/// Makes a busybox image from the host's static busybox and names it `opts.tag`.
pub fn busybox(store: &Store, opts: &BusyboxOptions) -> Result<Descriptor, KitError> {
    let bin = &opts.binary;
    if !bin.is_file() {
        return Err(KitError::MissingTool {
            tool: "busybox-static",
            path: bin.clone(),
            package: "busybox-static",
        });
    }
    if !is_static_elf(bin)? {
        return Err(KitError::NotStatic { path: bin.clone() });
    }
    if !rustix::process::geteuid().is_root() {
        // Files would be owned by the calling user; an image whose /etc/passwd is not root's
        // would surprise every consumer.
        return Err(KitError::NeedsRoot {
            what: "drydock kit busybox",
        });
    }
    let applets = list_applets(bin)?;
    let tmp = tempfile::Builder::new()
        .prefix("drydock-kit-busybox-")
        .tempdir()
        .map_err(io("create temporary directory in", std::env::temp_dir()))?;
    let root = tmp.path();
    build_tree(root, bin, &applets)?;
    commit_tree(
        store,
        root,
        opts.epoch,
        &opts.tag,
        "drydock kit busybox",
        serde_json::json!({"Env": [crate::DEFAULT_PATH], "Cmd": ["sh"]}),
    )
}

fn list_applets(bin: &Path) -> Result<Vec<String>, KitError> {
    let out = Command::new(bin)
        .arg("--list-full")
        .output()
        .map_err(io("run", bin))?;
    if !out.status.success() {
        return Err(KitError::Command {
            command: format!("{} --list-full", bin.display()),
            status: out.status,
            output: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    let mut applets: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        // Keep only plain relative paths: the list comes from a binary we do not control.
        .filter(|l| {
            !l.is_empty() && !l.starts_with('/') && !l.split('/').any(|c| c == ".." || c.is_empty())
        })
        .map(str::to_string)
        .collect();
    applets.sort();
    applets.dedup();
    Ok(applets)
}

fn build_tree(root: &Path, bin: &Path, applets: &[String]) -> Result<(), KitError> {
    let mkdir = |rel: &str, mode: u32| -> Result<(), KitError> {
        let p = root.join(rel);
        fs::create_dir_all(&p).map_err(io("create", &p))?;
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).map_err(io("chmod", &p))
    };
    for d in [
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "etc",
        "home",
        "proc",
        "sys",
        "dev",
        "var",
        "var/spool",
        "var/www",
    ] {
        mkdir(d, 0o755)?;
    }
    mkdir("tmp", 0o1777)?;
    mkdir("root", 0o700)?;
    let target = root.join("bin/busybox");
    fs::copy(bin, &target).map_err(io("copy", bin))?;
    fs::set_permissions(&target, fs::Permissions::from_mode(0o755))
        .map_err(io("chmod", &target))?;
    for applet in applets {
        let link = root.join(applet);
        if link == target {
            continue;
        }
        if let Some(parent) = link.parent() {
            fs::create_dir_all(parent).map_err(io("create", parent))?;
        }
        // Hard links, as the official busybox image has them: one inode, many names.
        match fs::hard_link(&target, &link) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(KitError::Io {
                    action: "link",
                    path: link,
                    source: e,
                });
            }
        }
    }
    for (rel, text) in [("etc/passwd", PASSWD), ("etc/group", GROUP)] {
        let p = root.join(rel);
        fs::write(&p, text).map_err(io("write", &p))?;
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).map_err(io("chmod", &p))?;
    }
    Ok(())
}

/// A static ELF has no `PT_INTERP` program header.
fn is_static_elf(path: &Path) -> Result<bool, KitError> {
    let data = fs::read(path).map_err(io("read", path))?;
    Ok(elf_is_static(&data).unwrap_or(false))
}

fn elf_is_static(d: &[u8]) -> Option<bool> {
    if d.get(..4)? != b"\x7fELF" {
        return Some(false);
    }
    let is64 = *d.get(4)? == 2;
    let le = *d.get(5)? == 1;
    let u16_at = |o: usize| -> Option<u64> {
        let b: [u8; 2] = d.get(o..o + 2)?.try_into().ok()?;
        Some(u64::from(if le {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        }))
    };
    let u32_at = |o: usize| -> Option<u64> {
        let b: [u8; 4] = d.get(o..o + 4)?.try_into().ok()?;
        Some(u64::from(if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }))
    };
    let u64_at = |o: usize| -> Option<u64> {
        let b: [u8; 8] = d.get(o..o + 8)?.try_into().ok()?;
        Some(if le {
            u64::from_le_bytes(b)
        } else {
            u64::from_be_bytes(b)
        })
    };
    let (phoff, phentsize, phnum) = if is64 {
        (u64_at(0x20)?, u16_at(0x36)?, u16_at(0x38)?)
    } else {
        (u32_at(0x1c)?, u16_at(0x2a)?, u16_at(0x2c)?)
    };
    for i in 0..phnum {
        let off = usize::try_from(phoff + i * phentsize).ok()?;
        if u32_at(off)? == 3 {
            return Some(false);
        }
    }
    Some(true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn detects_dynamic_executables() {
        // /bin/sh on Debian is dash, dynamically linked.
        if let Ok(data) = std::fs::read("/bin/sh") {
            assert_eq!(super::elf_is_static(&data), Some(false));
        }
        assert_eq!(super::elf_is_static(b"#!/bin/sh\n"), Some(false));
        assert_eq!(super::elf_is_static(b"\x7fELF"), None);
    }
}
