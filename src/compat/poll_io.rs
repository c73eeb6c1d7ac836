//! `PollIo`: a completion-based stream behind readiness traits.
//!
//! Every call first makes the non-blocking system call itself (`recv` or
//! `sendmsg` with `MSG_DONTWAIT`) on the socket's descriptor; only when
//! that says `EAGAIN` does it arm a readiness wait, one
//! `IORING_OP_POLL_ADD` for the direction, and return `Pending`. The wait's
//! CQE wakes the task, whose next poll makes the call again. So
//!
//! - a read returns what the kernel has, never more than it was asked for,
//!   and keeps nothing back;
//! - `Ready(Ok(n))` from a write means exactly `n` bytes went to the
//!   kernel, and `Pending` means none did: there is no buffer in between
//!   (HTTP/2 and TLS depend on it);
//! - a flush has nothing to do;
//! - the read and the write side each have their own wait, so one task
//!   can read while another writes (through `tokio::io::split`).
//!
//! A wait is an `Op`: dropped armed (the `PollIo` dropped, or the caller
//! gone), its slot cancels the poll, and the descriptor it holds stays
//! open until the cancel's CQE, like any operation's.

use std::fmt;
use std::future::Future;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::net::Shutdown;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use crate::net::{TcpStream, UnixStream};
use crate::op::{Op, PollAdd, SharedFd};
use crate::sys::socket;

/// A [`TcpStream`] or [`UnixStream`] with the readiness I/O traits of the
/// ecosystem: tokio's `AsyncRead`/`AsyncWrite` (feature `tokio-io`),
/// `futures-io`'s (feature `futures-io`) and hyper 1.x's `rt::Read` and
/// `rt::Write` (feature `hyper`).
///
/// A read fills what the kernel has now; `Pending` comes only after a
/// non-blocking attempt found nothing and a readiness wait
/// (`IORING_OP_POLL_ADD`) was armed. A write that returns `Ready(Ok(n))`
/// handed exactly `n` bytes to the kernel; `Pending` means none. A flush
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
    /// The armed wait for readability, if any.
    readable: Option<Op<PollAdd>>,
    /// The armed wait for writability, if any.
    writable: Option<Op<PollAdd>>,
}

// Nothing in a `PollIo` is pinned structurally: the stream is only ever
// used through `&S`, and the waits are `Op`s, which are `Unpin`.
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
            readable: None,
            writable: None,
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
        let raw = self.raw;
        poll_ready(&mut self.readable, &self.fd, libc::POLLIN, cx, || {
            socket::recv_now(raw, buf)
        })
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
        let raw = self.raw;
        poll_ready(&mut self.writable, &self.fd, libc::POLLOUT, cx, || {
            socket::send_now(raw, bufs)
        })
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

/// One readiness-driven call: while a wait is armed, waits for it; then
/// makes the call, and when it would block arms a new wait for `events`
/// (polled once, which submits it) and returns `Pending`.
fn poll_ready<T>(
    wait: &mut Option<Op<PollAdd>>,
    fd: &SharedFd,
    events: libc::c_short,
    cx: &mut Context<'_>,
    mut call: impl FnMut() -> io::Result<T>,
) -> Poll<io::Result<T>> {
    loop {
        if let Some(armed) = wait {
            // Whatever the wait saw (ready, an error or a hang-up bit, or
            // an error of the poll itself), the call tells what it means.
            let _ = ready!(Pin::new(armed).poll(cx));
            *wait = None;
        }
        match call() {
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                let mut armed = Op::new(PollAdd::new(fd.clone(), events as u32));
                if Pin::new(&mut armed).poll(cx).is_ready() {
                    // Unreachable today (a first poll only submits); if it
                    // ever completes at once, make the call again.
                    continue;
                }
                *wait = Some(armed);
                return Poll::Pending;
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            result => return Poll::Ready(result),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for PollIo<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PollIo")
            .field("io", &self.io)
            .field("read_armed", &self.readable.is_some())
            .field("write_armed", &self.writable.is_some())
            .finish()
    }
}
