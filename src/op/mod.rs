//! One file per operation family. Each operation is a small struct that owns
//! what the kernel touches, builds its SQE and maps its CQE (every errno is
//! passed through as an `io::Error`; none panics).
//!
//! The operations themselves are reached through the types that use them
//! ([`Fd`](crate::fd::Fd), sockets in [`net`](crate::net), files in
//! [`fs`](crate::fs)); [`nop`] is public for measuring the runtime itself.

mod close;
mod fs;
mod net;
mod nop;
mod read_write;
mod vectored;

pub(crate) use close::Close;
pub(crate) use fs::{Fsync, OpenAt, PathOp, Resize, Splice, Statx, StatxOf};
pub(crate) use net::{
    Accept, AcceptMulti, Connect, Recv, RecvBuf, RecvFrom, RecvMulti, Send, SendAllRecv,
    SendAllRecvBuf, SendTo, SendZc, Shutdown,
};
pub use nop::{nop, Nop};
pub(crate) use read_write::{Read, ReadFixed, Write, WriteFixed};
pub(crate) use vectored::{Readv, Writev};

use crate::buf::{BufResult, IoBufMut};
use crate::driver::Completion;

/// The most one SQE can move (its length field is 32 bits).
fn sqe_len(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
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
