//! Names off the core: corering's own [`ToSocketAddrs`] and
//! [`lookup_host`], which resolve a host name on the blocking pool instead
//! of calling `getaddrinfo` on the core thread.
//!
//! Every address argument is sorted in two, synchronously and without a
//! system call: a literal (a `SocketAddr`, an IP address and a port, a
//! string that parses as one of those) is known at once and never goes near
//! the pool; anything else is a host name and a port, handed to std's
//! resolver on a pool thread with `spawn_blocking`. The trait is sealed (as
//! tokio's is) so that how an address is sorted stays this module's own
//! business.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::executor::JoinError;
use crate::runtime::RemoteHandle;

/// An address a socket can connect or send to, given as an address or as a
/// host name to resolve; the argument of [`TcpStream::connect`],
/// [`UdpSocket::connect`], [`UdpSocket::send_to`] and [`lookup_host`].
///
/// Literal addresses (`SocketAddr`, `(IpAddr, u16)`, `"127.0.0.1:80"`,
/// `"[::1]:80"`, `&[SocketAddr]`) are used as they are; a name
/// (`"localhost:80"`, `("example.com", 443)`) is resolved with the system
/// resolver on the blocking pool ([`spawn_blocking`](crate::spawn_blocking)),
/// so the core goes on serving its other tasks meanwhile.
///
/// The trait is sealed: it is implemented for the types below, and cannot be
/// implemented outside corering. Its methods are not part of the API.
///
/// [`TcpStream::connect`]: super::TcpStream::connect
/// [`UdpSocket::connect`]: super::UdpSocket::connect
/// [`UdpSocket::send_to`]: super::UdpSocket::send_to
pub trait ToSocketAddrs: sealed::ToSocketAddrsPriv {}

pub(crate) mod sealed {
    use std::io;
    use std::net::SocketAddr;

    /// What an address argument turned out to be, before any resolution.
    pub enum Sorted {
        /// Addresses known without asking the resolver.
        Literal(super::Addrs),
        /// A host name and a port for the resolver on the blocking pool.
        Name(String, u16),
    }

    /// The hidden half of [`ToSocketAddrs`](super::ToSocketAddrs).
    pub trait ToSocketAddrsPriv {
        /// Sorts the argument into a literal or a name; an error for a
        /// string that is neither (no port, or a port that is no number).
        fn sort(&self) -> io::Result<Sorted>;
    }

    impl Sorted {
        pub(super) fn one(addr: SocketAddr) -> io::Result<Sorted> {
            Ok(Sorted::Literal(super::Addrs::One(Some(addr))))
        }
    }
}

use sealed::{Sorted, ToSocketAddrsPriv};

/// The addresses a [`ToSocketAddrs`] argument stands for, in the order the
/// resolver gave them; no allocation for a single literal.
#[derive(Debug)]
pub enum Addrs {
    /// One literal address, taken once.
    One(Option<SocketAddr>),
    /// Several, from a slice or the resolver.
    Many(std::vec::IntoIter<SocketAddr>),
}

impl Iterator for Addrs {
    type Item = SocketAddr;

    fn next(&mut self) -> Option<SocketAddr> {
        match self {
            Addrs::One(addr) => addr.take(),
            Addrs::Many(addrs) => addrs.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Addrs::One(addr) => (
                usize::from(addr.is_some()),
                Some(usize::from(addr.is_some())),
            ),
            Addrs::Many(addrs) => addrs.size_hint(),
        }
    }
}

impl ExactSizeIterator for Addrs {}

/// Resolves `host` to its socket addresses: a literal at once, a name with
/// the system resolver (`getaddrinfo`, through std) on the blocking pool,
/// so the core is never stalled by a slow DNS server.
///
/// The addresses come in the resolver's order; a name may resolve to both
/// an IPv6 and an IPv4 address (`localhost` often gives `::1` first).
///
/// # Errors
///
/// `InvalidInput` for a string with no port or a bad one; the resolver's
/// error for a name it cannot resolve; an error of kind `Other` when the
/// resolution on the pool panicked or was cancelled (the runtime shutting
/// down).
///
/// # Examples
///
/// ```
/// corering::start(async {
///     let addrs: Vec<_> = corering::net::lookup_host("localhost:80").await.unwrap().collect();
///     assert!(addrs.iter().all(|addr| addr.ip().is_loopback() && addr.port() == 80));
///
///     // A literal is parsed here, without the pool.
///     let mut literal = corering::net::lookup_host("[::1]:8080").await.unwrap();
///     assert_eq!(literal.next(), Some("[::1]:8080".parse().unwrap()));
///     assert_eq!(literal.next(), None);
/// });
/// ```
pub async fn lookup_host<A: ToSocketAddrs>(
    host: A,
) -> io::Result<impl Iterator<Item = SocketAddr>> {
    resolve(&host).await
}

/// [`lookup_host`] for the crate's callers, by reference and with the
/// concrete iterator.
pub(crate) async fn resolve<A: ToSocketAddrs + ?Sized>(addr: &A) -> io::Result<Addrs> {
    let (host, port) = match addr.sort()? {
        Sorted::Literal(addrs) => return Ok(addrs),
        Sorted::Name(host, port) => (host, port),
    };
    let job = AbortOnDrop(crate::spawn_blocking(move || {
        std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
            .map(|addrs| addrs.collect::<Vec<_>>())
    }));
    let addrs = job.await.map_err(resolution_failed)??;
    Ok(Addrs::Many(addrs.into_iter()))
}

/// A name resolution whose job on the pool died: it panicked, or the pool's
/// result never came back.
fn resolution_failed(error: JoinError) -> io::Error {
    io::Error::other(format!("name resolution on the blocking pool: {error}"))
}

/// A pool job that is aborted when the future waiting for it is dropped (a
/// connect that timed out, a cancelled task): a job still queued behind a
/// full pool then never starts; one already running runs to its end and
/// its result is dropped.
struct AbortOnDrop<T>(RemoteHandle<T>);

impl<T> std::future::Future for AbortOnDrop<T> {
    type Output = Result<T, JoinError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        // `RemoteHandle` is `Unpin`.
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        // After the result arrived this does nothing: the job is done.
        self.0.abort();
    }
}

/// Splits `"host:port"` at its last colon, as std does; a string that is
/// not a literal `SocketAddr` and has no port is an error, found here
/// rather than on the pool.
fn sort_str(addr: &str) -> io::Result<Sorted> {
    if let Ok(addr) = addr.parse::<SocketAddr>() {
        return Sorted::one(addr);
    }
    let invalid = |message| io::Error::new(io::ErrorKind::InvalidInput, message);
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| invalid("invalid socket address: no port"))?;
    let port = port
        .parse::<u16>()
        .map_err(|_| invalid("invalid socket address: bad port"))?;
    sort_host(host, port)
}

/// A host and a port: a literal IP address, or a name for the pool.
fn sort_host(host: &str, port: u16) -> io::Result<Sorted> {
    match host.parse::<IpAddr>() {
        Ok(ip) => Sorted::one(SocketAddr::new(ip, port)),
        Err(_) => Ok(Sorted::Name(host.to_owned(), port)),
    }
}

/// Implements the trait for a type that is always one literal address.
macro_rules! literal_addr {
    ($($ty:ty => |$this:ident| $addr:expr;)*) => {$(
        impl ToSocketAddrs for $ty {}

        impl ToSocketAddrsPriv for $ty {
            fn sort(&self) -> io::Result<Sorted> {
                let $this = self;
                Sorted::one($addr)
            }
        }
    )*};
}

literal_addr! {
    SocketAddr => |addr| *addr;
    SocketAddrV4 => |addr| SocketAddr::V4(*addr);
    SocketAddrV6 => |addr| SocketAddr::V6(*addr);
    (IpAddr, u16) => |addr| SocketAddr::new(addr.0, addr.1);
    (Ipv4Addr, u16) => |addr| SocketAddr::new(IpAddr::V4(addr.0), addr.1);
    (Ipv6Addr, u16) => |addr| SocketAddr::new(IpAddr::V6(addr.0), addr.1);
}

impl ToSocketAddrs for [SocketAddr] {}

impl ToSocketAddrsPriv for [SocketAddr] {
    fn sort(&self) -> io::Result<Sorted> {
        Ok(Sorted::Literal(Addrs::Many(Vec::from(self).into_iter())))
    }
}

impl ToSocketAddrs for str {}

impl ToSocketAddrsPriv for str {
    fn sort(&self) -> io::Result<Sorted> {
        sort_str(self)
    }
}

impl ToSocketAddrs for String {}

impl ToSocketAddrsPriv for String {
    fn sort(&self) -> io::Result<Sorted> {
        sort_str(self)
    }
}

impl ToSocketAddrs for (&str, u16) {}

impl ToSocketAddrsPriv for (&str, u16) {
    fn sort(&self) -> io::Result<Sorted> {
        sort_host(self.0, self.1)
    }
}

impl ToSocketAddrs for (String, u16) {}

impl ToSocketAddrsPriv for (String, u16) {
    fn sort(&self) -> io::Result<Sorted> {
        sort_host(&self.0, self.1)
    }
}

/// A reference to an address argument (`&str`, `&String`, `&SocketAddr`,
/// `&[SocketAddr]`) is the argument itself.
impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {}

impl<T: ToSocketAddrsPriv + ?Sized> ToSocketAddrsPriv for &T {
    fn sort(&self) -> io::Result<Sorted> {
        (**self).sort()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn literal(addr: impl ToSocketAddrs) -> Vec<SocketAddr> {
        match addr.sort().unwrap() {
            Sorted::Literal(addrs) => addrs.collect(),
            Sorted::Name(host, port) => panic!("sorted as a name: {host}:{port}"),
        }
    }

    #[test]
    fn literals_are_sorted_as_literals_and_names_as_names() {
        let v4: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let v6: SocketAddr = "[::1]:80".parse().unwrap();
        assert_eq!(literal("127.0.0.1:80"), [v4]);
        assert_eq!(literal("[::1]:80"), [v6]);
        assert_eq!(literal(String::from("[::1]:80")), [v6]);
        assert_eq!(literal(("127.0.0.1", 80)), [v4]);
        assert_eq!(literal(("::1".to_owned(), 80)), [v6]);
        assert_eq!(literal((Ipv4Addr::LOCALHOST, 80)), [v4]);
        assert_eq!(literal((Ipv6Addr::LOCALHOST, 80)), [v6]);
        assert_eq!(literal((v4.ip(), 80)), [v4]);
        assert_eq!(literal(&[v6, v4][..]), [v6, v4]);
        let by_ref: &SocketAddr = &v4;
        assert_eq!(literal(by_ref), [v4], "a reference resolves as its target");
        assert!(matches!(
            "localhost:80".sort().unwrap(),
            Sorted::Name(host, 80) if host == "localhost"
        ));
        assert!(matches!(
            ("example.com", 443).sort().unwrap(),
            Sorted::Name(host, 443) if host == "example.com"
        ));
    }

    #[test]
    fn a_string_without_a_good_port_is_invalid_input() {
        for bad in [
            "localhost",
            "localhost:",
            "localhost:http",
            "localhost:65536",
        ] {
            let error = bad.sort().err().unwrap();
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{bad}");
        }
    }
}
