//! `IORING_OP_READ` and `IORING_OP_WRITE` at an offset (or at the current
//! position) into one owned buffer.

use io_uring::{opcode, squeue};

use super::ready::{Attempt, Job};
use super::SharedFd;
use super::{clamp_len, Operation};
use crate::buf::{BufResult, FixedBuf, IoBuf, IoBufMut};
use crate::driver::epoll::Interest;
use crate::driver::with_target;
use crate::driver::Completion;
use crate::sys::nowait;

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

    transfer_paths!(Interest::READ, nowait::preadv2, read_span);
}

/// `preadv2` or `pwritev2`.
pub(super) type Transfer = unsafe fn(i32, *const libc::iovec, i32, i64, i32) -> i32;

/// Where a read's bytes go: the buffer from its start up to its capacity.
fn read_span(buf: &mut impl IoBufMut) -> (*mut u8, usize) {
    (buf.stable_mut_ptr(), clamp_len(buf.bytes_total()))
}

/// Where a write's bytes come from: the buffer's initialized bytes.
fn write_span(buf: &mut impl IoBuf) -> (*mut u8, usize) {
    (buf.stable_ptr().cast_mut(), clamp_len(buf.bytes_init()))
}

/// The readiness path of a read or write of the operation's `buf` at its
/// `offset` (`$span` says where its bytes are): `$call` with `RWF_NOWAIT`,
/// or, for a descriptor that does not take the flag (and on the pool for
/// one epoll refuses, a regular file), the blocking call.
macro_rules! transfer_paths {
    ($interest:expr, $call:path, $span:ident) => {
        fn interest(&self) -> Option<(&SharedFd, Interest)> {
            Some((&self.fd, $interest))
        }

        fn attempt(&mut self) -> Attempt {
            let (ptr, len) = $span(&mut self.buf);
            let (fd, offset) = (&self.fd, self.offset);
            // SAFETY: the buffer's memory, `len` bytes; the call ends
            // before this returns.
            let result = unsafe { transfer($call, fd, ptr, len, offset, libc::RWF_NOWAIT) };
            Attempt::or_pool(result, || {
                self.blocking()
                    .expect("a read or write has a blocking form")
            })
        }

        fn blocking(&mut self) -> Option<Job> {
            let (ptr, len) = $span(&mut self.buf);
            // SAFETY: the buffer's memory, `len` bytes, which `Op` keeps
            // until the job has run.
            Some(unsafe { transfer_job($call, &self.fd, ptr, len, self.offset) })
        }
    };
}
use transfer_paths;

/// One `call` of `len` bytes at `ptr` on `fd`, at `offset`, with `flags`.
///
/// # Safety
///
/// `ptr` points at `len` bytes, writable for a read, live for the call.
unsafe fn transfer(
    call: Transfer,
    fd: &SharedFd,
    ptr: *mut u8,
    len: usize,
    offset: Offset,
    flags: i32,
) -> i32 {
    let iov = libc::iovec {
        iov_base: ptr.cast(),
        iov_len: len,
    };
    // SAFETY: the caller's promise; `iov` lives for the call.
    unsafe { call(fd.plain_raw(), &iov, 1, offset.signed(), flags) }
}

/// [`transfer`] as a blocking job (no `RWF_NOWAIT`).
///
/// # Safety
///
/// As [`transfer`], with `ptr` live until the job has run.
unsafe fn transfer_job(
    call: Transfer,
    fd: &SharedFd,
    ptr: *mut u8,
    len: usize,
    offset: Offset,
) -> Job {
    let raw = fd.plain_raw();
    // SAFETY: the closure uses `ptr` (the caller keeps it live until the
    // job has run) and plain values.
    unsafe {
        Job::new(move || {
            let iov = libc::iovec {
                iov_base: ptr.cast(),
                iov_len: len,
            };
            call(raw, &iov, 1, offset.signed(), 0)
        })
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

    transfer_paths!(Interest::WRITE, nowait::pwritev2, write_span);
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

    transfer_paths!(Interest::READ, nowait::preadv2, read_span);
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

    transfer_paths!(Interest::WRITE, nowait::pwritev2, write_span);
}
