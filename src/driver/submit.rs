//! Submission: pushing SQEs, the queue of those that find the SQ full, and
//! entering the kernel.
//!
//! # Queue, don't recurse
//!
//! A push that finds the SQ full (or finds SQEs already waiting) appends
//! its SQE to a FIFO, `waiting`, and returns: nothing enters the kernel
//! from inside a push, and nothing is dropped. [`enter`](Driver::enter)
//! flushes the FIFO into the SQ ahead of anything pushed later, submitting
//! and reaping without waiting as often as it takes to drain it, and only
//! then makes the tick's own call (which may park). A linked pair waits as
//! one entry and goes into the SQ only when both of its SQEs fit, so a
//! link never straddles two submissions. A cancellation waits behind the
//! SQE it cancels, so it can never run before it.
//!
//! The FIFO holds at most one entry per claimed slot plus, per slot, its
//! pending cancellations (at most two: the slot's and its head's), so the
//! slot table's capacity bounds it.
//!
//! # Errors from `io_uring_enter`
//!
//! `EINTR`, `ETIME`: nothing to do (the caller's loop comes back).
//! `EBUSY`, `EAGAIN`, `ENOMEM`: the kernel is short of completion space
//! or memory; reap, which makes room, and go on. Anything else (`EBADF`,
//! `EFAULT`, `EINVAL`) means the ring itself is broken: no retry can help
//! and no operation could complete, so it panics with the call named.

use std::io;
use std::time::Duration;

use io_uring::{opcode, squeue, types, EnterFlags};

use super::slot::SlotId;
use super::wake::{SlotTicket, Tokens, Wake};
use super::{with_target, Driver, Lifecycle, Target, Wait};

/// What waits in the FIFO for room in the SQ.
pub(super) enum Queued {
    /// One SQE, its `user_data` set.
    One(squeue::Entry),
    /// A linked pair's head and second SQE, which go in together.
    Pair((squeue::Entry, squeue::Entry)),
    /// The cancellation of the SQE with this id, built when it goes in (and
    /// dropped if its target completed meanwhile).
    Cancel(SlotId),
}

impl Queued {
    fn entries(&self) -> u32 {
        match self {
            Queued::Pair(_) => 2,
            Queued::One(_) | Queued::Cancel(_) => 1,
        }
    }
}

impl Driver {
    /// Whether a push would find every slot in use; if so, `wake` is
    /// stored (once per `ticket`) to be woken after the next reap that
    /// leaves a slot free.
    #[inline]
    pub(crate) fn wait_for_slot<T: Tokens + ?Sized>(
        &mut self,
        wake: Wake<'_, T>,
        ticket: &mut SlotTicket,
    ) -> bool {
        if self.slots.is_full() {
            self.slot_waiters.wait(wake, ticket);
            true
        } else {
            false
        }
    }

    /// Claims a slot in `lifecycle` and pushes `sqe` with its `user_data`.
    /// The caller checked that a slot is free ([`wait_for_slot`](Self::wait_for_slot)).
    ///
    /// # Safety
    ///
    /// Every buffer and pointer `sqe` refers to must stay valid until the
    /// slot's final CQE: owned by the operation state that stays in the slot
    /// (heap memory, not moved with its owner) or `'static`.
    #[inline]
    pub(crate) unsafe fn push(&mut self, mut sqe: squeue::Entry, lifecycle: Lifecycle) -> SlotId {
        let id = self.slots.claim(lifecycle);
        sqe = sqe.user_data(id.user_data());
        // SAFETY: forwarded from the caller.
        unsafe { self.push_entry(sqe) };
        self.stats.submitted += 1;
        id
    }

    /// Claims a slot for a single-shot operation awaited by `wake` and
    /// pushes the SQE `build` returns, with the slot's `user_data`. The
    /// caller checked that a slot is free.
    ///
    /// # Safety
    ///
    /// As for [`push`](Self::push).
    #[inline]
    pub(crate) unsafe fn push_submitted<T: Tokens + ?Sized>(
        &mut self,
        build: impl FnOnce() -> squeue::Entry,
        wake: Wake<'_, T>,
    ) -> SlotId {
        let id = self.slots.claim_submitted(wake);
        self.stats.submitted += 1;
        let build = move || build().user_data(id.user_data());
        #[cfg(feature = "fault-injection")]
        if self.injector.is_some() {
            let mut sqe = build();
            if !self.inject(&mut sqe, id, false) {
                // SAFETY: forwarded from the caller.
                unsafe { self.push_entry(sqe) };
            }
            return id;
        }
        if !self.waiting.is_empty() {
            self.wait_for_room(Queued::One(build()));
            return id;
        }
        // SAFETY: forwarded from the caller. The SQE is built straight
        // into the ring when there is room.
        if let Err(build) = unsafe { self.queues.try_push_with(build) } {
            self.wait_for_room(Queued::One(build()));
        }
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

    /// Claims a slot for a linked pair awaited by `wake` and pushes its two
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
    pub(crate) unsafe fn push_linked<T: Tokens + ?Sized>(
        &mut self,
        head: squeue::Entry,
        main: squeue::Entry,
        wake: Wake<'_, T>,
    ) -> SlotId {
        debug_assert!(self.skip_success);
        let id = self.slots.claim_submitted(wake);
        self.stats.submitted += 1;
        #[cfg(feature = "fault-injection")]
        let mut head = head;
        #[cfg(feature = "fault-injection")]
        if self.inject(&mut head, id.head(), true) {
            // The head fails, so the pair posts its CQE alone.
            return id;
        }
        let flags = squeue::Flags::IO_LINK | squeue::Flags::SKIP_SUCCESS;
        let head = head.flags(flags).user_data(id.head().user_data());
        let main = main.user_data(id.user_data());
        let pair = (head, main);
        let queue = !self.waiting.is_empty() || self.injected_full();
        // SAFETY: forwarded from the caller.
        if queue || !unsafe { self.queues.try_push_pair(&pair) } {
            self.wait_for_room(Queued::Pair(pair));
        }
        id
    }

    /// Closes `target` through the ring with no future waiting on it.
    /// Returns false when every slot is in use; the caller retries later.
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

    /// Pushes one SQE whose `user_data` is set, into the SQ when nothing
    /// waits and there is room, into the FIFO otherwise.
    ///
    /// # Safety
    ///
    /// As for [`push`](Self::push).
    #[inline]
    pub(super) unsafe fn push_entry(&mut self, sqe: squeue::Entry) {
        if !self.waiting.is_empty() || self.injected_full() {
            return self.wait_for_room(Queued::One(sqe));
        }
        // SAFETY: forwarded from the caller.
        if let Err(build) = unsafe { self.queues.try_push_with(move || sqe) } {
            self.wait_for_room(Queued::One(build()));
        }
    }

    #[cold]
    fn wait_for_room(&mut self, queued: Queued) {
        self.stats.sq_full += 1;
        self.waiting.push_back(queued);
    }

    /// Asks the kernel to cancel the SQE `id` names (a slot's, or a linked
    /// pair's head).
    pub(super) fn queue_cancel(&mut self, id: SlotId) {
        self.stats.cancel_requests += 1;
        self.retry_cancel(id);
    }

    /// Queues the cancellation of `id` behind everything pushed so far.
    pub(super) fn retry_cancel(&mut self, id: SlotId) {
        if self.waiting.is_empty() && !self.injected_full() {
            let sqe = cancel_sqe(id);
            // SAFETY: a cancel SQE refers to no memory.
            if unsafe { self.queues.try_push_with(move || sqe) }.is_ok() {
                return;
            }
        }
        self.waiting.push_back(Queued::Cancel(id));
    }

    /// Moves what waits in the FIFO into the SQ, oldest first, while it
    /// fits.
    fn flush_waiting(&mut self) {
        while let Some(front) = self.waiting.front() {
            if self.no_room(front.entries()) {
                return;
            }
            let pushed = match self.waiting.pop_front().expect("front exists") {
                // SAFETY: the SQE's memory is owned by its slot's state (the
                // contract of the push that queued it); there is room.
                Queued::One(sqe) => unsafe { self.queues.try_push_with(move || sqe) }
                    .map_err(|build| Queued::One(build())),
                // SAFETY: as above, for both.
                Queued::Pair(pair) => match unsafe { self.queues.try_push_pair(&pair) } {
                    true => Ok(()),
                    false => Err(Queued::Pair(pair)),
                },
                // Its target completed while it waited: nothing to cancel.
                Queued::Cancel(id) if self.slots.get_mut(id.slot()).is_none() => Ok(()),
                Queued::Cancel(id) => {
                    let sqe = cancel_sqe(id);
                    // SAFETY: a cancel SQE refers to no memory.
                    unsafe { self.queues.try_push_with(move || sqe) }
                        .map_err(|_| Queued::Cancel(id))
                }
            };
            if let Err(queued) = pushed {
                self.waiting.push_front(queued);
                return;
            }
        }
    }

    /// Submits what is queued, FIFO first, and reaps, waiting as `wait`
    /// says; the tokens of the waiters whose operations completed go to
    /// `ready`.
    pub(crate) fn enter(&mut self, wait: Wait, ready: &mut impl FnMut(u32)) {
        // The kernel posts nothing for completions held back or made up by
        // the injector: do not park waiting for them.
        #[cfg(feature = "fault-injection")]
        let wait = match &self.injector {
            Some(injector) if injector.holds() => Wait::No,
            _ => wait,
        };
        let mut wait = wait;
        if let Wait::For(_) = wait {
            // Before the flush, so the read cannot be left in the FIFO
            // while the core parks.
            self.arm_doorbell();
        }
        loop {
            self.flush_waiting();
            if self.waiting.is_empty() {
                break;
            }
            // More waits than the SQ holds: submit what fits, reap, go on.
            // Whatever that reap completed is ready now; do not park.
            if self.submit_full(ready) > 0 {
                wait = Wait::No;
            }
        }
        let result = match wait {
            Wait::No => self.enter_raw(0, None),
            Wait::For(timeout) => self.enter_raw(1, timeout),
        };
        if let Err(error) = result {
            self.recover(error, "enter", ready);
        }
        self.reap(ready);
        // Room freed by the reap takes what waits (a cancellation sent
        // again goes out with the next submission).
        self.flush_waiting();
    }

    /// Submits what is queued without reaping or waiting, for a caller that
    /// stops driving the ring for a while (`block_on` returning) with a
    /// `MSG_RING` or other work queued. A refusal (`EBUSY`, `EINTR`) leaves
    /// it queued for the next enter, which is no worse.
    pub(crate) fn submit_queued(&mut self) {
        self.flush_waiting();
        if self.queues.sq_len() > 0 {
            let _ = self.enter_raw(0, None);
        }
    }

    /// Submits a full SQ without waiting, then reaps; returns the CQEs
    /// reaped.
    fn submit_full(&mut self, ready: &mut impl FnMut(u32)) -> usize {
        if self.flags.sqpoll {
            // The poller consumes SQEs on its own; wait until it has.
            self.queues.publish();
            match self.ring.submit() {
                Ok(_) => {
                    let _ = self.ring.submitter().squeue_wait();
                }
                Err(error) => self.recover(error, "submit (SQ full)", ready),
            }
        } else if let Err(error) = self.enter_raw(0, None) {
            self.recover(error, "submit (SQ full)", ready);
        }
        self.reap(ready)
    }

    /// Handles an error from `io_uring_enter` (see the module docs).
    fn recover(&mut self, error: io::Error, what: &str, ready: &mut impl FnMut(u32)) {
        match error.raw_os_error() {
            Some(libc::EINTR) | Some(libc::ETIME) => {}
            Some(libc::EBUSY) | Some(libc::EAGAIN) | Some(libc::ENOMEM) => {
                self.stats.enter_busy += 1;
                self.reap(ready);
            }
            _ => panic!("io_uring_enter failed during {what}: {error}"),
        }
    }

    /// One `io_uring_enter` that submits everything queued, runs deferred
    /// completion work and waits for `want` CQEs, at most `timeout`. With a
    /// batch wait configured, a wait for one waits for the batch instead
    /// (bounded by the operations in flight), returning at the latest the
    /// batch delay after the first CQE.
    fn enter_raw(&mut self, want: u32, timeout: Option<Duration>) -> io::Result<usize> {
        self.stats.enters += 1;
        #[cfg(feature = "fault-injection")]
        if let Some(errno) = self
            .injector
            .as_mut()
            .and_then(super::faults::Injector::enter_busy)
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

    /// Whether the SQ lacks room for `entries` more entries.
    #[inline]
    fn no_room(&mut self, entries: u32) -> bool {
        self.injected_full() || !self.queues.sq_has_room(entries)
    }

    /// Whether the injector reports the SQ full (tests only; always false
    /// otherwise).
    #[inline]
    fn injected_full(&mut self) -> bool {
        #[cfg(feature = "fault-injection")]
        if let Some(injector) = &mut self.injector {
            return injector.sq_full();
        }
        false
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
}

/// The `ASYNC_CANCEL` of the SQE `id` names, tagged so that its CQE names
/// its target.
fn cancel_sqe(id: SlotId) -> squeue::Entry {
    opcode::AsyncCancel::new(id.user_data())
        .build()
        .user_data(id.cancel().user_data())
}
