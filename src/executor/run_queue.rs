//! The run queue of one core: the keys of the tasks ready to be polled, in
//! wake order, each at most once.
//!
//! A vector read from a cursor: pushing and popping are a few instructions,
//! and the run loop calls [`compact`](RunQueue::compact) once per tick to
//! drop the part already read.
//!
//! The "queued" marks live here, indexed by task key, rather than in the
//! tasks: a wake from the reap loop queues a key without looking the task
//! up. A key whose task finished while queued stays marked, so a new task
//! given that key is not queued twice; its first poll comes from the old
//! entry, and the loop skips keys with no task.

/// See the module docs. Interior mutability without a borrow flag: every
/// method takes `&self`, finishes its work on the vectors before returning
/// and calls out to nothing (the global allocator aside, which cannot reach
/// a core), so no two accesses overlap; `UnsafeCell` keeps it `!Sync`.
use std::cell::UnsafeCell;

#[derive(Default)]
pub(crate) struct RunQueue {
    inner: UnsafeCell<Keys>,
}

#[derive(Debug, Default)]
struct Keys {
    /// Queued keys from `head` on; those before it were popped.
    keys: Vec<usize>,
    head: usize,
    /// `queued[key]`: the key is in `keys[head..]`.
    queued: Vec<bool>,
}

impl RunQueue {
    /// Runs `f` on the queue's contents.
    #[inline]
    fn with<R>(&self, f: impl FnOnce(&mut Keys) -> R) -> R {
        // SAFETY: see the type's docs: `f` is one of this module's method
        // bodies, which neither call out nor return references into the
        // queue, so this is the only reference while it runs.
        f(unsafe { &mut *self.inner.get() })
    }

    /// Queues `key` unless it is queued already.
    #[inline]
    pub(crate) fn push(&self, key: usize) {
        self.with(|queue| {
            let queued = match queue.queued.get_mut(key) {
                Some(queued) => queued,
                None => {
                    queue.queued.resize(key + 1, false);
                    &mut queue.queued[key]
                }
            };
            if !std::mem::replace(queued, true) {
                queue.keys.push(key);
            }
        })
    }

    /// The key queued first; a wake after this queues it again.
    #[inline]
    pub(crate) fn pop(&self) -> Option<usize> {
        self.with(|queue| {
            let key = *queue.keys.get(queue.head)?;
            queue.head += 1;
            queue.queued[key] = false;
            Some(key)
        })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.with(|queue| queue.head == queue.keys.len())
    }

    /// Moves every queued key of `other` here, in order.
    pub(crate) fn append(&self, other: &RunQueue) {
        while let Some(key) = other.pop() {
            self.push(key);
        }
        other.compact();
    }

    /// Forgets the keys already popped.
    pub(crate) fn compact(&self) {
        self.with(|queue| {
            queue.keys.drain(..queue.head);
            queue.head = 0;
        })
    }

    pub(crate) fn clear(&self) {
        while self.pop().is_some() {}
        self.compact();
    }
}

impl std::fmt::Debug for RunQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.with(|queue| f.debug_list().entries(&queue.keys[queue.head..]).finish())
    }
}

#[cfg(test)]
mod tests {
    use super::RunQueue;

    #[test]
    fn keys_come_out_in_wake_order_once_each() {
        let queue = RunQueue::default();
        for key in [3, 0, 3, 7, 0] {
            queue.push(key);
        }
        assert_eq!(queue.pop(), Some(3));
        queue.push(3); // popped, so it queues again
        queue.compact();
        let rest: Vec<_> = std::iter::from_fn(|| queue.pop()).collect();
        assert_eq!(rest, [0, 7, 3]);
        assert!(queue.is_empty());
        queue.compact();
        assert!(queue.with(|queue| queue.keys.is_empty()));
    }

    #[test]
    fn clear_unmarks_every_key() {
        let queue = RunQueue::default();
        queue.push(1);
        queue.push(2);
        queue.clear();
        assert!(queue.is_empty());
        queue.push(2);
        queue.push(1);
        assert_eq!(queue.pop(), Some(2));
        assert_eq!(queue.pop(), Some(1));
        assert_eq!(queue.pop(), None);
    }

    #[test]
    fn append_moves_keys_in_order_without_duplicates() {
        let queue = RunQueue::default();
        let other = RunQueue::default();
        queue.push(4);
        other.push(5);
        other.push(4);
        queue.append(&other);
        assert!(other.is_empty());
        assert_eq!(
            std::iter::from_fn(|| queue.pop()).collect::<Vec<_>>(),
            [4, 5]
        );
    }
}
