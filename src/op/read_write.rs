//! `IORING_OP_READ` and `IORING_OP_WRITE` at an offset (or at the current
//! position) into one owned buffer.

use io_uring::{opcode, squeue};

use super::Operation;
use super::SharedFd;
use crate::buf::{BufResult, FixedBuf, IoBuf, IoBufMut};
use crate::driver::with_target;
use crate::driver::Completion;

use super::{filled, sqe_len, Offset};

/// Reads into `buf` from its start up to its capacity.
pub(crate) struct Read<B> {
    fd: SharedFd,
    buf: B,
    offset: Offset,
}

impl<B: IoBufMut> Read<B> {
    pub(crate) fn new(fd: SharedFd, buf: B, offset: Offset) -> Read<B> {
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
        .offset(self.offset.raw())
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
    offset: Offset,
}

impl<B: IoBuf> Write<B> {
    pub(crate) fn new(fd: SharedFd, buf: B, offset: Offset) -> Write<B> {
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
        .offset(self.offset.raw())
        .build())
    }

    fn complete(self, completion: Completion) -> BufResult<usize, B> {
        let result = completion.into_result().map(|written| written as usize);
        (result, self.buf)
    }
}

/// Reads into a registered buffer (`IORING_OP_READ_FIXED`), from its start
/// up to its length.
pub(crate) struct ReadFixed {
    fd: SharedFd,
    buf: FixedBuf,
    offset: Offset,
}

impl ReadFixed {
    pub(crate) fn new(fd: SharedFd, buf: FixedBuf, offset: Offset) -> ReadFixed {
        ReadFixed { fd, buf, offset }
    }
}

// SAFETY: the SQE points into `buf`, memory of a registered pool that
// stays allocated while `buf` (holding the pool) lives; `Op` keeps `self`
// until the final CQE.
unsafe impl Operation for ReadFixed {
    type Output = BufResult<usize, FixedBuf>;

    fn build(&mut self) -> squeue::Entry {
        let len = sqe_len(self.buf.bytes_total());
        let index = self.buf.table_index();
        with_target!(self.fd.target(), |t| opcode::ReadFixed::new(
            t,
            self.buf.stable_mut_ptr(),
            len,
            index
        )
        .offset(self.offset.raw())
        .build())
    }

    fn complete(self, completion: Completion) -> BufResult<usize, FixedBuf> {
        filled(self.buf, completion)
    }
}

/// Writes the initialized bytes of a registered buffer
/// (`IORING_OP_WRITE_FIXED`).
pub(crate) struct WriteFixed {
    fd: SharedFd,
    buf: FixedBuf,
    offset: Offset,
}

impl WriteFixed {
    pub(crate) fn new(fd: SharedFd, buf: FixedBuf, offset: Offset) -> WriteFixed {
        WriteFixed { fd, buf, offset }
    }
}

// SAFETY: as for `ReadFixed`.
unsafe impl Operation for WriteFixed {
    type Output = BufResult<usize, FixedBuf>;

    fn build(&mut self) -> squeue::Entry {
        let len = sqe_len(self.buf.bytes_init());
        let index = self.buf.table_index();
        with_target!(self.fd.target(), |t| opcode::WriteFixed::new(
            t,
            self.buf.stable_ptr(),
            len,
            index
        )
        .offset(self.offset.raw())
        .build())
    }

    fn complete(self, completion: Completion) -> BufResult<usize, FixedBuf> {
        let result = completion.into_result().map(|written| written as usize);
        (result, self.buf)
    }
}
