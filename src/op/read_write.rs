//! `IORING_OP_READ` and `IORING_OP_WRITE` at an offset (or at the current
//! position) into one owned buffer.

use io_uring::{opcode, squeue};

use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::driver::{Completion, Operation};
use crate::fd::{with_target, SharedFd};

use super::{filled, sqe_len};

/// Reads into `buf` from its start up to its capacity.
pub(crate) struct Read<B> {
    fd: SharedFd,
    buf: B,
    offset: u64,
}

impl<B: IoBufMut> Read<B> {
    pub(crate) fn new(fd: SharedFd, buf: B, offset: u64) -> Read<B> {
        Read { fd, buf, offset }
    }
}

// SAFETY: the SQE points into `buf`, whose memory `IoBufMut` guarantees is
// stable while `buf` moves; `Op` keeps `self` (and `buf`) until the final CQE.
unsafe impl<B: IoBufMut> Operation for Read<B> {
    type Output = BufResult<usize, B>;

    fn build(&mut self) -> squeue::Entry {
        let len = sqe_len(self.buf.bytes_total());
        with_target!(self.fd.target(), |t| opcode::Read::new(
            t,
            self.buf.stable_mut_ptr(),
            len
        )
        .offset(self.offset)
        .build())
    }

    fn complete(self, completion: Completion) -> BufResult<usize, B> {
        filled(self.buf, completion)
    }
}

/// Writes the initialized bytes of `buf`.
pub(crate) struct Write<B> {
    fd: SharedFd,
    buf: B,
    offset: u64,
}

impl<B: IoBuf> Write<B> {
    pub(crate) fn new(fd: SharedFd, buf: B, offset: u64) -> Write<B> {
        Write { fd, buf, offset }
    }
}

// SAFETY: the SQE points into `buf`, whose memory `IoBuf` guarantees is
// stable while `buf` moves; `Op` keeps `self` (and `buf`) until the final CQE.
unsafe impl<B: IoBuf> Operation for Write<B> {
    type Output = BufResult<usize, B>;

    fn build(&mut self) -> squeue::Entry {
        let len = sqe_len(self.buf.bytes_init());
        with_target!(self.fd.target(), |t| opcode::Write::new(
            t,
            self.buf.stable_ptr(),
            len
        )
        .offset(self.offset)
        .build())
    }

    fn complete(self, completion: Completion) -> BufResult<usize, B> {
        let result = completion.into_result().map(|written| written as usize);
        (result, self.buf)
    }
}
