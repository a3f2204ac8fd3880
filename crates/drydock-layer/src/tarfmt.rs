//! Byte-exact encoding of tar headers: ustar blocks, with a PAX extended header in front when a
//! value does not fit (long names and link names, sizes of 8 GiB or more, big uids/gids, negative
//! or huge mtimes, xattrs). No uname/gname, no atime/ctime: the same input gives the same bytes.

use std::io::{self, Write};

pub(crate) const BLOCK: usize = 512;

/// The type of a tar entry, as this crate writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryType {
    Regular,
    HardLink,
    Symlink,
    Char,
    Block,
    Directory,
    Fifo,
}

impl EntryType {
    fn flag(self) -> u8 {
        match self {
            EntryType::Regular => b'0',
            EntryType::HardLink => b'1',
            EntryType::Symlink => b'2',
            EntryType::Char => b'3',
            EntryType::Block => b'4',
            EntryType::Directory => b'5',
            EntryType::Fifo => b'6',
        }
    }
}

/// Everything that goes into one entry's header(s).
#[derive(Debug)]
pub(crate) struct HeaderSpec<'a> {
    /// Relative path, `/`-separated, no leading `/`; directories get a trailing `/` here.
    pub path: &'a [u8],
    pub kind: EntryType,
    /// Permission bits plus setuid/setgid/sticky (`mode & 0o7777`).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Data size (0 for everything but regular files).
    pub size: u64,
    pub mtime: i64,
    /// Symlink target or hard-link target path.
    pub link: &'a [u8],
    pub dev_major: u32,
    pub dev_minor: u32,
    /// Sorted by name.
    pub xattrs: &'a [(Vec<u8>, Vec<u8>)],
}

const MAX_OCTAL_8: u64 = 0o7777777; // 7 digits in an 8-byte field
const MAX_OCTAL_12: u64 = 0o77777777777; // 11 digits in a 12-byte field

fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let s = format!("{value:0digits$o}");
    debug_assert_eq!(s.len(), digits);
    field[..digits].copy_from_slice(s.as_bytes());
    field[digits] = 0;
}

/// Appends one PAX record (`"<len> <key>=<value>\n"`, where len counts itself).
fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = rest + 1;
    while len.to_string().len() + rest != len {
        len = len.to_string().len() + rest;
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// One ustar block for `spec`, with `flag`, `size` and `mtime` as given (they may differ from
/// the spec's when a PAX record carries the real value).
fn ustar_block(spec: &HeaderSpec<'_>, flag: u8, size: u64, mtime: u64) -> [u8; BLOCK] {
    let (name, mode, uid, gid, link) = (spec.path, spec.mode, spec.uid, spec.gid, spec.link);
    let dev = (spec.dev_major, spec.dev_minor);
    let mut h = [0u8; BLOCK];
    let n = name.len().min(100);
    h[..n].copy_from_slice(&name[..n]);
    octal(&mut h[100..108], u64::from(mode & 0o7777));
    octal(&mut h[108..116], uid.min(MAX_OCTAL_8));
    octal(&mut h[116..124], gid.min(MAX_OCTAL_8));
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], mtime);
    h[156] = flag;
    let l = link.len().min(100);
    h[157..157 + l].copy_from_slice(&link[..l]);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    if matches!(flag, b'3' | b'4') {
        octal(&mut h[329..337], u64::from(dev.0).min(MAX_OCTAL_8));
        octal(&mut h[337..345], u64::from(dev.1).min(MAX_OCTAL_8));
    }
    // Checksum: sum of all bytes with the checksum field taken as spaces.
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let s = format!("{sum:06o}");
    h[148..154].copy_from_slice(s.as_bytes());
    h[154] = 0;
    h[155] = b' ';
    h
}

/// Writes the header block(s) of one entry and returns the number of bytes written. The caller
/// writes `spec.size` bytes of data and then [`padding`] zero bytes.
pub(crate) fn write_header(out: &mut impl Write, spec: &HeaderSpec<'_>) -> io::Result<u64> {
    let mut pax = Vec::new();
    if spec.path.len() > 100 {
        pax_record(&mut pax, b"path", spec.path);
    }
    if spec.link.len() > 100 {
        pax_record(&mut pax, b"linkpath", spec.link);
    }
    if spec.size > MAX_OCTAL_12 {
        pax_record(&mut pax, b"size", spec.size.to_string().as_bytes());
    }
    if spec.uid > MAX_OCTAL_8 {
        pax_record(&mut pax, b"uid", spec.uid.to_string().as_bytes());
    }
    if spec.gid > MAX_OCTAL_8 {
        pax_record(&mut pax, b"gid", spec.gid.to_string().as_bytes());
    }
    let header_mtime = if spec.mtime < 0 || spec.mtime as u64 > MAX_OCTAL_12 {
        pax_record(&mut pax, b"mtime", spec.mtime.to_string().as_bytes());
        0
    } else {
        spec.mtime as u64
    };
    for (name, value) in spec.xattrs {
        let mut key = b"SCHILY.xattr.".to_vec();
        key.extend_from_slice(name);
        pax_record(&mut pax, &key, value);
    }
    let mut written = 0u64;
    if !pax.is_empty() {
        let pax_spec = HeaderSpec {
            path: b"PaxHeader",
            kind: EntryType::Regular,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: pax.len() as u64,
            mtime: 0,
            link: b"",
            dev_major: 0,
            dev_minor: 0,
            xattrs: &[],
        };
        let h = ustar_block(&pax_spec, b'x', pax.len() as u64, 0);
        out.write_all(&h)?;
        out.write_all(&pax)?;
        let pad = padding(pax.len() as u64);
        out.write_all(&ZEROS[..pad])?;
        written += (BLOCK + pax.len() + pad) as u64;
    }
    let h = ustar_block(
        spec,
        spec.kind.flag(),
        spec.size.min(MAX_OCTAL_12),
        header_mtime,
    );
    out.write_all(&h)?;
    Ok(written + BLOCK as u64)
}

pub(crate) static ZEROS: [u8; 2 * BLOCK] = [0u8; 2 * BLOCK];

/// Zero bytes needed after `size` bytes of data to reach a block boundary.
pub(crate) fn padding(size: u64) -> usize {
    ((BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64) as usize
}

/// The end-of-archive marker: two zero blocks.
pub(crate) fn write_trailer(out: &mut impl Write) -> io::Result<u64> {
    out.write_all(&ZEROS)?;
    Ok(ZEROS.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_itself() {
        for n in [0usize, 1, 5, 90, 94, 95, 96, 97, 990, 995, 996, 997, 9990] {
            let mut out = Vec::new();
            let value = vec![b'a'; n];
            pax_record(&mut out, b"path", &value);
            let (len, _) =
                std::str::from_utf8(&out[..out.iter().position(|&b| b == b' ').unwrap()])
                    .map(|s| (s.parse::<usize>().unwrap(), ()))
                    .unwrap();
            assert_eq!(len, out.len(), "value length {n}");
        }
    }

    #[test]
    fn header_checksum_is_what_tar_expects() {
        let spec = HeaderSpec {
            path: b"etc/passwd",
            kind: EntryType::Regular,
            mode: 0o4755,
            uid: 1000,
            gid: 1000,
            size: 12,
            mtime: 1_700_000_000,
            link: b"",
            dev_major: 0,
            dev_minor: 0,
            xattrs: &[],
        };
        let mut out = Vec::new();
        write_header(&mut out, &spec).unwrap();
        let h = tar::Header::from_byte_slice(&out);
        let mut copy = out[..BLOCK].to_vec();
        copy[148..156].fill(b' ');
        let sum: u32 = copy.iter().map(|&b| u32::from(b)).sum();
        assert_eq!(h.cksum().unwrap(), sum);
        assert_eq!(h.mode().unwrap(), 0o4755);
        assert_eq!(h.path_bytes().as_ref(), b"etc/passwd");
        assert_eq!(h.mtime().unwrap(), 1_700_000_000);
    }

    #[test]
    fn values_that_do_not_fit_go_to_pax_records() {
        let name = "n".repeat(150);
        let link = "l".repeat(120);
        let spec = HeaderSpec {
            path: name.as_bytes(),
            kind: EntryType::Symlink,
            mode: 0o777,
            uid: 0o7777777 + 1,
            gid: 5,
            size: 10 << 30,
            mtime: -5,
            link: link.as_bytes(),
            dev_major: 0,
            dev_minor: 0,
            xattrs: &[(b"user.a".to_vec(), b"x\ny".to_vec())],
        };
        let mut out = Vec::new();
        let n = write_header(&mut out, &spec).unwrap();
        assert_eq!(n as usize, out.len());
        assert_eq!(out.len() % BLOCK, 0);
        let mut r = crate::tarread::TarReader::new(&out[..]);
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(e.path, name.as_bytes());
        assert_eq!(e.link, link.as_bytes());
        assert_eq!(e.uid, 0o7777777 + 1);
        assert_eq!(e.gid, 5);
        assert_eq!(e.mtime, -5);
        assert_eq!(e.xattrs, vec![(b"user.a".to_vec(), b"x\ny".to_vec())]);
        // A regular file's big size comes back from the PAX record.
        let spec = HeaderSpec {
            kind: EntryType::Regular,
            link: b"",
            ..spec
        };
        let mut out = Vec::new();
        write_header(&mut out, &spec).unwrap();
        let e = crate::tarread::TarReader::new(&out[..])
            .next_entry()
            .unwrap()
            .unwrap();
        assert_eq!(e.size, 10 << 30);
    }
}
