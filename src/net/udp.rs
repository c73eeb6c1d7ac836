//! UDP: `UdpSocket`, with datagrams sent and received through the ring.

use std::io;
use std::net::SocketAddr;

use super::addr::{resolve, Addrs, ToSocketAddrs};
use super::datagram::{datagram_methods, Datagram};
use super::{each_addr, no_address};
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
    /// Synchronous: `addr` is std's `ToSocketAddrs`, so a host name is
    /// resolved on the calling thread and blocks the core; bind to a literal
    /// address, or resolve first with [`lookup_host`](super::lookup_host).
    ///
    /// # Errors
    ///
    /// As `bind(2)`, or `InvalidInput` when `addr` resolves to nothing.
    pub fn bind<A: std::net::ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        each_addr(addr, |addr| {
            let socket = UdpSocket::from(socket::socket(&addr, libc::SOCK_DGRAM)?);
            socket.datagram.bind(&SockAddr::from_std(addr))?;
            Ok(socket)
        })
    }

    /// Sets the default peer: [`send`](Self::send) goes to it and
    /// [`recv`](Self::recv) takes only its datagrams. The first address
    /// `addr` stands for that the socket can connect to (one of its family)
    /// is taken; connecting itself is immediate, as UDP exchanges nothing,
    /// but a host name is resolved on the blocking pool first
    /// ([`lookup_host`](super::lookup_host)).
    ///
    /// # Errors
    ///
    /// As `connect(2)` for the last address tried; the resolver's error
    /// for a name that does not resolve; `InvalidInput` when `addr` stands
    /// for no address.
    ///
    /// # Examples
    ///
    /// ```
    /// use corering::net::UdpSocket;
    ///
    /// corering::start(async {
    ///     let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    ///     let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    ///     a.connect(b.local_addr().unwrap()).await.unwrap();
    ///     a.send(b"ping".as_slice()).await.0.unwrap();
    ///     let (received, buf) = b.recv_from(Vec::with_capacity(16)).await;
    ///     assert_eq!((received.unwrap().0, &buf[..4]), (4, &b"ping"[..]));
    /// });
    /// ```
    pub async fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        let mut last_error = None;
        for addr in resolve(&addr).await? {
            match self.datagram.connect(&SockAddr::from_std(addr)) {
                Ok(()) => return Ok(()),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(no_address))
    }

    /// Sends the initialized bytes of `buf` as one datagram to `addr`. A
    /// `SocketAddr` is used as it is; a host name is resolved on the blocking
    /// pool first ([`lookup_host`](super::lookup_host)) and the datagram
    /// goes to the first address of the socket's family (`localhost` may
    /// give `::1` before `127.0.0.1`, and an IPv4 socket cannot send to the
    /// first), or to the first address when none is.
    ///
    /// # Errors
    ///
    /// As `sendmsg(2)`; the resolver's error for a name that does not
    /// resolve; `InvalidInput` when `addr` stands for no address. `buf`
    /// comes back either way.
    pub async fn send_to<B: IoBuf, A: ToSocketAddrs>(
        &self,
        buf: B,
        addr: A,
    ) -> BufResult<usize, B> {
        let to = match resolve(&addr).await {
            Ok(addrs) => self.pick(addrs),
            Err(error) => return (Err(error), buf),
        };
        match to {
            Some(to) => self.datagram.send_to(buf, SockAddr::from_std(to)).await,
            None => (Err(no_address()), buf),
        }
    }

    /// The first of `addrs` of this socket's family, else the first; a
    /// single address (a literal) is taken without asking the kernel.
    fn pick(&self, mut addrs: Addrs) -> Option<SocketAddr> {
        if addrs.len() <= 1 {
            return addrs.next();
        }
        let addrs: Vec<SocketAddr> = addrs.collect();
        let ipv6 = self.local_addr().map(|local| local.is_ipv6());
        let same_family = ipv6
            .ok()
            .and_then(|ipv6| addrs.iter().find(|addr| addr.is_ipv6() == ipv6));
        same_family.or(addrs.first()).copied()
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
