//! `Scheduler`: the handle every task of a core is built with, and the only
//! way a task is scheduled.
//!
//! A task's header points to its core's scheduler, so a wake needs nothing
//! else: on the owning thread it pushes the task's key onto the run queue
//! ([`Local`]); on any other it pushes the key into the inbox
//! ([`Remote`]) and rings the doorbell. Which of the two is one comparison
//! of [`ThreadSerial`]s, with no thread-local core lookup.
//!
//! # Lifetime
//!
//! Every task keeps its scheduler alive, so a task's header may always
//! reach it. The scheduler sits in an `Arc` whose strong count is held
//!
//! - by the executor, one count for itself and for every task that is
//!   "held" ([`Local::tasks_held`]): a task is held from its spawn until it
//!   is freed, or until it completes if a waker of it was ever cloned
//!   (`state::SHARED`). A held task is freed on the owner thread (its only
//!   references are the task list and the `JoinHandle`), which counts it
//!   out without an atomic operation. When the executor is dropped with
//!   tasks still held (a `JoinHandle` outliving its runtime), its count
//!   stays until the last of them is freed ([`Local::orphan`]);
//! - by every complete `SHARED` task, one count each, taken at completion
//!   on the owner thread and given back wherever the last waker frees the
//!   task.
//!
//! A spawn and join, and every wake by key, touch no reference count.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::task::{Wake, Waker};

use super::cache::BlockCache;
use super::id::{RuntimeId, ThreadSerial};
use super::remote::Remote;
use super::run_queue::RunQueue;

/// See the module docs.
pub(crate) struct Scheduler {
    id: RuntimeId,
    /// The thread that owns the core; the only one that touches `local`.
    owner: ThreadSerial,
    local: Local,
    /// What other threads may touch.
    pub(crate) remote: Remote,
}

// SAFETY: `Scheduler` is `Send` (every field is), and `Sync` but for
// `local`, whose cells and queues are touched only by the thread whose
// serial is `owner`: safe code reaches `local` only through `local_here`,
// which checks the serial, and the executor through `local_unchecked`,
// whose caller guarantees it. `id`, `owner` are immutable and `remote` is
// `Sync`.
unsafe impl Sync for Scheduler {}

/// The part of a scheduler only its owner thread touches. Interior
/// mutability without a borrow flag: every method finishes its work before
/// returning and hands out no references, except `contain`, which touches
/// its counter only after the callback has returned.
pub(crate) struct Local {
    /// Keys of the tasks ready to be polled, in wake order.
    pub(crate) run_queue: RunQueue,
    /// Keys of the tasks that yielded this tick; they join the run queue
    /// once the ring has been entered.
    pub(crate) yielded: RunQueue,
    /// Set at shutdown: from then on wakes queue nothing.
    closed: Cell<bool>,
    /// Panics caught in user callbacks outside task polls (see `contain`).
    callback_panics: Cell<u64>,
    /// Freed task blocks kept for the next spawns.
    pub(crate) cache: BlockCache,
    /// Tasks that rely on the executor's strong count (see the module
    /// docs): incremented at spawn, decremented when such a task is freed
    /// or completes `SHARED`.
    tasks_held: Cell<usize>,
    /// The executor is gone and left its strong count to the held tasks.
    orphaned: Cell<bool>,
}

impl Scheduler {
    /// The scheduler of a new core owned by the calling thread, caching up
    /// to `cache_bytes` of freed task blocks.
    pub(crate) fn new(remote: Remote, cache_bytes: usize) -> Scheduler {
        Scheduler {
            id: RuntimeId::next(),
            owner: ThreadSerial::current(),
            local: Local {
                run_queue: RunQueue::default(),
                yielded: RunQueue::default(),
                closed: Cell::new(false),
                callback_panics: Cell::new(0),
                cache: BlockCache::new(cache_bytes),
                tasks_held: Cell::new(0),
                orphaned: Cell::new(false),
            },
            remote,
        }
    }

    #[inline]
    pub(crate) fn id(&self) -> RuntimeId {
        self.id
    }

    /// The owner's part, when called on the owner thread.
    #[inline]
    pub(crate) fn local_here(&self) -> Option<&Local> {
        (ThreadSerial::current() == self.owner).then_some(&self.local)
    }

    /// The owner's part, without checking the thread.
    ///
    /// # Safety
    ///
    /// Called on the owner thread (the one that called [`Scheduler::new`]).
    #[inline]
    pub(crate) unsafe fn local_unchecked(&self) -> &Local {
        debug_assert_eq!(ThreadSerial::current(), self.owner);
        &self.local
    }
}

impl Local {
    /// Queues the task with `key` for a poll this tick (or the next).
    #[inline]
    pub(crate) fn schedule(&self, key: usize) {
        if !self.closed.get() {
            self.run_queue.push(key);
        }
    }

    /// Queues the task with `key` for a poll after the next visit to the
    /// ring.
    #[inline]
    pub(crate) fn defer(&self, key: usize) {
        if !self.closed.get() {
            self.yielded.push(key);
        }
    }

    /// At shutdown: forgets every queued key and refuses later ones.
    pub(crate) fn close(&self) {
        self.closed.set(true);
        self.run_queue.clear();
        self.yielded.clear();
    }

    /// Runs `callback`, user code that runs outside a task poll (a waker's
    /// `wake`, the drop of a future, an output, a buffer or a waker), with
    /// the containment a task poll has: a panic in it is caught and counted
    /// (`Stats::callback_panics`), never unwound through the run loop or a
    /// shutdown, so the rest of the batch still runs. The panic hook has
    /// already reported it where it happened.
    pub(crate) fn contain(&self, callback: impl FnOnce()) {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(callback)) {
            self.count_panic(payload);
        }
    }

    /// Counts a panic caught outside a task poll and drops its payload. A
    /// payload's own drop may panic too; that one is forgotten.
    pub(crate) fn count_panic(&self, payload: Box<dyn std::any::Any + Send>) {
        self.callback_panics.set(self.callback_panics.get() + 1);
        if let Err(again) = catch_unwind(AssertUnwindSafe(|| drop(payload))) {
            std::mem::forget(again);
        }
    }

    pub(crate) fn callback_panics(&self) -> u64 {
        self.callback_panics.get()
    }

    /// Counts a new task as held.
    #[inline]
    pub(crate) fn hold_task(&self) {
        self.tasks_held.set(self.tasks_held.get() + 1);
    }

    /// Counts a held task out. True when it was the last one of an
    /// orphaned scheduler: the caller gives back the executor's strong
    /// count, after its last use of `self`.
    #[inline]
    #[must_use]
    pub(crate) fn release_task(&self) -> bool {
        let held = self.tasks_held.get() - 1;
        self.tasks_held.set(held);
        held == 0 && self.orphaned.get()
    }

    /// When the executor is dropped: true when no task is held, so the
    /// executor gives its strong count back now; otherwise the last held
    /// task's [`release_task`](Self::release_task) will say so.
    #[must_use]
    pub(crate) fn orphan(&self) -> bool {
        self.orphaned.set(true);
        self.cache.close();
        self.tasks_held.get() == 0
    }
}

/// The waker of a core's `block_on` future: it sets the core's flag, and
/// from another thread also rings the doorbell.
struct MainWaker(Arc<Scheduler>);

impl Wake for MainWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let foreign = self.0.local_here().is_none();
        self.0.remote.wake_main(foreign);
    }
}

/// The waker of `scheduler`'s `block_on` future.
pub(crate) fn main_waker(scheduler: &Arc<Scheduler>) -> Waker {
    Waker::from(Arc::new(MainWaker(scheduler.clone())))
}
