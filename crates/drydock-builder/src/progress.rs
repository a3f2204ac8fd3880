//! What a build reports while it runs. The caller decides how to show it (the CLI prints plain
//! lines, a live terminal view or JSON); the builder never prints.

use std::sync::Arc;
use std::time::Duration;

/// One step (vertex) of the build as shown to people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepInfo {
    /// A number for this build, in the order steps were first reported.
    pub id: usize,
    /// `[builder 2/5] RUN make` (stage label, position, instruction text).
    pub name: String,
    /// The stage the step belongs to (name or index), when known.
    pub stage: Option<String>,
}

/// Which output stream a log chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// A progress event.
#[derive(Debug, Clone)]
pub enum Event {
    /// Something the build does that is not a step (resolving an image, exporting).
    Message(String),
    /// A step is being worked on.
    Started(StepInfo),
    /// A step's result came from the build cache.
    Cached(StepInfo),
    /// A step finished.
    Done(StepInfo, Duration),
    /// A step failed (the error follows as the build's result).
    Failed(StepInfo, Duration),
    /// Output of a running step (secrets masked).
    Log {
        step: usize,
        stream: Stream,
        data: Vec<u8>,
    },
    /// A warning from the Dockerfile checks, already rendered.
    Warning(String),
}

/// The caller's progress callback; called from worker threads.
#[derive(Clone)]
pub struct Progress(Arc<dyn Fn(&Event) + Send + Sync>);

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress(..)")
    }
}

impl Progress {
    pub fn new(f: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        Progress(Arc::new(f))
    }

    /// Reports nothing.
    pub fn none() -> Self {
        Progress(Arc::new(|_| {}))
    }

    pub fn emit(&self, e: &Event) {
        (self.0)(e)
    }

    pub(crate) fn message(&self, m: impl Into<String>) {
        self.emit(&Event::Message(m.into()))
    }
}

impl Default for Progress {
    fn default() -> Self {
        Progress::none()
    }
}

/// Lets the caller stop a build from another thread: running steps are killed and
/// [`crate::Builder::build`] returns [`crate::BuildError::Cancelled`].
#[derive(Debug, Clone)]
pub struct Cancel {
    flag: Arc<std::sync::atomic::AtomicBool>,
    sandbox: Arc<std::sync::Mutex<Vec<drydock_sandbox::CancelToken>>>,
    children: Arc<std::sync::Mutex<Vec<Cancel>>>,
}

impl Default for Cancel {
    fn default() -> Self {
        Self::new()
    }
}

impl Cancel {
    pub fn new() -> Self {
        Self {
            flag: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            sandbox: Arc::new(std::sync::Mutex::new(Vec::new())),
            children: Arc::new(std::sync::Mutex::new(Vec::new())),
        }
    }

    pub fn cancel(&self) {
        self.flag.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Ok(list) = self.sandbox.lock() {
            for t in list.iter() {
                t.cancel();
            }
        }
        if let Ok(list) = self.children.lock() {
            for c in list.iter() {
                c.cancel();
            }
        }
    }

    /// A token cancelled with this one, that can also be cancelled on its own (a build stops
    /// its other steps after a failure without touching the caller's token).
    pub fn child(&self) -> Cancel {
        let c = Cancel::new();
        if let Ok(mut list) = self.children.lock() {
            list.push(c.clone());
        }
        if self.is_cancelled() {
            c.cancel();
        }
        c
    }

    pub fn is_cancelled(&self) -> bool {
        self.flag.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// A sandbox cancel token tied to this build (cancelled when the build is).
    pub(crate) fn sandbox_token(&self) -> Option<drydock_sandbox::CancelToken> {
        let t = drydock_sandbox::CancelToken::new().ok()?;
        if let Ok(mut list) = self.sandbox.lock() {
            list.push(t.clone());
        }
        if self.is_cancelled() {
            t.cancel();
        }
        Some(t)
    }
}
