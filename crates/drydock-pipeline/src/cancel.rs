//! Cancellation owned by the caller: the CLI cancels on Ctrl-C, the server on a user's request.
//! Everything long-running registers a hook (kill a process group, cancel a sandbox) for as long
//! as it runs.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

type Hook = Box<dyn Fn() + Send + Sync>;

#[derive(Default)]
struct Inner {
    cancelled: AtomicBool,
    next: AtomicU64,
    hooks: Mutex<Vec<(u64, Hook)>>,
}

/// A cancellation token shared by a run and whoever may cancel it. Cheap to clone.
#[derive(Clone, Default)]
pub struct Cancel(Arc<Inner>);

impl fmt::Debug for Cancel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cancel")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

impl Cancel {
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels: every registered hook runs once, and hooks registered later run at once.
    pub fn cancel(&self) {
        if self.0.cancelled.swap(true, Ordering::SeqCst) {
            return;
        }
        let hooks = self.0.hooks.lock().unwrap_or_else(|p| p.into_inner());
        for (_, h) in hooks.iter() {
            h();
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::SeqCst)
    }

    /// Runs `hook` when the token is cancelled (now, if it already is) until the returned guard
    /// is dropped.
    pub fn on_cancel(&self, hook: impl Fn() + Send + Sync + 'static) -> CancelGuard {
        let id = self.0.next.fetch_add(1, Ordering::Relaxed);
        {
            let mut hooks = self.0.hooks.lock().unwrap_or_else(|p| p.into_inner());
            hooks.push((id, Box::new(hook)));
        }
        if self.is_cancelled() {
            let hooks = self.0.hooks.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((_, h)) = hooks.iter().find(|(i, _)| *i == id) {
                h();
            }
        }
        CancelGuard {
            inner: self.0.clone(),
            id,
        }
    }
}

/// Unregisters its hook when dropped.
pub struct CancelGuard {
    inner: Arc<Inner>,
    id: u64,
}

impl fmt::Debug for CancelGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CancelGuard({})", self.id)
    }
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        let mut hooks = self.inner.hooks.lock().unwrap_or_else(|p| p.into_inner());
        hooks.retain(|(i, _)| *i != self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn hooks_run_once_and_unregister() {
        let c = Cancel::new();
        let n = Arc::new(AtomicUsize::new(0));
        let n2 = n.clone();
        let g = c.on_cancel(move || {
            n2.fetch_add(1, Ordering::SeqCst);
        });
        let n3 = n.clone();
        drop(c.on_cancel(move || {
            n3.fetch_add(100, Ordering::SeqCst);
        }));
        c.cancel();
        c.cancel();
        assert_eq!(n.load(Ordering::SeqCst), 1);
        drop(g);
        let n4 = n.clone();
        let _late = c.on_cancel(move || {
            n4.fetch_add(10, Ordering::SeqCst);
        });
        assert_eq!(n.load(Ordering::SeqCst), 11);
    }
}
