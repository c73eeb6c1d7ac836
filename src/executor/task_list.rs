//! The task list of one core: every task whose future is live, by key,
//! holding its listed reference, so the run loop finds a task from its
//! key and shutdown can drop every future on the core's thread.
//!
//! A vector of entries, each a task or the next free key: a spawn takes the
//! most recently freed key (its entry is likely still in cache) or appends,
//! with no search. It grows with the tasks alive at once and never shrinks;
//! one entry is 16 bytes.

use std::cell::UnsafeCell;
use std::mem::ManuallyDrop;

use super::task::Task;

/// See the module docs. Interior mutability without a borrow flag, as for
/// the run queue: every method finishes its work on the entries before
/// returning and calls out to nothing (the global allocator aside, and
/// dropping a `Task` happens in the caller, after the method), so no two
/// accesses overlap; `UnsafeCell` and `Task` keep it `!Sync` and `!Send`.
#[derive(Default)]
pub(super) struct TaskList {
    inner: UnsafeCell<Entries>,
}

#[derive(Default)]
struct Entries {
    entries: Vec<Entry>,
    /// The first free key: the head of the chain through `Entry::Free`, or
    /// `entries.len()` when every entry holds a task.
    free: usize,
}

enum Entry {
    Task(Task),
    /// A free key; the next free key in the chain.
    Free(usize),
}

impl TaskList {
    /// Runs `f` on the entries.
    #[inline]
    fn with<R>(&self, f: impl FnOnce(&mut Entries) -> R) -> R {
        // SAFETY: see the type's docs: `f` is one of this module's method
        // bodies, which neither call out nor return references into the
        // entries, so this is the only reference while it runs.
        f(unsafe { &mut *self.inner.get() })
    }

    /// The key the next [`insert`](Self::insert) will use.
    #[inline]
    pub(super) fn next_key(&self) -> usize {
        self.with(|list| list.free)
    }

    /// Adds `task`, made for the key [`next_key`](Self::next_key) gave;
    /// returns the key it got, the same.
    #[inline]
    pub(super) fn insert(&self, task: Task) -> usize {
        self.with(|list| {
            let key = list.free;
            match list.entries.get_mut(key) {
                Some(entry) => {
                    let Entry::Free(next) = *entry else {
                        unreachable!("the free chain names free entries");
                    };
                    list.free = next;
                    *entry = Entry::Task(task);
                }
                None => {
                    list.entries.push(Entry::Task(task));
                    list.free = list.entries.len();
                }
            }
            key
        })
    }

    /// An uncounted copy of the reference to the task with `key`.
    ///
    /// # Safety
    ///
    /// The copy must not be used after the task leaves the list.
    #[inline]
    pub(super) unsafe fn get(&self, key: usize) -> Option<ManuallyDrop<Task>> {
        self.with(|list| match list.entries.get(key) {
            // SAFETY: forwarded to the caller.
            Some(Entry::Task(task)) => Some(unsafe { task.uncounted() }),
            _ => None,
        })
    }

    /// Takes the task with `key` out of the list.
    #[inline]
    pub(super) fn remove(&self, key: usize) -> Option<Task> {
        self.with(|list| {
            let entry = list.entries.get_mut(key)?;
            if let Entry::Free(_) = entry {
                return None;
            }
            let Entry::Task(task) = std::mem::replace(entry, Entry::Free(list.free)) else {
                unreachable!("checked above");
            };
            list.free = key;
            Some(task)
        })
    }

    /// Takes every task out of the list.
    pub(super) fn drain(&self) -> Vec<Task> {
        self.with(|list| {
            list.free = 0;
            list.entries
                .drain(..)
                .filter_map(|entry| match entry {
                    Entry::Task(task) => Some(task),
                    Entry::Free(_) => None,
                })
                .collect()
        })
    }
}
