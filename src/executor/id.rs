//! Identities the executor compares instead of pointers: [`RuntimeId`]
//! names one core (one runtime) and [`ThreadSerial`] one thread, each
//! unique in the process and never reused.
//!
//! A task's wakers ask "is this the thread that owns my core?" on every
//! wake; the answer is one thread-local read and one comparison, with no
//! reference count or shared structure involved.

use std::cell::Cell;
use std::fmt;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};

/// The identity of one core: one [`Runtime`](crate::Runtime), its ring,
/// its tasks and its timers. Unique in the process and never reused, so an
/// operation, a timer or a pool that outlives its runtime can tell that it
/// is gone. Distinct from [`CoreId`](crate::CoreId), a core's index within
/// a launch.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct RuntimeId(NonZeroU64);

impl RuntimeId {
    /// A fresh id, never handed out before.
    pub(crate) fn next() -> RuntimeId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        RuntimeId(fresh(&NEXT))
    }
}

impl fmt::Debug for RuntimeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RuntimeId({})", self.0)
    }
}

/// The identity of one thread, unique in the process and never reused
/// (unlike the address of a thread-local, which a later thread may get).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct ThreadSerial(NonZeroU64);

thread_local! {
    /// This thread's serial; 0 until first asked for. A `const` cell with
    /// no destructor, so reading it is one load, and it stays readable
    /// while the thread's other thread-locals are destroyed.
    static SERIAL: Cell<u64> = const { Cell::new(0) };
}

impl ThreadSerial {
    /// The calling thread's serial.
    #[inline]
    pub(crate) fn current() -> ThreadSerial {
        let serial = SERIAL.with(Cell::get);
        match NonZeroU64::new(serial) {
            Some(serial) => ThreadSerial(serial),
            None => ThreadSerial::assign(),
        }
    }

    /// The serial as a number (never 0).
    #[inline]
    pub(crate) fn get(self) -> u64 {
        self.0.get()
    }

    #[cold]
    fn assign() -> ThreadSerial {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let serial = fresh(&NEXT);
        SERIAL.with(|cell| cell.set(serial.get()));
        ThreadSerial(serial)
    }
}

/// The next value of `counter`, from 1 on. 2^64 values cannot run out:
/// at one per nanosecond, that takes five centuries.
fn fresh(counter: &AtomicU64) -> NonZeroU64 {
    let value = counter.fetch_add(1, Ordering::Relaxed);
    NonZeroU64::new(value).expect("the counter started at 1 and does not wrap")
}

#[cfg(test)]
mod tests {
    use super::{RuntimeId, ThreadSerial};

    #[test]
    fn ids_are_never_reused() {
        let (a, b) = (RuntimeId::next(), RuntimeId::next());
        assert_ne!(a, b);
        assert_eq!(a, a);
    }

    #[test]
    fn a_thread_keeps_its_serial_and_no_other_thread_shares_it() {
        let here = ThreadSerial::current();
        assert_eq!(here, ThreadSerial::current());
        let there = std::thread::spawn(ThreadSerial::current).join().unwrap();
        let later = std::thread::spawn(ThreadSerial::current).join().unwrap();
        assert_ne!(here, there);
        assert_ne!(there, later, "a later thread gets a new serial");
    }
}
