//! TEMPORARY stand-in (lead's), replaced by the helper's wheel.
#![allow(missing_docs, dead_code)]
use slab::Slab;
use std::collections::BTreeMap;
use std::task::Waker;
use std::time::Instant;
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimerKey {
    index: usize,
    generation: u64,
}
struct Entry {
    generation: u64,
    deadline: Instant,
    waker: Waker,
    fired: bool,
}
pub(crate) struct Wheel {
    entries: Slab<Entry>,
    order: BTreeMap<(Instant, usize), ()>,
    generation: u64,
}
impl Wheel {
    pub(crate) fn new(_origin: Instant) -> Wheel {
        Wheel {
            entries: Slab::new(),
            order: BTreeMap::new(),
            generation: 0,
        }
    }
    pub(crate) fn insert(&mut self, deadline: Instant, waker: Waker) -> TimerKey {
        self.generation += 1;
        let index = self.entries.insert(Entry {
            generation: self.generation,
            deadline,
            waker,
            fired: false,
        });
        self.order.insert((deadline, index), ());
        TimerKey {
            index,
            generation: self.generation,
        }
    }
    fn get(&mut self, key: TimerKey) -> Option<&mut Entry> {
        self.entries
            .get_mut(key.index)
            .filter(|e| e.generation == key.generation)
    }
    pub(crate) fn set_waker(&mut self, key: TimerKey, waker: &Waker) -> bool {
        match self.get(key) {
            Some(e) if !e.fired => {
                e.waker = waker.clone();
                true
            }
            _ => false,
        }
    }
    pub(crate) fn remove(&mut self, key: TimerKey) -> bool {
        let Some(e) = self.get(key) else { return false };
        let (d, f) = (e.deadline, e.fired);
        self.entries.remove(key.index);
        self.order.remove(&(d, key.index));
        !f
    }
    pub(crate) fn is_fired(&self, key: TimerKey) -> bool {
        self.entries
            .get(key.index)
            .is_some_and(|e| e.generation == key.generation && e.fired)
    }
    pub(crate) fn reset(&mut self, key: TimerKey, deadline: Instant, waker: &Waker) {
        let Some(e) = self.get(key) else { return };
        let (d, f) = (e.deadline, e.fired);
        e.deadline = deadline;
        e.fired = false;
        e.waker = waker.clone();
        if !f {
            self.order.remove(&(d, key.index));
        }
        self.order.insert((deadline, key.index), ());
    }
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.order.keys().next().map(|k| k.0)
    }
    pub(crate) fn advance(&mut self, now: Instant, wakers: &mut Vec<Waker>) -> usize {
        let mut n = 0;
        while let Some((&(d, i), _)) = self.order.iter().next() {
            if d > now {
                break;
            }
            self.order.remove(&(d, i));
            let e = &mut self.entries[i];
            e.fired = true;
            wakers.push(e.waker.clone());
            n += 1;
        }
        n
    }
    pub(crate) fn pending(&self) -> usize {
        self.order.len()
    }
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}
