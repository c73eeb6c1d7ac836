//! `Task`: one spawned future and its scheduling state.
//!
//! # State
//!
//! - `queued_local` / `queued_remote`: set by the first wake from the owning
//!   thread (resp. from another thread) after a poll begins, cleared just
//!   before the poll. While set, further wakes of that kind do nothing, so a
//!   task sits at most once in the run queue and once in the inbox. The
//!   local flag is a plain `Cell`: only the owning thread touches it, so the
//!   common wake costs no atomic operation. A task queued both ways is polled
//!   twice, which futures tolerate as a spurious poll.
//! - `aborted`: set by `JoinHandle::abort`; the next time the core runs the
//!   task it drops the future instead of polling it.
//! - `future`: `Some` until the future completes or is dropped. Only the
//!   owning core's thread ever touches it; other threads reach a task only
//!   through its waker, which touches the atomics and the `Remote`.

use std::cell::{Cell, UnsafeCell};
use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use super::remote::Remote;
use crate::runtime::context;

type BoxFuture = Pin<Box<dyn Future<Output = ()>>>;

/// A spawned task.
pub(crate) struct Task {
    /// The core that owns the task.
    remote: Arc<Remote>,
    /// The key of the task in its core's task list.
    key: usize,
    queued_local: Cell<bool>,
    queued_remote: AtomicBool,
    aborted: AtomicBool,
    future: UnsafeCell<Option<BoxFuture>>,
}

// SAFETY: the fields that are not Send + Sync, `future` and `queued_local`,
// are only accessed on the owning core's thread: `run` and `take_future` are
// called by that core alone (the run queue and task list are thread-local),
// and wakes touch `queued_local` only after checking they run on that thread.
// Other threads reach a Task only through its waker, which then uses the
// atomic flag and the Remote. The future is dropped on the owning thread (on completion,
// abort or shutdown), so a last reference dropped elsewhere finds `None`.
unsafe impl Send for Task {}
// SAFETY: as above.
unsafe impl Sync for Task {}

impl Task {
    /// A task owned by the core behind `remote`, scheduled to run once.
    pub(crate) fn new(remote: Arc<Remote>, key: usize, future: BoxFuture) -> Arc<Task> {
        Arc::new(Task {
            remote,
            key,
            queued_local: Cell::new(true),
            queued_remote: AtomicBool::new(false),
            aborted: AtomicBool::new(false),
            future: UnsafeCell::new(Some(future)),
        })
    }

    /// The key of the task in its core's task list.
    pub(crate) fn key(&self) -> usize {
        self.key
    }

    /// Polls the future once (or drops it if aborted). Returns true when the
    /// task is finished and should leave the task list.
    ///
    /// Called only by the owning core, never re-entrantly.
    pub(crate) fn run(self: &Arc<Self>) -> bool {
        self.queued_local.set(false);
        self.queued_remote.store(false, Ordering::Release);
        // SAFETY: only the owning core's thread calls `run`, and not
        // re-entrantly (the run loop polls one task at a time and a task
        // cannot run the loop), so this is the only reference to `future`.
        let slot = unsafe { &mut *self.future.get() };
        let Some(future) = slot.as_mut() else {
            return false; // finished already; a stale wake
        };
        if self.aborted.load(Ordering::Acquire) {
            let future = slot.take();
            drop(future);
            return true;
        }
        // SAFETY: the Arc behind `self` outlives the waker, which is never
        // dropped (ManuallyDrop), so borrowing the task's reference without
        // incrementing it is balanced; clones taken by the future increment
        // the count as usual.
        let waker = ManuallyDrop::new(Waker::from(unsafe { Arc::from_raw(Arc::as_ptr(self)) }));
        let mut cx = Context::from_waker(&waker);
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(()) => {
                let future = slot.take();
                drop(future);
                true
            }
            Poll::Pending => false,
        }
    }

    /// Takes the future out to drop it at shutdown, on the owning thread.
    pub(crate) fn take_future(&self) -> Option<BoxFuture> {
        // SAFETY: called by the owning core at shutdown, when no task is
        // being polled.
        unsafe { (*self.future.get()).take() }
    }

    /// Marks the task aborted and schedules it so its core drops it.
    pub(crate) fn abort(self: &Arc<Self>) {
        self.aborted.store(true, Ordering::Release);
        self.wake_by_ref();
    }
}

impl Wake for Task {
    fn wake(self: Arc<Self>) {
        schedule(self);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Clone only when the task is not queued already.
        if context::is_owner(&self.remote) {
            if !self.queued_local.get() {
                schedule(self.clone());
            }
        } else if !self.queued_remote.load(Ordering::Acquire) {
            schedule(self.clone());
        }
    }
}

/// Queues `task` on its core: on the run queue when called on that core's
/// thread, through the inbox otherwise.
fn schedule(task: Arc<Task>) {
    if context::is_owner(&task.remote) {
        if !task.queued_local.replace(true) {
            context::push_local(task);
        }
    } else if !task.queued_remote.swap(true, Ordering::AcqRel) {
        let remote = task.remote.clone();
        remote.push(task);
    }
}
