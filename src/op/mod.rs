//! One file per operation family. Each operation is a small struct that owns
//! what the kernel touches, builds its SQE and maps its CQE (every errno that
//! reaches it is passed through as an `io::Error`; none panics). An `EINTR`
//! or `EAGAIN` that did nothing reaches a one-shot operation's mapping only
//! after `Op` has submitted the same SQE again 64 times in a row
//! (`single.rs`); the verdict on every errno of every call is tabled in
//! `sys/mod.rs`. One operation moves at
//! most `0x7ffff000` bytes (Linux's `MAX_RW_COUNT`): a longer buffer gets
//! a short count, which `write_all` and `read_exact_at` loop over as usual.
//!
//! Each operation also has its readiness path for the epoll backend,
//! beside its SQE (`ready.rs`): the descriptor and direction it waits on,
//! the non-blocking call that makes it, and its blocking form for the
//! pool; its result has a CQE's shape, so one `complete` maps both.
//!
//! `single.rs` and `multi.rs` hold the futures every operation is awaited
//! through (`Op`, `MultiOp`): the only code that binds an operation to
//! the core that polls it, and the drop path that hands a dropped
//! operation's state back to its own core.
//!
//! The operations themselves are reached through the types that use them
//! ([`Fd`](crate::fd::Fd), sockets in [`net`](crate::net), files in
//! [`fs`](crate::fs)); [`nop()`] is public for measuring the runtime itself.

mod close;
mod connection;
mod fs;
mod linked;
mod multi;
mod nop;
#[cfg(any(feature = "tokio-io", feature = "futures-io", feature = "hyper"))]
mod poll;
mod read_write;
mod ready;
mod send_recv;
mod shared_fd;
mod single;
mod vectored;

pub(crate) use close::Close;
pub(crate) use connection::{Accept, AcceptMulti, Connect, Shutdown};
pub(crate) use fs::{Fsync, OpenAt, PathOp, Resize, Splice, Statx, StatxOf};
pub(crate) use linked::{SendAllRecv, SendAllRecvBuf};
pub(crate) use multi::{MultiOp, MultishotOperation};
pub use nop::{nop, Nop};
#[cfg(any(feature = "tokio-io", feature = "futures-io", feature = "hyper"))]
pub(crate) use poll::PollMulti;
pub(crate) use read_write::{Read, ReadFixed, Write, WriteFixed};
pub(crate) use send_recv::{Recv, RecvBuf, RecvFrom, RecvMulti, Send, SendTo, SendZc};
pub(crate) use shared_fd::SharedFd;
pub(crate) use single::{Op, Operation};
#[cfg(any(feature = "tokio-io", feature = "futures-io", feature = "hyper"))]
pub(crate) use vectored::IOVECS_MAX;
pub(crate) use vectored::{readv, writev};

use std::io;

use crate::buf::{BufResult, IoBufMut};
use crate::driver::Completion;

/// Where a read or write goes: a file offset the kernel accepts, or the
/// descriptor's current position (pipes, sockets, sequential reads).
///
/// The kernel takes offset -1 (`u64::MAX`) as "the current position" and
/// refuses the other offsets past `i64::MAX`. A positioned call's offset
/// goes through [`Offset::at`], which refuses them all, so it can never
/// turn into a sequential read or write; only [`Offset::CURRENT`] is -1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Offset(u64);

impl Offset {
    /// The descriptor's current position.
    pub(crate) const CURRENT: Offset = Offset(u64::MAX);

    /// File offset `pos` of the positioned call `call`.
    ///
    /// # Errors
    ///
    /// `InvalidInput` when `pos` is past the largest file offset,
    /// `i64::MAX`.
    pub(crate) fn at(pos: u64, call: &str) -> io::Result<Offset> {
        if i64::try_from(pos).is_ok() {
            return Ok(Offset(pos));
        }
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{call}: offset {pos} is past the largest file offset ({})",
                i64::MAX
            ),
        ))
    }

    /// `len` bytes further on: the next chunk of a positioned transfer;
    /// the current position stays the current position. Both terms are at
    /// most `i64::MAX`, so the sum never wraps nor becomes -1 (the kernel
    /// refuses one past `i64::MAX`).
    pub(crate) fn advanced(self, len: usize) -> Offset {
        if self == Offset::CURRENT {
            return self;
        }
        Offset(self.0 + len as u64)
    }

    /// The value of the SQE's offset field.
    fn raw(self) -> u64 {
        self.0
    }

    /// The offset `preadv2` and `pwritev2` take: -1 for the current
    /// position.
    fn signed(self) -> i64 {
        self.0 as i64
    }
}

/// The most bytes the kernel moves in one read, write, send or receive
/// (Linux's `MAX_RW_COUNT`, `INT_MAX` rounded down to a page). Files and
/// pipes clamp a longer length to it themselves; sockets refuse one past
/// `i32::MAX` with `EINVAL`, so every length is clamped here, and a longer
/// transfer moves this much, like any short read or write.
pub(crate) const MAX_RW_COUNT: usize = i32::MAX as usize & !4095;

/// The length field of an SQE moving `len` bytes: at most
/// [`MAX_RW_COUNT`].
fn sqe_len(len: usize) -> u32 {
    clamp_len(len) as u32
}

/// `len`, or [`MAX_RW_COUNT`] when it is longer.
fn clamp_len(len: usize) -> usize {
    len.min(MAX_RW_COUNT)
}

/// Hands `buf` back after a read or receive that filled it from its start,
/// with the count the CQE reports marked initialized.
fn filled<B: IoBufMut>(mut buf: B, completion: Completion) -> BufResult<usize, B> {
    let result = completion.into_result().map(|read| {
        let read = read as usize;
        // SAFETY: the kernel reported `read` bytes written from the buffer's
        // start, within the `bytes_total` it was given.
        unsafe { buf.set_init(read) };
        read
    });
    (result, buf)
}
