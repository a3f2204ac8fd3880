use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use drydock_content::Store;
use drydock_oci::Reference;
use drydock_oci::spec::Descriptor;

use crate::error::{KitError, io};
use crate::layer::commit_tree;

#[derive(Debug, Clone)]
pub struct DebianOptions {
    pub suite: String,
    /// Debian architecture name (`amd64`, `arm64`); `None` = the host's.
    pub arch: Option<String>,
    /// Defaults to `debian:<suite>`.
    pub tag: Option<Reference>,
    /// The mirror; `None` = the first Debian `URIs:` of the host's apt sources, else
    /// `http://deb.debian.org/debian`.
    pub mirror: Option<String>,
    pub epoch: i64,
    pub debootstrap: PathBuf,
}

impl Default for DebianOptions {
    fn default() -> Self {
        Self {
            suite: "bookworm".into(),
            arch: None,
            tag: None,
            mirror: None,
            epoch: 0,
            debootstrap: PathBuf::from("/usr/sbin/debootstrap"),
        }
    }
}

/// Paths emptied after debootstrap: caches, logs and host-specific state that would make the
/// image bigger and differ from one run to the next for no reason.
const CLEAN: &[&str] = &[
    "var/cache/apt/archives",
    "var/cache/apt",
    "var/lib/apt/lists",
    "var/log",
    "var/cache/debconf",
    "tmp",
    "var/tmp",
    "debootstrap",
];

pub fn debian(store: &Store, opts: &DebianOptions) -> Result<Descriptor, KitError> {
    if !opts.debootstrap.is_file() {
        return Err(KitError::MissingTool {
            tool: "debootstrap",
            path: opts.debootstrap.clone(),
            package: "debootstrap",
        });
    }
    if !rustix::process::geteuid().is_root() {
        return Err(KitError::NeedsRoot {
            what: "drydock kit debian",
        });
    }
    let tag = match &opts.tag {
        Some(t) => t.clone(),
        None => Reference::parse(&format!("debian:{}", opts.suite)).map_err(|e| KitError::Io {
            action: "name",
            path: PathBuf::from(&opts.suite),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()),
        })?,
    };
    let mirror = opts.mirror.clone().unwrap_or_else(host_mirror);
    let tmp = tempfile::Builder::new()
        .prefix("drydock-kit-debian-")
        .tempdir()
        .map_err(io("create temporary directory in", std::env::temp_dir()))?;
    let root = tmp.path().join("rootfs");
    let mut cmd = Command::new(&opts.debootstrap);
    cmd.arg("--variant=minbase");
    if let Some(a) = &opts.arch {
        cmd.arg(format!("--arch={a}"));
    }
    cmd.arg(&opts.suite).arg(&root).arg(&mirror);
    let out = cmd.output().map_err(io("run", &opts.debootstrap))?;
    if !out.status.success() {
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        return Err(KitError::Command {
            command: format!(
                "debootstrap --variant=minbase {} {} {mirror}",
                opts.suite,
                root.display()
            ),
            status: out.status,
            output: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        });
    }
    clean(&root)?;
    commit_tree(
        store,
        &root,
        opts.epoch,
        &tag,
        &format!("drydock kit debian --suite {}", opts.suite),
        serde_json::json!({"Env": [crate::DEFAULT_PATH], "Cmd": ["bash"]}),
    )
}

fn clean(root: &Path) -> Result<(), KitError> {
    for rel in CLEAN {
        let dir = root.join(rel);
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
            // Keep apt's directory skeleton (partial/, archives/), drop files.
            let apt_skeleton = rel.starts_with("var/cache/apt") || *rel == "var/lib/apt/lists";
            let r = if is_dir && apt_skeleton {
                continue;
            } else if is_dir {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
            r.map_err(io("remove", &p))?;
        }
    }
    // systemd's machine-id must be unique per machine: ship it empty, as official images do.
    let mid = root.join("etc/machine-id");
    if mid.exists() {
        fs::write(&mid, b"").map_err(io("truncate", &mid))?;
    }
    Ok(())
}

fn host_mirror() -> String {
    let text = fs::read_to_string("/etc/apt/sources.list.d/debian.sources").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.strip_prefix("URIs:"))
        .map(str::trim)
        .find(|u| !u.contains("security"))
        .map(|u| u.split_whitespace().next().unwrap_or(u).to_string())
        .unwrap_or_else(|| "http://deb.debian.org/debian".to_string())
}
