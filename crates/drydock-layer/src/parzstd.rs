//! zstd on a feeder thread.
//!
//! libzstd's multithreaded mode compresses on its own workers, but the thread that feeds it
//! blocks whenever those workers are busy. Feeding it from a thread of our own lets the caller go
//! on producing input (reading files, hashing the tar) meanwhile. Compressed bytes come back over
//! a channel and are written to `W` in the caller's thread, so `W` needs to be neither `Send` nor
//! `'static`. The output is the same bytes as feeding libzstd directly: it does not depend on how
//! the input was split, and libzstd's multithreaded output does not depend on the worker count.

use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;

/// Input is handed to the feeder in pieces of this size (at most 4 queued).
const CHUNK: usize = 1024 * 1024;

/// Sends compressed output back to the caller, in buffers the caller hands back.
struct Back {
    tx: Sender<Vec<u8>>,
    free: Receiver<Vec<u8>>,
}

impl Write for Back {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut v = self.free.try_recv().unwrap_or_default();
        v.clear();
        v.extend_from_slice(buf);
        self.tx
            .send(v)
            .map_err(|_| io::Error::other("zstd output receiver went away"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A `Write` that zstd-compresses into `W` (see the module docs).
pub struct ZstdEncoder<W: Write> {
    inner: W,
    buf: Vec<u8>,
    input: Option<SyncSender<Vec<u8>>>,
    output: Receiver<Vec<u8>>,
    /// Input buffers coming back from the feeder for reuse (fresh ones would be page-faulted in
    /// again and again: 1 GiB of input is a quarter million faults).
    free: Receiver<Vec<u8>>,
    /// Output buffers going back to the feeder, for the same reason.
    out_free: Sender<Vec<u8>>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl<W: Write> std::fmt::Debug for ZstdEncoder<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZstdEncoder")
            .field("buffered", &self.buf.len())
            .finish()
    }
}

impl<W: Write> ZstdEncoder<W> {
    /// `workers` libzstd worker threads (at least 1), at `level`.
    pub fn new(inner: W, level: i32, workers: u32) -> io::Result<Self> {
        let (in_tx, in_rx) = mpsc::sync_channel::<Vec<u8>>(4);
        let (free_tx, free_rx) = mpsc::channel::<Vec<u8>>();
        // Unbounded: the feeder never waits on the caller, and the caller drains after every chunk.
        let (out_tx, out_rx) = mpsc::channel::<Vec<u8>>();
        let (out_free_tx, out_free_rx) = mpsc::channel::<Vec<u8>>();
        // Set up in this thread so that bad parameters are reported here.
        let mut enc = zstd::stream::write::Encoder::new(
            Back {
                tx: out_tx,
                free: out_free_rx,
            },
            level,
        )?;
        enc.multithread(workers)?;
        enc.include_checksum(true)?;
        let thread = std::thread::Builder::new()
            .name("drydock-zstd".into())
            .spawn(move || -> io::Result<()> {
                let mut enc = enc;
                for mut chunk in in_rx {
                    enc.write_all(&chunk)?;
                    chunk.clear();
                    let _ = free_tx.send(chunk);
                }
                enc.finish()?;
                Ok(())
            })?;
        Ok(ZstdEncoder {
            inner,
            buf: Vec::with_capacity(CHUNK),
            input: Some(in_tx),
            output: out_rx,
            free: free_rx,
            out_free: out_free_tx,
            thread: Some(thread),
        })
    }

    /// Writes out whatever compressed output is ready, without waiting.
    fn drain_ready(&mut self) -> io::Result<()> {
        while let Ok(out) = self.output.try_recv() {
            self.inner.write_all(&out)?;
            let _ = self.out_free.send(out);
        }
        Ok(())
    }

    /// The feeder's error, once it has stopped.
    fn feeder_error(&mut self) -> io::Error {
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(Err(e))) => e,
            Some(Err(_)) => io::Error::other("zstd feeder thread panicked"),
            _ => io::Error::other("zstd feeder thread stopped"),
        }
    }

    fn send(&mut self) -> io::Result<()> {
        let next = self
            .free
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
        let chunk = std::mem::replace(&mut self.buf, next);
        let tx = self.input.as_ref().expect("encoder used after finish");
        if tx.send(chunk).is_err() {
            return Err(self.feeder_error());
        }
        self.drain_ready()
    }

    /// Ends the frame, writes everything out and returns the inner writer (flushed).
    pub fn finish(mut self) -> io::Result<W> {
        if !self.buf.is_empty() {
            self.send()?;
        }
        drop(self.input.take());
        for out in &self.output {
            self.inner.write_all(&out)?;
        }
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(Ok(()))) => {}
            Some(Ok(Err(e))) => return Err(e),
            _ => return Err(io::Error::other("zstd feeder thread panicked")),
        }
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for ZstdEncoder<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = (CHUNK - self.buf.len()).min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    /// Writes out compressed output that is ready; never ends a zstd block early.
    fn flush(&mut self) -> io::Result<()> {
        self.drain_ready()?;
        self.inner.flush()
    }
}
