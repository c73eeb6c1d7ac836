//! Unix domain sockets: `UnixListener`, `UnixStream` and `UnixDatagram`,
//! on filesystem paths or Linux abstract names.
//!
//! Addresses are std's [`SocketAddr`]: build one with
//! `SocketAddr::from_pathname` or, for an abstract name,
//! `std::os::linux::net::SocketAddrExt::from_abstract_name`. A socket that
//! never bound (a typical client) has an unnamed address
//! ([`SocketAddr::is_unnamed`]), as in std.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::SocketAddr;
use std::path::Path;

use super::datagram::{datagram_methods, Datagram};
use super::stream::{stream_methods, Stream};
use super::BACKLOG;
use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::op::SharedFd;
use crate::op::{Accept, Connect, Op};
use crate::sys::socket::{self, SockAddr};

/// The kernel form of a std Unix socket address.
fn sock_addr(addr: &SocketAddr) -> io::Result<SockAddr> {
    if let Some(path) = addr.as_pathname() {
        SockAddr::unix_path(path)
    } else if let Some(name) = addr.as_abstract_name() {
        SockAddr::unix_abstract(name)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "an unnamed Unix socket address cannot be bound or reached",
        ))
    }
}

/// The std form of a kernel Unix socket address; unnamed for a socket
/// that never bound.
fn std_addr(addr: &SockAddr) -> io::Result<SocketAddr> {
    match addr.unix_addr()? {
        Some(addr) => Ok(addr),
        None => Ok(unnamed()),
    }
}

/// An unnamed address, as std gives for a socket that never bound. std
/// has no constructor for one; an empty path is one (`sun_path` empty),
/// which a unit test pins.
fn unnamed() -> SocketAddr {
    SocketAddr::from_pathname("").expect("an empty path fits sun_path")
}

/// A Unix socket listening for stream connections.
///
/// # Examples
///
/// ```
/// use corering::net::{UnixListener, UnixStream};
///
/// corering::start(async {
///     let path = std::env::temp_dir().join(format!("corering-doc-{}.sock", std::process::id()));
///     let _ = std::fs::remove_file(&path);
///     let listener = UnixListener::bind(&path).unwrap();
///     let client = UnixStream::connect(&path).await.unwrap();
///     let (server, peer) = listener.accept().await.unwrap();
///     assert!(peer.is_unnamed(), "the client never bound");
///     client.write_all(b"hi".as_slice()).await.0.unwrap();
///     let (read, buf) = server.read(Vec::with_capacity(8)).await;
///     assert_eq!(&buf[..read.unwrap()], b"hi");
///     std::fs::remove_file(&path).unwrap();
/// });
/// ```
pub struct UnixListener {
    fd: SharedFd,
}

impl UnixListener {
    /// Binds to the filesystem `path` (which must not exist) and listens.
    ///
    /// # Errors
    ///
    /// As `bind(2)` (`AddrInUse` when the path exists) and `listen(2)`;
    /// `InvalidInput` for a path too long for `sun_path` or with a NUL.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        UnixListener::bind_sock_addr(&SockAddr::unix_path(path.as_ref())?)
    }

    /// Binds to `addr` (a path or an abstract name) and listens.
    ///
    /// # Errors
    ///
    /// As [`bind`](Self::bind).
    pub fn bind_addr(addr: &SocketAddr) -> io::Result<UnixListener> {
        UnixListener::bind_sock_addr(&sock_addr(addr)?)
    }

    fn bind_sock_addr(addr: &SockAddr) -> io::Result<UnixListener> {
        let listener = UnixListener::from(socket::unix_socket(libc::SOCK_STREAM)?);
        socket::bind_raw(listener.as_raw_fd(), addr)?;
        socket::listen_on(listener.as_raw_fd(), BACKLOG)?;
        Ok(listener)
    }

    /// Waits for a connection and returns it with the peer's address
    /// (unnamed when the peer never bound, the usual case).
    ///
    /// # Errors
    ///
    /// As `accept4(2)`.
    pub async fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let (fd, peer) = Op::new(Accept::new(self.fd.clone())).await?;
        let stream = UnixStream {
            stream: Stream::new(fd),
        };
        Ok((stream, std_addr(&peer)?))
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        std_addr(&socket::local_raw(self.as_raw_fd())?)
    }

    /// Closes the listener through the ring once no accept is in flight.
    /// The socket's path stays in the filesystem; remove it when done.
    pub async fn close(self) -> io::Result<()> {
        self.fd.close().await
    }
}

impl AsFd for UnixListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.plain_fd()
    }
}

impl AsRawFd for UnixListener {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}

/// Takes a listening Unix socket as it is: io_uring needs no
/// `O_NONBLOCK`, so the descriptor's flags are left alone.
impl From<std::os::unix::net::UnixListener> for UnixListener {
    fn from(listener: std::os::unix::net::UnixListener) -> UnixListener {
        UnixListener::from(OwnedFd::from(listener))
    }
}

/// Takes a listening stream socket as it is (flags left alone). Nothing
/// checks the descriptor's kind; an accept on one that does not listen
/// fails with the kernel's error.
impl From<OwnedFd> for UnixListener {
    fn from(fd: OwnedFd) -> UnixListener {
        UnixListener {
            fd: SharedFd::new(fd),
        }
    }
}

impl std::fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnixListener")
            .field("fd", &self.fd)
            .finish()
    }
}

/// A Unix stream connection. Methods take `&self`, as for
/// [`TcpStream`](super::TcpStream), and it has the same stream methods.
pub struct UnixStream {
    stream: Stream,
}

impl UnixStream {
    /// Connects to the socket at `path`.
    ///
    /// # Errors
    ///
    /// `NotFound` when nothing is at the path, `ConnectionRefused` when
    /// nothing listens there, as `connect(2)` otherwise.
    pub async fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        UnixStream::connect_sock_addr(SockAddr::unix_path(path.as_ref())?).await
    }

    /// Connects to `addr` (a path or an abstract name).
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    pub async fn connect_addr(addr: &SocketAddr) -> io::Result<UnixStream> {
        UnixStream::connect_sock_addr(sock_addr(addr)?).await
    }

    async fn connect_sock_addr(addr: SockAddr) -> io::Result<UnixStream> {
        let stream = UnixStream::from(socket::unix_socket(libc::SOCK_STREAM)?);
        Op::new(Connect::new(stream.stream.shared().clone(), addr)).await?;
        Ok(stream)
    }

    /// Two streams connected to each other.
    ///
    /// # Errors
    ///
    /// As `socketpair(2)`.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = socket::unix_pair(libc::SOCK_STREAM)?;
        Ok((UnixStream::from(a), UnixStream::from(b)))
    }

    /// The peer's address, unnamed when it never bound.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        std_addr(&socket::peer_raw(self.as_raw_fd())?)
    }

    /// This end's address, unnamed when it never bound.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        std_addr(&socket::local_raw(self.as_raw_fd())?)
    }
}

stream_methods!(
    UnixStream,
    "# use corering::net::UnixStream;
# let (client, server) = UnixStream::pair().unwrap();
"
);

// A Unix stream never is a direct descriptor (only `TcpListener` accepts
// into the ring's table), so it always has a file descriptor.
impl AsFd for UnixStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.shared().plain_fd()
    }
}

impl AsRawFd for UnixStream {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}

/// Takes a connected Unix stream socket as it is: io_uring needs no
/// `O_NONBLOCK`, so the descriptor's flags are left alone.
impl From<std::os::unix::net::UnixStream> for UnixStream {
    fn from(stream: std::os::unix::net::UnixStream) -> UnixStream {
        UnixStream::from(OwnedFd::from(stream))
    }
}

/// Takes a connected stream socket as it is (flags left alone). Nothing
/// checks the descriptor's kind; an operation it does not support fails
/// with the kernel's error.
impl From<OwnedFd> for UnixStream {
    fn from(fd: OwnedFd) -> UnixStream {
        UnixStream {
            stream: Stream::new(SharedFd::new(fd)),
        }
    }
}

/// A Unix datagram socket.
///
/// Addresses are named as in tokio and std: [`send_to`](Self::send_to)
/// and [`connect`](Self::connect) take a filesystem path; their `_addr`
/// forms take a [`SocketAddr`] (an abstract name, or the sender
/// [`recv_from`](Self::recv_from) reported).
///
/// # Examples
///
/// ```
/// use corering::net::UnixDatagram;
///
/// corering::start(async {
///     let path = std::env::temp_dir().join(format!("corering-doc-dgram-{}.sock", std::process::id()));
///     let _ = std::fs::remove_file(&path);
///     let server = UnixDatagram::bind(&path).unwrap();
///     let client = UnixDatagram::unbound().unwrap();
///     client.send_to(b"ping".as_slice(), &path).await.0.unwrap();
///     let (received, buf) = server.recv_from(Vec::with_capacity(16)).await;
///     let (len, from) = received.unwrap();
///     assert_eq!(&buf[..len], b"ping");
///     assert!(from.is_unnamed(), "the client never bound");
///     std::fs::remove_file(&path).unwrap();
/// });
/// ```
pub struct UnixDatagram {
    datagram: Datagram,
}

impl UnixDatagram {
    /// A socket bound to the filesystem `path`.
    ///
    /// # Errors
    ///
    /// As `bind(2)`; `InvalidInput` for a path too long for `sun_path` or
    /// with a NUL.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixDatagram> {
        UnixDatagram::bind_sock_addr(&SockAddr::unix_path(path.as_ref())?)
    }

    /// A socket bound to `addr` (a path or an abstract name).
    ///
    /// # Errors
    ///
    /// As `bind(2)`.
    pub fn bind_addr(addr: &SocketAddr) -> io::Result<UnixDatagram> {
        UnixDatagram::bind_sock_addr(&sock_addr(addr)?)
    }

    fn bind_sock_addr(addr: &SockAddr) -> io::Result<UnixDatagram> {
        let socket = UnixDatagram::unbound()?;
        socket.datagram.bind(addr)?;
        Ok(socket)
    }

    /// A socket bound to no address: it can send, and receive replies only
    /// once connected.
    ///
    /// # Errors
    ///
    /// As `socket(2)`.
    pub fn unbound() -> io::Result<UnixDatagram> {
        Ok(UnixDatagram::from(socket::unix_socket(libc::SOCK_DGRAM)?))
    }

    /// Two sockets connected to each other.
    ///
    /// # Errors
    ///
    /// As `socketpair(2)`.
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = socket::unix_pair(libc::SOCK_DGRAM)?;
        Ok((UnixDatagram::from(a), UnixDatagram::from(b)))
    }

    /// Sets the default peer for [`send`](Self::send) and
    /// [`recv`](Self::recv) to the socket at `path`. Immediate.
    ///
    /// # Errors
    ///
    /// As `connect(2)`.
    pub fn connect<P: AsRef<Path>>(&self, path: P) -> io::Result<()> {
        self.datagram.connect(&SockAddr::unix_path(path.as_ref())?)
    }

    /// [`connect`](Self::connect) to `addr` (a path or an abstract name).
    ///
    /// # Errors
    ///
    /// As `connect(2)`; `InvalidInput` for an unnamed address.
    pub fn connect_addr(&self, addr: &SocketAddr) -> io::Result<()> {
        self.datagram.connect(&sock_addr(addr)?)
    }

    /// Sends one datagram to the socket at `path`.
    pub async fn send_to<B: IoBuf, P: AsRef<Path>>(&self, buf: B, path: P) -> BufResult<usize, B> {
        match SockAddr::unix_path(path.as_ref()) {
            Ok(addr) => self.datagram.send_to(buf, addr).await,
            Err(error) => (Err(error), buf),
        }
    }

    /// Sends one datagram to `addr` (a path or an abstract name).
    pub async fn send_to_addr<B: IoBuf>(&self, buf: B, addr: &SocketAddr) -> BufResult<usize, B> {
        match sock_addr(addr) {
            Ok(addr) => self.datagram.send_to(buf, addr).await,
            Err(error) => (Err(error), buf),
        }
    }

    /// Receives one datagram with its sender's address (unnamed for a
    /// sender that never bound).
    pub async fn recv_from<B: IoBufMut>(&self, buf: B) -> BufResult<(usize, SocketAddr), B> {
        let (result, buf) = self.datagram.recv_from(buf).await;
        (
            result.and_then(|(len, from)| Ok((len, std_addr(&from)?))),
            buf,
        )
    }

    /// This socket's address, unnamed when unbound.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        std_addr(&self.datagram.local_addr()?)
    }

    /// The connected peer's address, unnamed when it never bound.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        std_addr(&self.datagram.peer_addr()?)
    }
}

datagram_methods!(UnixDatagram);

/// Takes a Unix datagram socket as it is: io_uring needs no
/// `O_NONBLOCK`, so the descriptor's flags are left alone.
impl From<std::os::unix::net::UnixDatagram> for UnixDatagram {
    fn from(socket: std::os::unix::net::UnixDatagram) -> UnixDatagram {
        UnixDatagram::from(OwnedFd::from(socket))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_path_is_the_unnamed_address() {
        let unnamed = unnamed();
        assert!(unnamed.is_unnamed());
        assert_eq!(unnamed.as_pathname(), None);
        assert_eq!(unnamed.as_abstract_name(), None);
        // What the kernel reports for a peer that never bound: no name.
        let mut never_bound = SockAddr::empty();
        never_bound.set_len(0);
        assert!(std_addr(&never_bound).unwrap().is_unnamed());
    }
}
