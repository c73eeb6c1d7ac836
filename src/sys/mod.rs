//! The operating-system boundary: every raw syscall and FFI call of the crate
//! lives under this module.
//!
//! # Contract
//!
//! - [`ring`] creates an io_uring with the best flags the running kernel
//!   accepts and turns setup failures into errors that name the cause and the
//!   fix.
//! - [`queues`] reads and writes the ring's SQ and CQ directly.
//! - [`mapping`] is one `mmap` of memory shared with the kernel (the ring's
//!   queues, a provided-buffer ring), unmapped on drop.
//! - [`eventfd`] is the doorbell another thread rings to wake a parked core.
//! - [`socket`] creates, binds and configures sockets and converts socket
//!   addresses.
//! - [`file`](mod@file) closes descriptors, makes pipes and encodes device numbers.
//! - [`epoll`] is the epoll backend's wait; [`nowait`] holds the system
//!   calls of every operation's readiness path, each returning `-errno`
//!   as a CQE would.
//! - [`affinity`] reads and sets the CPUs a thread may run on.
//! - [`memory`] says how much memory the machine has.
//! - Everything here is synchronous and non-blocking (except the park in
//!   `io_uring_enter`, which is the driver's to call); nothing here knows about
//!   tasks, slots or futures.
//! - Raw file descriptors returned from here are owned by the caller.
//!
//! # One doorway: `syscall!`
//!
//! Every libc call is made through `syscall!`, as in mio: the one place
//! where a failure (`-1`, or `MAP_FAILED` from `mmap`) becomes
//! [`io::Error::last_os_error`]. Each call is an `unsafe { syscall!(..) }`
//! under a `// SAFETY:` comment that says why its arguments are valid.
//! Calls through the `io-uring` crate (`io_uring_setup`, `_enter`,
//! `_register`) already return `io::Result`.
//!
//! # What each errno gets
//!
//! The verdict on every error of every call the crate makes, in one table.
//! `EINTR` is retried only where the call can sleep and report that nothing
//! was done; the calls made here directly cannot sleep (the descriptors are
//! non-blocking or the calls never wait), so an `EINTR` from one would be
//! returned like any other error.
//!
//! | Call | Where | `EINTR` | Every other errno |
//! |------|-------|---------|-------------------|
//! | `socket`, `socketpair`, `bind`, `listen`, `connect` (a datagram socket's peer: no wait), `getsockname`, `getpeername`, `setsockopt`, `getsockopt` | [`socket`] | cannot happen | returned |
//! | `recv`, `sendmsg` (`MSG_DONTWAIT`), `shutdown` | [`socket`], for `compat::PollIo` | cannot happen (never waits) | `EAGAIN`: the caller arms a readiness wait (`IORING_OP_POLL_ADD`) and tries again once it fires; the rest returned |
//! | `eventfd`, `pipe2`, `mmap`, `sched_getaffinity`, `sched_setaffinity` | [`eventfd`], [`file`](mod@file), [`mapping`], [`affinity`] | cannot happen | returned |
//! | `fcntl(F_SETPIPE_SZ)`, `fcntl(F_GETPIPE_SZ)`, `sysinfo` | [`file`](mod@file), [`memory`] | cannot happen | ignored: the pipe keeps its size (taken as 4 KiB when unknown), the check against the machine's memory is skipped |
//! | `write` to an eventfd | [`eventfd`] | cannot happen (non-blocking) | `EAGAIN` (the counter is full, so a wake is already pending) ignored; anything else is a bug in us (debug assertion) |
//! | `close` | [`file`](mod@file) | never retried: Linux frees the descriptor before it reports `EINTR`, and a retry could close one another thread was just given | ignored: nothing is left to undo |
//! | `munmap` | [`mapping`] | cannot happen | a bug in us (debug assertion) |
//! | `io_uring_setup` | [`ring`] | cannot happen | `EINVAL`: the next, smaller flag set is tried; the rest returned with the cause and the fix named |
//! | `io_uring_register` | [`ring`], `driver/` | returned | returned (a refused probe with the cause named); refused direct descriptors: the ring goes without them; a buffer ring's unregister that fails leaks its memory rather than freeing it |
//! | `io_uring_enter` | `driver/submit.rs` | nothing to do: the run loop enters again on its next turn (`ETIME` alike) | `EBUSY`, `EAGAIN`, `ENOMEM`: reap, which makes room, and go on; anything else means the ring is broken: panic with the call named. The test enter at setup ([`ring`]) takes `EINTR`, `EAGAIN`, `EBUSY` for a working ring and returns the rest, the cause named |
//! | `epoll_create1`, `epoll_ctl` | [`epoll`] | cannot happen | returned; `EPERM` from an add (a regular file) sends the operation's call to the blocking pool, remembered per descriptor; a failed delete (the descriptor already closed) ignored |
//! | `epoll_wait` | [`epoll`] | read as no event: the run loop goes on | anything else means the epoll instance is broken: panic with the call named |
//! | a readiness path's call (`recv`, `send`, `recvmsg`, `sendmsg`, `accept4`, `connect`, `preadv2`/`pwritev2` with `RWF_NOWAIT`, `splice` with `SPLICE_F_NONBLOCK`, `shutdown`, `close`) | [`nowait`], `op/` | made again at once, at most 64 times in a row (as a CQE's) | `EAGAIN`: wait for the descriptor's readiness and call again; `EINPROGRESS` from `connect`: wait until writable, then read `SO_ERROR`; `EOPNOTSUPP` for `RWF_NOWAIT`: the blocking pool; the rest mapped by the operation, as its CQE's |
//! | a blocking job's call (`openat2`, `statx`, `fsync`, `fallocate`, `ftruncate`, path calls, blocking `preadv2`/`pwritev2`/`splice`) | [`nowait`], on the blocking pool | made again, at most 64 times in a row (as a CQE's) | mapped by the operation, as its CQE's |
//! | an operation's CQE | `op/single.rs` | the same SQE is submitted again, at most 64 times in a row: `EINTR` means nothing was transferred (a partial transfer reports its count); a linked pair only when its head failed so | `EAGAIN` (nothing done, no resource now): as `EINTR`; the rest returned to the caller as `io::Error` by the operation's own mapping (`op/`) |
//! | a multishot operation's CQE | `op/multi.rs` | handed to the stream's mapping, which ends the stream | handed to the stream's mapping (an empty buffer ring's `ENOBUFS`: the receive waits for a buffer and goes out again) |
//!
//! Above the operations, the loops that move a whole buffer (`write_all`,
//! `read_exact_at`, `fs::read`, `fs::copy`) also go on after an
//! `Interrupted` that reaches them once the 64 resubmissions are spent.

use std::io;

/// Calls the libc function `$fn` with the given arguments and turns a
/// failure into the last OS error: `syscall!(pipe2(fds.as_mut_ptr(), flags))`
/// is an `io::Result` of what `pipe2` returned.
///
/// The call is unsafe and the macro does not hide it: every invocation
/// sits in an `unsafe` block of its caller's, under a `// SAFETY:` comment
/// that says why the arguments are valid (pointers to live memory of the
/// right size, descriptors the caller owns), which clippy enforces.
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {
        $crate::sys::check(libc::$fn($($arg),*))
    };
}

pub(crate) mod affinity;
pub(crate) mod epoll;
pub(crate) mod eventfd;
pub(crate) mod file;
pub(crate) mod mapping;
pub(crate) mod memory;
pub(crate) mod nowait;
pub(crate) mod queues;
pub(crate) mod ring;
pub(crate) mod socket;

/// A libc return value that can say "failed, see `errno`".
pub(crate) trait Failed: Copy {
    /// Whether the value is the call's failure value.
    fn failed(self) -> bool;
}

macro_rules! minus_one_fails {
    ($($int:ty),*) => {$(
        impl Failed for $int {
            #[inline]
            fn failed(self) -> bool {
                self == -1
            }
        }
    )*};
}

minus_one_fails!(i32, isize);

impl Failed for *mut libc::c_void {
    /// `mmap` fails with `MAP_FAILED`, the pointer -1.
    #[inline]
    fn failed(self) -> bool {
        self == libc::MAP_FAILED
    }
}

/// `result` when it is not the failure value, the last OS error when it is.
#[inline]
pub(crate) fn check<T: Failed>(result: T) -> io::Result<T> {
    if result.failed() {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}
