//! The readiness path: how an operation runs on the epoll backend.
//!
//! Each operation defines it beside its SQE, in its own file:
//! [`interest`](super::Operation::interest) names the descriptor and
//! direction its call waits on, [`attempt`](super::Operation::attempt)
//! makes the call now (never blocking) and says what came of it, and
//! [`blocking`](super::Operation::blocking) gives the call as a job for the
//! blocking pool, for a descriptor epoll cannot watch (a regular file).
//! `Op` (`single.rs`) and `MultiOp` (`multi.rs`) drive them: a call that
//! says `EAGAIN` waits for its interest in the core's `Reactor` and is made
//! again once an event comes; a job's result comes back in a `Blocking`
//! cell. Either way the result has a CQE's shape (a count, a descriptor,
//! `-errno`), so the operation's one `complete` maps both backends'.

use std::sync::Arc;
use std::task::Waker;

use crate::driver::epoll::Blocking;
use crate::driver::Completion;
use crate::runtime::POOL;

/// What came of an attempt.
pub(crate) enum Attempt {
    /// The call was made: its result, as a CQE's `res`. `-EAGAIN` from an
    /// operation with an interest means "wait for it and call again".
    Done(i32),
    /// The call moved fewer bytes than asked on a stream socket: done,
    /// and the direction is drained (the next call waits for an event
    /// first, as tokio takes a short read or write).
    Drained(i32),
    /// The call may block (a file, a path): run it on the blocking pool.
    Blocking(Job),
    /// The call received `result` bytes into buffer `bid` of the
    /// operation's buffer ring (the epoll backend picks it as the kernel
    /// would: see `buf/ring.rs`); `drained` as for [`Attempt::Drained`].
    Filled {
        result: i32,
        bid: u16,
        drained: bool,
    },
    /// A readiness stream's item is the event itself (`PollMulti`): wait
    /// for one, then yield its `poll(2)` bits. (Only the compat features
    /// build a readiness stream.)
    #[cfg_attr(
        not(any(feature = "tokio-io", feature = "futures-io", feature = "hyper")),
        allow(dead_code)
    )]
    Readiness,
}

impl Attempt {
    /// A call that was made: its completion, as the ring would post it,
    /// and whether it drained its direction. Back as it is otherwise.
    pub(crate) fn made(self) -> Result<(Completion, bool), Attempt> {
        let made = |result, flags, drained| Ok((Completion { result, flags }, drained));
        match self {
            Attempt::Done(result) => made(result, 0, false),
            Attempt::Drained(result) => made(result, 0, true),
            Attempt::Filled {
                result,
                bid,
                drained,
            } => made(result, buffer_flags(bid), drained),
            other => Err(other),
        }
    }

    /// A `RWF_NOWAIT` call's `result`; one the descriptor does not take
    /// that flag for (`EOPNOTSUPP`) is made again as the blocking `job`.
    pub(crate) fn or_pool(result: i32, job: impl FnOnce() -> Job) -> Attempt {
        if result == -libc::EOPNOTSUPP {
            Attempt::Blocking(job())
        } else {
            Attempt::Done(result)
        }
    }
}

/// A system call for the blocking pool, made with pointers into the
/// operation's own state: its CQE-style result.
pub(crate) struct Job(Box<dyn FnOnce() -> i32 + Send>);

/// A closure that crosses to a pool thread with raw pointers into an
/// operation's state.
struct Sent<F>(F);

// SAFETY: `Job::new`'s contract: the closure only uses pointers into
// memory its operation owns and does not touch meanwhile, and plain
// values.
unsafe impl<F> Send for Sent<F> {}

impl<F: FnOnce() -> i32> Sent<F> {
    fn call(self) -> i32 {
        (self.0)()
    }
}

impl Job {
    /// A job that makes `call`.
    ///
    /// # Safety
    ///
    /// `call` may capture only plain values and pointers into memory the
    /// operation's state owns (on the heap, stable while the state moves).
    /// The caller (`Op`) keeps the state alive and untouched until the job
    /// has run, in the core's driver if its future is dropped first.
    pub(crate) unsafe fn new(call: impl FnOnce() -> i32 + 'static) -> Job {
        let sent = Sent(call);
        Job(Box::new(move || sent.call()))
    }

    /// Sends the job to the pool; its result comes back in the cell
    /// returned, which wakes `waker` then.
    pub(crate) fn start(self, waker: &Waker) -> Arc<Blocking> {
        let cell = Arc::new(Blocking::default());
        let _ = cell.poll(waker);
        let done = cell.clone();
        let call = self.0;
        POOL.execute(Box::new(move || done.finish(call())));
        cell
    }
}

/// A CQE's flags for a receive into ring buffer `bid`
/// (`IORING_CQE_F_BUFFER`, the id above `IORING_CQE_BUFFER_SHIFT`).
fn buffer_flags(bid: u16) -> u32 {
    1 | u32::from(bid) << 16
}

/// The result of a transfer of `result` bytes out of `asked` on a stream
/// socket: drained when it moved some but fewer.
#[inline]
pub(crate) fn on_stream(result: i32, asked: usize) -> Attempt {
    if result > 0 && (result as usize) < asked {
        Attempt::Drained(result)
    } else {
        Attempt::Done(result)
    }
}
