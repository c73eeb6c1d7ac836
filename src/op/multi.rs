//! `MultiOp<T>`: the stream of one multishot operation (accept, receive,
//! poll), whose SQE posts many CQEs, each but the last flagged
//! `IORING_CQE_F_MORE`.
//!
//! The slot stays claimed until the final CQE; CQEs queue in the slot until
//! the stream takes them, so none is lost between polls. Dropping the stream
//! early moves its state into the slot, queues a cancel, and hands every CQE
//! that still arrives to the state (to close accepted descriptors, return
//! provided buffers) until the final one frees it.

use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use io_uring::squeue;

use super::single::{abandon, FOREIGN_POLL};
use crate::driver::{Abandoned, Completion, Lifecycle, SlotId, SlotTicket, StreamSlot};
use crate::executor::RuntimeId;
use crate::runtime::context;

/// One kind of multishot operation.
///
/// # Safety
///
/// As for [`Operation`](super::Operation): the SQE may only point into
/// memory `self` owns on the heap (or `'static`), valid until `self` drops.
pub(crate) unsafe trait MultishotOperation: 'static {
    /// What each CQE becomes.
    type Item;

    /// Whether CQEs that queue up between two polls merge into one (their
    /// results ORed; see `StreamSlot::merge`): for readiness, where a CQE
    /// says only which events happened.
    const MERGE: bool = false;

    /// Builds the SQE; called once, on the first poll.
    fn build(&mut self) -> squeue::Entry;

    /// Maps one CQE (the final one included) to an item.
    fn next(&mut self, completion: Completion) -> Self::Item;

    /// Called for each CQE after the stream was dropped (see
    /// [`Operation::late_completion`](super::Operation::late_completion)).
    fn late_completion(&mut self, completion: Completion) {
        let _ = completion;
    }
}

/// The state of a dropped stream, kept in its slot.
struct Orphan<T>(T);

impl<T: MultishotOperation> Abandoned for Orphan<T> {
    fn late_completion(&mut self, completion: Completion) {
        self.0.late_completion(completion);
    }
}

/// The stream of one multishot operation: yields an item per CQE and ends
/// after the final one.
pub(crate) struct MultiOp<T: MultishotOperation> {
    state: Option<T>,
    slot: Option<SlotId>,
    /// The runtime the slot belongs to (see `Op`).
    owner: Option<RuntimeId>,
    /// The final CQE was taken: the stream has ended.
    finished: bool,
    /// Its place among the waiters for a free slot, while it waits.
    ticket: SlotTicket,
    _not_send: PhantomData<*const ()>,
}

impl<T: MultishotOperation> MultiOp<T> {
    /// Wraps `operation`; nothing is submitted until the first poll.
    pub(crate) fn new(operation: T) -> MultiOp<T> {
        MultiOp {
            state: Some(operation),
            slot: None,
            owner: None,
            finished: false,
            ticket: SlotTicket::default(),
            _not_send: PhantomData,
        }
    }
}

impl<T: MultishotOperation> MultiOp<T> {
    /// The operation's state back, once the stream has ended (after its
    /// final CQE the kernel no longer touches it); `None` before.
    pub(crate) fn into_finished(mut self) -> Option<T> {
        if self.finished {
            self.state.take()
        } else {
            None
        }
    }
}

impl<T: MultishotOperation> Unpin for MultiOp<T> {}

impl<T: MultishotOperation> Stream for MultiOp<T> {
    type Item = T::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T::Item>> {
        let this = &mut *self;
        if this.finished {
            return Poll::Ready(None);
        }
        let state = this
            .state
            .as_mut()
            .expect("state lives until the stream ends");
        let next = context::with_core(|core| {
            let waker = core.wake_by(cx.waker());
            let mut driver = core.driver.borrow_mut();
            let Some(id) = this.slot else {
                this.owner = Some(core.id());
                if driver.wait_for_slot(waker, &mut this.ticket) {
                    return Poll::Pending;
                }
                let lifecycle = Lifecycle::Streaming(Box::new(StreamSlot {
                    waker: Some(waker.waiter()),
                    merge: T::MERGE,
                    ..StreamSlot::default()
                }));
                // SAFETY: `MultishotOperation`'s contract makes the SQE refer
                // only to heap memory `state` owns; `state` stays here, or in
                // the slot once dropped, until the final CQE.
                this.slot = Some(unsafe { driver.push(state.build(), lifecycle) });
                return Poll::Pending;
            };
            assert_eq!(this.owner, Some(core.id()), "{FOREIGN_POLL}");
            driver.poll_stream(id, waker)
        });
        let completion = match std::task::ready!(next) {
            Some(completion) => completion,
            None => unreachable!("a streaming slot yields its final CQE before freeing"),
        };
        if !completion.has_more() {
            this.slot = None;
            this.finished = true;
        }
        Poll::Ready(Some(state.next(completion)))
    }
}

impl<T: MultishotOperation> Drop for MultiOp<T> {
    fn drop(&mut self) {
        let (Some(id), Some(owner), Some(state)) = (self.slot, self.owner, self.state.take())
        else {
            return;
        };
        abandon(owner, id, Box::new(Orphan(state)), false);
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::os::fd::AsRawFd;

    use io_uring::{opcode, types};

    use super::*;
    use crate::sys::eventfd::EventFd;

    /// Multishot poll for readability: one CQE per wake-up of the fd.
    struct PollReadable {
        fd: std::rc::Rc<EventFd>,
        late: std::rc::Rc<std::cell::Cell<usize>>,
    }

    // SAFETY: the SQE refers to no memory.
    unsafe impl MultishotOperation for PollReadable {
        type Item = Completion;

        fn build(&mut self) -> squeue::Entry {
            opcode::PollAdd::new(types::Fd(self.fd.as_raw_fd()), libc::POLLIN as u32)
                .multi(true)
                .build()
        }

        fn next(&mut self, completion: Completion) -> Completion {
            completion
        }

        fn late_completion(&mut self, _completion: Completion) {
            self.late.set(self.late.get() + 1);
        }
    }

    /// The same poll with its CQEs merged (as `compat::PollIo`'s are).
    struct PollMerged(std::rc::Rc<EventFd>);

    // SAFETY: the SQE refers to no memory.
    unsafe impl MultishotOperation for PollMerged {
        type Item = Completion;
        const MERGE: bool = true;

        fn build(&mut self) -> squeue::Entry {
            opcode::PollAdd::new(types::Fd(self.0.as_raw_fd()), libc::POLLIN as u32)
                .multi(true)
                .build()
        }

        fn next(&mut self, completion: Completion) -> Completion {
            completion
        }
    }

    #[test]
    fn merged_cqes_that_queue_between_polls_are_one() {
        crate::start(async {
            let fd = std::rc::Rc::new(EventFd::new().unwrap());
            let mut stream = MultiOp::new(PollMerged(fd.clone()));
            let wait = std::time::Duration::from_millis(5);
            assert!(crate::time::timeout(wait, next(&mut stream)).await.is_err());
            // Three wake-ups, each reaped on a turn of its own while the
            // stream is not polled: three CQEs with F_MORE, one queued.
            for _ in 0..3 {
                fd.notify();
                crate::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            let before = crate::stats().completed;
            let event = next(&mut stream).await.unwrap();
            assert!(event.has_more() && event.result & libc::POLLIN as i32 != 0);
            assert!(crate::time::timeout(wait, next(&mut stream)).await.is_err());
            assert_eq!(
                crate::stats().completed,
                before,
                "a stream's CQEs are not completions"
            );
        });
    }

    async fn next<S: Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
        poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await
    }

    #[test]
    fn multishot_cqes_queue_in_one_slot_and_cancel_frees_it() {
        crate::start(async {
            let late = std::rc::Rc::new(std::cell::Cell::new(0));
            let fd = std::rc::Rc::new(EventFd::new().unwrap());
            let mut stream = MultiOp::new(PollReadable {
                fd: fd.clone(),
                late: late.clone(),
            });
            // Asserts (debug builds) that the eventfd took the write.
            let notify = || fd.notify();
            // Submit, then three wake-ups: three CQEs with F_MORE, one slot.
            assert!(
                crate::time::timeout(std::time::Duration::from_millis(5), next(&mut stream))
                    .await
                    .is_err()
            );
            notify();
            let first = next(&mut stream).await.unwrap();
            assert!(first.has_more() && first.result & libc::POLLIN as i32 != 0);
            notify();
            notify();
            assert!(next(&mut stream).await.unwrap().has_more());
            let stats = crate::stats();
            assert_eq!(
                (stats.submitted, stats.slots_in_use, stats.in_flight),
                (1, 1, 1)
            );

            drop(stream);
            while crate::stats().slots_in_use > 0 {
                crate::yield_now().await;
            }
            let stats = crate::stats();
            assert_eq!(
                (stats.cancelled, stats.in_flight, stats.cancel_requests),
                (1, 0, 1)
            );
            assert!(late.get() >= 1, "the final CQE reached the orphaned state");
        });
    }
}
