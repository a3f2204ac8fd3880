//! A sha256 that moves to a thread of its own once the input is large.
//!
//! Writing a layer hashes every byte twice (the tar for the diff ID, the compressed stream for
//! the digest) on the thread that also reads the files and writes the blob; with compression
//! on other threads, that thread is the bottleneck of a large layer. The diff ID does not need
//! to be known until the end, so past [`THRESHOLD`] bytes its hashing runs beside the rest.
//! Small layers (most of them) never start a thread.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use drydock_oci::{Algorithm, Digest, Hasher};

/// Bytes hashed inline before a thread takes over.
const THRESHOLD: u64 = 4 << 20;
/// Bytes per message to the hashing thread.
const CHUNK: usize = 1 << 20;
/// Chunks in flight (bounds the memory held: `DEPTH * CHUNK`).
const DEPTH: usize = 4;

pub(crate) struct BackgroundHasher {
    seen: u64,
    state: State,
}

enum State {
    Inline(Hasher),
    Threaded {
        buf: Vec<u8>,
        tx: SyncSender<Vec<u8>>,
        /// Emptied buffers coming back, so chunks are not allocated anew.
        spare: Receiver<Vec<u8>>,
        thread: JoinHandle<Hasher>,
    },
}

impl BackgroundHasher {
    pub(crate) fn new() -> Self {
        BackgroundHasher {
            seen: 0,
            state: State::Inline(Algorithm::Sha256.hasher()),
        }
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        self.seen += data.len() as u64;
        if let State::Inline(h) = &mut self.state {
            h.update(data);
            if self.seen >= THRESHOLD {
                self.go_threaded();
            }
            return;
        }
        let mut data = data;
        while !data.is_empty() {
            let State::Threaded { buf, .. } = &mut self.state else {
                unreachable!("inline handled above")
            };
            let take = (CHUNK - buf.len()).min(data.len());
            buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if buf.len() == CHUNK {
                self.send_chunk();
            }
        }
    }

    /// Hands the inline state to a new thread; stays inline if no thread can be started.
    fn go_threaded(&mut self) {
        let State::Inline(h) = &self.state else {
            return;
        };
        let (tx, rx) = sync_channel::<Vec<u8>>(DEPTH);
        let (back_tx, back_rx) = sync_channel::<Vec<u8>>(DEPTH + 1);
        let mut hasher = h.clone();
        let spawned = std::thread::Builder::new()
            .name("drydock-diffid".into())
            .spawn(move || {
                for mut chunk in rx {
                    hasher.update(&chunk);
                    chunk.clear();
                    let _ = back_tx.try_send(chunk);
                }
                hasher
            });
        if let Ok(thread) = spawned {
            self.state = State::Threaded {
                buf: Vec::with_capacity(CHUNK),
                tx,
                spare: back_rx,
                thread,
            };
        }
    }

    fn send_chunk(&mut self) {
        let State::Threaded { buf, tx, spare, .. } = &mut self.state else {
            return;
        };
        let next = spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
        let full = std::mem::replace(buf, next);
        // Fails only if the thread panicked, which `finish` re-raises when it joins.
        let _ = tx.send(full);
    }

    pub(crate) fn finish(self) -> Digest {
        match self.state {
            State::Inline(h) => h.finish(),
            State::Threaded {
                buf, tx, thread, ..
            } => {
                if !buf.is_empty() {
                    // `send` only fails if the thread died, which `join` reports below.
                    let _ = tx.send(buf);
                }
                drop(tx);
                thread
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p))
                    .finish()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_sha256_of_everything_across_the_switch_and_any_write_sizes() {
        let data: Vec<u8> = (0..(THRESHOLD as usize * 2 + CHUNK / 3 + 7))
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        for step in [1usize << 20, 4096 + 3, 511, THRESHOLD as usize + 1] {
            let mut h = BackgroundHasher::new();
            for part in data.chunks(step) {
                h.update(part);
            }
            assert_eq!(h.finish(), Digest::sha256(&data), "writes of {step} bytes");
        }
        let mut small = BackgroundHasher::new();
        small.update(b"tiny");
        assert_eq!(small.finish(), Digest::sha256(b"tiny"));
    }
}
