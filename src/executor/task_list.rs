//! The task list of one core: every task whose future is live, by key,
//! holding its listed reference, so the run loop finds a task from its
//! key and shutdown can drop every future on the core's thread.

use std::cell::UnsafeCell;
use std::mem::ManuallyDrop;

use slab::Slab;

use super::task::Task;

/// See the module docs. Interior mutability without a borrow flag, as for
/// the run queue: every method finishes its work on the slab before
/// returning and calls out to nothing (the global allocator aside, and
/// dropping a `Task` happens in the caller, after the method), so no two
/// accesses overlap; `UnsafeCell` and `Task` keep it `!Sync` and `!Send`.
#[derive(Default)]
pub(super) struct TaskList {
    tasks: UnsafeCell<Slab<Task>>,
}

impl TaskList {
    /// Runs `f` on the slab.
    #[inline]
    fn with<R>(&self, f: impl FnOnce(&mut Slab<Task>) -> R) -> R {
        // SAFETY: see the type's docs: `f` is one of this module's method
        // bodies, which neither call out nor return references into the
        // slab, so this is the only reference while it runs.
        f(unsafe { &mut *self.tasks.get() })
    }

    /// The key the next [`insert`](Self::insert) will use.
    #[inline]
    pub(super) fn next_key(&self) -> usize {
        self.with(|tasks| tasks.vacant_key())
    }

    /// Adds `task`, made for the key [`next_key`](Self::next_key) gave;
    /// returns the key it got, the same.
    #[inline]
    pub(super) fn insert(&self, task: Task) -> usize {
        self.with(|tasks| tasks.insert(task))
    }

    /// An uncounted copy of the reference to the task with `key`.
    ///
    /// # Safety
    ///
    /// The copy must not be used after the task leaves the list.
    #[inline]
    pub(super) unsafe fn get(&self, key: usize) -> Option<ManuallyDrop<Task>> {
        // SAFETY: forwarded to the caller.
        self.with(|tasks| tasks.get(key).map(|task| unsafe { task.uncounted() }))
    }

    /// Takes the task with `key` out of the list.
    #[inline]
    pub(super) fn remove(&self, key: usize) -> Option<Task> {
        self.with(|tasks| tasks.try_remove(key))
    }

    /// Takes every task out of the list.
    pub(super) fn drain(&self) -> Vec<Task> {
        self.with(|tasks| tasks.drain().collect())
    }
}
