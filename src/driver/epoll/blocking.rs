//! The cell a job on the blocking pool hands its result back in.

use std::sync::{Mutex, MutexGuard};
use std::task::{Poll, Waker};

/// A job's result, once the pool has run it, and whom to wake then.
#[derive(Default)]
pub(crate) struct Blocking {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The call's CQE-style result.
    result: Option<i32>,
    waker: Option<Waker>,
}

impl Blocking {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while the lock is held.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Called by the pool thread: stores the result, then wakes.
    pub(crate) fn finish(&self, result: i32) {
        let waker = {
            let mut state = self.lock();
            state.result = Some(result);
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// The result, or `Pending` with `waker` stored (replacing the last
    /// unless it wakes the same task).
    pub(crate) fn poll(&self, waker: &Waker) -> Poll<i32> {
        let mut state = self.lock();
        if let Some(result) = state.result {
            return Poll::Ready(result);
        }
        if !state.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            state.waker = Some(waker.clone());
        }
        Poll::Pending
    }

    /// Whom to wake when the result comes, in place of any other.
    pub(super) fn set_waker(&self, waker: &Waker) {
        let mut state = self.lock();
        if state.result.is_none() {
            state.waker = Some(waker.clone());
        }
    }

    /// The result, if the job is done.
    pub(crate) fn result(&self) -> Option<i32> {
        self.lock().result
    }
}
