//! A streaming tar reader for apply: ustar, GNU and PAX headers.
//!
//! PAX records are split by their length prefix, so xattr values may hold any byte (the `tar`
//! crate splits on newlines, which breaks binary values such as capabilities). GNU long names
//! (`L`/`K`) and PAX `path`, `linkpath`, `size`, `uid`, `gid`, `mtime` and `SCHILY.xattr.*` are
//! honoured; PAX global headers are skipped; GNU sparse files are refused.

use std::io::{self, Read};

const BLOCK: usize = 512;

/// One entry's header, with every extension applied.
#[derive(Debug, Clone, Default)]
pub(crate) struct RawEntry {
    pub path: Vec<u8>,
    pub link: Vec<u8>,
    pub typeflag: u8,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: i64,
    pub size: u64,
    pub dev_major: u32,
    pub dev_minor: u32,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

pub(crate) struct TarReader<R: Read> {
    r: R,
    /// Data (plus padding) of the current entry not read yet.
    left: u64,
    pad: u64,
    done: bool,
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn cstr(field: &[u8]) -> &[u8] {
    match field.iter().position(|&b| b == 0) {
        Some(i) => &field[..i],
        None => field,
    }
}

/// An octal field (spaces/NULs around it allowed), or GNU base-256 when the top bit is set.
fn number(field: &[u8]) -> io::Result<u64> {
    if field.first().is_some_and(|&b| b & 0x80 != 0) {
        if field[0] & 0x40 != 0 {
            return Err(bad("negative base-256 number in tar header"));
        }
        let mut v: u64 = u64::from(field[0] & 0x3f);
        for &b in &field[1..] {
            v = v
                .checked_mul(256)
                .ok_or_else(|| bad("tar header number overflows"))?
                + u64::from(b);
        }
        return Ok(v);
    }
    let s = cstr(field);
    let s = std::str::from_utf8(s).map_err(|_| bad("non-ASCII number in tar header"))?;
    let s = s.trim_matches(|c| c == ' ' || c == '\0');
    if s.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(s, 8).map_err(|_| bad(format!("bad octal number {s:?} in tar header")))
}

/// Parses PAX records (`"<len> <key>=<value>\n"`) by their lengths.
pub(crate) fn pax_records(mut data: &[u8]) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::new();
    while !data.is_empty() {
        if data.iter().all(|&b| b == 0) {
            break;
        }
        let sp = data
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| bad("malformed PAX record"))?;
        let len: usize = std::str::from_utf8(&data[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("malformed PAX record length"))?;
        if len <= sp + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Err(bad("malformed PAX record"));
        }
        let rec = &data[sp + 1..len - 1];
        let eq = rec
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| bad("PAX record without ="))?;
        out.push((rec[..eq].to_vec(), rec[eq + 1..].to_vec()));
        data = &data[len..];
    }
    Ok(out)
}

fn dec<T: std::str::FromStr>(v: &[u8]) -> io::Result<T> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| bad(format!("bad PAX number {:?}", String::from_utf8_lossy(v))))
}

impl<R: Read> TarReader<R> {
    pub(crate) fn new(r: R) -> Self {
        TarReader {
            r,
            left: 0,
            pad: 0,
            done: false,
        }
    }

    fn skip(&mut self, mut n: u64) -> io::Result<()> {
        let mut buf = [0u8; 8192];
        while n > 0 {
            let k = n.min(buf.len() as u64) as usize;
            self.r.read_exact(&mut buf[..k])?;
            n -= k as u64;
        }
        Ok(())
    }

    fn read_block(&mut self) -> io::Result<Option<[u8; BLOCK]>> {
        let mut b = [0u8; BLOCK];
        let mut n = 0;
        while n < BLOCK {
            match self.r.read(&mut b[n..]) {
                Ok(0) if n == 0 => return Ok(None),
                Ok(0) => return Err(bad("tar archive ends inside a header")),
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Some(b))
    }

    fn read_meta_data(&mut self, size: u64) -> io::Result<Vec<u8>> {
        if size > 64 * 1024 * 1024 {
            return Err(bad("tar extended header larger than 64 MiB"));
        }
        let mut data = vec![0u8; size as usize];
        self.r.read_exact(&mut data)?;
        self.skip(padding(size))?;
        Ok(data)
    }

    /// The next entry, or `None` at the end of the archive. Unread data of the previous entry is
    /// skipped.
    pub(crate) fn next_entry(&mut self) -> io::Result<Option<RawEntry>> {
        if self.done {
            return Ok(None);
        }
        self.skip(self.left + self.pad)?;
        self.left = 0;
        self.pad = 0;
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut pax: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        loop {
            let Some(h) = self.read_block()? else {
                self.done = true;
                return Ok(None);
            };
            if h.iter().all(|&b| b == 0) {
                self.done = true;
                return Ok(None);
            }
            let stored = number(&h[148..156])?;
            let mut unsigned: u64 = 0;
            let mut signed: i64 = 0;
            for (i, &b) in h.iter().enumerate() {
                let b = if (148..156).contains(&i) { b' ' } else { b };
                unsigned += u64::from(b);
                signed += i64::from(b as i8);
            }
            if stored != unsigned && stored as i64 != signed {
                return Err(bad(
                    "tar header checksum mismatch (not a tar archive, or corrupt)",
                ));
            }
            let typeflag = h[156];
            let size = number(&h[124..136])?;
            match typeflag {
                b'x' => {
                    let data = self.read_meta_data(size)?;
                    pax.extend(pax_records(&data)?);
                    continue;
                }
                b'g' => {
                    self.read_meta_data(size)?;
                    continue;
                }
                b'L' => {
                    long_name = Some(cstr(&self.read_meta_data(size)?).to_vec());
                    continue;
                }
                b'K' => {
                    long_link = Some(cstr(&self.read_meta_data(size)?).to_vec());
                    continue;
                }
                b'S' => return Err(bad("GNU sparse files are not supported in layers")),
                _ => {}
            }
            let magic = &h[257..263];
            let mut path = cstr(&h[..100]).to_vec();
            if magic == b"ustar\0" {
                let prefix = cstr(&h[345..500]);
                if !prefix.is_empty() {
                    let mut p = prefix.to_vec();
                    p.push(b'/');
                    p.extend_from_slice(&path);
                    path = p;
                }
            }
            let mut e = RawEntry {
                path: long_name.take().unwrap_or(path),
                link: long_link
                    .take()
                    .unwrap_or_else(|| cstr(&h[157..257]).to_vec()),
                typeflag,
                mode: (number(&h[100..108])? & 0o7777) as u32,
                uid: number(&h[108..116])?,
                gid: number(&h[116..124])?,
                mtime: number(&h[136..148])? as i64,
                size,
                dev_major: number(&h[329..337]).unwrap_or(0) as u32,
                dev_minor: number(&h[337..345]).unwrap_or(0) as u32,
                xattrs: Vec::new(),
            };
            for (k, v) in pax {
                match k.as_slice() {
                    b"path" => e.path = v,
                    b"linkpath" => e.link = v,
                    b"size" => e.size = dec(&v)?,
                    b"uid" => e.uid = dec(&v)?,
                    b"gid" => e.gid = dec(&v)?,
                    b"mtime" => {
                        let whole = v.split(|&b| b == b'.').next().unwrap_or(b"");
                        e.mtime = dec(whole)?;
                    }
                    k if k.starts_with(b"GNU.sparse.") => {
                        return Err(bad("GNU sparse files are not supported in layers"));
                    }
                    k => {
                        if let Some(name) = k.strip_prefix(b"SCHILY.xattr.") {
                            e.xattrs.push((name.to_vec(), v));
                        }
                    }
                }
            }
            // Header-only types carry no data whatever their size field says.
            if matches!(typeflag, b'1' | b'2' | b'3' | b'4' | b'5' | b'6') {
                e.size = 0;
            }
            self.left = e.size;
            self.pad = padding(e.size);
            return Ok(Some(e));
        }
    }
}

impl<R: Read> Read for TarReader<R> {
    /// Reads the current entry's data.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let k = (buf.len() as u64).min(self.left) as usize;
        let n = self.r.read(&mut buf[..k])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "tar archive ends inside a file",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_values_may_hold_newlines() {
        let mut data = Vec::new();
        data.extend_from_slice(b"22 SCHILY.xattr.a=x\ny\n");
        data.extend_from_slice(b"12 path=abc\n");
        let recs = pax_records(&data).unwrap();
        assert_eq!(recs[0], (b"SCHILY.xattr.a".to_vec(), b"x\ny".to_vec()));
        assert_eq!(recs[1], (b"path".to_vec(), b"abc".to_vec()));
        assert!(pax_records(b"99 path=abc\n").is_err());
    }

    #[test]
    fn base256_numbers() {
        let mut f = [0u8; 8];
        f[0] = 0x80;
        f[7] = 5;
        assert_eq!(number(&f).unwrap(), 5);
        assert_eq!(number(b"0000755\0").unwrap(), 0o755);
        assert_eq!(number(b"     12 ").unwrap(), 0o12);
    }
}
