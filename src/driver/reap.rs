//! Reaping: CQEs are copied out of the ring in one batch and each is
//! routed to its slot, the doorbell (an eventfd read, or a `MSG_RING`
//! from another core), or the cancellation it answers.
//!
//! No user code runs here: a completed slot's token goes to the caller's
//! `ready`, other wakers and the states of dropped futures are collected
//! and handed out by `take_ready` once the driver is released.

use super::slot::{SlotId, CANCEL_TAG, DOORBELL_TAG, MSG_SENT_TAG, MSG_WAKE_TAG};
use super::{Completion, Driver};

impl Driver {
    /// Delivers every CQE in the ring (and, under fault injection, the
    /// held-back ones now due); returns how many the ring held.
    pub(super) fn reap(&mut self, ready: &mut impl FnMut(u32)) -> usize {
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
                    let ours = user_data >= MSG_SENT_TAG;
                    if !ours && injector.hold_reaped(user_data, completion) {
                        return;
                    }
                }
                self.dispatch(user_data, completion, ready)
            })
        };
        self.stats.cqes += reaped as u64;
        #[cfg(feature = "fault-injection")]
        if let Some(injector) = &mut self.injector {
            let mut due = Vec::new();
            injector.due(&mut due);
            for (user_data, completion) in due {
                self.dispatch(user_data, completion, ready);
            }
        }
        reaped
    }

    /// Routes one CQE.
    #[inline]
    fn dispatch(&mut self, user_data: u64, completion: Completion, ready: &mut impl FnMut(u32)) {
        match user_data {
            CANCEL_TAG => return,
            DOORBELL_TAG => {
                self.stats.eventfd_wakes += 1;
                return self.doorbell.rang();
            }
            MSG_WAKE_TAG => {
                self.stats.msg_ring_wakes += 1;
                return;
            }
            MSG_SENT_TAG => return self.msg_ring_failed(completion),
            _ => {}
        }
        let Some(mut id) = SlotId::from_user_data(user_data) else {
            self.stats.stale_completions += 1;
            debug_assert!(false, "CQE with user_data 0: {completion:?}");
            return;
        };
        if id.is_cancel() {
            return self.cancel_done(id.cancelled(), completion.result);
        }
        if id.is_head() {
            // A linked pair's head failed; its CQE is the pair's last.
            id = id.slot();
            self.head_failed(id, completion);
        }
        self.complete(id, completion, ready);
    }
}
