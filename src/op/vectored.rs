//! `IORING_OP_READV` and `IORING_OP_WRITEV`: one operation over several
//! owned buffers.
//!
//! The iovec array is a heap `Vec` owned by the operation, so its address is
//! stable while the operation moves, as the kernel requires until the CQE.

use std::io;

use io_uring::{opcode, squeue};

use super::read_write::Transfer;
use super::ready::{Attempt, Job};
use super::SharedFd;
use super::{Op, Operation};
use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::driver::epoll::Interest;
use crate::driver::with_target;
use crate::driver::Completion;
use crate::sys::nowait;

use super::Offset;

/// The most iovecs one call takes (`IOV_MAX` on Linux).
pub(crate) const IOVECS_MAX: usize = 1024;

/// Reads into several buffers in order.
pub(crate) struct Readv<B> {
    fd: SharedFd,
    bufs: Vec<B>,
    iovecs: Vec<libc::iovec>,
    offset: Offset,
}

/// Reads into `bufs` with one `READV` at `offset`.
///
/// # Errors
///
/// `InvalidInput`, with nothing submitted, for more buffers than one call
/// takes; otherwise as `preadv(2)`. The buffers are handed back either way.
pub(crate) async fn readv<B: IoBufMut>(
    call: &str,
    fd: SharedFd,
    bufs: Vec<B>,
    offset: Offset,
) -> BufResult<usize, Vec<B>> {
    if let Err(error) = check_count(call, bufs.len()) {
        return (Err(error), bufs);
    }
    let iovecs = Vec::new();
    Op::new(Readv {
        fd,
        bufs,
        iovecs,
        offset,
    })
    .await
}

/// `InvalidInput`, naming `call`, when `count` buffers are more than one
/// call takes.
fn check_count(call: &str, count: usize) -> io::Result<()> {
    if count <= IOVECS_MAX {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{call}: {count} buffers, more than the {IOVECS_MAX} one call takes (IOV_MAX)"),
    ))
}

// SAFETY: the SQE points at `iovecs` (a heap Vec not resized after `build`)
// and each iovec into a buffer whose memory `IoBufMut` keeps stable while it
// moves; `Op` keeps `self` until the final CQE.
unsafe impl<B: IoBufMut> Operation for Readv<B> {
    type Output = BufResult<usize, Vec<B>>;

    fn build(&mut self) -> squeue::Entry {
        self.set_iovecs();
        self.sqe()
    }

    fn complete(self, completion: Completion) -> BufResult<usize, Vec<B>> {
        self.filled(completion)
    }

    fn interest(&self) -> Option<(&SharedFd, Interest)> {
        Some((&self.fd, Interest::READ))
    }

    fn attempt(&mut self) -> Attempt {
        self.set_iovecs();
        attempt_vectored(nowait::preadv2, &self.fd, &self.iovecs, self.offset)
    }

    fn blocking(&mut self) -> Option<Job> {
        self.set_iovecs();
        Some(vectored_job(
            nowait::preadv2,
            &self.fd,
            &self.iovecs,
            self.offset,
        ))
    }
}

impl<B: IoBufMut> Readv<B> {
    /// Points the iovecs at the buffers' capacity.
    fn set_iovecs(&mut self) {
        self.iovecs = self
            .bufs
            .iter_mut()
            .map(|buf| libc::iovec {
                iov_base: buf.stable_mut_ptr().cast(),
                iov_len: buf.bytes_total(),
            })
            .collect();
    }

    fn sqe(&mut self) -> squeue::Entry {
        with_target!(self.fd.target(), |t| opcode::Readv::new(
            t,
            self.iovecs.as_ptr(),
            self.iovecs.len() as u32,
        )
        .offset(self.offset.raw())
        .build())
    }

    fn filled(mut self, completion: Completion) -> BufResult<usize, Vec<B>> {
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

/// Writes the initialized bytes of `bufs` with one `WRITEV` at `offset`.
///
/// # Errors
///
/// `InvalidInput`, with nothing submitted, for more buffers than one call
/// takes; otherwise as `pwritev(2)`. The buffers are handed back either
/// way.
pub(crate) async fn writev<B: IoBuf>(
    call: &str,
    fd: SharedFd,
    bufs: Vec<B>,
    offset: Offset,
) -> BufResult<usize, Vec<B>> {
    if let Err(error) = check_count(call, bufs.len()) {
        return (Err(error), bufs);
    }
    let iovecs = Vec::new();
    Op::new(Writev {
        fd,
        bufs,
        iovecs,
        offset,
    })
    .await
}

// SAFETY: as for `Readv`: `iovecs` and the buffers' memory stay in place
// until the final CQE.
unsafe impl<B: IoBuf> Operation for Writev<B> {
    type Output = BufResult<usize, Vec<B>>;

    fn build(&mut self) -> squeue::Entry {
        self.set_iovecs();
        self.sqe()
    }

    fn complete(self, completion: Completion) -> BufResult<usize, Vec<B>> {
        let result = completion.into_result().map(|written| written as usize);
        (result, self.bufs)
    }

    fn interest(&self) -> Option<(&SharedFd, Interest)> {
        Some((&self.fd, Interest::WRITE))
    }

    fn attempt(&mut self) -> Attempt {
        self.set_iovecs();
        attempt_vectored(nowait::pwritev2, &self.fd, &self.iovecs, self.offset)
    }

    fn blocking(&mut self) -> Option<Job> {
        self.set_iovecs();
        Some(vectored_job(
            nowait::pwritev2,
            &self.fd,
            &self.iovecs,
            self.offset,
        ))
    }
}

impl<B: IoBuf> Writev<B> {
    /// Points the iovecs at the buffers' initialized bytes.
    fn set_iovecs(&mut self) {
        self.iovecs = self
            .bufs
            .iter()
            .map(|buf| libc::iovec {
                iov_base: buf.stable_ptr() as *mut libc::c_void,
                iov_len: buf.bytes_init(),
            })
            .collect();
    }

    fn sqe(&mut self) -> squeue::Entry {
        with_target!(self.fd.target(), |t| opcode::Writev::new(
            t,
            self.iovecs.as_ptr(),
            self.iovecs.len() as u32,
        )
        .offset(self.offset.raw())
        .build())
    }
}

/// The readiness path of a vectored read or write on `iovecs`: `call`
/// with `RWF_NOWAIT`, or, for a descriptor that does not take the flag,
/// the blocking [`vectored_job`].
fn attempt_vectored(
    call: Transfer,
    fd: &SharedFd,
    iovecs: &[libc::iovec],
    offset: Offset,
) -> Attempt {
    let (raw, count) = (fd.plain_raw(), iovecs.len() as i32);
    // SAFETY: the iovecs point at the buffers' memory (writable for a
    // read), live for the call.
    let result = unsafe {
        call(
            raw,
            iovecs.as_ptr(),
            count,
            offset.signed(),
            libc::RWF_NOWAIT,
        )
    };
    Attempt::or_pool(result, || vectored_job(call, fd, iovecs, offset))
}

/// The blocking vectored call on `iovecs`, for the pool.
fn vectored_job(call: Transfer, fd: &SharedFd, iovecs: &[libc::iovec], offset: Offset) -> Job {
    let (raw, iov, count) = (fd.plain_raw(), iovecs.as_ptr(), iovecs.len() as i32);
    // SAFETY: the iovecs live on the heap in the operation's state, which
    // `Op` keeps (and does not touch) until the job has run, and point at
    // the buffers' memory.
    unsafe { Job::new(move || call(raw, iov, count, offset.signed(), 0)) }
}
