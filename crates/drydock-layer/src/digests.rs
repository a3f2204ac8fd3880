//! `LayerWriter`: compress a layer tar and compute its diff ID, digest and size in one pass.

use std::io::{self, Read, Write};

use drydock_oci::{Algorithm, Digest, Hasher};

use crate::bghash::BackgroundHasher;
use crate::compress::{CompressOptions, Compression, Encoder};

/// The identity of a written layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerDigests {
    /// sha256 of the uncompressed tar (the config's `rootfs.diff_ids` entry).
    pub diff_id: Digest,
    /// sha256 of the bytes written (the manifest's layer descriptor digest).
    pub digest: Digest,
    /// Number of bytes written (the descriptor size).
    pub size: u64,
    /// Size of the uncompressed tar.
    pub tar_size: u64,
    pub compression: Compression,
}

/// A sink that hashes what it is given itself (the content store's blob writer does, to
/// verify a blob before publishing it). A [`LayerWriter::over_digesting_sink`] takes the
/// compressed digest from it instead of hashing the compressed stream a second time.
pub trait DigestingSink: Write {
    /// The sha256 digest of everything written so far.
    fn digest_so_far(&self) -> Digest;
}

/// Hashes (unless the sink does) and counts what passes through to `W`.
struct Counted<W: Write> {
    inner: W,
    hasher: Option<Hasher>,
    n: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(h) = self.hasher.as_mut() {
            h.update(&buf[..n]);
        }
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Takes uncompressed tar bytes, writes them compressed to `W`, and computes [`LayerDigests`]
/// on the way (no second read).
///
/// ```no_run
/// # use drydock_layer::*;
/// let mut lw = LayerWriter::new(std::fs::File::create("/tmp/layer")?, Compression::Gzip,
///     &CompressOptions::default())?;
/// write_tree("/some/rootfs".as_ref(), &mut lw, &TarOptions::with_epoch(0))?;
/// let (digests, _file) = lw.finish()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct LayerWriter<W: Write> {
    tar: BackgroundHasher,
    tar_size: u64,
    enc: Encoder<Counted<W>>,
    /// Where the compressed digest comes from when the sink hashes (no hasher in `Counted`).
    sink_digest: Option<fn(&W) -> Digest>,
}

impl<W: Write> std::fmt::Debug for LayerWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayerWriter")
            .field("enc", &self.enc)
            .finish()
    }
}

impl<W: Write> LayerWriter<W> {
    pub fn new(out: W, compression: Compression, opts: &CompressOptions) -> io::Result<Self> {
        Self::build(out, compression, opts, true)
    }

    fn build(
        out: W,
        compression: Compression,
        opts: &CompressOptions,
        hash_output: bool,
    ) -> io::Result<Self> {
        // Uncompressed: digest == diff_id, hash once.
        let hasher =
            (hash_output && compression != Compression::None).then(|| Algorithm::Sha256.hasher());
        let counted = Counted {
            inner: out,
            hasher,
            n: 0,
        };
        Ok(LayerWriter {
            tar: BackgroundHasher::new(),
            tar_size: 0,
            enc: Encoder::new(counted, compression, opts)?,
            sink_digest: None,
        })
    }

    /// Like [`LayerWriter::new`], for a sink that hashes what it is given: the compressed
    /// stream is hashed once, by the sink (a layer's bytes are otherwise hashed three times).
    pub fn over_digesting_sink(
        out: W,
        compression: Compression,
        opts: &CompressOptions,
    ) -> io::Result<Self>
    where
        W: DigestingSink,
    {
        let mut lw = Self::build(out, compression, opts, false)?;
        if compression != Compression::None {
            lw.sink_digest = Some(<W as DigestingSink>::digest_so_far);
        }
        Ok(lw)
    }

    /// Ends the compressed stream; returns the digests and the (flushed) output.
    pub fn finish(self) -> io::Result<(LayerDigests, W)> {
        let compression = self.enc.compression();
        let counted = self.enc.finish()?;
        let diff_id = self.tar.finish();
        let digest = match (counted.hasher, self.sink_digest) {
            (Some(h), _) => h.finish(),
            (None, Some(from_sink)) => from_sink(&counted.inner),
            (None, None) => diff_id.clone(),
        };
        let digests = LayerDigests {
            diff_id,
            digest,
            size: counted.n,
            tar_size: self.tar_size,
            compression,
        };
        Ok((digests, counted.inner))
    }
}

impl<W: Write> Write for LayerWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.enc.write(buf)?;
        self.tar.update(&buf[..n]);
        self.tar_size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.enc.flush()
    }
}

/// A `Read` that hashes (sha256) and counts what is read through it, for checking a diff ID
/// while applying a layer.
pub struct DigestReader<R: Read> {
    inner: R,
    hasher: Hasher,
    n: u64,
}

impl<R: Read> std::fmt::Debug for DigestReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestReader").field("n", &self.n).finish()
    }
}

impl<R: Read> DigestReader<R> {
    pub fn new(inner: R) -> Self {
        DigestReader {
            inner,
            hasher: Algorithm::Sha256.hasher(),
            n: 0,
        }
    }

    /// Reads whatever is left (tar readers stop at the end marker, before padding), then returns
    /// the digest and byte count of everything.
    pub fn finish(mut self) -> io::Result<(Digest, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((self.hasher.finish(), self.n))
    }
}

impl<R: Read> Read for DigestReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.n += n as u64;
        Ok(n)
    }
}
