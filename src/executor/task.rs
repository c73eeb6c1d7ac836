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

use std::cell::{Cell, RefCell, UnsafeCell};
use std::collections::VecDeque;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

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
        // SAFETY: the waker borrows the reference `self` holds: it is never
        // dropped (ManuallyDrop) and does not outlive `self`; clones the
        // future takes count references of their own (`clone_waker`).
        let waker = ManuallyDrop::new(unsafe { Waker::new(Arc::as_ptr(self).cast(), &VTABLE) });
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
        wake_by_ref(self);
    }
}

/// The waker of a task: its data pointer is an `Arc<Task>` turned raw.
/// Being ours, the run loop can recognise it and queue the task directly.
static VTABLE: RawWakerVTable = RawWakerVTable::new(clone_waker, wake, wake_by_ref_raw, drop_waker);

/// Wakes `waker`; a task of the core behind `remote` (the calling thread's)
/// is queued on `run_queue` directly, without the generic wake path.
pub(crate) fn wake_on_core(
    waker: Waker,
    remote: &Arc<Remote>,
    run_queue: &RefCell<VecDeque<Arc<Task>>>,
) {
    if !std::ptr::eq(waker.vtable(), &VTABLE) {
        return waker.wake();
    }
    let waker = ManuallyDrop::new(waker);
    // SAFETY: a waker with our vtable owns one `Arc<Task>` reference, which
    // is taken over here (the waker is not dropped).
    let task = unsafe { Arc::from_raw(waker.data().cast::<Task>()) };
    if !Arc::ptr_eq(&task.remote, remote) {
        return schedule(task);
    }
    if !task.queued_local.replace(true) {
        run_queue.borrow_mut().push_back(task);
    }
}

unsafe fn clone_waker(data: *const ()) -> RawWaker {
    // SAFETY: `data` is a live `Arc<Task>` reference (see `VTABLE`); the
    // clone gets a reference of its own.
    unsafe { Arc::increment_strong_count(data.cast::<Task>()) };
    RawWaker::new(data, &VTABLE)
}

unsafe fn wake(data: *const ()) {
    // SAFETY: waking by value consumes the waker's reference.
    schedule(unsafe { Arc::from_raw(data.cast::<Task>()) });
}

unsafe fn wake_by_ref_raw(data: *const ()) {
    // SAFETY: the waker keeps its reference; this borrows it.
    let task = ManuallyDrop::new(unsafe { Arc::from_raw(data.cast::<Task>()) });
    wake_by_ref(&task);
}

unsafe fn drop_waker(data: *const ()) {
    // SAFETY: dropping the waker releases its reference.
    unsafe { Arc::decrement_strong_count(data.cast::<Task>()) };
}

/// Schedules `task` without consuming a reference; clones only when the
/// task is not queued already.
fn wake_by_ref(task: &Arc<Task>) {
    let queued = if context::is_owner(&task.remote) {
        task.queued_local.get()
    } else {
        task.queued_remote.load(Ordering::Acquire)
    };
    if !queued {
        schedule(task.clone());
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
