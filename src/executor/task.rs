//! `Task`: one spawned future and its scheduling state.
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
//! A task is one allocation: a header (reference count, vtable, owner, key,
//! flags) followed by the future. The core's task list owns one reference
//! to every live task, and the run queue holds task keys, not references.
//! An operation polled with the waker of one of its core's tasks stores that
//! task's key (as the driver's wake token) instead of a cloned waker, so the common path
//! from submission to completion to the next poll touches no reference
//! count. A key outlives its task only as a stale
//! wake: the key may by then name a newer task, which is polled spuriously
//! (futures tolerate that), or no task, which is skipped.

use std::cell::UnsafeCell;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::ptr::NonNull;
use std::sync::atomic::{self, AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

use super::remote::Remote;
use crate::runtime::context::Core;

/// What every handle, waker and the run loop read: the start of every task
/// allocation, whatever its future's type.
#[repr(C)]
struct Header {
    /// Counted references: the task list's, wakers', the `JoinHandle`'s and
    /// the inbox's.
    refs: AtomicUsize,
    vtable: &'static TaskVTable,
    /// The core that owns the task.
    remote: Arc<Remote>,
    /// The key of the task in its core's task list.
    key: usize,
    queued_remote: AtomicBool,
    aborted: AtomicBool,
}

/// The operations that depend on the future's type.
struct TaskVTable {
    /// Polls the future if it is still there (`Ready` once it is gone).
    poll: unsafe fn(NonNull<Header>, &mut Context<'_>) -> Poll<()>,
    /// Drops the future in place.
    drop_future: unsafe fn(NonNull<Header>),
    /// Frees the allocation; called by the last reference.
    dealloc: unsafe fn(NonNull<Header>),
}

/// One allocation per task: the header, then the future, so polling a task
/// reads adjacent memory and follows no pointer to a separate box.
#[repr(C)]
struct Cell<F> {
    header: Header,
    /// `Some` until the future completes or is dropped; pinned in place.
    future: UnsafeCell<Option<F>>,
}

/// A counted reference to a spawned task.
pub(crate) struct Task {
    header: NonNull<Header>,
}

// SAFETY: the future, the one part that is not Send + Sync, is only touched
// on the owning core's thread: `run` and `drop_future` are called by that
// core alone (the run queue and task list are thread-local). Other threads
// reach a task only through its waker, which uses the reference count, the
// atomic flags and the Remote. The future is dropped on the owning thread (on
// completion, abort or shutdown), so a last reference dropped elsewhere frees
// an allocation whose future is `None`.
unsafe impl Send for Task {}
// SAFETY: as above.
unsafe impl Sync for Task {}

impl Task {
    /// A task owned by the core behind `remote`, with its first reference.
    pub(crate) fn new<F: Future<Output = ()> + 'static>(
        remote: Arc<Remote>,
        key: usize,
        future: F,
    ) -> Task {
        let cell = Box::new(Cell {
            header: Header {
                refs: AtomicUsize::new(1),
                vtable: &TaskVTable {
                    poll: poll_future::<F>,
                    drop_future: drop_future::<F>,
                    dealloc: dealloc::<F>,
                },
                remote,
                key,
                queued_remote: AtomicBool::new(false),
                aborted: AtomicBool::new(false),
            },
            future: UnsafeCell::new(Some(future)),
        });
        Task {
            header: NonNull::from(Box::leak(cell)).cast(),
        }
    }

    fn header(&self) -> &Header {
        // SAFETY: a `Task` holds a counted reference, so the allocation is live.
        unsafe { self.header.as_ref() }
    }

    /// A copy of this reference that is not counted, so never dropped.
    ///
    /// # Safety
    ///
    /// The copy must not be used once the reference it copies is gone.
    pub(crate) unsafe fn uncounted(&self) -> ManuallyDrop<Task> {
        ManuallyDrop::new(Task {
            header: self.header,
        })
    }

    /// The key of the task in its core's task list.
    pub(crate) fn key(&self) -> usize {
        self.header().key
    }

    /// Polls the future once (or drops it if aborted). Returns true when the
    /// task is finished and should leave the task list.
    ///
    /// # Safety
    ///
    /// Called only by the owning core, never re-entrantly.
    #[inline]
    pub(crate) unsafe fn run(&self) -> bool {
        let header = self.header();
        header.queued_remote.store(false, Ordering::Release);
        if header.aborted.load(Ordering::Acquire) {
            self.drop_future();
            return true;
        }
        // SAFETY: the waker borrows this reference: it is never dropped
        // (ManuallyDrop) and does not outlive the call; clones count
        // references of their own (`clone_waker`).
        let waker = ManuallyDrop::new(unsafe { Waker::new(self.header.as_ptr().cast(), &VTABLE) });
        let mut cx = Context::from_waker(&waker);
        // SAFETY: the caller is the owning core, not re-entered, so nothing
        // else touches the future.
        unsafe { (header.vtable.poll)(self.header, &mut cx) }.is_ready()
    }

    /// Drops the future in place, on the owning thread (abort, shutdown).
    pub(crate) fn drop_future(&self) {
        // SAFETY: called by the owning core while the task is not being
        // polled.
        unsafe { (self.header().vtable.drop_future)(self.header) }
    }

    /// Marks the task aborted and schedules it so its core drops it.
    pub(crate) fn abort(&self) {
        self.header().aborted.store(true, Ordering::Release);
        wake_by_ref(self.header);
    }
}

impl Clone for Task {
    fn clone(&self) -> Task {
        increment(self.header);
        Task {
            header: self.header,
        }
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        // SAFETY: this reference is given up here.
        unsafe { release(self.header) }
    }
}

/// Counts one more reference to the task at `header`.
fn increment(header: NonNull<Header>) {
    // SAFETY: the caller holds a reference, so the allocation is live.
    let refs = unsafe { header.as_ref() }
        .refs
        .fetch_add(1, Ordering::Relaxed);
    // As `Arc`: a count this high means leaked references; stop before it
    // can wrap around.
    if refs > isize::MAX as usize {
        std::process::abort();
    }
}

/// Gives up one reference to the task at `header`, freeing it with the last.
///
/// # Safety
///
/// The caller owns the reference and does not use it afterwards.
unsafe fn release(header: NonNull<Header>) {
    // SAFETY: the caller's reference keeps the allocation live until here.
    let vtable = unsafe { header.as_ref() }.vtable;
    // SAFETY: as above.
    if unsafe { header.as_ref() }
        .refs
        .fetch_sub(1, Ordering::Release)
        != 1
    {
        return;
    }
    // Every other reference's last use happens before the free (as `Arc`).
    atomic::fence(Ordering::Acquire);
    // SAFETY: that was the last reference.
    unsafe { (vtable.dealloc)(header) }
}

/// `TaskVTable::poll` for a `Cell<F>`.
///
/// # Safety
///
/// `header` starts a live `Cell<F>`; called on its owning thread only.
unsafe fn poll_future<F: Future<Output = ()>>(
    header: NonNull<Header>,
    cx: &mut Context<'_>,
) -> Poll<()> {
    // SAFETY: `Cell` is `repr(C)` with the header first, and the caller
    // guarantees the type.
    let cell = unsafe { header.cast::<Cell<F>>().as_ref() };
    // SAFETY: only the owning thread touches the future, one call at a time.
    let slot = unsafe { &mut *cell.future.get() };
    let Some(future) = slot.as_mut() else {
        return Poll::Ready(());
    };
    // SAFETY: the future lives in the task allocation and is never moved
    // out of it; it is dropped in place.
    let poll = unsafe { Pin::new_unchecked(future) }.poll(cx);
    if poll.is_ready() {
        *slot = None;
    }
    poll
}

/// `TaskVTable::drop_future` for a `Cell<F>`.
///
/// # Safety
///
/// As [`poll_future`].
unsafe fn drop_future<F>(header: NonNull<Header>) {
    // SAFETY: as in `poll_future`.
    let cell = unsafe { header.cast::<Cell<F>>().as_ref() };
    // SAFETY: as in `poll_future`; dropping in place keeps the pin promise.
    unsafe { *cell.future.get() = None };
}

/// `TaskVTable::dealloc` for a `Cell<F>`.
///
/// # Safety
///
/// `header` starts a `Cell<F>` made by `Task::new` to which no reference is left.
unsafe fn dealloc<F>(header: NonNull<Header>) {
    // SAFETY: the allocation came from `Box::new` in `Task::new`.
    drop(unsafe { Box::from_raw(header.cast::<Cell<F>>().as_ptr()) });
}

/// The key of the task `waker` wakes, when it is a task of `core`.
/// The runtime hands it to the driver as the wake token of an operation's
/// slot.
#[inline]
pub(crate) fn task_key_on(waker: &Waker, core: &Core) -> Option<usize> {
    if !std::ptr::eq(waker.vtable(), &VTABLE) {
        return None;
    }
    // SAFETY: a waker with our vtable holds (or borrows) a counted reference
    // to a task header as its data pointer.
    let header = unsafe { &*waker.data().cast::<Header>() };
    Arc::ptr_eq(&header.remote, &core.remote).then_some(header.key)
}

/// The waker of a task: its data pointer is a task header holding one
/// counted reference. Being ours, the run loop can recognise it and queue
/// the task directly.
static VTABLE: RawWakerVTable = RawWakerVTable::new(clone_waker, wake, wake_by_ref_raw, drop_waker);

/// Wakes `waker` on `core`, the calling thread's; a waker of one of its own
/// tasks queues the task directly.
#[inline(never)]
pub(crate) fn wake_waker(waker: Waker, core: &Core) {
    if !std::ptr::eq(waker.vtable(), &VTABLE) {
        // Someone else's waker: its `wake` is user code.
        return super::contain(|| waker.wake());
    }
    let waker = ManuallyDrop::new(waker);
    let task = Task {
        // SAFETY: a waker with our vtable owns one counted reference to a
        // task header, which is taken over here (the waker is not dropped).
        header: unsafe { header_of(waker.data()) },
    };
    if Arc::ptr_eq(&task.header().remote, &core.remote) {
        core.run_queue.push(task.key());
    } else {
        schedule(task);
    }
}

/// The header behind a waker's data pointer.
///
/// # Safety
///
/// `data` comes from a waker with our vtable, so it is a live task header.
unsafe fn header_of(data: *const ()) -> NonNull<Header> {
    // SAFETY: see the function's contract; the pointer is never null.
    unsafe { NonNull::new_unchecked(data.cast_mut().cast()) }
}

unsafe fn clone_waker(data: *const ()) -> RawWaker {
    // SAFETY: `data` is a live task header (see `VTABLE`); the clone gets a
    // reference of its own.
    increment(unsafe { header_of(data) });
    RawWaker::new(data, &VTABLE)
}

unsafe fn wake(data: *const ()) {
    schedule(Task {
        // SAFETY: waking by value consumes the waker's reference.
        header: unsafe { header_of(data) },
    });
}

unsafe fn wake_by_ref_raw(data: *const ()) {
    // SAFETY: the waker keeps its reference; this borrows it.
    wake_by_ref(unsafe { header_of(data) });
}

unsafe fn drop_waker(data: *const ()) {
    // SAFETY: dropping the waker releases its reference.
    unsafe { release(header_of(data)) };
}

/// Schedules the task at `header` without consuming a reference; counts a
/// new one only to hand the task to another thread's core.
fn wake_by_ref(header: NonNull<Header>) {
    // SAFETY: the caller holds a reference.
    let borrowed = ManuallyDrop::new(Task { header });
    if !queue_here(&borrowed) && !borrowed.header().queued_remote.load(Ordering::Acquire) {
        schedule_remote(Task::clone(&borrowed));
    }
}

/// Queues `task` on its core: on the run queue when called on that core's
/// thread, through the inbox otherwise.
fn schedule(task: Task) {
    if !queue_here(&task) {
        schedule_remote(task);
    }
}

/// Queues `task` if the calling thread runs its core; false otherwise.
fn queue_here(task: &Task) -> bool {
    crate::runtime::context::try_with_core(|core| {
        let owner = Arc::ptr_eq(&core.remote, &task.header().remote);
        if owner {
            core.run_queue.push(task.key());
        }
        owner
    })
    .unwrap_or(false)
}

/// Hands `task` to its core's inbox from another thread.
fn schedule_remote(task: Task) {
    let header = task.header();
    if !header.queued_remote.swap(true, Ordering::AcqRel) {
        let remote = header.remote.clone();
        remote.push(task);
    }
}
