//! `Op<T>`: the future of one in-flight operation, and the trait every
//! operation implements.
//!
//! An `Op` owns its operation's state (buffers, iovecs, the fd handle) until
//! the kernel is done with it. Until the first poll nothing is submitted. On
//! drop while in flight the state moves into the slot and a cancel is queued,
//! so the kernel never touches freed memory and the drop never blocks.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use io_uring::squeue;

use crate::driver::{Abandoned, Completion, SlotId, SlotTicket};
use crate::executor::RuntimeId;
use crate::runtime::context::{self, Gone};

/// One kind of io_uring operation: how to build its SQE and how to turn its
/// completion into a result.
///
/// # Safety
///
/// Every pointer in the SQE returned by [`build`](Operation::build) must point
/// into memory that `self` owns on the heap (or `'static` memory) and that
/// stays valid and unaliased while `self` is moved, until `self` is dropped.
/// `Op` keeps `self` alive until the final CQE.
pub(crate) unsafe trait Operation: 'static {
    /// What the operation's future resolves to.
    type Output;

    /// Whether the operation is a linked pair: [`build_head`]'s SQE runs
    /// first and [`build`]'s only once it succeeded, with one wake for both.
    /// Only submitted as such where the driver can link
    /// (`Driver::can_link`); callers check.
    ///
    /// [`build_head`]: Operation::build_head
    /// [`build`]: Operation::build
    const LINKED: bool = false;

    /// Builds the SQE: on the first poll, and again for each retry after a
    /// transient failure (see `retry`), once the kernel is done with the
    /// previous one.
    fn build(&mut self) -> squeue::Entry;

    /// Builds the head SQE of a linked pair, before [`build`](Operation::build).
    fn build_head(&mut self) -> squeue::Entry {
        unreachable!("only linked operations have a head")
    }

    /// Told that a linked pair's head failed, before
    /// [`complete`](Operation::complete) gets that same CQE (the second SQE
    /// never ran and posts none).
    fn head_failed(&mut self, result: i32) {
        let _ = result;
    }

    /// Maps the final CQE to the output, handing back owned buffers.
    fn complete(self, completion: Completion) -> Self::Output;

    /// Called for each CQE that arrives after the future was dropped; an
    /// operation that creates a resource closes it here. Must not reach the
    /// runtime except through [`defer_close`](crate::runtime::defer_close).
    fn late_completion(&mut self, completion: Completion) {
        let _ = completion;
    }
}

impl<T: Operation> Abandoned for T {
    fn late_completion(&mut self, completion: Completion) {
        Operation::late_completion(self, completion)
    }
}

/// The future of one single-shot operation.
///
/// Bound to the runtime that first polls it: polled on another, it panics
/// with a message that says so; dropped anywhere on its thread (inside
/// another runtime or outside any), its state goes back to its own slot.
/// It is `!Send`, so it is never dropped on another thread.
pub(crate) struct Op<T: Operation> {
    /// The state, until the result is handed out or the slot takes it.
    state: Option<T>,
    /// The slot, from the first poll on.
    slot: Option<SlotId>,
    /// The runtime the slot belongs to (set with `slot`).
    owner: Option<RuntimeId>,
    /// Submissions again after a transient failure (see [`retry`]).
    retries: u8,
    /// Its place among the waiters for a free slot, while it waits.
    ticket: SlotTicket,
    _not_send: PhantomData<*const ()>,
}

impl<T: Operation> Op<T> {
    /// Wraps `operation`; nothing is submitted until the first poll.
    pub(crate) fn new(operation: T) -> Op<T> {
        Op {
            state: Some(operation),
            slot: None,
            owner: None,
            retries: 0,
            ticket: SlotTicket::default(),
            _not_send: PhantomData,
        }
    }
}

impl<T: Operation> Unpin for Op<T> {}

/// Consecutive submissions after a transient failure before the error is
/// handed to the caller.
const RETRIES_MAX: u8 = 64;

/// The verdict on a completion, before the operation maps it: whether it
/// failed with an error that means "nothing was done, try again" (`EINTR`:
/// interrupted before any transfer, since a partial one reports its count;
/// `EAGAIN`: no resource now), so the same SQE is submitted again rather
/// than the error reaching the caller, as std's `write_all` retries
/// `Interrupted`. A linked pair is retried only when its head failed that
/// way: its receive never ran and its send sent nothing; once the head
/// succeeded, sending again would repeat bytes.
#[inline]
fn retry(result: i32, head_failure: Option<i32>, linked: bool) -> bool {
    let transient = result == -libc::EINTR || result == -libc::EAGAIN;
    transient && (!linked || head_failure == Some(result))
}

impl<T: Operation> Future for Op<T> {
    type Output = T::Output;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T::Output> {
        let this = &mut *self;
        let completion = context::with_core(|core| {
            let waker = core.wake_by(cx.waker());
            let mut driver = core.driver.borrow_mut();
            loop {
                let Some(id) = this.slot else {
                    this.owner = Some(core.id());
                    if driver.wait_for_slot(waker, &mut this.ticket) {
                        return Poll::Pending;
                    }
                    let state = this.state.as_mut().expect("Op polled after completion");
                    // SAFETY: `Operation`'s contract makes the SQE refer only
                    // to memory `state` owns on the heap; `state` stays in
                    // this Op, or in the slot if the Op is dropped, until
                    // the final CQE.
                    let id = unsafe {
                        if T::LINKED {
                            driver.push_linked(state.build_head(), state.build(), waker)
                        } else {
                            driver.push_submitted(|| state.build(), waker)
                        }
                    };
                    this.slot = Some(id);
                    return Poll::Pending;
                };
                assert_eq!(this.owner, Some(core.id()), "{FOREIGN_POLL}");
                let completion = std::task::ready!(driver.poll_completion(id, waker));
                let head_failure = if T::LINKED {
                    driver.take_head_failure(id)
                } else {
                    None
                };
                this.slot = None;
                if retry(completion.result, head_failure, T::LINKED) && this.retries < RETRIES_MAX {
                    // Nothing was done: submit the same operation again.
                    this.retries += 1;
                    driver.note_retry();
                    continue;
                }
                return Poll::Ready((completion, head_failure));
            }
        });
        let (completion, head_failure) = std::task::ready!(completion);
        let mut state = this.state.take().expect("Op polled after completion");
        if let Some(result) = head_failure {
            state.head_failed(result);
        }
        Poll::Ready(state.complete(completion))
    }
}

impl<T: Operation> Drop for Op<T> {
    fn drop(&mut self) {
        let (Some(id), Some(owner), Some(state)) = (self.slot, self.owner, self.state.take())
        else {
            return;
        };
        abandon(owner, id, Box::new(state), T::LINKED);
    }
}

/// The panic message of an operation polled on a runtime other than the
/// one it was submitted on (its slot lives in the other ring).
pub(super) const FOREIGN_POLL: &str =
    "an operation was polled on a runtime other than the one it started on";

/// Hands the state of a future dropped in flight to its slot on its own
/// core, `owner`, wherever the future is dropped: on that core, inside
/// another runtime of the thread or outside any (the state then waits in
/// the slot for the owner's next tick or shutdown). When the owner has shut
/// down, its kernel work is over and the state is freed, unless that
/// shutdown leaked its in-flight states; then this one leaks too.
pub(super) fn abandon(owner: RuntimeId, id: SlotId, state: Box<dyn Abandoned>, linked: bool) {
    let mut state = Some(state);
    let gone = context::with_owner(owner, |core| {
        let state = state.take().expect("taken once");
        core.driver.borrow_mut().abandon(id, state, linked);
    });
    if let (Err(Gone::Leaked), Some(state)) = (gone, state) {
        std::mem::forget(state);
    }
}
