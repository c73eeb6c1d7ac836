//! `Remote`: the part of a core other threads may touch.
//!
//! A waker that fires on a thread other than its core's pushes the task into
//! the core's inbox and rings the doorbell (an eventfd the core keeps a read
//! in flight on while parked), so a parked core wakes up. The `notified` flag
//! keeps that to one eventfd write per park cycle.
//!
//! A task refers to its core's `Remote`, so a task left in the inbox would
//! keep both alive for ever; shutdown closes the inbox, and a wake that
//! arrives after that drops its reference instead.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use super::task::Task;
use crate::sys::eventfd::EventFd;

/// The cross-thread face of one core.
pub(crate) struct Remote {
    /// Unique in the process, never reused: names the core in operations
    /// and pools that must find it again (see `context::with_owner`).
    pub(crate) id: u64,
    /// Tasks woken from other threads, waiting to be moved to the run queue;
    /// `None` once the core has shut down.
    inbox: Mutex<Option<Vec<Task>>>,
    /// Set when the `block_on` future was woken.
    main_woken: AtomicBool,
    /// Set once the doorbell was rung since the core last drained its inbox.
    notified: AtomicBool,
    /// Rung by other threads to end the core's park.
    pub(crate) doorbell: EventFd,
}

impl Remote {
    pub(crate) fn new(doorbell: EventFd) -> Remote {
        static IDS: AtomicU64 = AtomicU64::new(1);
        Remote {
            id: IDS.fetch_add(1, Ordering::Relaxed),
            inbox: Mutex::new(Some(Vec::new())),
            main_woken: AtomicBool::new(true),
            notified: AtomicBool::new(false),
            doorbell,
        }
    }

    /// Hands `task` to the core from another thread; drops it when the
    /// core has shut down.
    pub(crate) fn push(&self, task: Task) {
        let mut inbox = self.lock_inbox();
        let Some(tasks) = inbox.as_mut() else {
            drop(inbox);
            return drop(task);
        };
        tasks.push(task);
        drop(inbox);
        self.ring();
    }

    fn lock_inbox(&self) -> std::sync::MutexGuard<'_, Option<Vec<Task>>> {
        self.inbox
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// At shutdown: refuses later pushes and moves what is queued into
    /// `into`, to be dropped by the caller.
    pub(crate) fn close(&self, into: &mut Vec<Task>) {
        if let Some(mut tasks) = self.lock_inbox().take() {
            into.append(&mut tasks);
        }
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

    /// Moves the inbox into `into`. Clears `notified` first, so a wake that
    /// lands after the drain rings the doorbell again.
    pub(crate) fn drain(&self, into: &mut Vec<Task>) {
        // A plain load first, as in `take_main_woken`.
        if !self.notified.load(Ordering::Acquire) || !self.notified.swap(false, Ordering::AcqRel) {
            return;
        }
        if let Some(tasks) = self.lock_inbox().as_mut() {
            into.append(tasks);
        }
    }
}
