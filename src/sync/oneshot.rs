//! A channel for one value, between any two tasks or threads.
//!
//! The sender and the receiver share one small state behind a mutex: a
//! oneshot carries one value, so its cost is the one uncontended lock of
//! each side, and a mutex makes every transition plainly ordered (the lock
//! is the memory barrier). The receiver's waker is stored under the same
//! lock and woken after it is released; a wake from another thread reaches
//! the receiver's core through that core's inbox.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// Makes a channel for one value.
///
/// # Examples
///
/// ```
/// corering::start(async {
///     let (tx, rx) = corering::sync::oneshot::channel();
///     std::thread::spawn(move || tx.send(42).unwrap());
///     assert_eq!(rx.await.unwrap(), 42);
/// });
/// ```
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Mutex::new(State {
        value: None,
        receiver_waker: None,
        sender_waker: None,
        sender_gone: false,
        receiver_closed: false,
    }));
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

struct State<T> {
    value: Option<T>,
    /// The task awaiting the value.
    receiver_waker: Option<Waker>,
    /// The task awaiting [`Sender::closed`].
    sender_waker: Option<Waker>,
    /// The sender was used or dropped: no value comes after this.
    sender_gone: bool,
    /// The receiver was closed or dropped: a send now fails.
    receiver_closed: bool,
}

fn lock<T>(shared: &Mutex<State<T>>) -> MutexGuard<'_, State<T>> {
    // A panic while the lock is held leaves the state consistent (every
    // critical section is a few assignments), so a poisoned lock is used
    // as it is.
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Sends the value; made by [`channel`].
pub struct Sender<T> {
    shared: Arc<Mutex<State<T>>>,
}

impl<T> Sender<T> {
    /// Sends `value`, or hands it back when the receiver was closed or
    /// dropped first.
    pub fn send(self, value: T) -> Result<(), T> {
        let waker = {
            let mut state = lock(&self.shared);
            if state.receiver_closed {
                return Err(value);
            }
            state.value = Some(value);
            state.sender_gone = true;
            state.receiver_waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    /// Whether the receiver was closed or dropped (a send would fail).
    pub fn is_closed(&self) -> bool {
        lock(&self.shared).receiver_closed
    }

    /// Resolves once the receiver is closed or dropped.
    pub async fn closed(&self) {
        std::future::poll_fn(|cx| {
            let mut state = lock(&self.shared);
            if state.receiver_closed {
                return Poll::Ready(());
            }
            store(&mut state.sender_waker, cx.waker());
            Poll::Pending
        })
        .await
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut state = lock(&self.shared);
            if state.sender_gone {
                return;
            }
            state.sender_gone = true;
            state.receiver_waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("oneshot::Sender").finish_non_exhaustive()
    }
}

/// Receives the value: a future that resolves to it, or to [`RecvError`]
/// when the sender was dropped without sending.
pub struct Receiver<T> {
    shared: Arc<Mutex<State<T>>>,
}

impl<T> Receiver<T> {
    /// Stops the sender from sending: a value sent before is still
    /// received; otherwise the receiver resolves to [`RecvError`] once the
    /// sender is gone.
    pub fn close(&mut self) {
        let waker = {
            let mut state = lock(&self.shared);
            state.receiver_closed = true;
            state.sender_waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// The value if it was sent; `Err(TryRecvError::Empty)` while the
    /// sender may still send, `Err(TryRecvError::Closed)` when it never
    /// will.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let mut state = lock(&self.shared);
        match state.value.take() {
            Some(value) => Ok(value),
            None if state.sender_gone => Err(TryRecvError::Closed),
            None => Err(TryRecvError::Empty),
        }
    }
}

impl<T> Future for Receiver<T> {
    type Output = Result<T, RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = lock(&self.shared);
        if let Some(value) = state.value.take() {
            return Poll::Ready(Ok(value));
        }
        if state.sender_gone {
            return Poll::Ready(Err(RecvError(())));
        }
        store(&mut state.receiver_waker, cx.waker());
        Poll::Pending
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let (value, waker) = {
            let mut state = lock(&self.shared);
            state.receiver_closed = true;
            (state.value.take(), state.sender_waker.take())
        };
        // Dropped outside the lock: a value's `Drop` may do anything.
        drop(value);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("oneshot::Receiver").finish_non_exhaustive()
    }
}

/// Keeps one waker per waiting task: a second poll by the same task
/// replaces nothing.
fn store(slot: &mut Option<Waker>, waker: &Waker) {
    match slot {
        Some(stored) if stored.will_wake(waker) => {}
        _ => *slot = Some(waker.clone()),
    }
}

/// The sender was dropped without sending.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecvError(());

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the oneshot sender was dropped without sending")
    }
}

impl std::error::Error for RecvError {}

/// Why [`Receiver::try_recv`] has no value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TryRecvError {
    /// Nothing was sent yet; the sender may still send.
    Empty,
    /// Nothing was sent and the sender is gone.
    Closed,
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TryRecvError::Empty => "nothing was sent yet",
            TryRecvError::Closed => "the oneshot sender was dropped without sending",
        })
    }
}

impl std::error::Error for TryRecvError {}
