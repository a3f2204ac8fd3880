//! Test support: a drydock home with kit base images, Debian's Docker engine with the same
//! images loaded, and file-tree snapshots of images (flattened layers) to compare.
#![allow(dead_code, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use drydock_builder::{BuildError, BuildOutput, BuildRequest, Builder, ContextSource, LayerRef};
use drydock_content::Store;
use drydock_oci::{Platform, Reference};
use drydock_testkit::Docker;

pub const INIT: &str = env!("CARGO_BIN_EXE_drydock-builder-init");

/// A fresh `DRYDOCK_HOME` with `busybox:latest` (and optionally `debian:bookworm`).
pub struct World {
    pub home: tempfile::TempDir,
    pub builder: Builder,
}

fn lock(name: &str) -> fs::File {
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(format!("/tmp/drydock-builder-test-{name}.lock"))
        .expect("lock file");
    f.lock().expect("lock");
    f
}

impl World {
    /// `None` (skip) when not root outside CI; panics in CI.
    pub fn new() -> Option<World> {
        if !drydock_testkit::require_root("building images (sandbox, chown)") {
            return None;
        }
        drydock_testkit::require_tool("/bin/busybox", "busybox-static")?;
        let home = tempfile::Builder::new()
            .prefix("drydock-builder-test-")
            .tempdir_in("/var/tmp")
            .expect("temp home");
        let builder = Builder::new(home.path())
            .expect("builder")
            .with_init_binary(INIT);
        drydock_kit::busybox(builder.store(), &drydock_kit::BusyboxOptions::default())
            .expect("kit busybox");
        Some(World { home, builder })
    }

    /// Adds `debian:bookworm` (debootstrap runs once per machine; the image is kept as a
    /// docker archive under /var/tmp and imported here).
    pub fn with_debian(self) -> Option<World> {
        let archive = debian_archive()?;
        let imgs = drydock_content::transport::import_docker_archive(self.store(), &archive, None)
            .expect("import debian");
        drydock_content::names::set(
            self.store(),
            &Reference::parse("debian:bookworm").unwrap(),
            &imgs[0].manifest,
        )
        .unwrap();
        Some(self)
    }

    pub fn store(&self) -> &Store {
        self.builder.store()
    }

    pub fn request(&self, ctx: &Path) -> BuildRequest {
        BuildRequest {
            context: ContextSource::Dir(ctx.to_path_buf()),
            pull: drydock_builder::PullPolicy::Never,
            ..Default::default()
        }
    }

    pub fn build(
        &self,
        ctx: &Path,
        f: impl FnOnce(&mut BuildRequest),
    ) -> Result<BuildOutput, BuildError> {
        let mut req = self.request(ctx);
        f(&mut req);
        self.builder.build(req)
    }

    /// The files of a built image.
    pub fn tree(&self, layers: &[LayerRef]) -> Tree {
        let t = tempfile::tempdir_in("/var/tmp").unwrap();
        drydock_builder::export::flatten(self.store(), layers, t.path()).unwrap();
        Tree::read(t.path())
    }

    /// The image's config document.
    pub fn config(&self, out: &BuildOutput) -> serde_json::Value {
        serde_json::from_slice(&self.store().read_blob(&out.config_digest).unwrap()).unwrap()
    }

    /// Loads the built image into the Docker engine as `name`.
    pub fn load_into_docker(&self, docker: &Docker, out: &BuildOutput, name: &str) {
        let t = tempfile::tempdir_in("/var/tmp").unwrap();
        let file = t.path().join("image.tar");
        let image =
            drydock_content::image::resolve(self.store(), &out.descriptor, &Platform::host(), name)
                .unwrap();
        drydock_content::transport::export_docker_archive(
            self.store(),
            &image,
            &[Reference::parse(name).unwrap()],
            &file,
        )
        .unwrap();
        drydock_testkit::run_ok(docker.cmd().arg("load").arg("-i").arg(&file));
    }
}

/// Debian's Docker engine with `busybox:latest` (as `drydock kit busybox` makes it) loaded.
pub fn docker_with_busybox() -> Option<Docker> {
    let docker = Docker::ensure()?;
    let _l = lock("busybox-load");
    let t = tempfile::tempdir_in("/var/tmp").unwrap();
    let store = Store::open(t.path().join("content")).unwrap();
    let desc =
        drydock_kit::busybox(&store, &drydock_kit::BusyboxOptions::default()).expect("kit busybox");
    let img = drydock_content::image::resolve(&store, &desc, &Platform::host(), "busybox").unwrap();
    let have = Command::new(&docker.client)
        .args(["image", "inspect", "--format", "{{.Id}}", "busybox:latest"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    if have != img.config_digest.to_string() {
        let file = t.path().join("busybox.tar");
        drydock_content::transport::export_docker_archive(
            &store,
            &img,
            &[Reference::parse("busybox:latest").unwrap()],
            &file,
        )
        .unwrap();
        drydock_testkit::run_ok(docker.cmd().arg("load").arg("-i").arg(&file));
    }
    Some(docker)
}

/// `debian:bookworm` as a docker archive, made once per machine with `drydock kit debian`.
pub fn debian_archive() -> Option<PathBuf> {
    drydock_testkit::require_tool("/usr/sbin/debootstrap", "debootstrap")?;
    let path = PathBuf::from("/var/tmp/drydock-test-debian-bookworm.tar");
    let _l = lock("debian");
    if path.is_file() {
        return Some(path);
    }
    let t = tempfile::tempdir_in("/var/tmp").unwrap();
    let store = Store::open(t.path().join("content")).unwrap();
    let desc = drydock_kit::debian(&store, &drydock_kit::DebianOptions::default())
        .map_err(|e| e.to_string());
    let desc = match desc {
        Ok(d) => d,
        Err(e) => {
            drydock_testkit::precondition(false, &format!("drydock kit debian failed: {e}"));
            return None;
        }
    };
    let img = drydock_content::image::resolve(&store, &desc, &Platform::host(), "debian").unwrap();
    let partial = path.with_extension("partial");
    drydock_content::transport::export_docker_archive(
        &store,
        &img,
        &[Reference::parse("debian:bookworm").unwrap()],
        &partial,
    )
    .unwrap();
    fs::rename(&partial, &path).unwrap();
    Some(path)
}

/// Loads `debian:bookworm` into the engine once.
pub fn docker_with_debian(docker: &Docker) -> Option<()> {
    let archive = debian_archive()?;
    let _l = lock("debian-load");
    let ok = Command::new(&docker.client)
        .args(["image", "inspect", "debian:bookworm"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        drydock_testkit::run_ok(docker.cmd().arg("load").arg("-i").arg(&archive));
    }
    Some(())
}

/// One file-system entry, mtimes aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// sha256 of a file's content, a symlink's target, a device's numbers.
    pub data: String,
}

/// A flattened image's files.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tree(pub BTreeMap<String, Entry>);

impl Tree {
    pub fn read(root: &Path) -> Tree {
        let mut out = BTreeMap::new();
        walk(root, root, &mut out);
        Tree(out)
    }

    pub fn get(&self, p: &str) -> Option<&Entry> {
        self.0.get(p.trim_start_matches('/'))
    }

    /// The differences, as readable lines (empty: equal).
    pub fn diff(&self, other: &Tree) -> Vec<String> {
        let mut out = Vec::new();
        for (k, a) in &self.0 {
            match other.0.get(k) {
                None => out.push(format!("only in left: /{k} {a:?}")),
                Some(b) if a != b => {
                    out.push(format!("differs: /{k}\n   left  {a:?}\n   right {b:?}"))
                }
                _ => {}
            }
        }
        for (k, b) in &other.0 {
            if !self.0.contains_key(k) {
                out.push(format!("only in right: /{k} {b:?}"));
            }
        }
        out
    }
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Entry>) {
    let mut names: Vec<_> = fs::read_dir(dir).unwrap().flatten().collect();
    names.sort_by_key(|e| e.file_name());
    for e in names {
        let p = e.path();
        let m = fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let ft = m.file_type();
        let (kind, data) = if ft.is_dir() {
            ("dir", String::new())
        } else if ft.is_symlink() {
            ("symlink", fs::read_link(&p).unwrap().display().to_string())
        } else if ft.is_file() {
            let mut h = drydock_oci::Algorithm::Sha256.hasher();
            let mut f = fs::File::open(&p).unwrap();
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = f.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            (
                "file",
                format!("{} bytes {}", m.size(), h.finish().short(16)),
            )
        } else if ft.is_char_device() {
            ("char", format!("{}", m.rdev()))
        } else if ft.is_block_device() {
            ("block", format!("{}", m.rdev()))
        } else if ft.is_fifo() {
            ("fifo", String::new())
        } else {
            ("other", String::new())
        };
        out.insert(
            rel,
            Entry {
                kind,
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                data,
            },
        );
        if ft.is_dir() {
            walk(root, &p, out);
        }
    }
}

/// The config and files of an image in the Docker engine (`docker save`, flattened).
pub fn docker_image(docker: &Docker, name: &str) -> (serde_json::Value, Tree) {
    let t = tempfile::tempdir_in("/var/tmp").unwrap();
    let file = t.path().join("saved.tar");
    drydock_testkit::run_ok(docker.cmd().args(["save", "-o"]).arg(&file).arg(name));
    let store = Store::open(t.path().join("content")).unwrap();
    let imgs = drydock_content::transport::import_docker_archive(&store, &file, None).unwrap();
    let img = drydock_content::image::resolve(&store, &imgs[0].manifest, &Platform::host(), name)
        .unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(&store.read_blob(&img.config_digest).unwrap()).unwrap();
    let diff_ids: Vec<String> = config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let layers: Vec<LayerRef> = img
        .manifest
        .layers()
        .iter()
        .zip(diff_ids)
        .map(|(d, id)| LayerRef {
            digest: drydock_content::graph::digest_of(d).unwrap(),
            diff_id: drydock_oci::Digest::parse(&id).unwrap(),
            size: d.size(),
            media_type: d.media_type().to_string(),
        })
        .collect();
    let root = t.path().join("root");
    drydock_builder::export::flatten(&store, &layers, &root).unwrap();
    (config, Tree::read(&root))
}

/// Copies a corpus case directory into a fresh context and runs its `setup.sh`.
pub fn context_from(case: &Path) -> tempfile::TempDir {
    let t = tempfile::Builder::new()
        .prefix("drydock-ctx-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", case.display()))
        .arg(t.path())
        .status()
        .unwrap();
    assert!(status.success());
    let setup = t.path().join("setup.sh");
    if setup.is_file() {
        let out = Command::new("sh")
            .arg("setup.sh")
            .current_dir(t.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "setup.sh of {}: {}",
            case.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        fs::remove_file(&setup).unwrap();
    }
    let _ = fs::remove_file(t.path().join("case"));
    t
}
