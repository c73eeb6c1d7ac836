//! The shutdown token: triggered once, from any core or plain thread, and
//! awaited by any number of tasks on any core (see [`crate::shutdown`]).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use super::waker_slots::WakerSlots;

/// Not triggered.
const RUNNING: u8 = 0;
/// Triggered: stop accepting, finish what is in flight.
const DRAINING: u8 = 1;
/// Triggered twice (a second signal, say): stop waiting for what is in
/// flight.
const FORCED: u8 = 2;

/// A token that says the launch (or whatever shares it) is shutting down.
///
/// Clones share one state. [`trigger`](Self::trigger) starts the drain;
/// a second trigger, or [`force`](Self::force), ends the wait for what is
/// in flight ([`Tracker::drain`](crate::shutdown::Tracker::drain) returns
/// at once). Both are sticky: a token never goes back.
#[derive(Clone)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

struct Inner {
    state: AtomicU8,
    /// The tasks waiting for a state.
    waiters: Mutex<WakerSlots>,
}

impl Default for Shutdown {
    fn default() -> Shutdown {
        Shutdown::new()
    }
}

impl Shutdown {
    /// A token not triggered yet.
    pub fn new() -> Shutdown {
        Shutdown {
            inner: Arc::new(Inner {
                state: AtomicU8::new(RUNNING),
                waiters: Mutex::new(WakerSlots::new()),
            }),
        }
    }

    /// Starts the shutdown; a second call forces it (see [`force`](Self::force)).
    pub fn trigger(&self) {
        let before = self
            .inner
            .state
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |state| {
                Some((state + 1).min(FORCED))
            })
            .unwrap_or(FORCED);
        if before != FORCED {
            self.wake_all();
        }
    }

    /// Forces the shutdown: whoever waits for work in flight stops waiting.
    pub fn force(&self) {
        if self.inner.state.swap(FORCED, Ordering::SeqCst) != FORCED {
            self.wake_all();
        }
    }

    /// Whether [`trigger`](Self::trigger) was called.
    pub fn is_triggered(&self) -> bool {
        self.inner.state.load(Ordering::SeqCst) >= DRAINING
    }

    /// Whether the shutdown was forced.
    pub fn is_forced(&self) -> bool {
        self.inner.state.load(Ordering::SeqCst) == FORCED
    }

    /// Resolves once the token is triggered.
    pub fn triggered(&self) -> Triggered {
        Triggered {
            inner: self.inner.clone(),
            level: DRAINING,
            key: None,
        }
    }

    /// Resolves once the shutdown is forced.
    pub fn forced(&self) -> Triggered {
        Triggered {
            inner: self.inner.clone(),
            level: FORCED,
            key: None,
        }
    }

    /// Runs `future` until it finishes (`Some`) or the token is triggered
    /// (`None`, the future dropped). A future that finishes in the poll
    /// that sees the trigger still gives its output: an accept loop
    /// written as `while let Some(accepted) = shutdown.until(listener.accept()).await`
    /// serves what it accepted and stops.
    pub async fn until<F: Future>(&self, future: F) -> Option<F::Output> {
        let mut future = std::pin::pin!(future);
        let mut triggered = self.triggered();
        std::future::poll_fn(|cx| {
            if let Poll::Ready(output) = future.as_mut().poll(cx) {
                return Poll::Ready(Some(output));
            }
            match Pin::new(&mut triggered).poll(cx) {
                Poll::Ready(()) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }

    fn wake_all(&self) {
        let wakers = self.inner.waiters().take_all();
        for waker in wakers {
            waker.wake();
        }
    }
}

impl Inner {
    fn waiters(&self) -> MutexGuard<'_, WakerSlots> {
        // No user code runs under the lock (wakers are woken after it).
        self.waiters
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.inner.state.load(Ordering::SeqCst) {
            RUNNING => "running",
            DRAINING => "triggered",
            _ => "forced",
        };
        f.debug_struct("Shutdown").field("state", &state).finish()
    }
}

/// Waits for a [`Shutdown`] to be triggered (or forced); made by
/// [`Shutdown::triggered`] and [`Shutdown::forced`].
pub struct Triggered {
    inner: Arc<Inner>,
    level: u8,
    /// Its place in the waiters, once it has waited.
    key: Option<usize>,
}

impl Future for Triggered {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if this.inner.state.load(Ordering::SeqCst) >= this.level {
            return Poll::Ready(());
        }
        this.inner.waiters().store(&mut this.key, cx.waker());
        // The trigger stores its state before it takes the waiters under
        // the same lock: either this sees the state, or it sees the waker.
        if this.inner.state.load(Ordering::SeqCst) >= this.level {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl Drop for Triggered {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            let waker = self.inner.waiters().remove(key);
            drop(waker);
        }
    }
}

impl fmt::Debug for Triggered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Triggered").finish_non_exhaustive()
    }
}
