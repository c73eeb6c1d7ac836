//! Linked turns: a send of a whole buffer and the receive after it, as
//! one linked pair of SQEs with one CQE (`IOSQE_IO_LINK` and
//! `IOSQE_CQE_SKIP_SUCCESS` on the send), so a request-response turn costs
//! one submission and one wake.

use std::io;
use std::rc::Rc;

use io_uring::{opcode, squeue};

use super::ready::Attempt;
use super::send_recv::RecvBuf;
use super::SharedFd;
use super::{filled, sqe_len, Operation, MAX_RW_COUNT};
use crate::buf::{IoBuf, IoBufMut, RingBuf, RingInner};
use crate::driver::with_target;
use crate::driver::Completion;

/// Sends all of `out`, then receives into `into`, as a linked pair: the
/// receive starts once the send is complete, and only its CQE wakes the
/// task (a successful send posts none).
pub(crate) struct SendAllRecv<O, I> {
    fd: SharedFd,
    out: O,
    into: I,
    /// The send's result when it failed (an error, or fewer bytes than all).
    send_failed: Option<i32>,
}

impl<O: IoBuf, I: IoBufMut> SendAllRecv<O, I> {
    /// The pair; `out` holds at most [`MAX_RW_COUNT`] bytes (one send).
    pub(crate) fn new(fd: SharedFd, out: O, into: I) -> SendAllRecv<O, I> {
        debug_assert!(out.bytes_init() <= MAX_RW_COUNT);
        SendAllRecv {
            fd,
            out,
            into,
            send_failed: None,
        }
    }
}

// SAFETY: the SQEs point into `out` and `into`, whose memory `IoBuf` and
// `IoBufMut` keep stable while they move; `Op` keeps `self` until the pair's
// one CQE, posted once the kernel is done with both: the receive's, which
// starts only after the send succeeded, or the failed send's, after which
// the receive never starts.
unsafe impl<O: IoBuf, I: IoBufMut> Operation for SendAllRecv<O, I> {
    type Output = (io::Result<usize>, O, I);

    const LINKED: bool = true;

    fn build_head(&mut self) -> squeue::Entry {
        send_all_sqe(&self.fd, &self.out)
    }

    fn build(&mut self) -> squeue::Entry {
        let len = sqe_len(self.into.bytes_total());
        with_target!(self.fd.target(), |t| opcode::Recv::new(
            t,
            self.into.stable_mut_ptr(),
            len
        )
        .build())
    }

    fn head_failed(&mut self, result: i32) {
        self.send_failed = Some(result);
    }

    fn complete(self, completion: Completion) -> (io::Result<usize>, O, I) {
        if let Some(result) = self.send_failed {
            return (Err(send_all_error(result, &self.out)), self.out, self.into);
        }
        let (received, into) = filled(self.into, completion);
        (received, self.out, into)
    }

    /// Never reached: linked pairs exist only on io_uring (`can_link`).
    fn attempt(&mut self) -> Attempt {
        Attempt::Done(-libc::EOPNOTSUPP)
    }
}

/// The head of a linked send-then-receive: sends all of `out`. With
/// `MSG_WAITALL` the kernel retries short sends itself, so success means
/// every byte went out, and anything less fails the link.
fn send_all_sqe(fd: &SharedFd, out: &impl IoBuf) -> squeue::Entry {
    let len = sqe_len(out.bytes_init());
    with_target!(fd.target(), |t| opcode::Send::new(t, out.stable_ptr(), len)
        .flags(libc::MSG_NOSIGNAL | libc::MSG_WAITALL)
        .build())
}

/// The error of a failed send-all head: its errno, or a short count.
fn send_all_error(result: i32, out: &impl IoBuf) -> io::Error {
    if result < 0 {
        io::Error::from_raw_os_error(-result)
    } else {
        io::Error::new(
            io::ErrorKind::WriteZero,
            format!("sent {result} of {} bytes", out.bytes_init()),
        )
    }
}

/// [`SendAllRecv`] with the receive of [`RecvBuf`]: sends all of `out`,
/// then receives into a buffer picked from a ring, as a linked pair with
/// one CQE.
pub(crate) struct SendAllRecvBuf<O> {
    out: O,
    recv: RecvBuf,
    /// The send's result when it failed (an error, or fewer bytes than all).
    send_failed: Option<i32>,
}

impl<O: IoBuf> SendAllRecvBuf<O> {
    /// The pair; `out` holds at most [`MAX_RW_COUNT`] bytes (one send).
    pub(crate) fn new(fd: SharedFd, out: O, ring: Rc<RingInner>) -> SendAllRecvBuf<O> {
        debug_assert!(out.bytes_init() <= MAX_RW_COUNT);
        SendAllRecvBuf {
            out,
            recv: RecvBuf::new(fd, ring),
            send_failed: None,
        }
    }
}

// SAFETY: the send's SQE points into `out`, whose memory `IoBuf` keeps
// stable while it moves; the receive's names a buffer group, kept alive by
// `recv.ring`. `Op` keeps `self` until the pair's one CQE, as for
// `SendAllRecv`.
unsafe impl<O: IoBuf> Operation for SendAllRecvBuf<O> {
    /// `Err`: the send failed (and the receive never ran); `Ok`: the
    /// receive's result.
    type Output = (Result<io::Result<Option<RingBuf>>, io::Error>, O);

    const LINKED: bool = true;

    fn build_head(&mut self) -> squeue::Entry {
        send_all_sqe(self.recv.fd(), &self.out)
    }

    fn build(&mut self) -> squeue::Entry {
        self.recv.sqe()
    }

    fn head_failed(&mut self, result: i32) {
        self.send_failed = Some(result);
    }

    fn complete(self, completion: Completion) -> Self::Output {
        if let Some(result) = self.send_failed {
            return (Err(send_all_error(result, &self.out)), self.out);
        }
        (Ok(self.recv.received(completion)), self.out)
    }

    fn late_completion(&mut self, completion: Completion) {
        self.recv.late(completion);
    }

    /// Never reached: linked pairs exist only on io_uring (`can_link`).
    fn attempt(&mut self) -> Attempt {
        Attempt::Done(-libc::EOPNOTSUPP)
    }
}
