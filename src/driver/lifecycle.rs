//! The life of one slot: every state it can be in and every transition,
//! in one place.
//!
//! A slot is claimed when an operation's SQE is pushed and freed when its
//! final CQE (one without `IORING_CQE_F_MORE`) has been reaped *and* no
//! future is left to take it. Until then it owns whatever the kernel may
//! still touch.
//!
//! # Transitions
//!
//! | from | event | to | who |
//! |---|---|---|---|
//! | (free) | single-shot push | `Submitted(waiter)` | [`push_submitted`], [`push_linked`] |
//! | (free) | multishot push | `Streaming` | [`push`] |
//! | (free) | the runtime's own close | `Detached` | [`push_close`] |
//! | `Submitted` | poll before the CQE | `Submitted` (waiter stored once per task) | [`poll_completion`] |
//! | `Submitted` | final CQE | `Completed(cqe)`; waiter handed on | [`complete`] |
//! | `Completed` | poll | (free); the future gets the CQE | [`poll_completion`] |
//! | `Streaming` | CQE | `Streaming`, CQE queued; waiter handed on | [`complete`] |
//! | `Streaming` | poll | CQE taken; (free) after the final one | [`poll_stream`] |
//! | `Submitted`, unfinished `Streaming` | future dropped | `Abandoned(state)`; cancellation queued | [`abandon`] |
//! | `Completed`, finished `Streaming` | future dropped | (free); state to the graveyard | [`abandon`] |
//! | `Abandoned` | CQE | `Abandoned`; the state sees it (`late_completion`) | [`complete`] |
//! | `Abandoned` | final CQE | (free); state to the graveyard | [`complete`] |
//! | `Detached` | final CQE | (free) | [`complete`] |
//! | cancellation | `ENOENT` on an abandoned linked pair (or any waiting slot at shutdown) | sent again next submission | [`cancel_done`] |
//! | `Submitted`, unfinished `Streaming` | shutdown | cancellation queued | [`cancel_all`] |
//! | `Completed`, finished `Streaming` | shutdown (future moved out) | (free), counted cancelled | [`release_untaken`] |
//! | any | shutdown deadline passed | leaked, counted abandoned | [`leak_in_flight`] |
//!
//! States freed by a transition are never dropped while the driver is
//! borrowed: they go to the graveyard, which the runtime empties after
//! releasing the driver ("reap first, wake after").
//!
//! [`push_submitted`]: Driver::push_submitted
//! [`push_linked`]: Driver::push_linked
//! [`push`]: Driver::push
//! [`push_close`]: Driver::push_close
//! [`poll_completion`]: Driver::poll_completion
//! [`poll_stream`]: Driver::poll_stream
//! [`complete`]: Driver::complete
//! [`abandon`]: Driver::abandon
//! [`cancel_done`]: Driver::cancel_done
//! [`cancel_all`]: Driver::cancel_all
//! [`release_untaken`]: Driver::release_untaken
//! [`leak_in_flight`]: Driver::leak_in_flight

use std::collections::VecDeque;
use std::task::{Poll, Waker};

use super::slot::SlotId;
use super::wake::{self, Tokens, Waiter, Wake};
use super::{Completion, Driver};

/// State an operation leaves behind when its future is dropped in flight: it
/// owns every byte the kernel may still touch until the final CQE.
pub(crate) trait Abandoned {
    /// Called for each CQE reaped after the future was dropped, before the
    /// state is freed; lets resource-creating operations close what a late
    /// success returned.
    ///
    /// Runs while the driver is borrowed: it must not reach the driver; a
    /// descriptor it closes is handed to the runtime's deferred closes.
    fn late_completion(&mut self, completion: Completion);
}

/// The lifecycle of one slot.
pub(crate) enum Lifecycle {
    /// The SQE is pushed and the future is alive; holds the waiter of the
    /// task that last polled it.
    Submitted(Option<Waiter>),
    /// The final CQE arrived while the future was alive; holds it until the
    /// future's next poll takes it.
    Completed(Completion),
    /// A multishot operation whose stream is alive: CQEs queue here until the
    /// stream takes them. Boxed to keep single-shot slots small.
    Streaming(Box<StreamSlot>),
    /// The future was dropped before the final CQE; owns the operation's
    /// state until that CQE, then the slot is freed.
    Abandoned(Box<dyn Abandoned>),
    /// An operation the runtime submitted for itself (closing a descriptor
    /// whose last handle was dropped); it refers to no memory.
    Detached,
}

/// The queue of a multishot operation's slot.
#[derive(Default)]
pub(crate) struct StreamSlot {
    /// CQEs not yet taken by the stream, oldest first. Bounded by what the
    /// kernel posts between two polls of the stream: a multishot receive
    /// stops when its buffer group runs dry, an accept at the backlog, and
    /// a readiness stream (`merge`) holds at most two.
    pub(crate) completions: VecDeque<Completion>,
    /// Whether a CQE with `F_MORE` merges into the newest one queued when
    /// that has `F_MORE` too, their results (event masks) ORed: a
    /// multishot poll's CQEs only say "ready since you last looked", so
    /// one nobody polls for a while holds one, not one per wake-up.
    pub(crate) merge: bool,
    /// The waiter of the task that last polled the stream.
    pub(crate) waker: Option<Waiter>,
    /// The final CQE (no `F_MORE`) has been queued.
    pub(crate) finished: bool,
}

impl Driver {
    /// Takes a slot's completion if it arrived; otherwise stores `wake`.
    #[inline]
    pub(crate) fn poll_completion<T: Tokens + ?Sized>(
        &mut self,
        id: SlotId,
        wake: Wake<'_, T>,
    ) -> Poll<Completion> {
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
                wake.store(stored);
                Poll::Pending
            }
            Lifecycle::Streaming(_) | Lifecycle::Abandoned(_) | Lifecycle::Detached => {
                unreachable!("single-shot poll on a slot no future owns")
            }
        }
    }

    /// Takes the next CQE of a multishot slot. `Ready(None)` once the final
    /// CQE has been taken (the slot is then free).
    pub(crate) fn poll_stream<T: Tokens + ?Sized>(
        &mut self,
        id: SlotId,
        wake: Wake<'_, T>,
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
        wake.store(&mut stream.waker);
        Poll::Pending
    }

    /// Delivers a CQE to its slot: the waiter's token goes to `ready`, any
    /// other waker to the wakers woken after the driver is released.
    #[inline]
    pub(super) fn complete(
        &mut self,
        id: SlotId,
        completion: Completion,
        ready: &mut impl FnMut(u32),
    ) {
        let Some(lifecycle) = self.slots.get_mut(id) else {
            self.stats.stale_completions += 1;
            debug_assert!(false, "CQE for stale slot {id:?}: {completion:?}");
            return;
        };
        match lifecycle {
            Lifecycle::Submitted(waiter) => {
                debug_assert!(!completion.has_more(), "single-shot op posted F_MORE");
                wake::hand_on(waiter.take(), ready, &mut self.wakers);
                // The old value is `Submitted(None)` and owns nothing; skip
                // its drop glue on this hot path.
                std::mem::forget(std::mem::replace(
                    lifecycle,
                    Lifecycle::Completed(completion),
                ));
            }
            Lifecycle::Streaming(stream) => {
                stream.finished = !completion.has_more();
                match stream.completions.back_mut() {
                    Some(newest)
                        if stream.merge
                            && completion.has_more()
                            && newest.has_more()
                            && completion.result >= 0
                            && newest.result >= 0 =>
                    {
                        newest.result |= completion.result;
                    }
                    _ => stream.completions.push_back(completion),
                }
                wake::hand_on(stream.waker.take(), ready, &mut self.wakers);
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

    /// A cancellation aimed at `target` completed with `result`. One that
    /// found nothing (`ENOENT`) while its slot still waits for the kernel
    /// raced the submission of its target: sent in the same batch as a
    /// linked pair, it ran before the pair's second SQE had started (it
    /// starts only once the head completes). It is sent again, at the
    /// slot's second SQE, in the next submission, until it lands or the
    /// slot completes. Each miss sends one retry, so retries never pile up;
    /// only linked pairs (and, at shutdown, every slot still waiting) are
    /// retried, so nothing spins on a miss that only means "done".
    /// `EALREADY` (the target is running and will end soon) and success
    /// need nothing more.
    #[cold]
    pub(super) fn cancel_done(&mut self, target: SlotId, result: i32) {
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
            // Queued behind everything pushed in this enter, so it goes
            // out in the next submission, after the one that missed.
            self.retry_cancel(target);
        }
    }

    /// Notes the failure of a linked pair's head, for the future that
    /// awaits the pair (none once it is abandoned). At most one entry per
    /// linked pair in flight, taken with the pair's completion.
    #[cold]
    pub(super) fn head_failed(&mut self, id: SlotId, completion: Completion) {
        if let Some(Lifecycle::Submitted(_)) = self.slots.get_mut(id) {
            self.head_failures.push((id, completion.result));
        }
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

    /// Moves out the wakers of completed operations and the states to drop,
    /// and the waiters for a free slot once there is one, so the caller
    /// can run them after releasing the driver.
    #[inline]
    pub(crate) fn take_ready(
        &mut self,
        ready: &mut impl FnMut(u32),
        wakers: &mut Vec<Waker>,
        graveyard: &mut Vec<Box<dyn Abandoned>>,
    ) {
        wakers.append(&mut self.wakers);
        graveyard.append(&mut self.graveyard);
        // Every waiter retries once there is room: waking only some could
        // strand the rest behind a waiter whose task has since gone.
        if !self.slots.is_full() {
            self.slot_waiters.wake_all(ready, wakers);
        }
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

    /// Past the shutdown deadline: leaks every state still in flight, since
    /// the kernel may yet write into it, and counts them as abandoned.
    pub(crate) fn leak_in_flight(&mut self) {
        self.leaked = true;
        self.linked_abandoned.clear();
        let leaked = self.slots.leak_all() as u64;
        self.stats.abandoned += leaked;
        self.leak_doorbell();
    }

    /// Whether the shutdown left states to the kernel
    /// ([`leak_in_flight`](Self::leak_in_flight)).
    pub(crate) fn leaked(&self) -> bool {
        self.leaked
    }
}
