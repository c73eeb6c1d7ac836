//! Receive and send operations on sockets: `IORING_OP_RECV` and `SEND`
//! into and from an owned buffer, `RECV` into a buffer the kernel picks
//! from a ring (once or multishot), `SEND_ZC`, and `SENDMSG` / `RECVMSG`
//! with an address (datagrams).

use std::io;
use std::rc::Rc;

use io_uring::{cqueue, opcode, squeue};

use super::ready::{on_stream, Attempt};
use super::SharedFd;
use super::{clamp_len, filled, sqe_len};
use super::{MultishotOperation, Operation};
use crate::buf::{BufResult, IoBuf, IoBufMut, RingBuf, RingInner};
use crate::driver::epoll::Interest;
use crate::driver::with_target;
use crate::driver::Completion;
use crate::sys::nowait;
use crate::sys::socket::SockAddr;

/// Receives into `buf` from its start up to its capacity.
pub(crate) struct Recv<B> {
    fd: SharedFd,
    buf: B,
    /// On a stream socket, where a short receive means drained (not on a
    /// datagram socket, where each datagram is its own receive).
    stream: bool,
}

impl<B: IoBufMut> Recv<B> {
    /// A receive on a datagram socket.
    pub(crate) fn new(fd: SharedFd, buf: B) -> Recv<B> {
        Recv {
            fd,
            buf,
            stream: false,
        }
    }

    /// A receive on a stream socket.
    pub(crate) fn on_stream(fd: SharedFd, buf: B) -> Recv<B> {
        Recv {
            fd,
            buf,
            stream: true,
        }
    }
}

// SAFETY: the SQE points into `buf`, whose memory `IoBufMut` keeps stable
// while `buf` moves; `Op` keeps `self` (and `buf`) until the final CQE.
unsafe impl<B: IoBufMut> Operation for Recv<B> {
    type Output = BufResult<usize, B>;

    fn build(&mut self) -> squeue::Entry {
        let len = sqe_len(self.buf.bytes_total());
        with_target!(self.fd.target(), |t| opcode::Recv::new(
            t,
            self.buf.stable_mut_ptr(),
            len
        )
        .build())
    }

    fn complete(self, completion: Completion) -> BufResult<usize, B> {
        filled(self.buf, completion)
    }

    fn interest(&self) -> Option<(&SharedFd, Interest)> {
        Some((&self.fd, Interest::READ))
    }

    fn attempt(&mut self) -> Attempt {
        let len = clamp_len(self.buf.bytes_total());
        // SAFETY: the buffer's writable memory, `len` bytes.
        let result = unsafe { nowait::recv(self.fd.plain_raw(), self.buf.stable_mut_ptr(), len) };
        if self.stream {
            on_stream(result, len)
        } else {
            Attempt::Done(result)
        }
    }
}

/// Sends the initialized bytes of `buf`, never raising `SIGPIPE`.
pub(crate) struct Send<B> {
    fd: SharedFd,
    buf: B,
}

impl<B: IoBuf> Send<B> {
    pub(crate) fn new(fd: SharedFd, buf: B) -> Send<B> {
        Send { fd, buf }
    }
}

// SAFETY: the SQE points into `buf`, whose memory `IoBuf` keeps stable while
// `buf` moves; `Op` keeps `self` (and `buf`) until the final CQE.
unsafe impl<B: IoBuf> Operation for Send<B> {
    type Output = BufResult<usize, B>;

    fn build(&mut self) -> squeue::Entry {
        let len = sqe_len(self.buf.bytes_init());
        with_target!(self.fd.target(), |t| opcode::Send::new(
            t,
            self.buf.stable_ptr(),
            len
        )
        .flags(libc::MSG_NOSIGNAL)
        .build())
    }

    fn complete(self, completion: Completion) -> BufResult<usize, B> {
        let result = completion.into_result().map(|sent| sent as usize);
        (result, self.buf)
    }

    fn interest(&self) -> Option<(&SharedFd, Interest)> {
        Some((&self.fd, Interest::WRITE))
    }

    /// A short send means the socket's buffer is full (a datagram send is
    /// never short).
    fn attempt(&mut self) -> Attempt {
        let len = clamp_len(self.buf.bytes_init());
        // SAFETY: the buffer's initialized memory, `len` bytes, only read.
        let result = unsafe { nowait::send(self.fd.plain_raw(), self.buf.stable_ptr(), len) };
        on_stream(result, len)
    }
}

/// Receives once into a buffer the kernel picks from a [`BufRing`] when the
/// data arrives (`IOSQE_BUFFER_SELECT`): a receive waiting for data holds no
/// buffer. Alone, or as the second half of
/// [`SendAllRecvBuf`](super::SendAllRecvBuf).
///
/// [`BufRing`]: crate::buf::BufRing
pub(crate) struct RecvBuf {
    fd: SharedFd,
    ring: Rc<RingInner>,
    /// A buffer a CQE handed out after the future was dropped; given back
    /// when this state is dropped, outside the driver.
    late: Option<u16>,
}

impl RecvBuf {
    pub(crate) fn new(fd: SharedFd, ring: Rc<RingInner>) -> RecvBuf {
        RecvBuf {
            fd,
            ring,
            late: None,
        }
    }

    /// The handle the receive names.
    pub(super) fn fd(&self) -> &SharedFd {
        &self.fd
    }

    pub(super) fn sqe(&self) -> squeue::Entry {
        // A length of 0: up to the whole buffer.
        with_target!(self.fd.target(), |t| opcode::Recv::new(
            t,
            std::ptr::null_mut(),
            0
        )
        .buf_group(self.ring.bgid())
        .build()
        .flags(squeue::Flags::BUFFER_SELECT))
    }

    /// The buffer filled, `None` at end of stream; `ENOBUFS` when the ring
    /// had none to give.
    pub(super) fn received(&self, completion: Completion) -> io::Result<Option<RingBuf>> {
        let buffer = cqueue::buffer_select(completion.flags);
        let len = completion.into_result()? as usize;
        let buf = buffer.map(|bid| self.ring.take(bid, len));
        // End of stream (a buffer, if one was picked, goes straight back).
        Ok(buf.filter(|_| len > 0))
    }

    pub(super) fn late(&mut self, completion: Completion) {
        if let Some(bid) = cqueue::buffer_select(completion.flags) {
            self.ring.note_taken();
            self.late = Some(bid);
        }
    }
}

impl Drop for RecvBuf {
    fn drop(&mut self) {
        if let Some(bid) = self.late.take() {
            self.ring.give_back(bid);
        }
    }
}

// SAFETY: the SQE names a buffer group, not memory; the ring's memory is
// kept alive by `ring` (and unregistered only when its last owner drops).
unsafe impl Operation for RecvBuf {
    type Output = io::Result<Option<RingBuf>>;

    fn build(&mut self) -> squeue::Entry {
        self.sqe()
    }

    fn complete(self, completion: Completion) -> io::Result<Option<RingBuf>> {
        self.received(completion)
    }

    fn late_completion(&mut self, completion: Completion) {
        self.late(completion);
    }

    fn interest(&self) -> Option<(&SharedFd, Interest)> {
        Some((&self.fd, Interest::READ))
    }

    fn attempt(&mut self) -> Attempt {
        recv_picked(&self.fd, &self.ring)
    }
}

/// Receives into buffers the kernel picks from a [`BufRing`](crate::buf::BufRing)
/// until the peer closes, an error, or the ring runs dry (multishot
/// receive).
pub(crate) struct RecvMulti {
    fd: SharedFd,
    ring: Rc<RingInner>,
    /// Buffers of CQEs that arrived after the stream was dropped; given
    /// back when this state is dropped, outside the driver.
    late: Vec<u16>,
}

impl RecvMulti {
    pub(crate) fn new(fd: SharedFd, ring: Rc<RingInner>) -> RecvMulti {
        RecvMulti {
            fd,
            ring,
            late: Vec::new(),
        }
    }
}

// SAFETY: the SQE names a buffer group, not memory; the ring's memory is
// kept alive by `ring` (and unregistered only when its last owner drops).
unsafe impl MultishotOperation for RecvMulti {
    /// A filled buffer, `Ok(None)` at end of stream, or the error.
    type Item = io::Result<Option<RingBuf>>;

    fn build(&mut self) -> squeue::Entry {
        with_target!(self.fd.target(), |t| opcode::RecvMulti::new(
            t,
            self.ring.bgid()
        )
        .build())
    }

    fn next(&mut self, completion: Completion) -> io::Result<Option<RingBuf>> {
        let buffer = cqueue::buffer_select(completion.flags);
        let len = completion.into_result()? as usize;
        Ok(buffer.map(|bid| self.ring.take(bid, len)))
    }

    fn late_completion(&mut self, completion: Completion) {
        if let Some(bid) = cqueue::buffer_select(completion.flags) {
            self.ring.note_taken();
            self.late.push(bid);
        }
    }

    fn interest(&self) -> Option<(&SharedFd, Interest)> {
        Some((&self.fd, Interest::READ))
    }

    fn attempt(&mut self) -> Attempt {
        recv_picked(&self.fd, &self.ring)
    }
}

/// The epoll backend's receive into a buffer of `ring`, picked as the
/// kernel picks one (`ENOBUFS` when every buffer is out) and put back when
/// nothing came. With every buffer out, a peek tells "data, but no
/// buffer" (`ENOBUFS`, as the kernel says) from "nothing yet" (`EAGAIN`)
/// and the end of the stream (0).
fn recv_picked(fd: &SharedFd, ring: &RingInner) -> Attempt {
    let Some((bid, buf)) = ring.pick() else {
        let mut byte = 0u8;
        // SAFETY: one writable byte.
        let peeked = unsafe { nowait::peek(fd.plain_raw(), &mut byte, 1) };
        return Attempt::Done(if peeked > 0 { -libc::ENOBUFS } else { peeked });
    };
    let len = ring.buf_len();
    // SAFETY: buffer `bid`'s memory, `len` bytes, picked from the ring.
    let result = unsafe { nowait::recv(fd.plain_raw(), buf, len) };
    if result <= 0 {
        // Nothing, an error, or the end of the stream: no buffer used, as
        // the kernel posts it.
        ring.unpick();
        return Attempt::Done(result);
    }
    let drained = result > 0 && (result as usize) < len;
    Attempt::Filled {
        result,
        bid,
        drained,
    }
}

impl Drop for RecvMulti {
    fn drop(&mut self) {
        for bid in self.late.drain(..) {
            self.ring.give_back(bid);
        }
    }
}

/// Zero-copy send (`IORING_OP_SEND_ZC`): the kernel sends straight from
/// `buf` and posts two CQEs, the result (flagged `IORING_CQE_F_MORE`) and,
/// once the network stack no longer reads the buffer, a notification
/// (`IORING_CQE_F_NOTIF`). The buffer is owned until the notification.
pub(crate) struct SendZc<B> {
    fd: SharedFd,
    buf: B,
}

impl<B: IoBuf> SendZc<B> {
    pub(crate) fn new(fd: SharedFd, buf: B) -> SendZc<B> {
        SendZc { fd, buf }
    }

    pub(crate) fn into_buf(self) -> B {
        self.buf
    }
}

// SAFETY: the SQE points into `buf`, whose memory `IoBuf` keeps stable
// while it moves; `MultiOp` keeps `self` until the final CQE, which is the
// notification that the kernel is done with the memory.
unsafe impl<B: IoBuf> MultishotOperation for SendZc<B> {
    type Item = Completion;

    fn build(&mut self) -> squeue::Entry {
        let len = sqe_len(self.buf.bytes_init());
        with_target!(self.fd.target(), |t| opcode::SendZc::new(
            t,
            self.buf.stable_ptr(),
            len
        )
        .flags(libc::MSG_NOSIGNAL)
        .build())
    }

    fn next(&mut self, completion: Completion) -> Completion {
        completion
    }

    fn interest(&self) -> Option<(&SharedFd, Interest)> {
        Some((&self.fd, Interest::WRITE))
    }

    /// Never reached: on epoll, `send_zc` is a plain send (`net/stream.rs`).
    fn attempt(&mut self) -> Attempt {
        Attempt::Done(-libc::EOPNOTSUPP)
    }
}

/// A `msghdr` with its one iovec and its address, boxed together so the
/// pointers between them and the kernel's view stay valid while the
/// operation moves.
struct Message {
    header: libc::msghdr,
    iov: libc::iovec,
    addr: SockAddr,
}

impl Message {
    fn new(addr: SockAddr, base: *mut u8, len: usize) -> Box<Message> {
        let mut message = Box::new(Message {
            // SAFETY: an all-zero `msghdr` is valid (null pointers, no
            // control data).
            header: unsafe { std::mem::zeroed() },
            iov: libc::iovec {
                iov_base: base.cast(),
                iov_len: clamp_len(len),
            },
            addr,
        });
        let message_ref = &mut *message;
        message_ref.header.msg_name = message_ref.addr.as_mut_ptr().cast();
        message_ref.header.msg_namelen = message_ref.addr.len();
        message_ref.header.msg_iov = &mut message_ref.iov;
        message_ref.header.msg_iovlen = 1;
        message
    }
}

/// Sends the initialized bytes of `buf` to an address (`sendmsg`).
pub(crate) struct SendTo<B> {
    fd: SharedFd,
    buf: B,
    message: Box<Message>,
}

impl<B: IoBuf> SendTo<B> {
    pub(crate) fn new(fd: SharedFd, buf: B, addr: SockAddr) -> SendTo<B> {
        let message = Message::new(addr, buf.stable_ptr().cast_mut(), buf.bytes_init());
        SendTo { fd, buf, message }
    }
}

// SAFETY: the SQE points at the boxed `msghdr`, whose iovec points into
// `buf` (stable while it moves, by `IoBuf`) and whose name points into the
// same box; `Op` keeps `self` until the final CQE.
unsafe impl<B: IoBuf> Operation for SendTo<B> {
    type Output = BufResult<usize, B>;

    fn build(&mut self) -> squeue::Entry {
        with_target!(self.fd.target(), |t| opcode::SendMsg::new(
            t,
            &self.message.header
        )
        .flags(libc::MSG_NOSIGNAL as u32)
        .build())
    }

    fn complete(self, completion: Completion) -> BufResult<usize, B> {
        (completion.into_result().map(|sent| sent as usize), self.buf)
    }

    fn interest(&self) -> Option<(&SharedFd, Interest)> {
        Some((&self.fd, Interest::WRITE))
    }

    fn attempt(&mut self) -> Attempt {
        // SAFETY: the boxed message points at the buffer and the address,
        // both live and only read.
        Attempt::Done(unsafe { nowait::sendmsg(self.fd.plain_raw(), &self.message.header) })
    }
}

/// Receives one datagram into `buf` with its sender's address (`recvmsg`).
pub(crate) struct RecvFrom<B> {
    fd: SharedFd,
    buf: B,
    message: Box<Message>,
}

impl<B: IoBufMut> RecvFrom<B> {
    pub(crate) fn new(fd: SharedFd, mut buf: B) -> RecvFrom<B> {
        let message = Message::new(SockAddr::empty(), buf.stable_mut_ptr(), buf.bytes_total());
        RecvFrom { fd, buf, message }
    }
}

// SAFETY: as for `SendTo`, with `buf` writable (`IoBufMut`).
unsafe impl<B: IoBufMut> Operation for RecvFrom<B> {
    type Output = BufResult<(usize, SockAddr), B>;

    fn build(&mut self) -> squeue::Entry {
        with_target!(self.fd.target(), |t| opcode::RecvMsg::new(
            t,
            &mut self.message.header
        )
        .build())
    }

    fn interest(&self) -> Option<(&SharedFd, Interest)> {
        Some((&self.fd, Interest::READ))
    }

    fn attempt(&mut self) -> Attempt {
        // SAFETY: the boxed message points at the buffer's writable memory
        // and the address room, both live.
        Attempt::Done(unsafe { nowait::recvmsg(self.fd.plain_raw(), &mut self.message.header) })
    }

    fn complete(self, completion: Completion) -> BufResult<(usize, SockAddr), B> {
        let mut addr = self.message.addr;
        addr.set_len(self.message.header.msg_namelen);
        let (result, buf) = filled(self.buf, completion);
        (result.map(|read| (read, addr)), buf)
    }
}
