//! Parallel, deterministic gzip (pigz-style).
//!
//! The input is cut into fixed-size blocks. Each block is raw-deflated on its own, primed with the
//! last 32 KiB of the block before it as a preset dictionary, and ended with a sync flush (the last
//! block with a final block), so the deflate streams simply concatenate. The CRC-32 of each block is
//! computed by its worker and combined in order. The output depends only on the input, the level
//! and the block size: never on the number of threads or on how the input was split into writes.
//!
//! The gzip header is fixed: no name, no comment, mtime 0, XFL 0, OS 255 (unknown).

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Compression, FlushCompress, Status};

/// Preset dictionary size (deflate's window).
const DICT: usize = 32 * 1024;

/// The fixed 10-byte gzip header.
pub(crate) const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

struct Job {
    seq: u64,
    data: Vec<u8>,
    dict: Option<Arc<Vec<u8>>>,
    last: bool,
}

struct Done {
    seq: u64,
    out: io::Result<Vec<u8>>,
    crc: crc32fast::Hasher,
    len: u64,
    /// The input buffer, handed back for reuse.
    data: Vec<u8>,
}

/// Bytes sampled (at three places) to decide whether a block is worth compressing.
const SAMPLE: usize = 4 * 1024;

/// Whether `data` looks incompressible: level-1 deflate saves less than 2% on each of three
/// samples (start, middle, end). Only the block's bytes decide, so output stays deterministic.
fn incompressible(data: &[u8]) -> bool {
    if data.len() < 8 * SAMPLE {
        return false;
    }
    let mid = data.len() / 2 - SAMPLE / 2;
    [0, mid, data.len() - SAMPLE].iter().all(|&at| {
        let sample = &data[at..at + SAMPLE];
        let mut c = Compress::new(Compression::new(1), false);
        let mut out = Vec::with_capacity(SAMPLE + 1024);
        match c.compress_vec(sample, &mut out, FlushCompress::Finish) {
            Ok(Status::StreamEnd) => out.len() * 100 >= sample.len() * 98,
            _ => false,
        }
    })
}

/// `data` as deflate stored blocks (at most 65535 bytes each), byte-aligned like a sync flush;
/// the last one final when `last`.
fn stored_blocks(data: &[u8], last: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 65535 * 5 + 5);
    let chunks: Vec<&[u8]> = data.chunks(65535).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let fin = last && i + 1 == chunks.len();
        out.push(u8::from(fin));
        let len = chunk.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

/// Compresses one block with a fresh compressor (a reused, reset one was seen to make the output
/// depend on which blocks it compressed before). Blocks that do not compress (already
/// compressed or random data) are stored as they are: deflating them costs far more time than
/// the bytes it could save.
fn deflate_block(level: u32, data: &[u8], dict: Option<&[u8]>, last: bool) -> io::Result<Vec<u8>> {
    if level > 0 && incompressible(data) {
        return Ok(stored_blocks(data, last));
    }
    let mut comp = Compress::new(Compression::new(level), false);
    let comp = &mut comp;
    if let Some(d) = dict {
        comp.set_dictionary(d).map_err(io::Error::other)?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    let mut consumed = 0usize;
    let start_in = comp.total_in();
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(4096));
        }
        let status = comp
            .compress_vec(&data[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        consumed = (comp.total_in() - start_in) as usize;
        let room_left = out.len() < out.capacity();
        match status {
            Status::StreamEnd => break,
            Status::Ok | Status::BufError => {
                if !last && consumed == data.len() && room_left {
                    break;
                }
            }
        }
    }
    Ok(out)
}

fn worker(level: u32, jobs: Arc<Mutex<Receiver<Job>>>, done: Sender<Done>) {
    loop {
        let job = {
            let Ok(rx) = jobs.lock() else { return };
            match rx.recv() {
                Ok(j) => j,
                Err(_) => return,
            }
        };
        let mut crc = crc32fast::Hasher::new();
        crc.update(&job.data);
        let out = deflate_block(
            level,
            &job.data,
            job.dict.as_deref().map(|v| &v[..]),
            job.last,
        );
        let len = job.data.len() as u64;
        if done
            .send(Done {
                seq: job.seq,
                out,
                crc,
                len,
                data: job.data,
            })
            .is_err()
        {
            return;
        }
    }
}

struct Pool {
    jobs: Option<Sender<Job>>,
    done: Receiver<Done>,
    threads: Vec<JoinHandle<()>>,
}

/// A `Write` that gzips into `W`, see the module docs.
pub struct ParGzEncoder<W: Write> {
    inner: Option<W>,
    level: u32,
    block: usize,
    buf: Vec<u8>,
    dict: Option<Arc<Vec<u8>>>,
    pool: Option<Pool>,
    next_seq: u64,
    next_write: u64,
    in_flight: usize,
    max_in_flight: usize,
    pending: BTreeMap<u64, Done>,
    /// Input buffers back from the workers, for reuse (fresh ones cost page faults).
    spare: Vec<Vec<u8>>,
    crc: crc32fast::Hasher,
    total: u64,
    header_done: bool,
}

impl<W: Write> std::fmt::Debug for ParGzEncoder<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParGzEncoder")
            .field("level", &self.level)
            .field("block", &self.block)
            .field(
                "threads",
                &self.pool.as_ref().map_or(1, |p| p.threads.len()),
            )
            .finish()
    }
}

impl<W: Write> ParGzEncoder<W> {
    /// `threads` <= 1 compresses in the calling thread. `block` is the block size in bytes.
    pub fn new(inner: W, level: u32, threads: usize, block: usize) -> Self {
        let block = block.max(DICT);
        let pool = (threads > 1).then(|| {
            let (jtx, jrx) = mpsc::channel::<Job>();
            let (dtx, drx) = mpsc::channel::<Done>();
            let jrx = Arc::new(Mutex::new(jrx));
            let threads = (0..threads)
                .map(|i| {
                    let jrx = Arc::clone(&jrx);
                    let dtx = dtx.clone();
                    std::thread::Builder::new()
                        .name(format!("drydock-gzip-{i}"))
                        .spawn(move || worker(level, jrx, dtx))
                        .expect("spawning a gzip worker thread")
                })
                .collect();
            Pool {
                jobs: Some(jtx),
                done: drx,
                threads,
            }
        });
        let max_in_flight = pool.as_ref().map_or(1, |p| p.threads.len() * 2 + 1);
        ParGzEncoder {
            inner: Some(inner),
            level,
            block,
            buf: Vec::with_capacity(block),
            dict: None,
            pool,
            next_seq: 0,
            next_write: 0,
            in_flight: 0,
            max_in_flight,
            pending: BTreeMap::new(),
            spare: Vec::new(),
            crc: crc32fast::Hasher::new(),
            total: 0,
            header_done: false,
        }
    }

    fn inner(&mut self) -> &mut W {
        self.inner.as_mut().expect("encoder used after finish")
    }

    fn write_ready(&mut self) -> io::Result<()> {
        while let Some(done) = self.pending.remove(&self.next_write) {
            let out = done.out?;
            let mut data = done.data;
            data.clear();
            if self.spare.len() < self.max_in_flight + 1 {
                self.spare.push(data);
            }
            self.crc.combine(&done.crc);
            self.total += done.len;
            if !self.header_done {
                self.inner().write_all(&GZIP_HEADER)?;
                self.header_done = true;
            }
            self.inner().write_all(&out)?;
            self.next_write += 1;
        }
        Ok(())
    }

    fn recv_one(&mut self) -> io::Result<()> {
        let pool = self.pool.as_ref().expect("pool");
        let done = pool
            .done
            .recv()
            .map_err(|_| io::Error::other("gzip worker thread exited unexpectedly"))?;
        self.in_flight -= 1;
        self.pending.insert(done.seq, done);
        Ok(())
    }

    fn submit(&mut self, last: bool) -> io::Result<()> {
        let next = self
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.block));
        let data = std::mem::replace(&mut self.buf, next);
        let next_dict = if last || data.len() < DICT {
            None
        } else {
            Some(Arc::new(data[data.len() - DICT..].to_vec()))
        };
        let dict = std::mem::replace(&mut self.dict, next_dict);
        let seq = self.next_seq;
        self.next_seq += 1;
        if self.pool.is_none() {
            let mut crc = crc32fast::Hasher::new();
            crc.update(&data);
            let out = deflate_block(self.level, &data, dict.as_deref().map(|v| &v[..]), last);
            self.pending.insert(
                seq,
                Done {
                    seq,
                    out,
                    crc,
                    len: data.len() as u64,
                    data,
                },
            );
            return self.write_ready();
        }
        while self.in_flight >= self.max_in_flight {
            self.recv_one()?;
            self.write_ready()?;
        }
        let pool = self.pool.as_ref().expect("pool");
        pool.jobs
            .as_ref()
            .expect("jobs")
            .send(Job {
                seq,
                data,
                dict,
                last,
            })
            .map_err(|_| io::Error::other("gzip worker thread exited unexpectedly"))?;
        self.in_flight += 1;
        // Collect whatever is already finished without blocking.
        while let Ok(done) = self.pool.as_ref().expect("pool").done.try_recv() {
            self.in_flight -= 1;
            self.pending.insert(done.seq, done);
        }
        self.write_ready()
    }

    /// Compresses what is left, writes the gzip trailer and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.submit(true)?;
        while self.in_flight > 0 {
            self.recv_one()?;
            self.write_ready()?;
        }
        let crc = self.crc.clone().finalize();
        let total = self.total;
        let inner = self.inner();
        inner.write_all(&crc.to_le_bytes())?;
        inner.write_all(&(total as u32).to_le_bytes())?;
        inner.flush()?;
        self.shutdown();
        Ok(self.inner.take().expect("inner"))
    }

    fn shutdown(&mut self) {
        if let Some(mut pool) = self.pool.take() {
            pool.jobs.take();
            for t in pool.threads.drain(..) {
                let _ = t.join();
            }
        }
    }
}

impl<W: Write> Drop for ParGzEncoder<W> {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl<W: Write> Write for ParGzEncoder<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = self.block - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == self.block {
            self.submit(false)?;
        }
        Ok(n)
    }

    /// Does not end a deflate block (that would make the output depend on flush calls); only
    /// flushes what is already compressed.
    fn flush(&mut self) -> io::Result<()> {
        self.write_ready()?;
        self.inner().flush()
    }
}

#[cfg(test)]
mod stored_tests {
    use super::*;
    use std::io::Read;

    fn random(len: usize, mut seed: u64) -> Vec<u8> {
        (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn incompressible_blocks_are_stored_and_the_stream_still_decodes() {
        let mut data = random(700_000, 42);
        data.extend(std::iter::repeat_n(b'a', 300_000));
        data.extend(random(100_000, 7));
        let mut outs = Vec::new();
        for threads in [1, 2] {
            let mut enc = ParGzEncoder::new(Vec::new(), 6, threads, 256 * 1024);
            enc.write_all(&data).unwrap();
            let out = enc.finish().unwrap();
            // Random data is stored (a little bigger than the input), the run of `a` shrinks.
            assert!(out.len() < data.len() - 250_000, "{}", out.len());
            assert!(out.len() > 790_000);
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&out[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data);
            outs.push(out);
        }
        assert_eq!(outs[0], outs[1], "the output does not depend on threads");
        assert!(incompressible(&random(256 * 1024, 3)));
        assert!(!incompressible(&vec![0u8; 256 * 1024]));
    }
}
