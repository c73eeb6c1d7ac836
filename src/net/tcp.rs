//! TCP: `TcpListener` and `TcpStream`, with accept, connect, receive, send
//! and shutdown through the ring.

use std::fmt;
use std::io;
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use io_uring::cqueue;

use super::RecvStream;
use crate::buf::{BufResult, BufRing, IoBuf, IoBufMut, RingBuf};
use crate::fd::{write_all_with, SharedFd};
use crate::op::{
    readv, writev, Accept, AcceptMulti, Connect, Offset, Recv, RecvBuf, Send, SendAllRecv,
    SendAllRecvBuf, SendZc, Shutdown as ShutdownOp, MAX_RW_COUNT,
};
use crate::op::{MultiOp, Op};
use crate::runtime::context;
use crate::sys::socket::{self, SockAddr};
use crate::time::timeout;

/// Connections the kernel queues for `accept` before refusing more.
const BACKLOG: i32 = 4096;

/// A TCP socket listening for connections.
///
/// # Examples
///
/// ```
/// use corering::net::{TcpListener, TcpStream};
///
/// corering::start(async {
///     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
///     let addr = listener.local_addr().unwrap();
///     let client = corering::spawn(async move {
///         let stream = TcpStream::connect(addr).await.unwrap();
///         stream.write_all(b"ping".as_slice()).await.0.unwrap();
///     });
///     let (stream, _peer) = listener.accept().await.unwrap();
///     let (read, buf) = stream.read(Vec::with_capacity(4)).await;
///     assert_eq!((read.unwrap(), &buf[..]), (4, &b"ping"[..]));
///     client.await.unwrap();
/// });
/// ```
pub struct TcpListener {
    fd: SharedFd,
    local: SocketAddr,
}

impl TcpListener {
    /// Binds to `addr` (the first address it resolves to that binds) with
    /// `SO_REUSEADDR`, and listens.
    ///
    /// # Errors
    ///
    /// As `bind(2)` and `listen(2)`, or `InvalidInput` when `addr` resolves
    /// to nothing.
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        TcpListener::bind_with(addr, false)
    }

    /// As [`bind`](Self::bind), with `SO_REUSEPORT` too: every core can bind
    /// its own listener to the same port and the kernel spreads incoming
    /// connections across them.
    ///
    /// # Errors
    ///
    /// As [`bind`](Self::bind).
    pub fn bind_reuse_port<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        TcpListener::bind_with(addr, true)
    }

    fn bind_with<A: ToSocketAddrs>(addr: A, reuse_port: bool) -> io::Result<TcpListener> {
        each_addr(addr, |addr| {
            let fd = socket::listen(addr, reuse_port, BACKLOG)?;
            let local = socket::local_addr(fd.as_raw_fd())?;
            Ok(TcpListener {
                fd: SharedFd::new(fd),
                local,
            })
        })
    }

    /// Waits for a connection and returns it with the peer's address.
    ///
    /// # Errors
    ///
    /// As `accept4(2)`; `EMFILE` when this process is out of descriptors,
    /// after which the listener keeps working.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (fd, peer) = Op::new(Accept::new(self.fd.clone())).await?;
        Ok((TcpStream { fd }, peer.socket_addr()?))
    }

    /// [`accept`](Self::accept) into the ring's table of direct
    /// (registered) descriptors: the kernel then looks the socket up
    /// without the process's descriptor table on every operation, and the
    /// process spends no file descriptor on it. Falls back to a plain
    /// [`accept`](Self::accept) when every entry is taken or the ring has
    /// no table ([`Builder::direct_fds`](crate::Builder::direct_fds)).
    ///
    /// A direct connection works through the ring only: `set_nodelay`,
    /// `nodelay`, `peer_addr` and `local_addr` give `Unsupported`, and
    /// `as_raw_fd` gives -1. Options set on the listener before accepting
    /// (such as [`TcpListener::set_nodelay`]) are inherited.
    ///
    /// # Errors
    ///
    /// As [`accept`](Self::accept).
    pub async fn accept_direct(&self) -> io::Result<(TcpStream, SocketAddr)> {
        // An entry is reserved first: a direct accept that finds the table
        // full would lose its connection in the kernel.
        if !context::with_core(|core| core.driver.borrow_mut().reserve_direct()) {
            return self.accept().await;
        }
        let (fd, peer) = Op::new(Accept::direct(self.fd.clone())).await?;
        Ok((TcpStream { fd }, peer.socket_addr()?))
    }

    /// Sets `TCP_NODELAY` on the listener; Linux copies it to every
    /// connection accepted afterwards (direct ones included).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        socket::set_nodelay(self.fd.raw_fd()?, nodelay)
    }

    /// The connections as they arrive, from one multishot accept: a single
    /// submission serves every connection until the stream is dropped (it
    /// re-arms itself if the kernel ends it). Peer addresses are not
    /// collected; ask [`TcpStream::peer_addr`].
    ///
    /// Dropping the stream cancels the accept; a connection accepted as it
    /// is dropped is closed, not leaked.
    ///
    /// # Examples
    ///
    /// ```
    /// use corering::net::{TcpListener, TcpStream};
    ///
    /// corering::start(async {
    ///     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let addr = listener.local_addr().unwrap();
    ///     let mut incoming = listener.incoming();
    ///     for _ in 0..3 {
    ///         let client = TcpStream::connect(addr).await.unwrap();
    ///         let server = incoming.next().await.unwrap().unwrap();
    ///         assert_eq!(server.peer_addr().unwrap(), client.local_addr().unwrap());
    ///     }
    /// });
    /// ```
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming {
            listener: self,
            accept: None,
        }
    }

    /// [`accept`](Self::accept), giving up after `limit`.
    ///
    /// # Errors
    ///
    /// `TimedOut` when no connection arrived in time (nothing is leaked: a
    /// connection accepted as the timeout fires is closed).
    pub async fn accept_timeout(&self, limit: Duration) -> io::Result<(TcpStream, SocketAddr)> {
        timeout(limit, self.accept()).await?
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }

    /// Closes the listener through the ring once no accept is in flight.
    pub async fn close(self) -> io::Result<()> {
        self.fd.close().await
    }
}

/// The stream of [`TcpListener::incoming`].
pub struct Incoming<'a> {
    listener: &'a TcpListener,
    /// The multishot accept in flight; `None` before the first poll and
    /// after the kernel ended one.
    accept: Option<MultiOp<AcceptMulti>>,
}

impl Incoming<'_> {
    /// The next connection accepted: [`Stream::poll_next`] as a future, so
    /// no stream extension crate is needed. Never `None`: the accept
    /// re-arms itself.
    ///
    /// Cancel-safe: a connection accepted while no call waits is kept for
    /// the next.
    pub async fn next(&mut self) -> Option<io::Result<TcpStream>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }
}

impl Stream for Incoming<'_> {
    type Item = io::Result<TcpStream>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            let listener = this.listener;
            let accept = this
                .accept
                .get_or_insert_with(|| MultiOp::new(AcceptMulti::new(listener.fd.clone())));
            match std::task::ready!(Pin::new(accept).poll_next(cx)) {
                Some(accepted) => return Poll::Ready(Some(accepted.map(TcpStream::from_owned))),
                // The kernel ended this multishot accept: arm another.
                None => this.accept = None,
            }
        }
    }
}

impl fmt::Debug for Incoming<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Incoming")
            .field("listener", &self.listener)
            .field("armed", &self.accept.is_some())
            .finish()
    }
}

impl AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.raw()
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("fd", &self.fd.raw())
            .field("local", &self.local)
            .finish()
    }
}

/// A TCP connection.
///
/// Methods take `&self`, so one task can read while another writes: share
/// the stream through an `Rc`. Dropping it closes the socket through the ring
/// once every operation on it has completed.
pub struct TcpStream {
    fd: SharedFd,
}

impl TcpStream {
    fn from_owned(fd: OwnedFd) -> TcpStream {
        TcpStream {
            fd: SharedFd::new(fd),
        }
    }

    /// The handle operations share, for splices from files.
    pub(crate) fn shared(&self) -> &SharedFd {
        &self.fd
    }

    /// Connects to `addr`, trying each address it resolves to in turn.
    ///
    /// Host names are resolved with the system resolver, which blocks the
    /// core; pass a `SocketAddr` where that matters.
    ///
    /// # Errors
    ///
    /// The last address's error (`ConnectionRefused`, `TimedOut`, ...), or
    /// `InvalidInput` when `addr` resolves to nothing.
    pub async fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        let mut last_error = None;
        for addr in addr.to_socket_addrs()? {
            match TcpStream::connect_addr(addr).await {
                Ok(stream) => return Ok(stream),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(no_address))
    }

    async fn connect_addr(addr: SocketAddr) -> io::Result<TcpStream> {
        let stream = TcpStream::from_owned(socket::socket(&addr, libc::SOCK_STREAM)?);
        Op::new(Connect::new(stream.fd.clone(), SockAddr::from_std(addr))).await?;
        Ok(stream)
    }

    /// [`connect`](Self::connect), giving up after `limit`.
    ///
    /// # Errors
    ///
    /// `TimedOut` when no connection was made in time; the half-open socket
    /// is closed.
    pub async fn connect_timeout<A: ToSocketAddrs>(
        addr: A,
        limit: Duration,
    ) -> io::Result<TcpStream> {
        timeout(limit, TcpStream::connect(addr)).await?
    }

    /// Receives into `buf`, filling it from its start up to its capacity.
    /// `Ok(0)` means the peer closed its side.
    pub async fn read<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        Op::new(Recv::new(self.fd.clone(), buf)).await
    }

    /// Receives into buffers picked from `ring` as data arrives, as a
    /// stream that ends when the peer closes (see [`RecvStream`]). While no
    /// data is waiting, the connection holds no buffer.
    pub fn recv_multi(&self, ring: &BufRing) -> RecvStream {
        RecvStream::new(self.fd.clone(), ring)
    }

    /// Receives once into a buffer picked from `ring` when the data
    /// arrives, so a connection waiting for data holds no buffer. `Ok(None)`
    /// means the peer closed its side.
    ///
    /// When the ring has no buffer to give (`ENOBUFS`), waits for one to
    /// come back and receives again; the data waits in the socket
    /// meanwhile. Dropping the future in flight loses no buffer.
    ///
    /// # Examples
    ///
    /// ```
    /// use corering::buf::BufRing;
    /// use corering::net::{TcpListener, TcpStream};
    ///
    /// corering::start(async {
    ///     let ring = BufRing::new(4, 1024).unwrap();
    ///     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
    ///     let (server, _) = listener.accept().await.unwrap();
    ///     client.write_all(b"ping".as_slice()).await.0.unwrap();
    ///     let buf = server.recv_buf(&ring).await.unwrap().unwrap();
    ///     assert_eq!(&buf[..], b"ping");
    ///     drop(buf); // back to the ring
    ///     drop(client);
    ///     assert!(server.recv_buf(&ring).await.unwrap().is_none());
    ///     assert_eq!(ring.available(), 4);
    /// });
    /// ```
    pub async fn recv_buf(&self, ring: &BufRing) -> io::Result<Option<RingBuf>> {
        loop {
            let since = ring.inner().returned();
            match Op::new(RecvBuf::new(self.fd.clone(), ring.inner().clone())).await {
                Err(error) if error.raw_os_error() == Some(libc::ENOBUFS) => {
                    ring.inner().starved(since).await;
                }
                received => return received,
            }
        }
    }

    /// Sends all of `out`, then [`recv_buf`](Self::recv_buf): a turn of a
    /// request-response protocol in one submission with one wake, like
    /// [`write_all_then_read`](Self::write_all_then_read), but holding no
    /// receive buffer while the peer is silent. Gives `out` back.
    ///
    /// # Errors
    ///
    /// The send's error (and no receive) when it failed; otherwise the
    /// receive's.
    pub async fn write_all_then_recv_buf<O: IoBuf>(
        &self,
        out: O,
        ring: &BufRing,
    ) -> (io::Result<Option<RingBuf>>, O) {
        let out = if out.bytes_init() == 0 {
            out
        } else if self.can_link(&out) {
            let pair = SendAllRecvBuf::new(self.fd.clone(), out, ring.inner().clone());
            let since = ring.inner().returned();
            match Op::new(pair).await {
                (Err(send_failed), out) => return (Err(send_failed), out),
                // Sent, but the ring was empty: receive once a buffer is
                // back.
                (Ok(Err(error)), out) if error.raw_os_error() == Some(libc::ENOBUFS) => {
                    ring.inner().starved(since).await;
                    out
                }
                (Ok(received), out) => return (received, out),
            }
        } else {
            let (written, out) = self.write_all(out).await;
            if let Err(error) = written {
                return (Err(error), out);
            }
            out
        };
        (self.recv_buf(ring).await, out)
    }

    /// Whether `out` can head a linked send-then-receive: one send moves
    /// at most `MAX_RW_COUNT` bytes, and the kernel must skip a successful
    /// send's CQE.
    fn can_link(&self, out: &impl IoBuf) -> bool {
        out.bytes_init() <= MAX_RW_COUNT
            && context::with_core(|core| core.driver.borrow().can_link())
    }

    /// Sends the initialized bytes of `buf`; may send fewer (see
    /// [`write_all`](Self::write_all)). A closed peer gives `BrokenPipe`,
    /// never `SIGPIPE`.
    pub async fn write<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        Op::new(Send::new(self.fd.clone(), buf)).await
    }

    /// Sends the initialized bytes of `buf` without copying them into the
    /// kernel (`IORING_OP_SEND_ZC`); may send fewer. The buffer comes back
    /// once the network stack no longer reads it, which pays off for large
    /// buffers; small ones are cheaper to copy with [`write`](Self::write).
    ///
    /// # Errors
    ///
    /// As [`write`](Self::write); `EOPNOTSUPP` or `EINVAL` on kernels
    /// without zero-copy send (before 6.0).
    pub async fn send_zc<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        let mut op = MultiOp::new(SendZc::new(self.fd.clone(), buf));
        let mut sent = None;
        while let Some(completion) =
            std::future::poll_fn(|cx| Pin::new(&mut op).poll_next(cx)).await
        {
            if !cqueue::notif(completion.flags) {
                sent = Some(completion.into_result().map(|sent| sent as usize));
            }
        }
        let buf = op.into_finished().expect("the stream ended").into_buf();
        let sent =
            sent.unwrap_or_else(|| Err(io::Error::other("zero-copy send ended without a result")));
        (sent, buf)
    }

    /// Sends every initialized byte of `buf`, retrying short sends.
    ///
    /// # Errors
    ///
    /// The first error of a send (`BrokenPipe`, `ConnectionReset`, ...), or
    /// `WriteZero`. The buffer is handed back either way.
    pub async fn write_all<B: IoBuf>(&self, buf: B) -> BufResult<(), B> {
        write_all_with(buf, |rest, _| Send::new(self.fd.clone(), rest)).await
    }

    /// Sends every initialized byte of `out`, then receives into `into`
    /// (as [`read`](Self::read)): a request-response turn in one
    /// submission. The two are linked in the ring, so the receive starts
    /// once the send is done, and the task wakes once, when the receive
    /// completes, instead of once per operation. Returns the bytes received.
    ///
    /// On kernels without `IOSQE_CQE_SKIP_SUCCESS` (before 5.17) it is
    /// [`write_all`](Self::write_all) then `read`.
    ///
    /// # Errors
    ///
    /// The send's error (`BrokenPipe`, `ConnectionReset`, ..., or
    /// `WriteZero` when it stopped short), in which case nothing was
    /// received; otherwise the receive's. Both buffers are handed back
    /// either way.
    ///
    /// # Examples
    ///
    /// ```
    /// use corering::net::{TcpListener, TcpStream};
    ///
    /// corering::start(async {
    ///     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let addr = listener.local_addr().unwrap();
    ///     let server = corering::spawn(async move {
    ///         let (stream, _) = listener.accept().await.unwrap();
    ///         let (_, request) = stream.read(vec![0u8; 4]).await;
    ///         stream.write_all(request).await.0.unwrap();
    ///     });
    ///     let client = TcpStream::connect(addr).await.unwrap();
    ///     let (received, _, reply) = client
    ///         .write_all_then_read(b"ping".to_vec(), Vec::with_capacity(16))
    ///         .await;
    ///     assert_eq!(received.unwrap(), 4);
    ///     assert_eq!(reply, b"ping");
    ///     server.await;
    /// });
    /// ```
    pub async fn write_all_then_read<O: IoBuf, I: IoBufMut>(
        &self,
        out: O,
        into: I,
    ) -> (io::Result<usize>, O, I) {
        if out.bytes_init() > 0 {
            if self.can_link(&out) {
                return Op::new(SendAllRecv::new(self.fd.clone(), out, into)).await;
            }
            let (written, returned) = self.write_all(out).await;
            if let Err(error) = written {
                return (Err(error), returned, into);
            }
            let (received, into) = self.read(into).await;
            return (received, returned, into);
        }
        let (received, into) = self.read(into).await;
        (received, out, into)
    }

    /// Receives into `bufs` in order (`readv`).
    ///
    /// # Errors
    ///
    /// As `readv(2)`; `InvalidInput`, with nothing submitted, for more than
    /// 1,024 buffers (`IOV_MAX`). The buffers are handed back either way.
    pub async fn readv<B: IoBufMut>(&self, bufs: Vec<B>) -> BufResult<usize, Vec<B>> {
        readv("readv", self.fd.clone(), bufs, Offset::CURRENT).await
    }

    /// Sends the initialized bytes of `bufs` in order (`writev`); may send
    /// fewer.
    ///
    /// # Errors
    ///
    /// As `writev(2)`; `InvalidInput`, with nothing submitted, for more
    /// than 1,024 buffers (`IOV_MAX`). The buffers are handed back either
    /// way.
    pub async fn writev<B: IoBuf>(&self, bufs: Vec<B>) -> BufResult<usize, Vec<B>> {
        writev("writev", self.fd.clone(), bufs, Offset::CURRENT).await
    }

    /// Shuts down the read side, the write side or both.
    pub async fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        Op::new(ShutdownOp::new(self.fd.clone(), how)).await
    }

    /// Sets `TCP_NODELAY`: small writes go out at once instead of waiting
    /// to be merged (Nagle's algorithm).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        socket::set_nodelay(self.fd.raw_fd()?, nodelay)
    }

    /// Whether `TCP_NODELAY` is set.
    pub fn nodelay(&self) -> io::Result<bool> {
        Ok(socket::option(self.fd.raw_fd()?, libc::IPPROTO_TCP, libc::TCP_NODELAY)? != 0)
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        socket::peer_addr(self.fd.raw_fd()?)
    }

    /// The local address of the connection.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        socket::local_addr(self.fd.raw_fd()?)
    }

    /// Closes the socket through the ring once no operation is in flight on
    /// it, and reports the result.
    pub async fn close(self) -> io::Result<()> {
        self.fd.close().await
    }
}

super::raw_fd_and_debug!(TcpStream);

/// Runs `f` on each address `addr` resolves to until one succeeds.
pub(super) fn each_addr<A: ToSocketAddrs, T>(
    addr: A,
    mut f: impl FnMut(SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last_error = None;
    for addr in addr.to_socket_addrs()? {
        match f(addr) {
            Ok(value) => return Ok(value),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(no_address))
}

fn no_address() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "the address resolved to no socket address",
    )
}
