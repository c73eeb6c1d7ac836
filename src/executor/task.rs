//! `Task`: one spawned future and its scheduling state, and `Waiter`: how
//! the driver remembers whom to wake.
//!
//! # State
//!
//! - `queued_remote`: set by the first wake from another thread after a poll
//!   begins, cleared just before the poll. While set, further foreign wakes
//!   do nothing, so a task sits at most once in the inbox. Wakes on the
//!   owning thread go to the run queue, which keeps its own marks (see
//!   [`RunQueue`](super::run_queue::RunQueue)) and costs no atomic
//!   operation. A task queued both ways is polled twice, which futures
//!   tolerate as a spurious poll.
//! - `aborted`: set by `JoinHandle::abort`; the next time the core runs the
//!   task it drops the future instead of polling it.
//! - `future`: `Some` until the future completes or is dropped. Only the
//!   owning core's thread ever touches it; other threads reach a task only
//!   through its waker, which touches the atomics and the `Remote`.
//!
//! # Task keys
//!
//! The core's task list owns one reference to every live task, and the run
//! queue holds task keys, not references. An operation polled with the waker
//! of one of its core's tasks stores that task's key instead of a cloned waker (see
//! [`Waiter`]), so the common path from submission to completion to the next
//! poll touches no reference count. A key outlives its task only as a stale
//! wake: the key may by then name a newer task, which is polled spuriously
//! (futures tolerate that), or no task, which is skipped.

use std::cell::UnsafeCell;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

use super::remote::Remote;
use crate::runtime::context::{self, Core};

type BoxFuture = Pin<Box<dyn Future<Output = ()>>>;

/// A spawned task.
pub(crate) struct Task {
    /// The core that owns the task.
    remote: Arc<Remote>,
    /// The key of the task in its core's task list.
    key: usize,
    queued_remote: AtomicBool,
    aborted: AtomicBool,
    future: UnsafeCell<Option<BoxFuture>>,
}

// SAFETY: the field that is not Send + Sync, `future`, is only accessed on
// the owning core's thread: `run` and `take_future` are called by that core
// alone (the run queue and task list are thread-local). Other threads reach a
// Task only through its waker, which then uses the atomic flag and the Remote. The future is dropped on the owning thread (on completion,
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
    /// # Safety
    ///
    /// Called only by the owning core, never re-entrantly, on a task that
    /// stays in the core's task list (which keeps `self` alive, and the
    /// waker's borrowed reference valid) until the call returns.
    #[inline]
    pub(crate) unsafe fn run(&self) -> bool {
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
        // SAFETY: the waker borrows the task list's reference (the caller
        // keeps it for the call): it is never dropped (ManuallyDrop) and does
        // not outlive the call; clones count references of their own
        // (`clone_waker`).
        let waker = ManuallyDrop::new(unsafe { Waker::new((self as *const Task).cast(), &VTABLE) });
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

    /// Queues the task on `core`, its owner, unless it is queued already.
    fn queue_on(&self, core: &Core) {
        core.run_queue.borrow_mut().push(self.key);
    }
}

/// Whom to wake when an operation completes: stored in the driver's slots.
pub(crate) enum Waiter {
    /// The task with this key on the slot's own core. Storing it takes no
    /// reference; a key whose task has gone wakes nobody or, reused, wakes a
    /// newer task spuriously.
    Task(usize),
    /// Any other waker (the `block_on` future, a combinator's own waker).
    Waker(Waker),
}

/// The waker an operation is polled with, and the core polling it.
#[derive(Clone, Copy)]
pub(crate) struct WakeBy<'a> {
    pub(crate) waker: &'a Waker,
    pub(crate) core: &'a Core,
}

impl WakeBy<'_> {
    /// The waiter to store: the task's key when the waker is that of one of
    /// the core's tasks, a clone of the waker otherwise.
    #[inline]
    pub(crate) fn waiter(self) -> Waiter {
        match task_key_on(self.waker, self.core) {
            Some(key) => Waiter::Task(key),
            None => Waiter::Waker(self.waker.clone()),
        }
    }

    /// Stores this waiter in `stored` unless it already wakes the same task.
    #[inline]
    pub(crate) fn store(self, stored: &mut Option<Waiter>) {
        let same = match (&*stored, task_key_on(self.waker, self.core)) {
            (Some(Waiter::Task(stored)), Some(key)) => *stored == key,
            (Some(Waiter::Waker(stored)), None) => stored.will_wake(self.waker),
            _ => false,
        };
        if !same {
            *stored = Some(self.waiter());
        }
    }
}

/// The key of the task `waker` wakes, when it is a task of `core`.
#[inline]
fn task_key_on(waker: &Waker, core: &Core) -> Option<usize> {
    if !std::ptr::eq(waker.vtable(), &VTABLE) {
        return None;
    }
    // SAFETY: a waker with our vtable holds (or borrows) a live `Arc<Task>`
    // reference as its data pointer.
    let task = unsafe { &*waker.data().cast::<Task>() };
    Arc::ptr_eq(&task.remote, &core.remote).then_some(task.key)
}

/// The waker of a task: its data pointer is an `Arc<Task>` turned raw.
/// Being ours, the run loop can recognise it and queue the task directly.
static VTABLE: RawWakerVTable = RawWakerVTable::new(clone_waker, wake, wake_by_ref_raw, drop_waker);

/// Wakes `waker` on `core`, the calling thread's; a waker of one of its own
/// tasks queues the task directly.
#[inline(never)]
pub(crate) fn wake_waker(waker: Waker, core: &Core) {
    if !std::ptr::eq(waker.vtable(), &VTABLE) {
        return waker.wake();
    }
    let waker = ManuallyDrop::new(waker);
    // SAFETY: a waker with our vtable owns one `Arc<Task>` reference, which
    // is taken over here (the waker is not dropped).
    let task = unsafe { Arc::from_raw(waker.data().cast::<Task>()) };
    if Arc::ptr_eq(&task.remote, &core.remote) {
        task.queue_on(core);
    } else {
        schedule(task);
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

/// Schedules `task` without consuming a reference; clones only to hand the
/// task to another thread's core.
fn wake_by_ref(task: &Arc<Task>) {
    if !queue_here(task) && !task.queued_remote.load(Ordering::Acquire) {
        schedule_remote(task.clone());
    }
}

/// Queues `task` on its core: on the run queue when called on that core's
/// thread, through the inbox otherwise.
fn schedule(task: Arc<Task>) {
    if !queue_here(&task) {
        schedule_remote(task);
    }
}

/// Queues `task` if the calling thread runs its core; false otherwise.
fn queue_here(task: &Task) -> bool {
    context::try_with_core(|core| {
        let owner = Arc::ptr_eq(&core.remote, &task.remote);
        if owner {
            task.queue_on(core);
        }
        owner
    })
    .unwrap_or(false)
}

/// Hands `task` to its core's inbox from another thread.
fn schedule_remote(task: Arc<Task>) {
    if !task.queued_remote.swap(true, Ordering::AcqRel) {
        let remote = task.remote.clone();
        remote.push(task);
    }
}
