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

use std::cell::RefCell;

use super::ready::Attempt;
use super::single::{abandon, forsake, Readying, FOREIGN_POLL, RETRIES_MAX};
use super::SharedFd;
use crate::driver::epoll::{Interest, Reactor};
use crate::driver::{Abandoned, Completion, Lifecycle, SlotId, SlotTicket, StreamSlot};
use crate::executor::RuntimeId;
use crate::runtime::context::{self, Core, Io};

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

    /// The readiness path (epoll backend; see `ready.rs`): the descriptor
    /// and direction each call waits on.
    fn interest(&self) -> Option<(&SharedFd, Interest)>;

    /// The readiness path: makes one call now. A success yields an item
    /// and the stream goes on; a failure ends it, as a multishot CQE
    /// without `F_MORE` does; [`Attempt::Readiness`]: each event is an
    /// item.
    fn attempt(&mut self) -> Attempt;
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
    /// On the epoll backend, from the first poll on.
    ready: Option<Box<Readying>>,
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
            ready: None,
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
            let driver = match &core.io {
                Io::Ring(driver) => driver,
                Io::Epoll(reactor) => {
                    assert!(
                        this.owner.is_none_or(|owner| owner == core.id()),
                        "{FOREIGN_POLL}"
                    );
                    this.owner = Some(core.id());
                    let ready = this.ready.get_or_insert_with(|| {
                        reactor.borrow_mut().started();
                        Box::default()
                    });
                    return next_ready(state, ready, core, reactor, cx).map(Some);
                }
            };
            let waker = core.wake_by(cx.waker());
            let mut driver = driver.borrow_mut();
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
            if this.ready.take().is_some() {
                context::with_core(|core| {
                    if let Io::Epoll(reactor) = &core.io {
                        reactor.borrow_mut().finished();
                    }
                });
            }
        }
        Poll::Ready(Some(state.next(completion)))
    }
}

/// One poll of a multishot operation on the epoll backend: its next item's
/// CQE-style completion (flagged `F_MORE` while the stream goes on), or a
/// wait for readiness.
fn next_ready<T: MultishotOperation>(
    state: &mut T,
    ready: &mut Readying,
    core: &Core,
    reactor: &RefCell<Reactor>,
    cx: &mut std::task::Context<'_>,
) -> Poll<Completion> {
    let mut reactor = reactor.borrow_mut();
    let (fd, interest) = state
        .interest()
        .map(|(fd, interest)| (fd.plain_raw(), interest))
        .expect("a multishot operation waits on a descriptor");
    reactor.cancel(ready.fd, &mut ready.ticket);
    // `IORING_CQE_F_MORE`: the stream goes on.
    let more = 1 << 1;
    let mut retries = 0;
    loop {
        let attempt = if reactor.may_be_ready(fd, interest) {
            state.attempt()
        } else {
            Attempt::Done(-libc::EAGAIN)
        };
        let made = match attempt {
            Attempt::Readiness => {
                let (seen, events) = reactor.events_seen(fd);
                if ready.armed && seen != ready.seen {
                    ready.seen = seen;
                    return Poll::Ready(Completion {
                        result: events as i32,
                        flags: more,
                    });
                }
                (ready.seen, ready.armed) = (seen, true);
                None
            }
            attempt => match attempt.made() {
                Ok(made) => Some(made),
                Err(_) => unreachable!("multishot operations never block"),
            },
        };
        if let Some((mut completion, drained)) = made {
            if completion.result == -libc::EINTR && retries < RETRIES_MAX {
                retries += 1;
                continue;
            }
            if drained {
                reactor.drained(fd, interest);
            }
            if completion.result != -libc::EAGAIN {
                if completion.result >= 0 {
                    completion.flags |= more;
                }
                return Poll::Ready(completion);
            }
        }
        return match reactor.wait(fd, interest, core.wake_by(cx.waker()), &mut ready.ticket) {
            Ok(()) => {
                ready.fd = fd;
                if let Some((shared, _)) = state.interest() {
                    shared.note_polled(core.id());
                }
                Poll::Pending
            }
            Err(error) => Poll::Ready(Completion::failed(&error)),
        };
    }
}

impl<T: MultishotOperation> Drop for MultiOp<T> {
    fn drop(&mut self) {
        if let (Some(ready), Some(owner)) = (self.ready.take(), self.owner) {
            if let Some(state) = self.state.take() {
                forsake(owner, *ready, Box::new(Orphan(state)));
            }
            return;
        }
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

    /// Runs `future` on io_uring, whatever `CORERING_BACKEND` says: these
    /// tests drive the ring's multishot polls.
    fn on_ring<F: std::future::Future>(future: F) -> F::Output {
        let runtime = crate::Runtime::builder().backend(crate::Backend::IoUring);
        runtime.build().unwrap().block_on(future)
    }

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

        fn interest(&self) -> Option<(&SharedFd, Interest)> {
            None
        }

        fn attempt(&mut self) -> Attempt {
            unreachable!("these tests run on io_uring")
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

        fn interest(&self) -> Option<(&SharedFd, Interest)> {
            None
        }

        fn attempt(&mut self) -> Attempt {
            unreachable!("these tests run on io_uring")
        }
    }

    #[test]
    fn merged_cqes_that_queue_between_polls_are_one() {
        on_ring(async {
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
        on_ring(async {
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
