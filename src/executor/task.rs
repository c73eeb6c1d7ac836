//! `Task`: one spawned future and its scheduling state.
//!
//! # State
//!
//! - `scheduled`: set by the first wake after a poll begins, cleared just
//!   before the poll. While set, further wakes do nothing, so a task sits in
//!   the run queue (or inbox) at most once.
//! - `aborted`: set by `JoinHandle::abort`; the next time the core runs the
//!   task it drops the future instead of polling it.
//! - `future`: `Some` until the future completes or is dropped. Only the
//!   owning core's thread ever touches it; other threads reach a task only
//!   through its waker, which touches the atomics and the `Remote`.

use std::cell::UnsafeCell;
use std::mem::ManuallyDrop;
use std::future::Future;
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
    scheduled: AtomicBool,
    aborted: AtomicBool,
    future: UnsafeCell<Option<BoxFuture>>,
}

// SAFETY: the only field that is not Send + Sync is `future`, and it is only
// accessed on the owning core's thread: `run` and `take_future` are called
// by that core alone (the run queue and task list are thread-local). Other
// threads reach a Task only through its waker, which uses the atomics and
// the Remote. The future is dropped on the owning thread (on completion,
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
            scheduled: AtomicBool::new(true),
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
        self.scheduled.store(false, Ordering::Release);
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
        if !self.scheduled.swap(true, Ordering::AcqRel) {
            schedule(self);
        }
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.scheduled.swap(true, Ordering::AcqRel) {
            schedule(self.clone());
        }
    }
}

/// Queues `task` on its core: directly when called on that core's thread,
/// through the inbox otherwise.
fn schedule(task: Arc<Task>) {
    if let Err(task) = context::schedule_local(task) {
        let remote = task.remote.clone();
        remote.push(task);
    }
}

/// Whether `remote` is the core running on this thread.
pub(crate) fn is_owner(task: &Task, remote: &Arc<Remote>) -> bool {
    Arc::ptr_eq(&task.remote, remote)
}
