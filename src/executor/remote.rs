//! `Remote`: the part of a core other threads may touch.
//!
//! A waker that fires on a thread other than its core's pushes the task's
//! key into the core's inbox and rings the doorbell (an eventfd the core
//! keeps a read in flight on while parked), so a parked core wakes up. The
//! `notified` flag keeps that to one eventfd write per park cycle.
//!
//! The inbox holds keys, not references: a key that outlives its task is a
//! stale wake, as a driver token is (the key may by then name a newer task,
//! polled spuriously, or none, skipped). Nothing in the inbox keeps a task
//! or the core alive, and shutdown closes it, so a wake that arrives after
//! that pushes nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::sys::eventfd::EventFd;

/// The cross-thread face of one core.
pub(crate) struct Remote {
    /// Keys of tasks woken from other threads, waiting to be moved to the
    /// run queue; `None` once the core has shut down. Bounded by the live
    /// tasks: a task's key is pushed once until its next poll (see
    /// `state::QUEUED_REMOTE`), and the core drains the inbox every tick.
    inbox: Mutex<Option<Vec<usize>>>,
    /// Set when the `block_on` future was woken.
    main_woken: AtomicBool,
    /// Set once the doorbell was rung since the core last drained its inbox.
    notified: AtomicBool,
    /// Rung by other threads to end the core's park.
    pub(crate) doorbell: EventFd,
}

impl Remote {
    pub(crate) fn new(doorbell: EventFd) -> Remote {
        Remote {
            inbox: Mutex::new(Some(Vec::new())),
            main_woken: AtomicBool::new(true),
            notified: AtomicBool::new(false),
            doorbell,
        }
    }

    /// Hands the task with `key` to the core from another thread; does
    /// nothing when the core has shut down.
    pub(crate) fn push(&self, key: usize) {
        let mut inbox = self.lock_inbox();
        let Some(keys) = inbox.as_mut() else {
            return;
        };
        keys.push(key);
        drop(inbox);
        self.ring();
    }

    fn lock_inbox(&self) -> MutexGuard<'_, Option<Vec<usize>>> {
        self.inbox
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// At shutdown: refuses later pushes and forgets what is queued.
    pub(crate) fn close(&self) {
        self.lock_inbox().take();
    }

    /// Marks the `block_on` future woken; `foreign` when called from
    /// another thread, which must also end the park.
    pub(crate) fn wake_main(&self, foreign: bool) {
        self.main_woken.store(true, Ordering::Release);
        if foreign {
            self.ring();
        }
    }

    /// Takes the `block_on` future's woken flag.
    pub(crate) fn take_main_woken(&self) -> bool {
        // A plain load first: the common answer, no, costs no locked
        // instruction.
        self.main_woken.load(Ordering::Acquire) && self.main_woken.swap(false, Ordering::AcqRel)
    }

    /// Whether the `block_on` future is woken (without taking the flag).
    pub(crate) fn is_main_woken(&self) -> bool {
        self.main_woken.load(Ordering::Acquire)
    }

    /// Whether a foreign wake arrived since the last [`drain`](Self::drain).
    pub(crate) fn is_notified(&self) -> bool {
        self.notified.load(Ordering::Acquire)
    }

    fn ring(&self) {
        if !self.notified.swap(true, Ordering::AcqRel) {
            self.doorbell.notify();
        }
    }

    /// Hands every queued key to `queue`, in order. Clears `notified`
    /// first, so a wake that lands after the drain rings the doorbell
    /// again. `queue` runs under the inbox lock and must not call out.
    pub(crate) fn drain(&self, mut queue: impl FnMut(usize)) {
        // A plain load first, as in `take_main_woken`.
        if !self.notified.load(Ordering::Acquire) || !self.notified.swap(false, Ordering::AcqRel) {
            return;
        }
        if let Some(keys) = self.lock_inbox().as_mut() {
            keys.drain(..).for_each(&mut queue);
        }
    }
}
