//! `PollIo`: a completion-based stream behind readiness traits.
//!
//! Every call first makes the non-blocking system call itself (`recv` or
//! `sendmsg` with `MSG_DONTWAIT`) on the socket's descriptor. Only when
//! that says `EAGAIN` (or the last call came back short, which on a
//! stream socket means it was drained, as tokio also takes it) does it
//! look at the direction's readiness stream: a multishot
//! `IORING_OP_POLL_ADD`, armed at the first `EAGAIN` and kept armed
//! after, as an edge-triggered epoll registration is. An event since the
//! last look means "try again"; none means `Pending`, and the stream's
//! next CQE wakes the task. Events that pile up while nobody looks merge
//! into one (the slot holds at most two), and arming costs one SQE per
//! connection and direction, not one per wait. A hang-up or error event is
//! remembered: after it, every call is made. So
//!
//! - a read returns what the kernel has, never more than it was asked for,
//!   and keeps nothing back;
//! - `Ready(Ok(n))` from a write means exactly `n` bytes went to the
//!   kernel, and `Pending` means none did: there is no buffer in between
//!   (HTTP/2 and TLS depend on it);
//! - a flush has nothing to do;
//! - the read and the write side each have their own stream, so one task
//!   can read while another writes (through `tokio::io::split`).
//!
//! A readiness stream is a `MultiOp`: dropped armed (the `PollIo` dropped),
//! its slot cancels the poll, and the descriptor it holds stays open until
//! the cancel's final CQE, like any operation's.

use std::fmt;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::net::Shutdown;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream as _;

use crate::driver::Completion;
use crate::net::{TcpStream, UnixStream};
use crate::op::{MultiOp, PollMulti, SharedFd, IOVECS_MAX, MAX_RW_COUNT};
use crate::sys::socket;

/// A [`TcpStream`] or [`UnixStream`] with the readiness I/O traits of the
/// ecosystem: tokio's `AsyncRead`/`AsyncWrite` (feature `tokio-io`),
/// `futures-io`'s (feature `futures-io`) and hyper 1.x's `rt::Read` and
/// `rt::Write` (feature `hyper`).
///
/// A read fills what the kernel has now; `Pending` comes only after a
/// non-blocking attempt found nothing (or came back short) and a readiness
/// wait (`IORING_OP_POLL_ADD`, multishot, kept armed) is in place. A write
/// that returns `Ready(Ok(n))` handed exactly `n` bytes to the kernel;
/// `Pending` means none. A flush
/// is a no-op (nothing is buffered); a shutdown ends the write side
/// (`shutdown(2)`, `SHUT_WR`); vectored writes are one `sendmsg(2)`.
/// Dropping a `PollIo` cancels the waits it has armed.
///
/// The stream's own methods stay reachable through
/// [`get_ref`](PollIo::get_ref), and [`into_inner`](PollIo::into_inner)
/// gives it back.
///
/// # Examples
///
/// ```
/// # #[cfg(feature = "tokio-io")]
/// # {
/// use corering::compat::PollIo;
/// use corering::net::{TcpListener, TcpStream};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// corering::start(async {
///     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
///     let addr = listener.local_addr().unwrap();
///     let server = corering::spawn(async move {
///         let (stream, _) = listener.accept().await.unwrap();
///         let mut stream = PollIo::new(stream).unwrap();
///         let mut line = [0; 5];
///         stream.read_exact(&mut line).await.unwrap();
///         stream.write_all(&line).await.unwrap();
///     });
///     let mut client = PollIo::new(TcpStream::connect(addr).await.unwrap()).unwrap();
///     client.write_all(b"hello").await.unwrap();
///     let mut echoed = Vec::new();
///     client.read_to_end(&mut echoed).await.unwrap();
///     assert_eq!(echoed, b"hello");
///     server.await.unwrap();
/// });
/// # }
/// ```
pub struct PollIo<S> {
    io: S,
    /// The stream's descriptor handle: each wait holds a clone.
    fd: SharedFd,
    /// Its file descriptor, for the non-blocking calls.
    raw: RawFd,
    /// Readiness for reads.
    read: Direction,
    /// Readiness for writes.
    write: Direction,
}

// Nothing in a `PollIo` is pinned structurally: the stream is only ever
// used through `&S`, and the waits are `MultiOp`s, which are `Unpin`.
impl<S> Unpin for PollIo<S> {}

/// The streams a [`PollIo`] wraps: [`TcpStream`] and [`UnixStream`]
/// (sealed: connected stream sockets of this crate only).
pub trait PollSource: sealed::Sealed {}

impl PollSource for TcpStream {}
impl PollSource for UnixStream {}

mod sealed {
    use crate::op::SharedFd;

    /// Hands out the stream's descriptor handle.
    pub trait Sealed {
        /// The handle its operations share.
        fn handle(&self) -> Handle;
    }

    /// The descriptor handle of a [`PollSource`](super::PollSource).
    pub struct Handle(pub(super) SharedFd);

    impl Sealed for crate::net::TcpStream {
        fn handle(&self) -> Handle {
            Handle(self.shared_fd().clone())
        }
    }

    impl Sealed for crate::net::UnixStream {
        fn handle(&self) -> Handle {
            Handle(self.shared_fd().clone())
        }
    }
}

impl<S: PollSource> PollIo<S> {
    /// Wraps a connected stream.
    ///
    /// # Errors
    ///
    /// `Unsupported` for a [`TcpStream`] accepted into the ring's table of
    /// direct descriptors ([`TcpListener::accept_direct`]): it has no file
    /// descriptor for the non-blocking calls.
    ///
    /// [`TcpListener::accept_direct`]: crate::net::TcpListener::accept_direct
    pub fn new(stream: S) -> io::Result<PollIo<S>> {
        let fd = stream.handle().0;
        let raw = fd.raw_fd().map_err(|_| {
            io::Error::new(
                io::ErrorKind::Unsupported,
                "PollIo needs a file descriptor: a stream accepted with \
                 accept_direct has none (accept it with accept instead)",
            )
        })?;
        Ok(PollIo {
            io: stream,
            fd,
            raw,
            read: Direction::new(libc::POLLIN | libc::POLLRDHUP),
            write: Direction::new(libc::POLLOUT),
        })
    }
}

impl<S> PollIo<S> {
    /// The stream.
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// The stream back; waits still armed are cancelled.
    pub fn into_inner(self) -> S {
        self.io
    }

    /// Reads into `buf` what the kernel has: `Ready(Ok(0))` at end of
    /// stream (or for an empty `buf`).
    pub(super) fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [MaybeUninit<u8>],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        // One call moves at most `MAX_RW_COUNT` bytes: a read that long is
        // not short.
        let (raw, want) = (self.raw, buf.len().min(MAX_RW_COUNT));
        self.read
            .poll(&self.fd, cx, want, || socket::recv_now(raw, buf))
    }

    /// Sends from `bufs` what the kernel takes now, in one `sendmsg`.
    pub(super) fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if bufs.iter().all(|buf| buf.is_empty()) {
            return Poll::Ready(Ok(0));
        }
        // One `sendmsg` takes at most `IOV_MAX` buffers and `MAX_RW_COUNT`
        // bytes: a write of all that is not short (a short write means
        // the socket is full, and waits for room).
        let bufs = &bufs[..bufs.len().min(IOVECS_MAX)];
        let want = bufs
            .iter()
            .map(|buf| buf.len())
            .sum::<usize>()
            .min(MAX_RW_COUNT);
        let raw = self.raw;
        self.write
            .poll(&self.fd, cx, want, || socket::send_now(raw, bufs))
    }

    /// Ends the write side: the peer reads end of stream once it has read
    /// everything sent before.
    pub(super) fn shutdown_write(&mut self) -> io::Result<()> {
        match socket::shutdown_now(self.raw, Shutdown::Write) {
            // The peer is gone already: the write side is as shut as it gets.
            Err(error) if error.raw_os_error() == Some(libc::ENOTCONN) => Ok(()),
            other => other,
        }
    }
}

/// One direction's readiness: its stream, armed at the first `EAGAIN` and
/// kept armed after, and whether the socket is known to be drained (for
/// reads: nothing left to read; for writes: no room).
struct Direction {
    events: libc::c_short,
    stream: Option<MultiOp<PollMulti>>,
    /// The last call found nothing to do (`EAGAIN`, or a short transfer:
    /// a stream socket's read returns less than asked only when its queue
    /// is empty, a write when its buffer is full), and no readiness event
    /// came since. The next call then waits for one first instead of
    /// making a system call that would say `EAGAIN` (as tokio does).
    drained: bool,
    /// An event said the peer hung up or the socket failed (`POLLRDHUP`,
    /// `POLLHUP`, `POLLERR`): a state no later event announces again, so
    /// from then on every call is made (and says end of stream or the
    /// error) rather than waiting for one.
    closed: bool,
}

impl Direction {
    /// Readiness for `events`: `POLLOUT` for writes, `POLLIN | POLLRDHUP`
    /// for reads (a hang-up ends a wait whether asked for or not; asked
    /// for, it is told apart from data).
    fn new(events: libc::c_short) -> Direction {
        Direction {
            events,
            stream: None,
            drained: false,
            closed: false,
        }
    }

    /// Takes one event of the stream: notes a hang-up or an error, and
    /// drops a stream the kernel ended or that failed (the next `EAGAIN`
    /// arms a new one). The poll's own error, if it failed.
    fn take(&mut self, event: Option<Completion>) -> Option<io::Error> {
        let hung_up = (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) as i32;
        match event {
            Some(event) if event.result >= 0 => {
                self.closed |= event.result & hung_up != 0;
                if !event.has_more() {
                    self.stream = None;
                }
                None
            }
            failed => {
                self.stream = None;
                failed.map(|event| io::Error::from_raw_os_error(-event.result))
            }
        }
    }

    /// One readiness-driven call that moves up to `want` bytes: made
    /// unless the socket is drained; when it would block (or is drained),
    /// waits for a readiness event: `Pending` until one comes (its CQE
    /// wakes the task), then the call again.
    fn poll(
        &mut self,
        fd: &SharedFd,
        cx: &mut Context<'_>,
        want: usize,
        mut call: impl FnMut() -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        // Events queued since the last look are what woke this task, or
        // came with bytes an earlier call already took: either way the
        // call below sees what they announced. Taking them first means an
        // event still queued after an `EAGAIN` is a new one. They are
        // taken without leaving this task's waker behind (a no-op one
        // instead): the task is woken only for an event it waits for.
        let mut look = Context::from_waker(std::task::Waker::noop());
        while let Some(stream) = &mut self.stream {
            let Poll::Ready(event) = Pin::new(stream).poll_next(&mut look) else {
                break;
            };
            self.drained = false;
            // A failed poll is armed again below if the call would block,
            // and its error returned if that one fails too.
            let _ = self.take(event);
        }
        loop {
            if !self.drained {
                match call() {
                    Ok(n) => {
                        self.drained = n > 0 && n < want && !self.closed;
                        return Poll::Ready(Ok(n));
                    }
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                        self.drained = true;
                    }
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                    Err(error) => return Poll::Ready(Err(error)),
                }
            }
            let events = self.events as u32;
            let stream = self
                .stream
                .get_or_insert_with(|| MultiOp::new(PollMulti::new(fd.clone(), events)));
            let Poll::Ready(event) = Pin::new(stream).poll_next(cx) else {
                return Poll::Pending;
            };
            if let Some(error) = self.take(event) {
                return Poll::Ready(Err(error));
            }
            self.drained = false;
        }
    }
}

/// The write half every trait family shares, word for word: `poll_write`
/// and `poll_write_vectored` as one `sendmsg`, a `poll_flush` with nothing
/// to do, and `$shutdown` (`poll_shutdown`, or futures-io's `poll_close`)
/// ending the write side.
macro_rules! write_methods {
    ($shutdown:ident) => {
        fn poll_write(
            self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            self.get_mut().poll_send(cx, &[std::io::IoSlice::new(buf)])
        }

        fn poll_write_vectored(
            self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            bufs: &[std::io::IoSlice<'_>],
        ) -> std::task::Poll<std::io::Result<usize>> {
            self.get_mut().poll_send(cx, bufs)
        }

        /// Nothing is buffered: always ready.
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }

        /// Ends the write side (`SHUT_WR`); the descriptor closes when the
        /// `PollIo` is dropped.
        fn $shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(self.get_mut().shutdown_write())
        }
    };
}
pub(super) use write_methods;

impl<S: fmt::Debug> fmt::Debug for PollIo<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PollIo")
            .field("io", &self.io)
            .field("read_armed", &self.read.stream.is_some())
            .field("write_armed", &self.write.stream.is_some())
            .finish()
    }
}
