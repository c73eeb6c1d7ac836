//! `IORING_OP_READV` and `IORING_OP_WRITEV`: one operation over several
//! owned buffers.
//!
//! The iovec array is a heap `Vec` owned by the operation, so its address is
//! stable while the operation moves, as the kernel requires until the CQE.

use io_uring::{opcode, squeue};

use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::driver::{Completion, Operation};
use crate::fd::{with_target, SharedFd};

use super::Offset;

/// The most iovecs one call takes (`IOV_MAX` on Linux).
const IOVECS_MAX: usize = 1024;

/// Reads into several buffers in order.
pub(crate) struct Readv<B> {
    fd: SharedFd,
    bufs: Vec<B>,
    iovecs: Vec<libc::iovec>,
    offset: Offset,
}

impl<B: IoBufMut> Readv<B> {
    pub(crate) fn new(fd: SharedFd, bufs: Vec<B>, offset: Offset) -> Readv<B> {
        assert!(
            bufs.len() <= IOVECS_MAX,
            "readv takes at most {IOVECS_MAX} buffers"
        );
        Readv {
            fd,
            bufs,
            iovecs: Vec::new(),
            offset,
        }
    }
}

// SAFETY: the SQE points at `iovecs` (a heap Vec not resized after `build`)
// and each iovec into a buffer whose memory `IoBufMut` keeps stable while it
// moves; `Op` keeps `self` until the final CQE.
unsafe impl<B: IoBufMut> Operation for Readv<B> {
    type Output = BufResult<usize, Vec<B>>;

    fn build(&mut self) -> squeue::Entry {
        self.iovecs = self
            .bufs
            .iter_mut()
            .map(|buf| libc::iovec {
                iov_base: buf.stable_mut_ptr().cast(),
                iov_len: buf.bytes_total(),
            })
            .collect();
        with_target!(self.fd.target(), |t| opcode::Readv::new(
            t,
            self.iovecs.as_ptr(),
            self.iovecs.len() as u32,
        )
        .offset(self.offset.raw())
        .build())
    }

    fn complete(mut self, completion: Completion) -> BufResult<usize, Vec<B>> {
        let result = completion.into_result().map(|read| {
            let mut left = read as usize;
            for buf in &mut self.bufs {
                let filled = left.min(buf.bytes_total());
                // SAFETY: the kernel filled the iovecs in order; this buffer
                // got its first `filled` bytes.
                unsafe { buf.set_init(filled) };
                left -= filled;
            }
            read as usize
        });
        (result, self.bufs)
    }
}

/// Writes the initialized bytes of several buffers in order.
pub(crate) struct Writev<B> {
    fd: SharedFd,
    bufs: Vec<B>,
    iovecs: Vec<libc::iovec>,
    offset: Offset,
}

impl<B: IoBuf> Writev<B> {
    pub(crate) fn new(fd: SharedFd, bufs: Vec<B>, offset: Offset) -> Writev<B> {
        assert!(
            bufs.len() <= IOVECS_MAX,
            "writev takes at most {IOVECS_MAX} buffers"
        );
        Writev {
            fd,
            bufs,
            iovecs: Vec::new(),
            offset,
        }
    }
}

// SAFETY: as for `Readv`: `iovecs` and the buffers' memory stay in place
// until the final CQE.
unsafe impl<B: IoBuf> Operation for Writev<B> {
    type Output = BufResult<usize, Vec<B>>;

    fn build(&mut self) -> squeue::Entry {
        self.iovecs = self
            .bufs
            .iter()
            .map(|buf| libc::iovec {
                iov_base: buf.stable_ptr() as *mut libc::c_void,
                iov_len: buf.bytes_init(),
            })
            .collect();
        with_target!(self.fd.target(), |t| opcode::Writev::new(
            t,
            self.iovecs.as_ptr(),
            self.iovecs.len() as u32,
        )
        .offset(self.offset.raw())
        .build())
    }

    fn complete(self, completion: Completion) -> BufResult<usize, Vec<B>> {
        let result = completion.into_result().map(|written| written as usize);
        (result, self.bufs)
    }
}
