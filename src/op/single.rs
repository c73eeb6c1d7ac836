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

use std::os::fd::RawFd;
use std::sync::Arc;

use io_uring::squeue;

use super::ready::{Attempt, Job};
use super::SharedFd;
use crate::driver::epoll::{Blocking, Interest, Reactor, Ticket};
use crate::driver::{Abandoned, Completion, SlotId, SlotTicket};
use crate::executor::RuntimeId;
use crate::runtime::context::{self, Core, Gone, Io};

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

    /// The readiness path (epoll backend; see `ready.rs`): the descriptor
    /// and direction the call waits on when it says `EAGAIN`; `None` for a
    /// call that never waits.
    fn interest(&self) -> Option<(&SharedFd, Interest)> {
        None
    }

    /// The readiness path: makes the call now, without blocking.
    fn attempt(&mut self) -> Attempt;

    /// The readiness path: the call as a job for the blocking pool, for a
    /// descriptor epoll refuses (a regular file); `None` when the call has
    /// no blocking form.
    fn blocking(&mut self) -> Option<Job> {
        None
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
    /// On the epoll backend, from the first poll on; boxed, so that the
    /// ring's operations stay as small as they were (the A/B's nop rate
    /// fell 5% with it inline).
    ready: Option<Box<Readying>>,
    _not_send: PhantomData<*const ()>,
}

/// Where an operation on the epoll backend stands: waiting for readiness
/// (`ticket`, on `fd`), or for its job on the pool (`job`).
#[derive(Default)]
pub(super) struct Readying {
    pub(super) fd: RawFd,
    pub(super) ticket: Ticket,
    pub(super) job: Option<Arc<Blocking>>,
    /// A readiness stream's count of its descriptor's events when it last
    /// looked (see `Reactor::events_seen`), once `armed`.
    pub(super) seen: u32,
    pub(super) armed: bool,
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
            ready: None,
            _not_send: PhantomData,
        }
    }
}

impl<T: Operation> Unpin for Op<T> {}

/// Consecutive submissions after a transient failure before the error is
/// handed to the caller.
pub(super) const RETRIES_MAX: u8 = 64;

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
            // The ring's path stays as tight as it was: the epoll one is
            // its own, out-of-line call below.
            let Io::Ring(driver) = &core.io else {
                return None;
            };
            let waker = core.wake_by(cx.waker());
            let mut driver = driver.borrow_mut();
            loop {
                let Some(id) = this.slot else {
                    this.owner = Some(core.id());
                    if driver.wait_for_slot(waker, &mut this.ticket) {
                        return Some(Poll::Pending);
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
                    return Some(Poll::Pending);
                };
                assert_eq!(this.owner, Some(core.id()), "{FOREIGN_POLL}");
                let Poll::Ready(completion) = driver.poll_completion(id, waker) else {
                    return Some(Poll::Pending);
                };
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
                return Some(Poll::Ready((completion, head_failure)));
            }
        });
        let (completion, head_failure) = match completion {
            Some(completion) => std::task::ready!(completion),
            None => (std::task::ready!(this.poll_ready(cx)), None),
        };
        let mut state = this.state.take().expect("Op polled after completion");
        if let Some(result) = head_failure {
            state.head_failed(result);
        }
        Poll::Ready(state.complete(completion))
    }
}

impl<T: Operation> Op<T> {
    /// The epoll backend's poll: the call's CQE-style result once made
    /// (see `ready.rs`).
    #[inline(never)]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Completion> {
        context::with_core(|core| {
            let Io::Epoll(reactor) = &core.io else {
                unreachable!("only an epoll core leaves the ring's path");
            };
            self.poll_epoll(core, &mut reactor.borrow_mut(), cx)
        })
    }

    fn poll_epoll(
        &mut self,
        core: &Core,
        reactor: &mut Reactor,
        cx: &mut Context<'_>,
    ) -> Poll<Completion> {
        assert!(
            self.owner.is_none_or(|owner| owner == core.id()),
            "{FOREIGN_POLL}"
        );
        let ready = self.ready.get_or_insert_with(|| {
            reactor.started();
            Box::default()
        });
        self.owner = Some(core.id());
        let state = self.state.as_mut().expect("Op polled after completion");
        let result = drive(state, ready, &mut self.retries, core, reactor, cx);
        if result.is_ready() {
            self.ready = None;
            reactor.finished();
        }
        result
    }
}

/// One poll of an operation on the epoll backend: its job's result, or
/// the call made (again) unless its descriptor is known not to be ready,
/// or a wait for readiness or a job started.
fn drive<T: Operation>(
    state: &mut T,
    ready: &mut Readying,
    retries: &mut u8,
    core: &Core,
    reactor: &mut Reactor,
    cx: &mut Context<'_>,
) -> Poll<Completion> {
    if let Some(job) = &ready.job {
        let Poll::Ready(result) = job.poll(cx.waker()) else {
            return Poll::Pending;
        };
        ready.job = None;
        if result != -libc::EINTR || *retries >= RETRIES_MAX {
            return Poll::Ready(Completion { result, flags: 0 });
        }
        // Interrupted before it did anything: made again, as a CQE's.
        *retries += 1;
        reactor.note_retry();
    }
    let interest = state
        .interest()
        .map(|(fd, interest)| (fd.plain_raw(), interest));
    reactor.cancel(ready.fd, &mut ready.ticket);
    loop {
        let attempt = match interest {
            Some((fd, interest)) if !reactor.may_be_ready(fd, interest) => {
                Attempt::Done(-libc::EAGAIN)
            }
            _ => state.attempt(),
        };
        let (completion, drained) = match attempt.made() {
            Ok(made) => made,
            Err(Attempt::Blocking(job)) => return start(job, ready, cx),
            Err(_) => unreachable!("only readiness streams wait for events alone"),
        };
        if completion.result == -libc::EINTR && *retries < RETRIES_MAX {
            *retries += 1;
            reactor.note_retry();
            continue;
        }
        if let (true, Some((fd, interest))) = (drained, interest) {
            reactor.drained(fd, interest);
        }
        let Some((fd, interest)) = interest.filter(|_| completion.result == -libc::EAGAIN) else {
            return Poll::Ready(completion);
        };
        if reactor.refused(fd) {
            return offload(state, ready, cx);
        }
        match reactor.wait(fd, interest, core.wake_by(cx.waker()), &mut ready.ticket) {
            Ok(()) => {
                ready.fd = fd;
                if let Some((shared, _)) = state.interest() {
                    shared.note_polled(core.id());
                }
                return Poll::Pending;
            }
            // epoll cannot watch a regular file: its call blocks on the pool.
            Err(error) if error.raw_os_error() == Some(libc::EPERM) => {
                return offload(state, ready, cx);
            }
            Err(error) => return Poll::Ready(Completion::failed(&error)),
        }
    }
}

/// Runs the operation's blocking form on the pool; an operation without
/// one says `EAGAIN` (it was asked to wait on a descriptor epoll refuses).
fn offload<T: Operation>(
    state: &mut T,
    ready: &mut Readying,
    cx: &mut Context<'_>,
) -> Poll<Completion> {
    match state.blocking() {
        Some(job) => start(job, ready, cx),
        None => Poll::Ready(Completion {
            result: -libc::EAGAIN,
            flags: 0,
        }),
    }
}

fn start<R>(job: Job, ready: &mut Readying, cx: &mut Context<'_>) -> Poll<R> {
    ready.job = Some(job.start(cx.waker()));
    Poll::Pending
}

impl<T: Operation> Drop for Op<T> {
    fn drop(&mut self) {
        let (Some(owner), Some(state)) = (self.owner, self.state.take()) else {
            return;
        };
        if let Some(id) = self.slot {
            abandon(owner, id, Box::new(state), T::LINKED);
        } else if let Some(ready) = self.ready.take() {
            forsake(owner, *ready, Box::new(state));
        }
    }
}

/// The epoll backend's drop of an operation in flight on core `owner`:
/// its waiter goes; its state is dropped now, or, with a job still running
/// on the pool, kept by the core's driver until the job is done.
pub(super) fn forsake(owner: RuntimeId, mut ready: Readying, state: Box<dyn Abandoned>) {
    let mut state = Some(state);
    let _ = context::with_owner(owner, |core| {
        let Io::Epoll(reactor) = &core.io else {
            unreachable!("a readiness operation belongs to an epoll core");
        };
        let mut reactor = reactor.borrow_mut();
        reactor.cancel(ready.fd, &mut ready.ticket);
        match ready.job.take() {
            Some(job) if job.result().is_none() => {
                let state = state.take().expect("taken once");
                reactor.orphan(job, state, &core.executor.main_waker());
            }
            // Done already: told its result below, then dropped.
            done => {
                ready.job = done;
                reactor.dropped();
            }
        }
    });
    let Some(mut state) = state else {
        return;
    };
    match ready.job.map(|job| job.result()) {
        // The owner is gone with its driver while the job runs: the pool
        // may still write into the state, so it is leaked.
        Some(None) => std::mem::forget(state),
        // The job finished with nobody to take its result: an opened
        // descriptor is closed now rather than whenever the core wakes.
        Some(Some(result)) => state.late_completion(Completion { result, flags: 0 }),
        None => {}
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
        core.ring()
            .expect("a slot belongs to a ring")
            .borrow_mut()
            .abandon(id, state, linked);
    });
    if let (Err(Gone::Leaked), Some(state)) = (gone, state) {
        std::mem::forget(state);
    }
}
