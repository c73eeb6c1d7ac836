//! The driver: one io_uring, the in-flight slot table, and the policy for
//! submitting, reaping and parking.
//!
//! # Policy
//!
//! - **Submit lazily**: an operation pushes its SQE on its first poll; the run
//!   loop enters the kernel once per tick to submit everything pushed and reap
//!   what completed.
//! - **SQ full**: submit what is queued and retry the push; an SQE is never
//!   dropped. Cancellations that do not fit wait in a queue that is flushed
//!   before every enter.
//! - **Cancellations name their target**: a cancellation's CQE carries the
//!   slot it was aimed at, so one that found nothing while the slot still
//!   waits (it raced its target's submission) is sent again next tick.
//! - **CQ overflow, `EBUSY`, `EAGAIN`**: reap, then enter again. `EINTR`: enter
//!   again. The CQ is twice the SQ, and the kernel keeps overflowed CQEs
//!   (`IORING_FEAT_NODROP`, required at setup), so nothing is lost.
//! - **Reap first, wake after**: CQEs are copied into slots in a batch. The
//!   keys of the core's own waiting tasks go onto the run queue (no code
//!   runs); other wakers are collected and woken after the driver is
//!   released.
//!   States of dropped futures freed by the reap are handed out the same way,
//!   so no user `Drop` runs while the driver is borrowed.

#[cfg(feature = "fault-injection")]
pub(crate) mod faults;
mod multishot;
mod op;
mod slot;
mod stats;
mod target;

use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::task::{Poll, Waker};
use std::time::Duration;

use io_uring::{cqueue, opcode, squeue, types, EnterFlags, IoUring};

pub(crate) use multishot::{MultiOp, MultishotOperation};
pub(crate) use op::{Op, Operation};
pub(crate) use slot::{Abandoned, Lifecycle, SlotId};
pub use stats::Stats;
pub(crate) use target::{with_target, Target};

use crate::executor::run_queue::RunQueue;
use crate::executor::task::{Waiter, WakeBy};
use crate::runtime::context::Gone;
use crate::sys::queues::Queues;
use crate::sys::ring::{self, RingFlags};
pub(crate) use slot::SLOTS_LIMIT;
use slot::{SlotTable, CANCEL_TAG, DOORBELL_TAG};

/// The panic message of an operation polled on a runtime other than the
/// one it was submitted on (its slot lives in the other ring).
const FOREIGN_POLL: &str = "an operation was polled on a runtime other than the one it started on";

/// A CQE copied out of the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Completion {
    /// The CQE's `res`: a count or descriptor when non-negative, `-errno`
    /// otherwise.
    pub(crate) result: i32,
    /// The CQE's flags (`IORING_CQE_F_MORE`, `F_BUFFER`, ...).
    pub(crate) flags: u32,
}

impl Completion {
    /// The result as an `io::Result`.
    pub(crate) fn into_result(self) -> io::Result<u32> {
        if self.result >= 0 {
            Ok(self.result as u32)
        } else {
            Err(io::Error::from_raw_os_error(-self.result))
        }
    }

    /// Whether more CQEs follow for the same operation.
    pub(crate) fn has_more(self) -> bool {
        cqueue::more(self.flags)
    }
}

/// How long [`Driver::enter`] may wait for a completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Submit and reap without waiting.
    No,
    /// Wait for at least one completion, at most the given time when one is
    /// given (the caller works it out from its own clock reading).
    For(Option<Duration>),
}

/// The sizes the driver is built with (see the runtime's `Config`).
pub(crate) struct DriverConfig {
    pub(crate) entries: u32,
    pub(crate) sqpoll_idle: Option<Duration>,
    pub(crate) slots_max: usize,
    pub(crate) direct_fds: u32,
    pub(crate) batch_wait: Option<(u32, Duration)>,
    /// Faults to inject (tests only).
    #[cfg(feature = "fault-injection")]
    pub(crate) faults: Option<faults::Faults>,
}

/// One core's ring and everything in flight on it.
pub(crate) struct Driver {
    ring: IoUring,
    /// The ring's SQ and CQ, read and written in place.
    queues: Queues,
    flags: RingFlags,
    slots: SlotTable,
    /// Slots whose futures were dropped and whose cancel SQE did not fit yet
    /// (a linked pair's head under its head id).
    cancels: VecDeque<SlotId>,
    /// Linked pairs abandoned while their kernel work runs: a cancellation
    /// of theirs that finds nothing may have raced the start of their
    /// second SQE and is sent again (see `cancel_done`). At most one entry
    /// per linked pair in flight.
    linked_abandoned: Vec<SlotId>,
    /// Results of linked pairs' heads that failed, by slot, until the pair's
    /// future takes them with the completion (the same CQE). Almost always
    /// empty.
    head_failures: Vec<(SlotId, i32)>,
    /// Whether the kernel honours `IOSQE_CQE_SKIP_SUCCESS` (5.17), which
    /// linked pairs need.
    skip_success: bool,
    /// Keys of the tasks whose operation completed in a reap outside
    /// [`enter`](Self::enter) (making room in a full SQ), for the run queue.
    parked: RunQueue,
    /// Other wakers of completed operations, woken after the driver is released.
    wakers: Vec<Waker>,
    /// Wakers of operations waiting for a free slot.
    slot_waiters: VecDeque<Waker>,
    /// Abandoned states whose final CQE arrived, dropped after the driver is released.
    graveyard: Vec<Box<dyn Abandoned>>,
    /// The eventfd other threads write to end a park; owned by the core's
    /// `Remote`, which outlives the driver.
    doorbell_fd: RawFd,
    /// Where the doorbell read lands; boxed so the address is stable.
    doorbell_buf: Box<u64>,
    doorbell_armed: bool,
    /// Buffer group ids handed out so far, in order (at most 65,536).
    buf_groups_issued: u32,
    /// Group ids given back by dropped `BufRing`s, reused first. At most
    /// 65,536 ids exist, so neither grows past that.
    buf_groups_free: Vec<u16>,
    /// Entries of the registered table of direct descriptors (0: none).
    direct_fds: u32,
    /// Entries taken or reserved by a direct accept in flight. Tracked here
    /// because a direct accept that finds the table full loses its
    /// connection in the kernel: none is submitted without an entry.
    direct_in_use: u32,
    /// How a park waits for a batch: (completions, µs after the first);
    /// `None` wakes on the first completion.
    batch_wait: Option<(u32, u32)>,
    /// The registered buffer table: `None` until a fixed-buffer pool first
    /// asks for it; then its free ranges (start, length).
    fixed_free: Option<Vec<(u32, u32)>>,
    /// Set at shutdown: the doorbell is no longer re-armed.
    shutting_down: bool,
    /// Set when the shutdown deadline passed and in-flight states were
    /// leaked to the kernel.
    leaked: bool,
    /// Injects faults (tests only; see the `faults` module).
    #[cfg(feature = "fault-injection")]
    injector: Option<faults::Injector>,
    stats: Stats,
}

/// Entries of the registered buffer table (the kernel's limit is 16,384).
const FIXED_TABLE: u32 = 1024;

impl Driver {
    /// Sets up the ring.
    pub(crate) fn new(config: &DriverConfig, doorbell_fd: RawFd) -> io::Result<Driver> {
        let (ring, flags) = ring::create(config.entries, config.sqpoll_idle)?;
        let skip_success = ring.params().is_feature_skip_cqe_on_success();
        let queues = Queues::new(&ring)?;
        // A sparse table the kernel fills on direct accepts. Kernels without
        // it (before 5.19) simply get none: direct accepts fall back.
        let registered = config.direct_fds > 0
            && ring
                .submitter()
                .register_files_sparse(config.direct_fds)
                .is_ok();
        let direct_fds = if registered { config.direct_fds } else { 0 };
        // The batch wait needs the kernel's minimum-wait timeout (6.12).
        let batch_wait = config
            .batch_wait
            .filter(|_| ring.params().is_feature_min_timeout())
            .map(|(count, delay)| {
                let micros = u32::try_from(delay.as_micros()).unwrap_or(u32::MAX).max(1);
                (count, micros)
            });
        Ok(Driver {
            ring,
            queues,
            flags,
            slots: SlotTable::new(config.slots_max),
            cancels: VecDeque::new(),
            linked_abandoned: Vec::new(),
            head_failures: Vec::new(),
            skip_success,
            parked: RunQueue::default(),
            wakers: Vec::new(),
            slot_waiters: VecDeque::new(),
            graveyard: Vec::new(),
            doorbell_fd,
            doorbell_buf: Box::new(0),
            doorbell_armed: false,
            buf_groups_issued: 0,
            buf_groups_free: Vec::new(),
            direct_fds,
            direct_in_use: 0,
            batch_wait,
            fixed_free: None,
            shutting_down: false,
            leaked: false,
            #[cfg(feature = "fault-injection")]
            injector: config.faults.map(faults::Injector::new),
            stats: Stats::default(),
        })
    }

    /// Reserves an entry of the direct descriptor table for an accept;
    /// false when the table is full or there is none.
    pub(crate) fn reserve_direct(&mut self) -> bool {
        let free = self.direct_in_use < self.direct_fds;
        if free {
            self.direct_in_use += 1;
        }
        free
    }

    /// An entry reserved or taken is free again (its accept failed, or its
    /// descriptor is being closed: a direct close completes inline, before
    /// any SQE pushed after it runs).
    pub(crate) fn release_direct(&mut self) {
        debug_assert!(self.direct_in_use > 0);
        self.direct_in_use = self.direct_in_use.saturating_sub(1);
    }

    /// A buffer group id not in use on this ring.
    ///
    /// # Errors
    ///
    /// `OutOfMemory` when all 65,536 ids are in use.
    pub(crate) fn take_buf_group(&mut self) -> io::Result<u16> {
        if let Some(bgid) = self.buf_groups_free.pop() {
            return Ok(bgid);
        }
        let bgid = u16::try_from(self.buf_groups_issued).map_err(|_| {
            io::Error::new(
                io::ErrorKind::OutOfMemory,
                "all 65,536 buffer group ids of this ring are in use",
            )
        })?;
        self.buf_groups_issued += 1;
        Ok(bgid)
    }

    /// A group id from [`take_buf_group`](Self::take_buf_group) is free
    /// again (its ring was unregistered, or never registered).
    pub(crate) fn give_back_buf_group(&mut self, bgid: u16) {
        debug_assert!(!self.buf_groups_free.contains(&bgid));
        self.buf_groups_free.push(bgid);
    }

    /// Registers a provided-buffer ring as group `bgid`.
    ///
    /// # Safety
    ///
    /// `ring_addr` is a page-aligned array of `entries` `io_uring_buf`
    /// entries that stays valid until [`unregister_buf_ring`](Self::unregister_buf_ring)
    /// or until the ring closes.
    pub(crate) unsafe fn register_buf_ring(
        &mut self,
        ring_addr: u64,
        entries: u16,
        bgid: u16,
    ) -> io::Result<()> {
        // SAFETY: forwarded from the caller.
        unsafe {
            self.ring
                .submitter()
                .register_buf_ring_with_flags(ring_addr, entries, bgid, 0)
        }
    }

    /// Unregisters buffer group `bgid`; the kernel no longer touches its ring.
    pub(crate) fn unregister_buf_ring(&mut self, bgid: u16) -> io::Result<()> {
        self.ring.submitter().unregister_buf_ring(bgid)
    }

    /// Registers `bufs` as fixed buffers in consecutive entries of the
    /// ring's buffer table (a sparse table, registered on first use);
    /// returns the first entry's index.
    ///
    /// # Errors
    ///
    /// `OutOfMemory` when the table has no run of free entries that long;
    /// as `io_uring_register(2)` otherwise (`ENOMEM` past `RLIMIT_MEMLOCK`).
    ///
    /// # Safety
    ///
    /// The memory `bufs` describe stays valid until
    /// [`unregister_fixed_bufs`](Self::unregister_fixed_bufs) or until the
    /// ring closes.
    pub(crate) unsafe fn register_fixed_bufs(&mut self, bufs: &[libc::iovec]) -> io::Result<u32> {
        let count = u32::try_from(bufs.len()).unwrap_or(u32::MAX);
        if self.fixed_free.is_none() {
            self.ring.submitter().register_buffers_sparse(FIXED_TABLE)?;
            self.fixed_free = Some(vec![(0, FIXED_TABLE)]);
        }
        let free = self.fixed_free.as_mut().expect("registered above");
        let Some(run) = free.iter().position(|&(_, len)| len >= count) else {
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                format!(
                    "no {count} free entries in the ring's table of {FIXED_TABLE} fixed buffers"
                ),
            ));
        };
        let start = free[run].0;
        // SAFETY: forwarded from the caller; the entries are free.
        unsafe {
            self.ring
                .submitter()
                .register_buffers_update(start, bufs, None)?
        };
        free[run] = (start + count, free[run].1 - count);
        if free[run].1 == 0 {
            free.remove(run);
        }
        Ok(start)
    }

    /// Empties entries `start..start + count` of the buffer table, taken by
    /// [`register_fixed_bufs`](Self::register_fixed_bufs).
    pub(crate) fn unregister_fixed_bufs(&mut self, start: u32, count: u32) -> io::Result<()> {
        let empty = vec![
            libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            };
            count as usize
        ];
        // SAFETY: empty entries point at no memory.
        unsafe {
            self.ring
                .submitter()
                .register_buffers_update(start, &empty, None)?
        };
        if let Some(free) = &mut self.fixed_free {
            free.push((start, count));
            free.sort_unstable();
            // Merge neighbouring runs.
            let mut merged: Vec<(u32, u32)> = Vec::with_capacity(free.len());
            for &(start, len) in free.iter() {
                match merged.last_mut() {
                    Some(last) if last.0 + last.1 == start => last.1 += len,
                    _ => merged.push((start, len)),
                }
            }
            *free = merged;
        }
        Ok(())
    }

    /// The flags the ring was set up with.
    pub(crate) fn flags(&self) -> RingFlags {
        self.flags
    }

    /// The counters, with `in_flight` and `slots_in_use` filled in.
    pub(crate) fn stats(&self) -> Stats {
        Stats {
            in_flight: self.stats.submitted
                - self.stats.completed
                - self.stats.cancelled
                - self.stats.abandoned,
            slots_in_use: self.slots.len() as u64,
            #[cfg(feature = "fault-injection")]
            faults_injected: self
                .injector
                .as_ref()
                .map_or(0, |injector| injector.injected),
            ..self.stats
        }
    }

    /// Whether a push would find every slot in use; if so, `waker` is woken
    /// after the next reap that leaves a slot free.
    #[inline]
    pub(crate) fn wait_for_slot(&mut self, waker: &Waker) -> bool {
        if self.slots.is_full() {
            self.slot_waiters.push_back(waker.clone());
            true
        } else {
            false
        }
    }

    /// Claims a slot in `lifecycle` and pushes `sqe` with its `user_data`.
    ///
    /// # Safety
    ///
    /// Every buffer and pointer `sqe` refers to must stay valid until the
    /// slot's final CQE: owned by the operation state that stays in the slot
    /// (heap memory, not moved with its owner) or `'static`.
    #[inline]
    pub(crate) unsafe fn push(&mut self, mut sqe: squeue::Entry, lifecycle: Lifecycle) -> SlotId {
        let id = self.slots.claim(lifecycle);
        sqe.set_user_data(id.user_data());
        // SAFETY: forwarded from the caller.
        unsafe { self.push_sqe(&sqe) };
        self.stats.submitted += 1;
        id
    }

    /// Claims a slot for a single-shot operation awaited by `waker` and
    /// pushes the SQE `build` returns, with the slot's `user_data`.
    ///
    /// # Safety
    ///
    /// As for [`push`](Self::push).
    #[inline]
    pub(crate) unsafe fn push_submitted(
        &mut self,
        build: impl FnOnce() -> squeue::Entry,
        waker: WakeBy<'_>,
    ) -> SlotId {
        let id = self.slots.claim_submitted(waker);
        self.stats.submitted += 1;
        #[cfg(feature = "fault-injection")]
        if self.injector.is_some() {
            let mut sqe = build().user_data(id.user_data());
            if !self.inject(&mut sqe, id, false) {
                // SAFETY: forwarded from the caller.
                unsafe { self.push_sqe(&sqe) };
            }
            return id;
        }
        self.make_room();
        // SAFETY: there is room; the rest is forwarded from the caller. The
        // SQE is built straight into the ring.
        unsafe { self.queues.push_with(|| build().user_data(id.user_data())) };
        id
    }

    /// An operation whose completion was a transient failure is being
    /// submitted again.
    pub(crate) fn note_retry(&mut self) {
        self.stats.retries += 1;
    }

    /// Whether [`push_linked`](Self::push_linked) is available.
    pub(crate) fn can_link(&self) -> bool {
        self.skip_success
    }

    /// Claims a slot for a linked pair awaited by `waker` and pushes its two
    /// SQEs back to back: `head`, linked to `main`, then `main`. The pair
    /// posts exactly one CQE, which completes the slot: `main`'s once `head`
    /// succeeded (`IOSQE_CQE_SKIP_SUCCESS` drops `head`'s), or `head`'s when
    /// it failed (`main` is then cancelled before it starts, and a failed
    /// skip-success request silences the CQEs of the rest of its link). The
    /// head's failure is noted for [`take_head_failure`](Self::take_head_failure).
    ///
    /// # Safety
    ///
    /// As for [`push`](Self::push), for both SQEs; [`can_link`](Self::can_link)
    /// said yes.
    #[inline]
    pub(crate) unsafe fn push_linked(
        &mut self,
        head: squeue::Entry,
        main: squeue::Entry,
        waker: WakeBy<'_>,
    ) -> SlotId {
        debug_assert!(self.skip_success);
        let id = self.slots.claim_submitted(waker);
        #[cfg(feature = "fault-injection")]
        let mut head = head;
        #[cfg(feature = "fault-injection")]
        if self.inject(&mut head, id.head(), true) {
            // The head fails, so the pair posts its CQE alone.
            self.stats.submitted += 1;
            return id;
        }
        // Both in one submission: a link does not span two.
        while self.no_room(2) {
            self.stats.sq_full += 1;
            self.submit_when_full();
        }
        let flags = squeue::Flags::IO_LINK | squeue::Flags::SKIP_SUCCESS;
        // SAFETY: there is room for both; the rest is forwarded from the
        // caller.
        unsafe {
            self.queues
                .push_with(|| head.flags(flags).user_data(id.head().user_data()));
            self.queues.push_with(|| main.user_data(id.user_data()));
        }
        self.stats.submitted += 1;
        id
    }

    /// The result of the failed head of the linked pair in slot `id`, if it
    /// failed; called once the pair completed.
    #[inline]
    pub(crate) fn take_head_failure(&mut self, id: SlotId) -> Option<i32> {
        if self.head_failures.is_empty() {
            return None;
        }
        let at = self
            .head_failures
            .iter()
            .position(|&(slot, _)| slot == id)?;
        Some(self.head_failures.swap_remove(at).1)
    }

    /// Pushes one SQE, submitting what is queued until it fits.
    ///
    /// # Safety
    ///
    /// As for [`push`](Self::push).
    #[inline]
    unsafe fn push_sqe(&mut self, sqe: &squeue::Entry) {
        self.make_room();
        // SAFETY: there is room; the rest is forwarded from the caller.
        unsafe { self.queues.push_with(|| sqe.clone()) };
    }

    /// Submits what is queued until the SQ has room for one more entry.
    #[inline]
    fn make_room(&mut self) {
        while self.no_room(1) {
            self.stats.sq_full += 1;
            self.submit_when_full();
        }
    }

    /// Lets the injector cut `sqe` or fail it; true when it is not to be
    /// pushed (its failure is then posted under `id`).
    #[cfg(feature = "fault-injection")]
    fn inject(&mut self, sqe: &mut squeue::Entry, id: SlotId, head: bool) -> bool {
        let Some(injector) = &mut self.injector else {
            return false;
        };
        let Some(errno) = injector.before_push(sqe, head) else {
            return false;
        };
        injector.fail(id.user_data(), errno);
        true
    }

    /// Whether the SQ lacks room for `entries` more entries.
    #[inline]
    fn no_room(&mut self, entries: u32) -> bool {
        #[cfg(feature = "fault-injection")]
        if let Some(injector) = &mut self.injector {
            if injector.sq_full() {
                return true;
            }
        }
        !self.queues.sq_has_room(entries)
    }

    /// Makes room in a full SQ.
    fn submit_when_full(&mut self) {
        if self.flags.sqpoll {
            // The poller consumes SQEs on its own; wait until it has.
            self.queues.publish();
            match self.ring.submit() {
                Ok(_) => {
                    let _ = self.ring.submitter().squeue_wait();
                }
                Err(error) => self.recover(error, "submit (SQ full)"),
            }
            return;
        }
        // No reap here: CQEs that do not fit the CQ are kept by the kernel
        // (NODROP) and reaped at the end of the tick.
        if let Err(error) = self.enter_raw(0, None) {
            self.recover(error, "submit (SQ full)");
        }
    }

    /// Handles an error from `io_uring_enter` that the policy allows.
    fn recover(&mut self, error: io::Error, what: &str) {
        match error.raw_os_error() {
            Some(libc::EINTR) | Some(libc::ETIME) => {}
            // The kernel is short of completion space or memory for now.
            Some(libc::EBUSY) | Some(libc::EAGAIN) | Some(libc::ENOMEM) => {
                self.stats.enter_busy += 1;
                let parked = std::mem::take(&mut self.parked);
                self.reap(&parked);
                self.parked = parked;
            }
            // EBADF, EFAULT, EINVAL: the ring itself is broken; no retry
            // can help and no operation could complete.
            _ => panic!("io_uring_enter failed during {what}: {error}"),
        }
    }

    /// Takes a slot's completion if it arrived; otherwise stores `waker`.
    #[inline]
    pub(crate) fn poll_completion(&mut self, id: SlotId, waker: WakeBy<'_>) -> Poll<Completion> {
        let lifecycle = self
            .slots
            .get_mut(id)
            .expect("an operation's slot lives until it takes its completion");
        match lifecycle {
            Lifecycle::Completed(completion) => {
                let completion = *completion;
                // A completed slot holds nothing to drop.
                std::mem::forget(self.slots.free(id));
                self.stats.completed += 1;
                Poll::Ready(completion)
            }
            Lifecycle::Submitted(stored) => {
                waker.store(stored);
                Poll::Pending
            }
            Lifecycle::Streaming(_) | Lifecycle::Abandoned(_) | Lifecycle::Detached => {
                unreachable!("single-shot poll on a slot no future owns")
            }
        }
    }

    /// Takes the next CQE of a multishot slot. `Ready(None)` once the final
    /// CQE has been taken (the slot is then free).
    pub(crate) fn poll_stream(
        &mut self,
        id: SlotId,
        waker: WakeBy<'_>,
    ) -> Poll<Option<Completion>> {
        let Some(Lifecycle::Streaming(stream)) = self.slots.get_mut(id) else {
            unreachable!("stream poll on a slot that is not streaming")
        };
        if let Some(completion) = stream.completions.pop_front() {
            if !completion.has_more() {
                debug_assert!(stream.finished && stream.completions.is_empty());
                self.slots.free(id);
                self.stats.completed += 1;
            }
            return Poll::Ready(Some(completion));
        }
        waker.store(&mut stream.waker);
        Poll::Pending
    }

    /// The future of slot `id` was dropped: keep `state` until the final CQE
    /// and ask the kernel to cancel the operation (both SQEs of a `linked`
    /// pair).
    pub(crate) fn abandon(&mut self, id: SlotId, mut state: Box<dyn Abandoned>, linked: bool) {
        if linked {
            let _ = self.take_head_failure(id);
            if let Some(Lifecycle::Submitted(_)) = self.slots.get_mut(id) {
                // While the head runs the second SQE has not started and no
                // cancel finds it: cancel the head, which fails the link.
                self.queue_cancel(id.head());
                self.linked_abandoned.push(id);
            }
        }
        let Some(lifecycle) = self.slots.get_mut(id) else {
            // Freed at shutdown after its final CQE (its future had been
            // moved out of the runtime), or leaked past the deadline.
            if self.leaked {
                std::mem::forget(state);
            } else {
                self.graveyard.push(state);
            }
            return;
        };
        match lifecycle {
            Lifecycle::Completed(completion) => {
                // Done already: the result was never taken.
                state.late_completion(*completion);
                self.slots.free(id);
                self.graveyard.push(state);
                self.stats.cancelled += 1;
            }
            Lifecycle::Streaming(stream) => {
                for completion in stream.completions.drain(..) {
                    state.late_completion(completion);
                }
                if stream.finished {
                    self.slots.free(id);
                    self.graveyard.push(state);
                    self.stats.cancelled += 1;
                } else {
                    *lifecycle = Lifecycle::Abandoned(state);
                    self.queue_cancel(id);
                }
            }
            Lifecycle::Submitted(_) => {
                *lifecycle = Lifecycle::Abandoned(state);
                self.queue_cancel(id);
            }
            Lifecycle::Abandoned(_) | Lifecycle::Detached => {
                unreachable!("abandoning a slot no future owns")
            }
        }
    }

    fn queue_cancel(&mut self, id: SlotId) {
        self.stats.cancel_requests += 1;
        self.cancels.push_back(id);
        self.flush_cancels();
    }

    /// Pushes queued cancellations while the SQ has room.
    fn flush_cancels(&mut self) {
        while let Some(&id) = self.cancels.front() {
            if self.slots.get_mut(id).is_none() {
                // Completed while the cancel waited for room.
                self.cancels.pop_front();
                continue;
            }
            let sqe = opcode::AsyncCancel::new(id.user_data())
                .build()
                .user_data(id.cancel().user_data());
            if self.no_room(1) {
                return;
            }
            // SAFETY: there is room, and a cancel SQE refers to no memory.
            unsafe { self.queues.push_with(|| sqe) };
            self.cancels.pop_front();
        }
    }

    /// Submits what is queued and reaps, waiting as `wait` says; the tasks
    /// whose operations completed go on `run_queue`.
    pub(crate) fn enter(&mut self, wait: Wait, run_queue: &RunQueue) {
        self.flush_cancels();
        // The kernel posts nothing for completions held back or made up by
        // the injector: do not park waiting for them.
        #[cfg(feature = "fault-injection")]
        let wait = match &self.injector {
            Some(injector) if injector.holds() => Wait::No,
            _ => wait,
        };
        let result = match wait {
            Wait::No => self.enter_raw(0, None),
            Wait::For(timeout) => {
                self.arm_doorbell();
                self.enter_raw(1, timeout)
            }
        };
        if let Err(error) = result {
            self.recover(error, "enter");
        }
        self.reap(run_queue);
        // Room freed by the reap takes the cancellations that did not fit.
        self.flush_cancels();
    }

    /// One `io_uring_enter` that submits everything queued, runs deferred
    /// completion work and waits for `want` CQEs, at most `timeout`. With a
    /// batch wait configured, a wait for one waits for the batch instead
    /// (bounded by the operations in flight), returning at the latest the
    /// batch delay after the first CQE.
    fn enter_raw(&mut self, want: u32, timeout: Option<Duration>) -> io::Result<usize> {
        #[cfg(feature = "fault-injection")]
        if let Some(errno) = self
            .injector
            .as_mut()
            .and_then(faults::Injector::enter_busy)
        {
            return Err(io::Error::from_raw_os_error(errno));
        }
        self.queues.publish();
        // With SQPOLL the poller submits; enter only to wait or to flush
        // overflow.
        let to_submit = self.queues.sq_len();
        let mut flags = EnterFlags::GETEVENTS;
        if self.flags.sqpoll && self.queues.need_wakeup() {
            flags |= EnterFlags::SQ_WAKEUP;
        }
        let batch = self
            .batch_wait
            .filter(|_| want == 1)
            .map(|(count, micros)| {
                let in_flight = self.stats().in_flight;
                (
                    count
                        .min(u32::try_from(in_flight).unwrap_or(u32::MAX))
                        .max(1),
                    micros,
                )
            });
        match (timeout, batch) {
            (None, None) => {
                // SAFETY: no argument pointer is passed.
                unsafe {
                    self.ring.submitter().enter::<libc::sigset_t>(
                        to_submit,
                        want,
                        flags.bits(),
                        None,
                    )
                }
            }
            (Some(timeout), None) => {
                let timespec = types::Timespec::from(timeout);
                let args = types::SubmitArgs::new().timespec(&timespec);
                self.ring.submitter().submit_with_args(want as usize, &args)
            }
            (timeout, Some((want, micros))) => {
                let args = types::SubmitArgs::new().min_wait_usec(micros);
                match timeout {
                    Some(timeout) => {
                        let timespec = types::Timespec::from(timeout);
                        let args = args.timespec(&timespec);
                        self.ring.submitter().submit_with_args(want as usize, &args)
                    }
                    None => self.ring.submitter().submit_with_args(want as usize, &args),
                }
            }
        }
    }

    /// Keeps one read of the doorbell eventfd in flight while parked, so a
    /// write from another thread ends the park.
    fn arm_doorbell(&mut self) {
        if self.doorbell_armed || self.shutting_down {
            return;
        }
        let sqe = opcode::Read::new(
            types::Fd(self.doorbell_fd),
            (&mut *self.doorbell_buf as *mut u64).cast(),
            8,
        )
        .build()
        .user_data(DOORBELL_TAG);
        // SAFETY: `doorbell_buf` is boxed and owned by the driver, which
        // drains this read (`doorbell_armed`) before the ring closes.
        unsafe { self.push_sqe(&sqe) };
        self.doorbell_armed = true;
    }

    /// Delivers every CQE in the ring to its slot.
    fn reap(&mut self, run_queue: &RunQueue) -> usize {
        if self.queues.cq_overflow() {
            self.stats.cq_overflows += 1;
        }
        let cq = self.queues.cq();
        // SAFETY: the queues live as long as the driver, and dispatching
        // does not reap.
        let reaped = unsafe {
            cq.reap(|user_data, result, flags| {
                let completion = Completion { result, flags };
                #[cfg(feature = "fault-injection")]
                if let Some(injector) = &mut self.injector {
                    let ours = user_data == CANCEL_TAG || user_data == DOORBELL_TAG;
                    if !ours && injector.hold_reaped(user_data, completion) {
                        return;
                    }
                }
                self.dispatch(run_queue, user_data, completion)
            })
        };
        #[cfg(feature = "fault-injection")]
        if let Some(injector) = &mut self.injector {
            let mut due = Vec::new();
            injector.due(&mut due);
            for (user_data, completion) in due {
                self.dispatch(run_queue, user_data, completion);
            }
        }
        reaped
    }

    /// Delivers one CQE to its slot.
    #[inline]
    fn dispatch(&mut self, run_queue: &RunQueue, user_data: u64, completion: Completion) {
        match user_data {
            CANCEL_TAG => return,
            DOORBELL_TAG => {
                self.doorbell_armed = false;
                return;
            }
            _ => {}
        }
        let mut id = SlotId::from_user_data(user_data);
        if id.is_cancel() {
            return self.cancel_done(id.cancelled(), completion.result);
        }
        if id.is_head() {
            // A linked pair's head failed; its CQE is the pair's last.
            id = id.slot();
            self.head_failed(id, completion);
        }
        let Some(lifecycle) = self.slots.get_mut(id) else {
            self.stats.stale_completions += 1;
            debug_assert!(false, "CQE for stale slot {id:?}: {completion:?}");
            return;
        };
        match lifecycle {
            Lifecycle::Submitted(waiter) => {
                debug_assert!(!completion.has_more(), "single-shot op posted F_MORE");
                match waiter.take() {
                    Some(Waiter::Task(key)) => run_queue.push(key),
                    Some(Waiter::Waker(waker)) => self.wakers.push(waker),
                    None => {}
                }
                // The old value is `Submitted(None)` and owns nothing; skip
                // its drop glue on this hot path.
                std::mem::forget(std::mem::replace(
                    lifecycle,
                    Lifecycle::Completed(completion),
                ));
            }
            Lifecycle::Streaming(stream) => {
                stream.finished = !completion.has_more();
                stream.completions.push_back(completion);
                match stream.waker.take() {
                    Some(Waiter::Task(key)) => run_queue.push(key),
                    Some(Waiter::Waker(waker)) => self.wakers.push(waker),
                    None => {}
                }
            }
            Lifecycle::Abandoned(state) => {
                state.late_completion(completion);
                if !completion.has_more() {
                    if !self.linked_abandoned.is_empty() {
                        self.linked_abandoned.retain(|&linked| linked != id);
                    }
                    let Lifecycle::Abandoned(state) = self.slots.free(id) else {
                        unreachable!()
                    };
                    self.graveyard.push(state);
                    self.stats.cancelled += 1;
                }
            }
            Lifecycle::Detached => {
                if !completion.has_more() {
                    self.slots.free(id);
                    self.stats.completed += 1;
                }
            }
            Lifecycle::Completed(_) => {
                debug_assert!(false, "second CQE for completed slot {id:?}");
                self.stats.stale_completions += 1;
            }
        }
    }

    /// A cancellation aimed at `target` completed with `result`. One that
    /// found nothing (`ENOENT`) while its slot still waits for the kernel
    /// raced the submission of its target: sent in the same batch as a
    /// linked pair, it ran before the pair's second SQE had started (it
    /// starts only once the head completes). It is sent again, at the
    /// slot's second SQE, in the next submission, until it lands or the
    /// slot completes. Each miss sends one retry, so retries never pile up;
    /// only linked pairs (and, at shutdown, every slot still waiting) are
    /// retried, so nothing spins on a miss that only means "done". `EALREADY` (the target is running and will end
    /// soon) and success need nothing more.
    #[cold]
    fn cancel_done(&mut self, target: SlotId, result: i32) {
        // A missed head needs nothing: the cancellation of the second SQE
        // went out with it and is retried on its own miss.
        if result != -libc::ENOENT || target.is_head() {
            return;
        }
        let shutting_down = self.shutting_down;
        let linked = self.linked_abandoned.contains(&target);
        let waiting = match self.slots.get_mut(target) {
            // Only a linked pair's second SQE can start after its
            // cancellation ran; any other miss means the operation is done
            // and its CQE is on its way (or, for a zero-copy send, only its
            // notification is left, which no cancellation shortens).
            Some(Lifecycle::Abandoned(_)) => linked,
            // At shutdown the futures are gone or moved out: every slot
            // still waiting is being cancelled.
            Some(Lifecycle::Submitted(_)) => shutting_down,
            Some(Lifecycle::Streaming(stream)) => shutting_down && !stream.finished,
            _ => false,
        };
        if waiting {
            self.stats.cancel_retries += 1;
            // Pushed by the flush at the end of this enter, so it goes out
            // in the next submission, after the one that missed.
            self.cancels.push_back(target);
        }
    }

    /// Notes the failure of a linked pair's head, for the future that
    /// awaits the pair (none once it is abandoned).
    #[cold]
    fn head_failed(&mut self, id: SlotId, completion: Completion) {
        if let Some(Lifecycle::Submitted(_)) = self.slots.get_mut(id) {
            self.head_failures.push((id, completion.result));
        }
    }

    /// Queues the tasks reaped outside [`enter`](Self::enter), and moves out
    /// the other wakers and the states to drop, so the caller can run them
    /// after releasing the driver.
    #[inline]
    pub(crate) fn take_ready(
        &mut self,
        run_queue: &RunQueue,
        wakers: &mut Vec<Waker>,
        graveyard: &mut Vec<Box<dyn Abandoned>>,
    ) {
        if !self.parked.is_empty() {
            run_queue.append(&self.parked);
        }
        wakers.append(&mut self.wakers);
        graveyard.append(&mut self.graveyard);
        // Every waiter retries once there is room: waking only some could
        // strand the rest behind a waiter whose task has since gone.
        if !self.slot_waiters.is_empty() && !self.slots.is_full() {
            wakers.extend(self.slot_waiters.drain(..));
        }
    }

    /// Closes `fd` through the ring with no future waiting on it. Returns
    /// false when every slot is in use; the caller retries later.
    pub(crate) fn push_close(&mut self, target: Target) -> bool {
        if self.slots.is_full() {
            return false;
        }
        let sqe = with_target!(target, |t| opcode::Close::new(t).build());
        if let Target::Fixed(_) = target {
            self.release_direct();
        }
        // SAFETY: a close SQE refers to no memory.
        unsafe { self.push(sqe, Lifecycle::Detached) };
        true
    }

    /// Whether the shutdown left states to the kernel
    /// ([`leak_in_flight`](Self::leak_in_flight)).
    pub(crate) fn leaked(&self) -> bool {
        self.leaked
    }

    /// Whether anything is still in flight, the doorbell read included.
    pub(crate) fn is_idle(&self) -> bool {
        self.slots.len() == 0 && !self.doorbell_armed
    }

    /// At shutdown, once the tasks are gone: asks the kernel to cancel every
    /// operation still waiting for its kernel work, including those whose
    /// futures were moved out of the runtime.
    pub(crate) fn cancel_all(&mut self) {
        self.cancel_doorbell();
        let waiting = self.slots.ids_where(|lifecycle| match lifecycle {
            Lifecycle::Submitted(_) => true,
            Lifecycle::Streaming(stream) => !stream.finished,
            _ => false,
        });
        for id in waiting {
            self.queue_cancel(id);
            // The slot may hold a linked pair whose head still runs (its
            // second SQE cannot be cancelled until it starts); for any other
            // slot this cancel finds nothing.
            self.queue_cancel(id.head());
        }
    }

    /// At shutdown: frees the slots whose kernel work is done but whose
    /// result no future is left to take (futures moved out of the runtime),
    /// counting them cancelled.
    pub(crate) fn release_untaken(&mut self) {
        let done = self.slots.ids_where(|lifecycle| match lifecycle {
            Lifecycle::Completed(_) => true,
            Lifecycle::Streaming(stream) => stream.finished,
            _ => false,
        });
        for id in done {
            self.slots.free(id);
            self.stats.cancelled += 1;
        }
    }

    /// At shutdown: cancels the doorbell read and stops re-arming it.
    fn cancel_doorbell(&mut self) {
        self.shutting_down = true;
        if self.doorbell_armed {
            let sqe = opcode::AsyncCancel::new(DOORBELL_TAG)
                .build()
                .user_data(CANCEL_TAG);
            // SAFETY: a cancel SQE refers to no memory.
            unsafe { self.push_sqe(&sqe) };
        }
    }

    /// Past the shutdown deadline: leaks every state still in flight, since
    /// the kernel may yet write into it, and counts them as abandoned.
    pub(crate) fn leak_in_flight(&mut self) {
        self.leaked = true;
        self.linked_abandoned.clear();
        let leaked = self.slots.leak_all() as u64;
        self.stats.abandoned += leaked;
        if self.doorbell_armed {
            // The kernel may still write into the doorbell buffer.
            std::mem::forget(std::mem::replace(&mut self.doorbell_buf, Box::new(0)));
        }
    }
}

/// Hands the state of a future dropped in flight to its slot on its own
/// core, `owner`, wherever the future is dropped: on that core, inside
/// another runtime of the thread or outside any (the state then waits in
/// the slot for the owner's next tick or shutdown). When the owner has shut
/// down, its kernel work is over and the state is freed, unless that
/// shutdown leaked its in-flight states; then this one leaks too.
pub(crate) fn abandon(owner: u64, id: SlotId, state: Box<dyn Abandoned>, linked: bool) {
    let mut state = Some(state);
    let gone = crate::runtime::context::with_owner(owner, |core| {
        let state = state.take().expect("taken once");
        core.driver.borrow_mut().abandon(id, state, linked);
    });
    if let (Err(Gone::Leaked), Some(state)) = (gone, state) {
        std::mem::forget(state);
    }
}
