//! Copy mode (no overlayfs): merging layer dirs into one tree and copying trees with their
//! metadata (owner, mode, times, xattrs, hard links, device nodes).

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

fn is_overlay_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.")
}

fn is_opaque(path: &Path) -> bool {
    let mut buf = [0u8; 8];
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|n| {
            rustix::fs::lgetxattr(path, *n, &mut buf[..])
                .is_ok_and(|len| buf[..len].starts_with(b"y"))
        })
}

fn is_whiteout(md: &fs::Metadata) -> bool {
    md.file_type().is_char_device() && md.rdev() == 0
}

fn copy_xattrs(src: &Path, dst: &Path) {
    let mut names = vec![0u8; 4096];
    let Ok(n) = rustix::fs::llistxattr(src, &mut names[..]) else {
        return;
    };
    for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        if is_overlay_xattr(name) {
            continue;
        }
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
        let mut value = vec![0u8; 64 * 1024];
        if let Ok(len) = rustix::fs::lgetxattr(src, name, &mut value[..]) {
            let _ =
                rustix::fs::lsetxattr(dst, name, &value[..len], rustix::fs::XattrFlags::empty());
        }
    }
}

fn set_meta(dst: &Path, md: &fs::Metadata, src: &Path) -> io::Result<()> {
    use rustix::fs::{AtFlags, Timespec, Timestamps};
    let is_link = md.file_type().is_symlink();
    let _ = rustix::fs::chownat(
        rustix::fs::CWD,
        dst,
        Some(rustix::fs::Uid::from_raw(md.uid())),
        Some(rustix::fs::Gid::from_raw(md.gid())),
        AtFlags::SYMLINK_NOFOLLOW,
    );
    copy_xattrs(src, dst);
    if !is_link {
        rustix::fs::chmod(dst, rustix::fs::Mode::from_raw_mode(md.mode() & 0o7777))?;
    }
    let ts = Timestamps {
        last_access: Timespec {
            tv_sec: md.atime(),
            tv_nsec: md.atime_nsec() as _,
        },
        last_modification: Timespec {
            tv_sec: md.mtime(),
            tv_nsec: md.mtime_nsec() as _,
        },
    };
    rustix::fs::utimensat(rustix::fs::CWD, dst, &ts, AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

type Links = HashMap<(u64, u64), PathBuf>;

fn copy_node(src: &Path, dst: &Path, md: &fs::Metadata, links: &mut Links) -> io::Result<()> {
    let ft = md.file_type();
    if !ft.is_dir() && md.nlink() > 1 {
        if let Some(first) = links.get(&(md.dev(), md.ino())) {
            return fs::hard_link(first, dst);
        }
        links.insert((md.dev(), md.ino()), dst.to_path_buf());
    }
    if ft.is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(src)?, dst)?;
    } else if ft.is_file() {
        fs::copy(src, dst)?;
    } else if ft.is_dir() {
        fs::create_dir(dst)?;
    } else {
        let kind = if ft.is_char_device() {
            rustix::fs::FileType::CharacterDevice
        } else if ft.is_block_device() {
            rustix::fs::FileType::BlockDevice
        } else if ft.is_fifo() {
            rustix::fs::FileType::Fifo
        } else {
            rustix::fs::FileType::Socket
        };
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dst,
            kind,
            rustix::fs::Mode::from_raw_mode(md.mode() & 0o7777),
            md.rdev(),
        )?;
    }
    Ok(())
}

/// Copies `src` (a directory) to `dst` (created), preserving metadata.
pub fn copy_tree(src: &Path, dst: &Path) -> io::Result<()> {
    let mut links = Links::new();
    let md = fs::symlink_metadata(src)?;
    fs::create_dir_all(dst)?;
    copy_children(src, dst, &mut links)?;
    set_meta(dst, &md, src)
}

fn copy_children(src: &Path, dst: &Path, links: &mut Links) -> io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(src)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let (s, d) = (e.path(), dst.join(e.file_name()));
        let md = fs::symlink_metadata(&s)?;
        copy_node(&s, &d, &md, links)?;
        if md.is_dir() {
            copy_children(&s, &d, links)?;
        }
        set_meta(&d, &md, &s)?;
    }
    Ok(())
}

fn remove_any(p: &Path) -> io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(md) if md.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Merges layer dirs (bottom first, overlayfs whiteouts) into `dst`, as overlayfs would show them.
pub fn merge_layers(layers: &[PathBuf], dst: &Path) -> io::Result<()> {
    fs::create_dir_all(dst)?;
    for (i, layer) in layers.iter().enumerate() {
        let mut links = Links::new();
        merge_dir(layer, dst, &mut links)?;
        if i + 1 == layers.len() || i == 0 {
            set_meta(dst, &fs::symlink_metadata(layer)?, layer)?;
        }
    }
    Ok(())
}

fn merge_dir(src: &Path, dst: &Path, links: &mut Links) -> io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(src)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let (s, d) = (e.path(), dst.join(e.file_name()));
        let md = fs::symlink_metadata(&s)?;
        if is_whiteout(&md) {
            remove_any(&d)?;
            continue;
        }
        if md.is_dir() {
            match fs::symlink_metadata(&d) {
                Ok(dm) if dm.is_dir() => {
                    if is_opaque(&s) {
                        fs::remove_dir_all(&d)?;
                        fs::create_dir(&d)?;
                    }
                }
                Ok(_) => {
                    fs::remove_file(&d)?;
                    fs::create_dir(&d)?;
                }
                Err(_) => fs::create_dir(&d)?,
            }
            merge_dir(&s, &d, links)?;
        } else {
            remove_any(&d)?;
            copy_node(&s, &d, &md, links)?;
        }
        set_meta(&d, &md, &s)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_preserves_modes_links_and_times() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        fs::create_dir_all(src.join("d/e")).unwrap();
        fs::write(src.join("d/f"), "hello").unwrap();
        fs::set_permissions(src.join("d/f"), fs::Permissions::from_mode(0o751)).unwrap();
        fs::hard_link(src.join("d/f"), src.join("d/g")).unwrap();
        std::os::unix::fs::symlink("f", src.join("d/l")).unwrap();
        let dst = t.path().join("dst");
        copy_tree(&src, &dst).unwrap();
        let f = fs::metadata(dst.join("d/f")).unwrap();
        assert_eq!(f.mode() & 0o7777, 0o751);
        assert_eq!(f.ino(), fs::metadata(dst.join("d/g")).unwrap().ino());
        assert_eq!(fs::read_link(dst.join("d/l")).unwrap(), Path::new("f"));
        assert_eq!(f.mtime(), fs::metadata(src.join("d/f")).unwrap().mtime());
        assert_eq!(
            fs::metadata(dst.join("d")).unwrap().mtime(),
            fs::metadata(src.join("d")).unwrap().mtime()
        );
    }

    #[test]
    fn merge_applies_file_replacement() {
        let t = tempfile::tempdir().unwrap();
        let (l1, l2) = (t.path().join("l1"), t.path().join("l2"));
        fs::create_dir_all(l1.join("etc")).unwrap();
        fs::write(l1.join("etc/a"), "1").unwrap();
        fs::write(l1.join("etc/b"), "1").unwrap();
        fs::create_dir_all(l2.join("etc")).unwrap();
        fs::write(l2.join("etc/a"), "2").unwrap();
        let dst = t.path().join("m");
        merge_layers(&[l1, l2], &dst).unwrap();
        assert_eq!(fs::read_to_string(dst.join("etc/a")).unwrap(), "2");
        assert_eq!(fs::read_to_string(dst.join("etc/b")).unwrap(), "1");
    }
}
