//! Socket operations: `IORING_OP_ACCEPT`, `CONNECT`, `RECV`, `SEND` and
//! `SHUTDOWN`.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use std::rc::Rc;

use io_uring::{cqueue, opcode, squeue, types};

use super::{MultishotOperation, Operation};
use crate::buf::{BufResult, IoBuf, IoBufMut, RingBuf, RingInner};
use crate::driver::Completion;
use crate::driver::{with_target, Target};
use crate::executor::RuntimeId;
use crate::fd::SharedFd;
use crate::runtime::defer_close;
use crate::sys::socket::SockAddr;

use super::{clamp_len, filled, sqe_len, MAX_RW_COUNT};

/// Accepts one connection; the new descriptor is close-on-exec, or, for a
/// direct accept, an entry the kernel allocates in the ring's table of
/// direct descriptors.
pub(crate) struct Accept {
    fd: SharedFd,
    /// Where the kernel writes the peer's address; boxed so it stays put.
    addr: Box<SockAddr>,
    direct: bool,
    /// A direct accept holds a reserved table entry until it produces a
    /// descriptor (which then owns the entry); dropped unused, it frees it.
    reserved: bool,
    /// The runtime whose table the entry is reserved in (`None` when not
    /// direct).
    owner: Option<RuntimeId>,
}

impl Accept {
    pub(crate) fn new(fd: SharedFd) -> Accept {
        Accept {
            fd,
            addr: Box::new(SockAddr::empty()),
            direct: false,
            reserved: false,
            owner: None,
        }
    }

    /// Accepts into the ring's table of direct descriptors, into an entry
    /// the caller reserved (`Driver::reserve_direct`).
    pub(crate) fn direct(fd: SharedFd) -> Accept {
        Accept {
            fd,
            addr: Box::new(SockAddr::empty()),
            direct: true,
            reserved: true,
            owner: Some(crate::runtime::context::with_core(|core| core.id())),
        }
    }

    /// What a successful CQE's result names.
    fn accepted(&self, result: i32) -> Target {
        if self.direct {
            Target::Fixed(result as u32)
        } else {
            Target::Fd(result)
        }
    }
}

// SAFETY: the SQE points into `addr`, a box whose heap memory stays put
// while the operation moves; `Op` keeps `self` until the final CQE.
unsafe impl Operation for Accept {
    type Output = io::Result<(SharedFd, SockAddr)>;

    fn build(&mut self) -> squeue::Entry {
        let addr = &mut *self.addr;
        let file_index = self.direct.then(types::DestinationSlot::auto_target);
        // A direct descriptor is never inherited, and the kernel refuses
        // SOCK_CLOEXEC with it.
        let flags = if self.direct { 0 } else { libc::SOCK_CLOEXEC };
        with_target!(self.fd.target(), |t| opcode::Accept::new(
            t,
            addr.as_mut_ptr(),
            addr.len_mut()
        )
        .file_index(file_index)
        .flags(flags)
        .build())
    }

    fn complete(mut self, completion: Completion) -> io::Result<(SharedFd, SockAddr)> {
        let result = completion.into_result()? as i32;
        self.reserved = false; // the descriptor owns the entry now
        let fd = match self.accepted(result) {
            // SAFETY: the kernel just created `fd` for us and nobody else
            // has it.
            Target::Fd(fd) => SharedFd::new(unsafe { OwnedFd::from_raw_fd(fd) }),
            Target::Fixed(index) => SharedFd::new_direct(index),
        };
        Ok((fd, *self.addr))
    }

    fn late_completion(&mut self, completion: Completion) {
        // The future is gone: close what a late success accepted.
        if completion.result >= 0 {
            self.reserved = false; // the close frees the entry
            defer_close(self.accepted(completion.result), self.owner);
        }
    }
}

impl Drop for Accept {
    fn drop(&mut self) {
        // Runs outside the driver (after `complete`, or when the slot's
        // state is freed after its final CQE).
        if let (true, Some(owner)) = (self.reserved, self.owner) {
            let _ = crate::runtime::context::with_owner(owner, |core| {
                core.driver.borrow_mut().release_direct()
            });
        }
    }
}

/// Connects a socket to an address.
pub(crate) struct Connect {
    fd: SharedFd,
    /// The address the SQE points at; boxed so it stays put.
    addr: Box<SockAddr>,
}

impl Connect {
    pub(crate) fn new(fd: SharedFd, addr: SockAddr) -> Connect {
        Connect {
            fd,
            addr: Box::new(addr),
        }
    }
}

// SAFETY: the SQE points into `addr`, a box whose heap memory stays put
// while the operation moves; `Op` keeps `self` until the final CQE.
unsafe impl Operation for Connect {
    type Output = io::Result<()>;

    fn build(&mut self) -> squeue::Entry {
        with_target!(self.fd.target(), |t| opcode::Connect::new(
            t,
            self.addr.as_ptr(),
            self.addr.len(),
        )
        .build())
    }

    fn complete(self, completion: Completion) -> io::Result<()> {
        completion.into_result().map(drop)
    }
}

/// Receives into `buf` from its start up to its capacity.
pub(crate) struct Recv<B> {
    fd: SharedFd,
    buf: B,
}

impl<B: IoBufMut> Recv<B> {
    pub(crate) fn new(fd: SharedFd, buf: B) -> Recv<B> {
        Recv { fd, buf }
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
}

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

/// Receives once into a buffer the kernel picks from a [`BufRing`] when the
/// data arrives (`IOSQE_BUFFER_SELECT`): a receive waiting for data holds no
/// buffer. Alone, or as the second half of [`SendAllRecvBuf`].
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

    fn sqe(&self) -> squeue::Entry {
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
    fn received(&self, completion: Completion) -> io::Result<Option<RingBuf>> {
        let buffer = cqueue::buffer_select(completion.flags);
        let len = completion.into_result()? as usize;
        let buf = buffer.map(|bid| self.ring.take(bid, len));
        // End of stream (a buffer, if one was picked, goes straight back).
        Ok(buf.filter(|_| len > 0))
    }

    fn late(&mut self, completion: Completion) {
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
        send_all_sqe(&self.recv.fd, &self.out)
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
}

/// Shuts down one or both directions of a connection.
pub(crate) struct Shutdown {
    fd: SharedFd,
    how: libc::c_int,
}

impl Shutdown {
    pub(crate) fn new(fd: SharedFd, how: std::net::Shutdown) -> Shutdown {
        let how = match how {
            std::net::Shutdown::Read => libc::SHUT_RD,
            std::net::Shutdown::Write => libc::SHUT_WR,
            std::net::Shutdown::Both => libc::SHUT_RDWR,
        };
        Shutdown { fd, how }
    }
}

// SAFETY: the SQE refers to no memory.
unsafe impl Operation for Shutdown {
    type Output = io::Result<()>;

    fn build(&mut self) -> squeue::Entry {
        with_target!(self.fd.target(), |t| opcode::Shutdown::new(t, self.how)
            .build())
    }

    fn complete(self, completion: Completion) -> io::Result<()> {
        completion.into_result().map(drop)
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

    fn complete(self, completion: Completion) -> BufResult<(usize, SockAddr), B> {
        let mut addr = self.message.addr;
        addr.set_len(self.message.header.msg_namelen);
        let (result, buf) = filled(self.buf, completion);
        (result.map(|read| (read, addr)), buf)
    }
}

/// Accepts connections until cancelled (multishot accept): one SQE, one
/// CQE per connection. The kernel may end it (an error, or a resource
/// limit); the final CQE has no `IORING_CQE_F_MORE`.
pub(crate) struct AcceptMulti {
    fd: SharedFd,
}

impl AcceptMulti {
    pub(crate) fn new(fd: SharedFd) -> AcceptMulti {
        AcceptMulti { fd }
    }
}

// SAFETY: the SQE refers to no memory (no peer address is asked for).
unsafe impl MultishotOperation for AcceptMulti {
    type Item = io::Result<OwnedFd>;

    fn build(&mut self) -> squeue::Entry {
        with_target!(self.fd.target(), |t| opcode::AcceptMulti::new(t)
            .flags(libc::SOCK_CLOEXEC)
            .build())
    }

    fn next(&mut self, completion: Completion) -> io::Result<OwnedFd> {
        let fd = completion.into_result()? as RawFd;
        // SAFETY: the kernel just created `fd` for us and nobody else has it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    fn late_completion(&mut self, completion: Completion) {
        // The stream is gone: close what was accepted meanwhile.
        if completion.result >= 0 {
            defer_close(Target::Fd(completion.result), None);
        }
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
}
