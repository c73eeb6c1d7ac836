//! `Remote`: the part of a core other threads may touch.
//!
//! A waker that fires on a thread other than its core's pushes the task's
//! key into the core's inbox; a job sent to the core (a remote spawn) goes
//! into the same inbox. The sender then wakes the core only if it is
//! parked, and only if it is the first to see it parked:
//!
//! ```text
//! sender:  push under the inbox lock; notified = true;  if parked.swap(false) { ring }
//! core:    parked = true;  if notified { parked = false; do not park }  else park
//! ```
//!
//! `notified` and `parked` are each stored before the other is read, all
//! `SeqCst`, so at least one side sees the other's store: either the core
//! sees the work and stays up, or the sender sees the core parked and
//! rings. The swap makes the ring once per park, whoever wins it. The ring
//! is a `MSG_RING` posted from the sender's own ring when the sender is a
//! corering core that can (the runtime's hook, see [`set_ring_hook`]), and
//! a write to the core's eventfd (the doorbell, whose read the core keeps
//! in flight while parked) otherwise.
//!
//! The inbox holds keys, not references: a key that outlives its task is a
//! stale wake, as a driver token is (the key may by then name a newer task,
//! polled spuriously, or none, skipped). Nothing in the inbox keeps a task
//! or the core alive, and shutdown closes it, so a wake that arrives after
//! that pushes nothing.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use crate::sys::eventfd::EventFd;

/// Work sent to a core from elsewhere, run on that core's thread by its
/// runtime (a remote spawn builds and spawns its future there).
pub(crate) type Job = Box<dyn FnOnce() + Send>;

/// How a sender on a corering core wakes another core's ring: given the
/// target ring's descriptor, queues a `MSG_RING` on the sender's own ring
/// and returns true, or returns false (not on a core, or no `MSG_RING`),
/// and the eventfd is written instead. Set once by the runtime.
static RING_HOOK: OnceLock<fn(RawFd) -> bool> = OnceLock::new();

/// Installs the runtime's way to post a `MSG_RING` from the current core.
pub(crate) fn set_ring_hook(hook: fn(RawFd) -> bool) {
    let _ = RING_HOOK.set(hook);
}

/// What waits in a core's inbox.
#[derive(Default)]
struct Inbox {
    /// Keys of tasks woken from other threads.
    keys: Vec<usize>,
    /// Jobs sent to the core.
    jobs: Vec<Job>,
}

/// The cross-thread face of one core.
pub(crate) struct Remote {
    /// Keys of tasks woken from other threads, waiting to be moved to the
    /// run queue; `None` once the core has shut down. Bounded by the live
    /// tasks: a task's key is pushed once until its next poll (see
    /// `state::QUEUED_REMOTE`), and the core drains the inbox every tick.
    ///
    /// Jobs: one per remote spawn in flight to this core; the sender is
    /// the backpressure (a spawn is an allocation of its own anyway).
    inbox: Mutex<Option<Inbox>>,
    /// Set when the `block_on` future was woken.
    main_woken: AtomicBool,
    /// Set when something was pushed since the core last drained its inbox.
    notified: AtomicBool,
    /// Set by the core just before it parks, cleared by the first sender
    /// that sees it (and rings) or by the core when it wakes.
    parked: AtomicBool,
    /// The core's ring, for other cores' `MSG_RING`; -1 until the driver
    /// is built (the eventfd serves until then).
    ring_fd: AtomicI32,
    /// Rung by other threads to end the core's park.
    pub(crate) doorbell: EventFd,
}

impl Remote {
    pub(crate) fn new(doorbell: EventFd) -> Remote {
        Remote {
            inbox: Mutex::new(Some(Inbox::default())),
            main_woken: AtomicBool::new(true),
            notified: AtomicBool::new(false),
            parked: AtomicBool::new(false),
            ring_fd: AtomicI32::new(-1),
            doorbell,
        }
    }

    /// Hands the task with `key` to the core from another thread; does
    /// nothing when the core has shut down.
    pub(crate) fn push(&self, key: usize) {
        let mut inbox = self.lock_inbox();
        let Some(inbox_open) = inbox.as_mut() else {
            return;
        };
        inbox_open.keys.push(key);
        drop(inbox);
        self.ring();
    }

    /// Sends `job` to run on the core; hands it back when the core has
    /// shut down.
    pub(crate) fn send_job(&self, job: Job) -> Result<(), Job> {
        let mut inbox = self.lock_inbox();
        let Some(inbox_open) = inbox.as_mut() else {
            return Err(job);
        };
        inbox_open.jobs.push(job);
        drop(inbox);
        self.ring();
        Ok(())
    }

    /// Names the core's ring, so other cores can `MSG_RING` it.
    pub(crate) fn set_ring_fd(&self, fd: RawFd) {
        self.ring_fd.store(fd, Ordering::Release);
    }

    fn lock_inbox(&self) -> MutexGuard<'_, Option<Inbox>> {
        self.inbox
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// At shutdown: refuses later pushes and forgets what is queued (the
    /// jobs are dropped here, on the core's thread, outside the lock).
    pub(crate) fn close(&self) {
        let left = self.lock_inbox().take();
        drop(left);
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

    /// After a push: wakes the core if it is parked and nobody else has
    /// (see the module docs).
    fn ring(&self) {
        self.notified.store(true, Ordering::SeqCst);
        if !self.parked.load(Ordering::SeqCst) || !self.parked.swap(false, Ordering::SeqCst) {
            return;
        }
        let fd = self.ring_fd.load(Ordering::Acquire);
        let posted = fd >= 0 && RING_HOOK.get().is_some_and(|hook| hook(fd));
        if !posted {
            self.doorbell.notify();
        }
    }

    /// On the core, before it parks: publishes that it is parked unless
    /// work arrived; returns whether it may park.
    pub(crate) fn park(&self) -> bool {
        self.parked.store(true, Ordering::SeqCst);
        if self.notified.load(Ordering::SeqCst) || self.main_woken.load(Ordering::SeqCst) {
            self.parked.store(false, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// On the core, once the park is over.
    pub(crate) fn unpark(&self) {
        self.parked.store(false, Ordering::Relaxed);
    }

    /// Hands every queued key to `queue` and every job to `jobs`, in
    /// order. Clears `notified` first, so a push that lands after the
    /// drain is seen by the next one. `queue` runs under the inbox lock
    /// and must not call out; the jobs are moved out to run after it.
    pub(crate) fn drain(&self, mut queue: impl FnMut(usize), jobs: &mut Vec<Job>) {
        // A plain load first, as in `take_main_woken`.
        if !self.notified.load(Ordering::Acquire) || !self.notified.swap(false, Ordering::AcqRel) {
            return;
        }
        if let Some(inbox) = self.lock_inbox().as_mut() {
            inbox.keys.drain(..).for_each(&mut queue);
            jobs.append(&mut inbox.jobs);
        }
    }
}
