//! A job's log: every line masked (secret values and their encodings become `***`), sent live
//! to the caller's [`Progress`], and written to the database in batches.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use drydock_db::Db;
use drydock_secret::{LineMasker, Masker};

use crate::progress::{Progress, RunEvent};

/// Lines are written to the database when this many are waiting, or when the oldest waited
/// this long, and at the end of every step.
const BATCH_LINES: usize = 256;
const BATCH_AGE: Duration = Duration::from_millis(250);
/// A line longer than this is cut (the rest goes on the next line), so a process printing
/// without newlines cannot grow memory without bound.
const MAX_LINE: usize = 64 * 1024;

struct Pending {
    step: Option<i64>,
    stream: &'static str,
    ts: i64,
    line: String,
}

struct Buffer {
    lines: Vec<Pending>,
    oldest: Option<Instant>,
}

pub(crate) struct JobLog {
    db: Arc<Db>,
    job_id: i64,
    job: String,
    masker: Masker,
    progress: Arc<dyn Progress>,
    buf: Mutex<Buffer>,
    /// The first database error (logging goes on without the database).
    db_error: Mutex<Option<String>>,
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl JobLog {
    pub(crate) fn new(
        db: Arc<Db>,
        job_id: i64,
        job: &str,
        masker: Masker,
        progress: Arc<dyn Progress>,
    ) -> Arc<Self> {
        Arc::new(Self {
            db,
            job_id,
            job: job.to_string(),
            masker,
            progress,
            buf: Mutex::new(Buffer {
                lines: Vec::new(),
                oldest: None,
            }),
            db_error: Mutex::new(None),
        })
    }

    /// A line of drydock's own (masked too: messages can quote values).
    pub(crate) fn system(&self, step: Option<usize>, text: impl AsRef<str>) {
        for l in text.as_ref().lines() {
            let masked = self.masker.mask(l);
            self.masked(step, "system", masked);
        }
    }

    /// A line that is already masked.
    pub(crate) fn masked(&self, step: Option<usize>, stream: &'static str, line: String) {
        self.progress.event(&RunEvent::Log {
            job: &self.job,
            step,
            stream,
            line: &line,
        });
        let flush = {
            let mut b = self.buf.lock().unwrap_or_else(|p| p.into_inner());
            b.lines.push(Pending {
                step: step.map(|s| s as i64),
                stream,
                ts: now_ms(),
                line,
            });
            let oldest = *b.oldest.get_or_insert_with(Instant::now);
            b.lines.len() >= BATCH_LINES || oldest.elapsed() >= BATCH_AGE
        };
        if flush {
            self.flush();
        }
    }

    /// A sink for a process's output stream: bytes in, masked lines out.
    pub(crate) fn stream(self: &Arc<Self>, step: Option<usize>, stream: &'static str) -> StreamLog {
        StreamLog {
            log: self.clone(),
            step,
            stream,
            masker: LineMasker::new(self.masker.clone()),
            pending_len: 0,
            prefix: String::new(),
        }
    }

    /// Like [`JobLog::stream`], each line starting with `prefix` (a service's name).
    pub(crate) fn stream_prefixed(
        self: &Arc<Self>,
        step: Option<usize>,
        stream: &'static str,
        prefix: String,
    ) -> StreamLog {
        let mut s = self.stream(step, stream);
        s.prefix = prefix;
        s
    }

    /// Writes the waiting lines to the database.
    pub(crate) fn flush(&self) {
        let lines = {
            let mut b = self.buf.lock().unwrap_or_else(|p| p.into_inner());
            b.oldest = None;
            std::mem::take(&mut b.lines)
        };
        let mut i = 0;
        while i < lines.len() {
            let (step, stream, ts) = (lines[i].step, lines[i].stream, lines[i].ts);
            let mut j = i;
            let mut group = Vec::new();
            while j < lines.len() && lines[j].step == step && lines[j].stream == stream {
                group.push(lines[j].line.clone());
                j += 1;
            }
            if let Err(e) = self.db.append_logs(self.job_id, step, stream, ts, &group) {
                let mut err = self.db_error.lock().unwrap_or_else(|p| p.into_inner());
                err.get_or_insert_with(|| e.to_string());
            }
            i = j;
        }
    }

    pub(crate) fn db_error(&self) -> Option<String> {
        self.db_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// One output stream of one step.
pub(crate) struct StreamLog {
    log: Arc<JobLog>,
    step: Option<usize>,
    stream: &'static str,
    masker: LineMasker,
    pending_len: usize,
    prefix: String,
}

impl StreamLog {
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while !rest.is_empty() {
            // Cut overlong lines: feed at most up to MAX_LINE pending bytes, then a newline.
            let room = MAX_LINE.saturating_sub(self.pending_len).max(1);
            let (chunk, tail) = rest.split_at(rest.len().min(room));
            rest = tail;
            let lines = self.masker.push(chunk);
            match chunk.iter().rposition(|b| *b == b'\n') {
                Some(p) => self.pending_len = chunk.len() - p - 1,
                None => self.pending_len += chunk.len(),
            }
            for l in lines {
                self.emit(l);
            }
            if self.pending_len >= MAX_LINE {
                for l in self.masker.push(b"\n") {
                    self.emit(l);
                }
                self.pending_len = 0;
            }
        }
    }

    fn emit(&self, line: String) {
        let line = if self.prefix.is_empty() {
            line
        } else {
            format!("{}{line}", self.prefix)
        };
        self.log.masked(self.step, self.stream, line);
    }

    pub(crate) fn finish(&mut self) {
        if let Some(l) = self.masker.finish() {
            self.emit(l);
        }
        self.pending_len = 0;
    }
}

impl Drop for StreamLog {
    fn drop(&mut self) {
        self.finish();
    }
}
