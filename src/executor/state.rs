//! The state of one task: every flag, who sets and clears it, and the
//! transitions that are legal. Two words, split by who may touch them.
//!
//! # The shared word ([`State`], atomic)
//!
//! Wakers are `Send + Sync`, so whatever a waker touches is atomic: the
//! reference count and two flags, in one `AtomicUsize`.
//!
//! - [`QUEUED_REMOTE`]: the task's key sits in its core's inbox (or is
//!   about to). Set by the first wake from a thread other than the owner's
//!   since the task's last poll began, which is the wake that pushes the
//!   key; cleared by the owner just before it polls the task. While set,
//!   further foreign wakes push nothing, so a task is in the inbox at most
//!   once per poll. Never touched by wakes on the owner thread: those go
//!   straight to the run queue, whose own marks keep a key queued once.
//! - [`SHARED`]: a waker of the task was cloned, so a reference to it may
//!   live on any thread and outlive its core, and the task may be freed
//!   anywhere. Set by the first clone; never cleared. It cannot appear
//!   after `COMPLETE`: a clone comes from a waker borrowed by a poll or from
//!   an owned one, which the first clone made. At completion the owner
//!   reads it to choose how the task keeps its scheduler alive (see
//!   [`scheduler`](super::scheduler#lifetime)): a `SHARED` task takes a
//!   strong count of its own then, to give back when it is freed. A task
//!   never cloned, the common case of a spawn, a join and I/O woken by key,
//!   costs no reference count on the scheduler.
//! - The count, in units of [`REFERENCE`]: one per owned waker, plus one
//!   for the owner side, held while [`LISTED`] or [`HANDLE`] is set. The
//!   allocation is freed by whoever takes the count to zero. A waker clone
//!   adds one, a waker drop (or a wake by value) gives one back; the owner
//!   side gives its unit back when the last of `LISTED` and `HANDLE`
//!   clears. When the owner side finds its unit is the only one left, it
//!   frees without a read-modify-write: no waker exists then and none can
//!   be made, since a waker comes only from a poll (over by then: the task
//!   is complete) or from another waker.
//!
//! # The owner's word ([`Flags`], not atomic)
//!
//! Everything else is touched only on the thread that owns the core: the
//! run loop runs there, and the `JoinHandle` is `!Send`, created there.
//! A plain `Cell<u8>`:
//!
//! - [`LISTED`]: the core's task list holds the task, so the run loop can
//!   find it by key. Set at spawn; cleared when the run loop removes a
//!   complete task, or when shutdown takes it out.
//! - [`HANDLE`]: the `JoinHandle` exists. Set at spawn; cleared when it is
//!   dropped (which also drops an output it never took).
//! - [`ABORTED`]: `JoinHandle::abort` asked for the future to be dropped.
//!   Set (once, and only before [`COMPLETE`]) by the handle, which then
//!   wakes the task; the next run drops the future instead of polling it.
//!   Never cleared.
//! - [`COMPLETE`]: the future is gone (it finished, panicked, was aborted
//!   or was dropped at shutdown) and will never be polled again. Set once,
//!   by the owner, after the future is dropped and its result stored or
//!   dropped; never cleared.
//! - [`OUTPUT`]: the task's stage holds the output (or the `JoinError`)
//!   for the handle to take. Set with [`COMPLETE`] when [`HANDLE`] is set;
//!   cleared by the handle when it takes or drops the output.
//!
//! The stage (the future, then the output, in one union in the task
//! allocation) is read through these bits: the future is live exactly
//! while `COMPLETE` is clear, the output exactly while `OUTPUT` is set.
//!
//! # Transitions
//!
//! | from (local)                 | event                        | to (local)                      |
//! |------------------------------|------------------------------|---------------------------------|
//! | —                            | spawn                        | `LISTED HANDLE`                 |
//! | not `COMPLETE`               | abort                        | + `ABORTED`                     |
//! | not `COMPLETE`, `HANDLE`     | poll ready, panic, abort run, shutdown | + `COMPLETE OUTPUT`   |
//! | not `COMPLETE`, no `HANDLE`  | the same                     | + `COMPLETE` (result dropped)   |
//! | `OUTPUT`                     | handle takes the output      | − `OUTPUT`                      |
//! | `HANDLE`                     | handle dropped               | − `HANDLE` − `OUTPUT`           |
//! | `COMPLETE LISTED`            | removed from the task list   | − `LISTED`                      |
//!
//! The owner side's unit of the count is given back on the transition that
//! leaves neither `LISTED` nor `HANDLE`. `LISTED` clears only after
//! `COMPLETE` is set, so a task is never freed with its future live, and
//! `HANDLE` clears before or with `OUTPUT`, so it is never freed with an
//! output in it: whatever thread frees the allocation (the last waker may
//! be dropped anywhere) drops neither the future nor the output, which
//! need not be `Send`.
//!
//! | shared word                  | event                        | effect                          |
//! |------------------------------|------------------------------|---------------------------------|
//! | count `n`                    | waker cloned                 | count `n + 1`; + `SHARED` the first time |
//! | count `n`                    | waker dropped, woken by value| count `n − 1`; freed at 0       |
//! | no `QUEUED_REMOTE`           | woken off the owner thread   | + `QUEUED_REMOTE`, key pushed to the inbox |
//! | `QUEUED_REMOTE`              | woken off the owner thread   | nothing                         |
//! | `QUEUED_REMOTE`              | the owner is about to poll   | − `QUEUED_REMOTE`               |

use std::cell::Cell;
use std::sync::atomic::{fence, AtomicUsize, Ordering};

/// The task's key is queued in its core's inbox. See the module docs.
pub(super) const QUEUED_REMOTE: usize = 1 << 0;

/// The task holds a strong count of its scheduler. See the module docs.
pub(super) const SHARED: usize = 1 << 1;

/// One reference in the count held by the upper bits of the shared word.
pub(super) const REFERENCE: usize = 1 << 2;

/// The bits of the shared word that hold the count.
const COUNT: usize = !(REFERENCE - 1);

/// The shared word of a task. See the module docs.
pub(super) struct State(AtomicUsize);

impl State {
    /// The state of a new task: the owner side's unit, no flag.
    pub(super) const fn new() -> State {
        State(AtomicUsize::new(REFERENCE))
    }

    /// Counts a new waker, and marks the task [`SHARED`] the first time.
    #[inline]
    pub(super) fn add_waker(&self) {
        let old = self.0.fetch_add(REFERENCE, Ordering::Relaxed);
        // As `Arc`: a count this high means leaked wakers; stop before it
        // can wrap around.
        if old > isize::MAX as usize {
            std::process::abort();
        }
        // Set once, so a plain check spares the second RMW after the first
        // clone. Relaxed: the owner reads the flag at completion, after the
        // poll the first clone happened in (see the module docs), and the
        // thread that frees reads it after the last release.
        if old & SHARED == 0 {
            self.0.fetch_or(SHARED, Ordering::Relaxed);
        }
    }

    /// Gives back one waker's reference. True when it was the last
    /// reference: the caller frees the allocation, and every other
    /// holder's last use happened before this returns (as `Arc::drop`).
    #[inline]
    pub(super) fn release_waker(&self) -> bool {
        if self.0.fetch_sub(REFERENCE, Ordering::Release) & COUNT != REFERENCE {
            return false;
        }
        fence(Ordering::Acquire);
        true
    }

    /// Gives back the owner side's unit, on the owner thread, once neither
    /// `LISTED` nor `HANDLE` is set. True when it was the last reference.
    #[inline]
    pub(super) fn release_owner(&self) -> bool {
        // No waker left: none can appear (see the module docs), so the unit
        // is the last without an RMW. Acquire pairs with the Release of the
        // last waker's drop, as the fence in `release_waker` does.
        if self.0.load(Ordering::Acquire) & COUNT == REFERENCE {
            return true;
        }
        self.release_waker()
    }

    /// Marks the task queued in the inbox. True when it was not: the caller
    /// pushes its key. Acquire-release, so the owner that clears the mark
    /// sees what the waking thread did before (see [`clear_queued_remote`]).
    ///
    /// [`clear_queued_remote`]: State::clear_queued_remote
    #[inline]
    pub(super) fn mark_queued_remote(&self) -> bool {
        self.0.fetch_or(QUEUED_REMOTE, Ordering::AcqRel) & QUEUED_REMOTE == 0
    }

    /// Clears the inbox mark before a poll, so that a foreign wake from
    /// here on queues the task again. The plain load, the common case,
    /// costs no locked instruction; when the mark is set, an RMW clears it
    /// and acquires what the waking thread published before its wake (a
    /// plain store could be reordered after the poll's first read and lose
    /// that wake).
    #[inline]
    pub(super) fn clear_queued_remote(&self) {
        if self.0.load(Ordering::Acquire) & QUEUED_REMOTE != 0 {
            self.0.fetch_and(!QUEUED_REMOTE, Ordering::AcqRel);
        }
    }

    /// Whether a waker of the task was ever cloned. Read by the owner at
    /// completion, and by the thread that frees the allocation after the
    /// last release.
    #[inline]
    pub(super) fn is_shared(&self) -> bool {
        self.0.load(Ordering::Relaxed) & SHARED != 0
    }
}

/// The task list holds the task. See the module docs.
pub(super) const LISTED: u8 = 1 << 0;
/// The `JoinHandle` exists. See the module docs.
pub(super) const HANDLE: u8 = 1 << 1;
/// The handle asked for the future to be dropped. See the module docs.
pub(super) const ABORTED: u8 = 1 << 2;
/// The future is gone for good. See the module docs.
pub(super) const COMPLETE: u8 = 1 << 3;
/// The stage holds the output for the handle. See the module docs.
pub(super) const OUTPUT: u8 = 1 << 4;

/// The owner's word of a task. See the module docs.
pub(super) struct Flags(Cell<u8>);

impl Flags {
    /// A new task: listed, with its handle.
    pub(super) const fn new() -> Flags {
        Flags(Cell::new(LISTED | HANDLE))
    }

    /// Whether every bit of `bits` is set.
    #[inline]
    pub(super) fn has(&self, bits: u8) -> bool {
        self.0.get() & bits == bits
    }

    #[inline]
    pub(super) fn insert(&self, bits: u8) {
        self.0.set(self.0.get() | bits);
    }

    /// Clears `bits`; true when that leaves neither `LISTED` nor `HANDLE`,
    /// so the owner side's unit of the count is to be given back.
    #[inline]
    pub(super) fn remove(&self, bits: u8) -> bool {
        let left = self.0.get() & !bits;
        self.0.set(left);
        left & (LISTED | HANDLE) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clone_marks_the_task_shared() {
        let state = State::new();
        assert!(!state.is_shared());
        state.add_waker();
        state.add_waker();
        assert!(state.is_shared());
        assert!(!state.release_waker());
        assert!(!state.release_waker());
        assert!(state.release_owner(), "the owner's unit is the last");
    }

    #[test]
    fn the_last_waker_frees_after_the_owner_side() {
        let state = State::new();
        state.add_waker();
        assert!(!state.release_owner());
        assert!(state.release_waker());
    }

    #[test]
    fn the_inbox_mark_is_taken_once_until_cleared() {
        let state = State::new();
        assert!(state.mark_queued_remote());
        assert!(!state.mark_queued_remote());
        state.clear_queued_remote();
        assert!(state.mark_queued_remote());
        assert!(state.release_owner(), "flags do not count as references");
    }

    #[test]
    fn the_owner_unit_goes_with_the_last_of_listed_and_handle() {
        let local = Flags::new();
        assert!(!local.remove(HANDLE));
        local.insert(COMPLETE);
        assert!(local.has(LISTED | COMPLETE));
        assert!(local.remove(LISTED));
    }
}
