//! Unix domain sockets: `UnixListener`, `UnixStream` and `UnixDatagram`,
//! on filesystem paths or Linux abstract names.
//!
//! Addresses are std's [`SocketAddr`]: build one with
//! `SocketAddr::from_pathname` or, for an abstract name,
//! `std::os::linux::net::SocketAddrExt::from_abstract_name`. A peer that
//! never bound (a typical client) has no address: `None`.

use std::io;
use std::net::Shutdown;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::SocketAddr;
use std::path::Path;

use super::RecvStream;
use crate::buf::{BufResult, BufRing, IoBuf, IoBufMut};
use crate::fd::{write_all_with, SharedFd};
use crate::op::Op;
use crate::op::{Accept, Connect, Recv, RecvFrom, Send, SendTo, Shutdown as ShutdownOp};
use crate::sys::socket::{self, SockAddr};

/// Connections the kernel queues for `accept` before refusing more.
const BACKLOG: i32 = 4096;

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

fn path_addr(path: &Path) -> io::Result<SocketAddr> {
    SocketAddr::from_pathname(path)
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
///     let server = listener.accept().await.unwrap();
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
    /// As `bind(2)` (`AddrInUse` when the path exists) and `listen(2)`.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        UnixListener::bind_addr(&path_addr(path.as_ref())?)
    }

    /// Binds to `addr` (a path or an abstract name) and listens.
    ///
    /// # Errors
    ///
    /// As [`bind`](Self::bind).
    pub fn bind_addr(addr: &SocketAddr) -> io::Result<UnixListener> {
        let fd = socket::unix_socket(libc::SOCK_STREAM)?;
        socket::bind_raw(fd.as_raw_fd(), &sock_addr(addr)?)?;
        socket::listen_on(fd.as_raw_fd(), BACKLOG)?;
        Ok(UnixListener {
            fd: SharedFd::new(fd),
        })
    }

    /// Waits for a connection.
    ///
    /// # Errors
    ///
    /// As `accept4(2)`.
    pub async fn accept(&self) -> io::Result<UnixStream> {
        let (fd, _) = Op::new(Accept::new(self.fd.clone())).await?;
        Ok(UnixStream { fd })
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<Option<SocketAddr>> {
        socket::local_raw(self.fd.raw())?.unix_addr()
    }

    /// Closes the listener through the ring once no accept is in flight.
    /// The socket's path stays in the filesystem; remove it when done.
    pub async fn close(self) -> io::Result<()> {
        self.fd.close().await
    }
}

/// A Unix stream connection. Methods take `&self`, as for
/// [`TcpStream`](super::TcpStream).
pub struct UnixStream {
    fd: SharedFd,
}

impl UnixStream {
    fn from_owned(fd: OwnedFd) -> UnixStream {
        UnixStream {
            fd: SharedFd::new(fd),
        }
    }

    /// Connects to the socket at `path`.
    ///
    /// # Errors
    ///
    /// `NotFound` when nothing is at the path, `ConnectionRefused` when
    /// nothing listens there, as `connect(2)` otherwise.
    pub async fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        UnixStream::connect_addr(&path_addr(path.as_ref())?).await
    }

    /// Connects to `addr` (a path or an abstract name).
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    pub async fn connect_addr(addr: &SocketAddr) -> io::Result<UnixStream> {
        let addr = sock_addr(addr)?;
        let stream = UnixStream::from_owned(socket::unix_socket(libc::SOCK_STREAM)?);
        Op::new(Connect::new(stream.fd.clone(), addr)).await?;
        Ok(stream)
    }

    /// Two streams connected to each other.
    ///
    /// # Errors
    ///
    /// As `socketpair(2)`.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = socket::unix_pair(libc::SOCK_STREAM)?;
        Ok((UnixStream::from_owned(a), UnixStream::from_owned(b)))
    }

    /// Receives into `buf`; `Ok(0)` means the peer closed its side.
    pub async fn read<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        Op::new(Recv::new(self.fd.clone(), buf)).await
    }

    /// Receives into buffers picked from `ring` as data arrives, as a
    /// stream that ends when the peer closes (see [`RecvStream`]). While no
    /// data is waiting, the connection holds no buffer.
    pub fn recv_multi(&self, ring: &BufRing) -> RecvStream {
        RecvStream::new(self.fd.clone(), ring)
    }

    /// Sends the initialized bytes of `buf`; may send fewer.
    pub async fn write<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        Op::new(Send::new(self.fd.clone(), buf)).await
    }

    /// Sends every initialized byte of `buf`, retrying short sends.
    pub async fn write_all<B: IoBuf>(&self, buf: B) -> BufResult<(), B> {
        write_all_with(buf, |rest, _| Send::new(self.fd.clone(), rest)).await
    }

    /// Shuts down the read side, the write side or both.
    pub async fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        Op::new(ShutdownOp::new(self.fd.clone(), how)).await
    }

    /// The peer's address, `None` when it never bound.
    pub fn peer_addr(&self) -> io::Result<Option<SocketAddr>> {
        socket::peer_raw(self.fd.raw())?.unix_addr()
    }

    /// This end's address, `None` when it never bound.
    pub fn local_addr(&self) -> io::Result<Option<SocketAddr>> {
        socket::local_raw(self.fd.raw())?.unix_addr()
    }

    /// Closes the socket through the ring once no operation is in flight.
    pub async fn close(self) -> io::Result<()> {
        self.fd.close().await
    }
}

/// A Unix datagram socket.
pub struct UnixDatagram {
    fd: SharedFd,
}

impl UnixDatagram {
    /// A socket bound to the filesystem `path`.
    ///
    /// # Errors
    ///
    /// As `bind(2)`.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixDatagram> {
        UnixDatagram::bind_addr(&path_addr(path.as_ref())?)
    }

    /// A socket bound to `addr` (a path or an abstract name).
    ///
    /// # Errors
    ///
    /// As `bind(2)`.
    pub fn bind_addr(addr: &SocketAddr) -> io::Result<UnixDatagram> {
        let socket = UnixDatagram::unbound()?;
        socket::bind_raw(socket.fd.raw(), &sock_addr(addr)?)?;
        Ok(socket)
    }

    /// A socket bound to no address: it can send, and receive replies only
    /// once connected.
    ///
    /// # Errors
    ///
    /// As `socket(2)`.
    pub fn unbound() -> io::Result<UnixDatagram> {
        Ok(UnixDatagram {
            fd: SharedFd::new(socket::unix_socket(libc::SOCK_DGRAM)?),
        })
    }

    /// Two sockets connected to each other.
    ///
    /// # Errors
    ///
    /// As `socketpair(2)`.
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = socket::unix_pair(libc::SOCK_DGRAM)?;
        Ok((
            UnixDatagram {
                fd: SharedFd::new(a),
            },
            UnixDatagram {
                fd: SharedFd::new(b),
            },
        ))
    }

    /// Sets the default peer for [`send`](Self::send) and
    /// [`recv`](Self::recv). Immediate.
    ///
    /// # Errors
    ///
    /// As `connect(2)`.
    pub fn connect_addr(&self, addr: &SocketAddr) -> io::Result<()> {
        socket::connect_now(self.fd.raw(), &sock_addr(addr)?)
    }

    /// Sends one datagram to `addr`.
    pub async fn send_to_addr<B: IoBuf>(&self, buf: B, addr: &SocketAddr) -> BufResult<usize, B> {
        match sock_addr(addr) {
            Ok(addr) => Op::new(SendTo::new(self.fd.clone(), buf, addr)).await,
            Err(error) => (Err(error), buf),
        }
    }

    /// Receives one datagram with its sender's address (`None` for an
    /// unbound sender).
    pub async fn recv_from<B: IoBufMut>(
        &self,
        buf: B,
    ) -> BufResult<(usize, Option<SocketAddr>), B> {
        let (result, buf) = Op::new(RecvFrom::new(self.fd.clone(), buf)).await;
        (
            result.and_then(|(len, from)| Ok((len, from.unix_addr()?))),
            buf,
        )
    }

    /// Sends one datagram to the connected peer.
    pub async fn send<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        Op::new(Send::new(self.fd.clone(), buf)).await
    }

    /// Receives one datagram from the connected peer.
    pub async fn recv<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        Op::new(Recv::new(self.fd.clone(), buf)).await
    }

    /// This socket's address, `None` when unbound.
    pub fn local_addr(&self) -> io::Result<Option<SocketAddr>> {
        socket::local_raw(self.fd.raw())?.unix_addr()
    }

    /// Closes the socket through the ring once no operation is in flight.
    pub async fn close(self) -> io::Result<()> {
        self.fd.close().await
    }
}

super::raw_fd_and_debug!(UnixListener, UnixStream, UnixDatagram);
