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

#[derive(Debug, Default)]
pub(crate) struct RunQueue {
    /// Queued keys from `head` on; those before it were popped.
    keys: Vec<usize>,
    head: usize,
    /// `queued[key]`: the key is in `keys[head..]`.
    queued: Vec<bool>,
}

impl RunQueue {
    /// Queues `key` unless it is queued already.
    #[inline]
    pub(crate) fn push(&mut self, key: usize) {
        if key >= self.queued.len() {
            self.queued.resize(key + 1, false);
        }
        if !std::mem::replace(&mut self.queued[key], true) {
            self.keys.push(key);
        }
    }

    /// The key queued first; a wake after this queues it again.
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<usize> {
        let key = *self.keys.get(self.head)?;
        self.head += 1;
        self.queued[key] = false;
        Some(key)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.head == self.keys.len()
    }

    /// Moves every queued key of `other` here, in order.
    pub(crate) fn append(&mut self, other: &mut RunQueue) {
        while let Some(key) = other.pop() {
            self.push(key);
        }
        other.compact();
    }

    /// Forgets the keys already popped.
    pub(crate) fn compact(&mut self) {
        self.keys.drain(..self.head);
        self.head = 0;
    }

    pub(crate) fn clear(&mut self) {
        while self.pop().is_some() {}
        self.compact();
    }
}

#[cfg(test)]
mod tests {
    use super::RunQueue;

    #[test]
    fn keys_come_out_in_wake_order_once_each() {
        let mut queue = RunQueue::default();
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
        assert!(queue.keys.is_empty());
    }

    #[test]
    fn clear_unmarks_every_key() {
        let mut queue = RunQueue::default();
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
        let mut queue = RunQueue::default();
        let mut other = RunQueue::default();
        queue.push(4);
        other.push(5);
        other.push(4);
        queue.append(&mut other);
        assert!(other.is_empty());
        assert_eq!(
            std::iter::from_fn(|| queue.pop()).collect::<Vec<_>>(),
            [4, 5]
        );
    }
}
