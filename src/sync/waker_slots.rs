//! A list of wakers with stable places, for futures that wait on a state
//! other threads change (a signal, a shutdown): each waiting future takes
//! one place, stores its task's waker there (replacing it only when the
//! task changed) and frees the place when dropped, so the list never holds
//! more than the futures alive. Kept under the caller's lock.

use std::task::Waker;

#[derive(Default)]
pub(crate) struct WakerSlots {
    list: Vec<Option<Waker>>,
    free: Vec<usize>,
}

impl WakerSlots {
    pub(crate) const fn new() -> WakerSlots {
        WakerSlots {
            list: Vec::new(),
            free: Vec::new(),
        }
    }

    /// Stores `waker` in `key`'s place, taking a place first when `key`
    /// has none.
    pub(crate) fn store(&mut self, key: &mut Option<usize>, waker: &Waker) {
        let place = *key.get_or_insert_with(|| match self.free.pop() {
            Some(place) => place,
            None => {
                self.list.push(None);
                self.list.len() - 1
            }
        });
        let stored = &mut self.list[place];
        if !stored
            .as_ref()
            .is_some_and(|stored| stored.will_wake(waker))
        {
            *stored = Some(waker.clone());
        }
    }

    /// Frees `key`'s place; returns its waker, for the caller to drop
    /// after the lock.
    pub(crate) fn remove(&mut self, key: usize) -> Option<Waker> {
        self.free.push(key);
        self.list[key].take()
    }

    /// Takes every stored waker (the places stay taken), for the caller
    /// to wake after the lock.
    pub(crate) fn take_all(&mut self) -> Vec<Waker> {
        self.list.iter_mut().filter_map(Option::take).collect()
    }
}
