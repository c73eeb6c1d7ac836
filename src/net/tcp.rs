//! TCP: `TcpListener` and `TcpStream`, with accept, connect, receive, send
//! and shutdown through the ring.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs as StdToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use super::addr::{resolve, ToSocketAddrs};
use super::stream::Stream;
use super::{each_addr, no_address, BACKLOG};
use crate::op::SharedFd;
use crate::op::{Accept, AcceptMulti, Connect, MultiOp, Op};
use crate::runtime::context;
use crate::sys::socket::{self, SockAddr};
use crate::time::timeout;

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
}

impl TcpListener {
    /// Binds to `addr` (the first address it resolves to that binds) with
    /// `SO_REUSEADDR`, and listens.
    ///
    /// Synchronous, like every bind here: `addr` is std's `ToSocketAddrs`,
    /// so a host name is resolved on the calling thread and blocks the core.
    /// A server binds once, usually to a literal address; where a name must
    /// be bound on a running core, resolve it first with
    /// [`lookup_host`](super::lookup_host).
    ///
    /// # Errors
    ///
    /// As `bind(2)` and `listen(2)`, or `InvalidInput` when `addr` resolves
    /// to nothing.
    pub fn bind<A: StdToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        TcpListener::bind_with(addr, false)
    }

    /// As [`bind`](Self::bind), with `SO_REUSEPORT` too: every core can bind
    /// its own listener to the same port and the kernel spreads incoming
    /// connections across them.
    ///
    /// # Errors
    ///
    /// As [`bind`](Self::bind).
    pub fn bind_reuse_port<A: StdToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        TcpListener::bind_with(addr, true)
    }

    fn bind_with<A: StdToSocketAddrs>(addr: A, reuse_port: bool) -> io::Result<TcpListener> {
        each_addr(addr, |addr| {
            let fd = socket::listen(addr, reuse_port, BACKLOG)?;
            Ok(TcpListener::from(fd))
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
        Ok((TcpStream::from_shared(fd), peer.socket_addr()?))
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
    /// [`as_fd`](TcpStream::as_fd) gives `None`. Options set on the listener before accepting
    /// (such as [`TcpListener::set_nodelay`]) are inherited.
    ///
    /// # Errors
    ///
    /// As [`accept`](Self::accept).
    pub async fn accept_direct(&self) -> io::Result<(TcpStream, SocketAddr)> {
        // An entry is reserved first: a direct accept that finds the table
        // full would lose its connection in the kernel.
        if !context::with_core(|core| {
            core.ring()
                .is_some_and(|driver| driver.borrow_mut().reserve_direct())
        }) {
            return self.accept().await;
        }
        let (fd, peer) = Op::new(Accept::direct(self.fd.clone())).await?;
        Ok((TcpStream::from_shared(fd), peer.socket_addr()?))
    }

    /// Sets `TCP_NODELAY` on the listener; Linux copies it to every
    /// connection accepted afterwards (direct ones included).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        socket::set_nodelay(self.as_fd().as_raw_fd(), nodelay)
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
        socket::local_addr(self.as_fd().as_raw_fd())
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
    /// The next connection accepted:
    /// [`Stream::poll_next`](futures_core::Stream::poll_next) as a future,
    /// so no stream extension crate is needed. Never `None`: the accept
    /// re-arms itself.
    ///
    /// Cancel-safe: a connection accepted while no call waits is kept for
    /// the next.
    pub async fn next(&mut self) -> Option<io::Result<TcpStream>> {
        use futures_core::Stream as _;
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }
}

impl futures_core::Stream for Incoming<'_> {
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

impl AsFd for TcpListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // A listener never is a direct descriptor.
        self.fd.plain_fd()
    }
}

impl AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}

/// Takes a listening TCP socket as it is: io_uring needs no `O_NONBLOCK`,
/// so the descriptor's flags (blocking or not) are left alone.
impl From<std::net::TcpListener> for TcpListener {
    fn from(listener: std::net::TcpListener) -> TcpListener {
        TcpListener::from(OwnedFd::from(listener))
    }
}

/// Takes a listening stream socket as it is (flags left alone, as for
/// `From<std::net::TcpListener>`). Nothing checks the descriptor's kind;
/// an accept on one that does not listen fails with the kernel's error.
impl From<OwnedFd> for TcpListener {
    fn from(fd: OwnedFd) -> TcpListener {
        TcpListener {
            fd: SharedFd::new(fd),
        }
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener").field("fd", &self.fd).finish()
    }
}

/// A TCP connection.
///
/// Methods take `&self`, so one task can read while another writes: share
/// the stream through an `Rc`. Dropping it closes the socket through the ring
/// once every operation on it has completed.
///
/// A connection from [`TcpListener::accept_direct`] may have no file
/// descriptor (see [`as_fd`](Self::as_fd)), so `TcpStream` implements
/// neither `AsFd` nor `AsRawFd`.
pub struct TcpStream {
    stream: Stream,
}

impl TcpStream {
    fn from_owned(fd: OwnedFd) -> TcpStream {
        TcpStream::from_shared(SharedFd::new(fd))
    }

    fn from_shared(fd: SharedFd) -> TcpStream {
        TcpStream {
            stream: Stream::new(fd),
        }
    }

    /// Connects to `addr`, trying each address it stands for in order and
    /// returning the first connection made.
    ///
    /// A literal address (`SocketAddr`, `"127.0.0.1:80"`, `(ip, port)`, a
    /// slice of addresses) is used as it is; a host name is resolved on the
    /// blocking pool ([`lookup_host`](super::lookup_host)), so the core
    /// serves its other tasks meanwhile. A name that gives `::1` before
    /// `127.0.0.1` still reaches a server listening on IPv4 only: the
    /// refused first address is followed by the next.
    ///
    /// # Errors
    ///
    /// The last address's error (`ConnectionRefused`, `TimedOut`, ...); the
    /// resolver's for a name that does not resolve; `InvalidInput` for a
    /// string with no port, or when `addr` stands for no address at all.
    ///
    /// # Examples
    ///
    /// ```
    /// use corering::net::{TcpListener, TcpStream};
    ///
    /// corering::start(async {
    ///     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let port = listener.local_addr().unwrap().port();
    ///     // Resolved off the core; `localhost` may give `::1` first, which
    ///     // refuses, and then `127.0.0.1`, which connects.
    ///     let stream = TcpStream::connect(("localhost", port)).await.unwrap();
    ///     assert_eq!(stream.peer_addr().unwrap(), listener.local_addr().unwrap());
    /// });
    /// ```
    pub async fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        let mut last_error = None;
        for addr in resolve(&addr).await? {
            match TcpStream::connect_addr(addr).await {
                Ok(stream) => return Ok(stream),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(no_address))
    }

    async fn connect_addr(addr: SocketAddr) -> io::Result<TcpStream> {
        let stream = TcpStream::from_owned(socket::socket(&addr, libc::SOCK_STREAM)?);
        let connect = Connect::new(stream.stream.shared().clone(), SockAddr::from_std(addr));
        Op::new(connect).await?;
        Ok(stream)
    }

    /// [`connect`](Self::connect), giving up after `limit`. The limit
    /// covers the whole: resolving a name, then every address tried.
    ///
    /// # Errors
    ///
    /// `TimedOut` when no connection was made in time; the half-open socket
    /// is closed, and a resolution still queued on the blocking pool is
    /// dropped unrun. Otherwise as [`connect`](Self::connect).
    pub async fn connect_timeout<A: ToSocketAddrs>(
        addr: A,
        limit: Duration,
    ) -> io::Result<TcpStream> {
        timeout(limit, TcpStream::connect(addr)).await?
    }

    /// The file descriptor, `None` for a connection accepted into the
    /// ring's table of direct descriptors
    /// ([`accept_direct`](TcpListener::accept_direct)), which has none.
    pub fn as_fd(&self) -> Option<BorrowedFd<'_>> {
        self.stream.shared().as_fd()
    }

    /// The file descriptor, for the immediate calls (options, names).
    fn raw_fd(&self) -> io::Result<RawFd> {
        self.stream.shared().raw_fd()
    }

    /// Sets `TCP_NODELAY`: small writes go out at once instead of waiting
    /// to be merged (Nagle's algorithm).
    ///
    /// # Errors
    ///
    /// As `setsockopt(2)`; `Unsupported` for a direct connection.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        socket::set_nodelay(self.raw_fd()?, nodelay)
    }

    /// Whether `TCP_NODELAY` is set.
    ///
    /// # Errors
    ///
    /// As `getsockopt(2)`; `Unsupported` for a direct connection.
    pub fn nodelay(&self) -> io::Result<bool> {
        Ok(socket::option(self.raw_fd()?, libc::IPPROTO_TCP, libc::TCP_NODELAY)? != 0)
    }

    /// The peer's address.
    ///
    /// # Errors
    ///
    /// As `getpeername(2)`; `Unsupported` for a direct connection.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        socket::peer_addr(self.raw_fd()?)
    }

    /// The local address of the connection.
    ///
    /// # Errors
    ///
    /// As `getsockname(2)`; `Unsupported` for a direct connection.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        socket::local_addr(self.raw_fd()?)
    }
}

super::stream::stream_methods!(
    TcpStream,
    "# use corering::net::{TcpListener, TcpStream};
# let listener = TcpListener::bind(\"127.0.0.1:0\").unwrap();
# let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
# let (server, _) = listener.accept().await.unwrap();
"
);

/// Takes a connected TCP socket as it is: io_uring needs no `O_NONBLOCK`,
/// so the descriptor's flags (blocking or not) are left alone.
impl From<std::net::TcpStream> for TcpStream {
    fn from(stream: std::net::TcpStream) -> TcpStream {
        TcpStream::from_owned(stream.into())
    }
}

/// Takes a connected stream socket as it is (flags left alone, as for
/// `From<std::net::TcpStream>`). Nothing checks the descriptor's kind; an
/// operation it does not support fails with the kernel's error.
impl From<OwnedFd> for TcpStream {
    fn from(fd: OwnedFd) -> TcpStream {
        TcpStream::from_owned(fd)
    }
}
