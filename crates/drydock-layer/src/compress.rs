//! Compression of layers: deterministic encoders, decoders, and detection from magic bytes.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::sync::mpsc;
use std::thread::JoinHandle;

pub use drydock_oci::media_type::Compression;

use crate::pargz::ParGzEncoder;
use crate::parzstd::ZstdEncoder;

/// How to compress. The output depends on `level` and `gzip_block`, never on `threads`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompressOptions {
    /// gzip: 0-9 (default 6, like `gzip`/`pigz`); zstd: 1-19 (default 3, like `zstd`).
    pub level: Option<i32>,
    /// Worker threads; 0 means one per available core.
    pub threads: usize,
    /// gzip block size in bytes (each block is compressed independently; default 256 KiB).
    pub gzip_block: usize,
}

impl Default for CompressOptions {
    fn default() -> Self {
        CompressOptions {
            level: None,
            threads: 0,
            gzip_block: DEFAULT_GZIP_BLOCK,
        }
    }
}

/// The default gzip block size.
pub const DEFAULT_GZIP_BLOCK: usize = 256 * 1024;

impl CompressOptions {
    fn thread_count(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

/// A `Write` that compresses into `W` with a [`Compression`].
///
/// `flush()` never ends a compressed block early (that would make the output depend on when
/// callers flush); call [`Encoder::finish`] to end the stream.
pub enum Encoder<W: Write> {
    None(W),
    Gzip(ParGzEncoder<W>),
    Zstd(ZstdEncoder<W>),
}

impl<W: Write> std::fmt::Debug for Encoder<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Encoder::None(_) => "Encoder::None",
            Encoder::Gzip(_) => "Encoder::Gzip",
            Encoder::Zstd(_) => "Encoder::Zstd",
        })
    }
}

impl<W: Write> Encoder<W> {
    pub fn new(inner: W, compression: Compression, opts: &CompressOptions) -> io::Result<Self> {
        Ok(match compression {
            Compression::None => Encoder::None(inner),
            Compression::Gzip => {
                let level = opts.level.unwrap_or(6).clamp(0, 9) as u32;
                Encoder::Gzip(ParGzEncoder::new(
                    inner,
                    level,
                    opts.thread_count(),
                    opts.gzip_block,
                ))
            }
            Compression::Zstd => {
                let level = opts.level.unwrap_or(3).clamp(1, 19);
                // Always in multi-threaded mode (even with one worker): zstd's output is then
                // the same for any number of workers.
                Encoder::Zstd(ZstdEncoder::new(
                    inner,
                    level,
                    opts.thread_count().max(1) as u32,
                )?)
            }
        })
    }

    pub fn compression(&self) -> Compression {
        match self {
            Encoder::None(_) => Compression::None,
            Encoder::Gzip(_) => Compression::Gzip,
            Encoder::Zstd(_) => Compression::Zstd,
        }
    }

    /// Ends the stream and returns the inner writer (flushed).
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::None(mut w) => {
                w.flush()?;
                Ok(w)
            }
            Encoder::Gzip(g) => g.finish(),
            Encoder::Zstd(z) => z.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::None(w) => w.write(buf),
            Encoder::Gzip(g) => g.write(buf),
            Encoder::Zstd(z) => z.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::None(w) => w.flush(),
            Encoder::Gzip(g) => g.flush(),
            Encoder::Zstd(z) => z.flush(),
        }
    }
}

/// Compresses all of `data` in memory.
pub fn compress_bytes(
    data: &[u8],
    compression: Compression,
    opts: &CompressOptions,
) -> io::Result<Vec<u8>> {
    let mut enc = Encoder::new(Vec::new(), compression, opts)?;
    enc.write_all(data)?;
    enc.finish()
}

/// The compression a blob starts with: gzip (`1f 8b`), zstd (`28 b5 2f fd`), else `None`.
pub fn detect(prefix: &[u8]) -> Compression {
    if prefix.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if prefix.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// A `Read` that decompresses. Gzip streams of several members are read whole.
pub enum Decoder<R: Read> {
    None(R),
    Gzip(Box<flate2::bufread::MultiGzDecoder<BufReader<R>>>),
    Zstd(zstd::stream::read::Decoder<'static, BufReader<R>>),
}

impl<R: Read> std::fmt::Debug for Decoder<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Decoder::None(_) => "Decoder::None",
            Decoder::Gzip(_) => "Decoder::Gzip",
            Decoder::Zstd(_) => "Decoder::Zstd",
        })
    }
}

impl<R: Read> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::None(r) => r.read(buf),
            Decoder::Gzip(g) => g.read(buf),
            Decoder::Zstd(z) => z.read(buf),
        }
    }
}

const READ_BUF: usize = 256 * 1024;

/// Decompresses `reader` as `compression`.
pub fn decompress<R: Read>(reader: R, compression: Compression) -> io::Result<Decoder<R>> {
    Ok(match compression {
        Compression::None => Decoder::None(reader),
        Compression::Gzip => Decoder::Gzip(Box::new(flate2::bufread::MultiGzDecoder::new(
            BufReader::with_capacity(READ_BUF, reader),
        ))),
        Compression::Zstd => Decoder::Zstd(zstd::stream::read::Decoder::with_buffer(
            BufReader::with_capacity(READ_BUF, reader),
        )?),
    })
}

/// Detects the compression from the first bytes and decompresses.
pub fn decompress_detect<R: Read>(reader: R) -> io::Result<(Compression, Decoder<BufReader<R>>)> {
    let mut br = BufReader::with_capacity(READ_BUF, reader);
    // A short first read could hide the magic; fill_buf on a fresh BufReader returns what one
    // read gave, which for files and pipes holds the first 4 bytes unless the stream is shorter.
    let c = detect(br.fill_buf()?);
    Ok((c, decompress(br, c)?))
}

/// A reader that runs `inner` (for example a [`Decoder`]) on its own thread and hands the bytes
/// over in chunks, so decompression overlaps with whatever consumes the output.
pub struct ReadAhead {
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
    done: bool,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ReadAhead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadAhead")
            .field("done", &self.done)
            .finish()
    }
}

impl ReadAhead {
    pub fn new<R: Read + Send + 'static>(mut inner: R) -> Self {
        let (tx, rx) = mpsc::sync_channel::<io::Result<Vec<u8>>>(8);
        let thread = std::thread::Builder::new()
            .name("drydock-readahead".into())
            .spawn(move || {
                loop {
                    let mut buf = vec![0u8; READ_BUF];
                    let mut filled = 0;
                    let res = loop {
                        match inner.read(&mut buf[filled..]) {
                            Ok(0) => break Ok(()),
                            Ok(n) => {
                                filled += n;
                                if filled == buf.len() {
                                    break Ok(());
                                }
                            }
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => break Err(e),
                        }
                    };
                    match res {
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                        Ok(()) => {
                            let eof = filled < buf.len();
                            buf.truncate(filled);
                            if !buf.is_empty() && tx.send(Ok(buf)).is_err() {
                                return;
                            }
                            if eof {
                                return;
                            }
                        }
                    }
                }
            })
            .expect("spawning a read-ahead thread");
        ReadAhead {
            rx,
            cur: Vec::new(),
            pos: 0,
            done: false,
            thread: Some(thread),
        }
    }
}

impl Read for ReadAhead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.cur = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => {
                    self.done = true;
                    if let Some(t) = self.thread.take() {
                        let _ = t.join();
                    }
                }
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
