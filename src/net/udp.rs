//! UDP: `UdpSocket`, with datagrams sent and received through the ring.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

use super::datagram::{datagram_methods, Datagram};
use super::each_addr;
use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::sys::socket::{self, SockAddr};

/// A UDP socket.
///
/// # Examples
///
/// ```
/// use corering::net::UdpSocket;
///
/// corering::start(async {
///     let a = UdpSocket::bind("127.0.0.1:0").unwrap();
///     let b = UdpSocket::bind("127.0.0.1:0").unwrap();
///     let to = b.local_addr().unwrap();
///     a.send_to(b"ping".as_slice(), to).await.0.unwrap();
///     let (received, buf) = b.recv_from(Vec::with_capacity(64)).await;
///     let (len, from) = received.unwrap();
///     assert_eq!((&buf[..len], from), (&b"ping"[..], a.local_addr().unwrap()));
/// });
/// ```
pub struct UdpSocket {
    datagram: Datagram,
}

impl UdpSocket {
    /// A socket bound to `addr` (the first address it resolves to that
    /// binds).
    ///
    /// # Errors
    ///
    /// As `bind(2)`, or `InvalidInput` when `addr` resolves to nothing.
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        each_addr(addr, |addr| {
            let socket = UdpSocket::from(socket::socket(&addr, libc::SOCK_DGRAM)?);
            socket.datagram.bind(&SockAddr::from_std(addr))?;
            Ok(socket)
        })
    }

    /// Sets the default peer: [`send`](Self::send) goes to it and
    /// [`recv`](Self::recv) takes only its datagrams. Immediate: UDP
    /// exchanges nothing to connect.
    ///
    /// # Errors
    ///
    /// As `connect(2)`, or `InvalidInput` when `addr` resolves to nothing.
    pub fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        each_addr(addr, |addr| {
            self.datagram.connect(&SockAddr::from_std(addr))
        })
    }

    /// Sends the initialized bytes of `buf` as one datagram to `addr`.
    pub async fn send_to<B: IoBuf>(&self, buf: B, addr: SocketAddr) -> BufResult<usize, B> {
        self.datagram.send_to(buf, SockAddr::from_std(addr)).await
    }

    /// Receives one datagram into `buf` (from its start up to its
    /// capacity; a longer datagram is truncated) with its sender.
    pub async fn recv_from<B: IoBufMut>(&self, buf: B) -> BufResult<(usize, SocketAddr), B> {
        let (result, buf) = self.datagram.recv_from(buf).await;
        let result = result.and_then(|(len, from)| Ok((len, from.socket_addr()?)));
        (result, buf)
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.datagram.local_addr()?.socket_addr()
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.datagram.peer_addr()?.socket_addr()
    }
}

datagram_methods!(UdpSocket);

/// Takes a UDP socket as it is: io_uring needs no `O_NONBLOCK`, so the
/// descriptor's flags (blocking or not) are left alone.
impl From<std::net::UdpSocket> for UdpSocket {
    fn from(socket: std::net::UdpSocket) -> UdpSocket {
        UdpSocket::from(std::os::fd::OwnedFd::from(socket))
    }
}
