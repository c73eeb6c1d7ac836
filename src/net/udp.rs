//! UDP: `UdpSocket`, with datagrams sent and received through the ring.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::AsRawFd;

use super::tcp::each_addr;
use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::fd::SharedFd;
use crate::op::Op;
use crate::op::{Recv, RecvFrom, Send, SendTo};
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
    fd: SharedFd,
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
            let fd = socket::socket(&addr, libc::SOCK_DGRAM)?;
            socket::bind_raw(fd.as_raw_fd(), &SockAddr::from_std(addr))?;
            Ok(UdpSocket {
                fd: SharedFd::new(fd),
            })
        })
    }

    /// Sets the default peer: [`send`](Self::send) goes to it and
    /// [`recv`](Self::recv) takes only its datagrams. Immediate: UDP
    /// exchanges nothing to connect.
    ///
    /// # Errors
    ///
    /// As `connect(2)`.
    pub fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        each_addr(addr, |addr| {
            socket::connect_now(self.fd.raw(), &SockAddr::from_std(addr))
        })
    }

    /// Sends the initialized bytes of `buf` as one datagram to `addr`.
    pub async fn send_to<B: IoBuf>(&self, buf: B, addr: SocketAddr) -> BufResult<usize, B> {
        Op::new(SendTo::new(self.fd.clone(), buf, SockAddr::from_std(addr))).await
    }

    /// Receives one datagram into `buf` (from its start up to its
    /// capacity; a longer datagram is truncated) with its sender.
    pub async fn recv_from<B: IoBufMut>(&self, buf: B) -> BufResult<(usize, SocketAddr), B> {
        let (result, buf) = Op::new(RecvFrom::new(self.fd.clone(), buf)).await;
        let result = result.and_then(|(len, from)| Ok((len, from.socket_addr()?)));
        (result, buf)
    }

    /// Sends one datagram to the connected peer.
    pub async fn send<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        Op::new(Send::new(self.fd.clone(), buf)).await
    }

    /// Receives one datagram from the connected peer.
    pub async fn recv<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        Op::new(Recv::new(self.fd.clone(), buf)).await
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        socket::local_addr(self.fd.raw())
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        socket::peer_addr(self.fd.raw())
    }

    /// Closes the socket through the ring once no operation is in flight.
    pub async fn close(self) -> io::Result<()> {
        self.fd.close().await
    }
}

super::raw_fd_and_debug!(UdpSocket);
