//! The waker of a task: its data pointer is the task header, and a wake
//! goes through the header's scheduler, nowhere else.
//!
//! On the owner thread a wake is a push of the task's key onto the run
//! queue: no atomic operation, no reference count. From another thread it
//! marks the task `QUEUED_REMOTE` and, the first time since the last poll,
//! pushes the key into the core's inbox. Cloning counts a reference (and
//! marks the task `state::SHARED` the first time); the run loop lends the
//! task's own reference to the waker it polls with, so a poll that does not
//! clone costs no count at all.
//!
//! One vtable for every task, whatever its future: the run loop and the
//! runtime recognise a task's waker by it and read its key, which the
//! driver stores as a wake token instead of a cloned waker.

use std::ptr::NonNull;
use std::task::{RawWaker, RawWakerVTable, Waker};

use super::scheduler::Scheduler;
use super::task::{self, Header};

/// See the module docs.
pub(super) static VTABLE: RawWakerVTable =
    RawWakerVTable::new(clone_waker, wake, wake_by_ref, drop_waker);

/// The header behind a waker's data pointer.
///
/// # Safety
///
/// `data` comes from a waker with [`VTABLE`], so it is a live task header.
unsafe fn header_of(data: *const ()) -> NonNull<Header> {
    // SAFETY: see the function's contract; the pointer is never null.
    unsafe { NonNull::new_unchecked(data.cast_mut().cast()) }
}

/// The header of the task `waker` wakes, when it is a task's waker.
#[inline]
fn task_of(waker: &Waker) -> Option<&Header> {
    if !std::ptr::eq(waker.vtable(), &VTABLE) {
        return None;
    }
    // SAFETY: a waker with our vtable holds (or borrows) a reference to a
    // task header as its data pointer, alive for as long as `waker`.
    Some(unsafe { header_of(waker.data()).as_ref() })
}

/// The key of the task `waker` wakes, when it is a task of `scheduler`'s
/// core. Compared by address: a task keeps its scheduler alive, so no
/// other scheduler can sit at that address meanwhile (one load and one
/// comparison on the path of every operation's poll).
#[inline]
pub(super) fn key_on(waker: &Waker, scheduler: *const Scheduler) -> Option<usize> {
    let task = task_of(waker)?;
    task.is_on(scheduler).then_some(task.key)
}

/// Queues the task `waker` wakes for a poll after its core's next visit to
/// the ring, when it is a task of a core of this thread; false otherwise.
pub(super) fn defer(waker: &Waker) -> bool {
    let Some(task) = task_of(waker) else {
        return false;
    };
    // SAFETY: as in `key_on`.
    let scheduler = unsafe { task.scheduler() };
    match scheduler.local_here() {
        Some(local) => {
            local.defer(task.key);
            true
        }
        None => false,
    }
}

/// Schedules the task at `header` on its core: onto the run queue on the
/// owner thread, into the inbox (once per poll) from any other.
///
/// # Safety
///
/// The caller holds a reference to the task (a waker, owned or borrowed,
/// or the handle).
pub(super) unsafe fn schedule(header: NonNull<Header>) {
    // SAFETY: the caller's reference keeps the allocation alive.
    let task = unsafe { header.as_ref() };
    // SAFETY: the task keeps its scheduler alive.
    let scheduler = unsafe { task.scheduler() };
    match scheduler.local_here() {
        Some(local) => local.schedule(task.key),
        None => {
            if task.state.mark_queued_remote() {
                scheduler.remote.push(task.key);
            }
        }
    }
}

unsafe fn clone_waker(data: *const ()) -> RawWaker {
    // SAFETY: `data` is a live task header (see `VTABLE`).
    unsafe { header_of(data).as_ref() }.state.add_waker();
    RawWaker::new(data, &VTABLE)
}

unsafe fn wake(data: *const ()) {
    // SAFETY: waking by value consumes the waker's reference, after the
    // wake it held the task for.
    unsafe {
        wake_by_ref(data);
        drop_waker(data);
    }
}

unsafe fn wake_by_ref(data: *const ()) {
    // SAFETY: the waker holds (or borrows) a reference, as `schedule` asks.
    unsafe { schedule(header_of(data)) };
}

unsafe fn drop_waker(data: *const ()) {
    // SAFETY: `data` is a live header whose reference this waker gives up.
    let header = unsafe { header_of(data) };
    // SAFETY: as above.
    if unsafe { header.as_ref() }.state.release_waker() {
        // SAFETY: that was the last reference.
        unsafe { task::free(header) };
    }
}
