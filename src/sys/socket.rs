//! Socket setup: creating, binding and configuring sockets, and converting
//! socket addresses to and from the kernel's `sockaddr` layout.
//!
//! Everything here is synchronous and immediate (binding, options, address
//! queries); what waits on the network goes through the ring.

use std::ffi::OsStr;
use std::io;
use std::mem::{size_of, MaybeUninit};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Where `sun_path` starts in a `sockaddr_un`.
const SUN_PATH_OFFSET: usize = std::mem::offset_of!(libc::sockaddr_un, sun_path);

/// A socket address in the kernel's layout, with its length.
#[derive(Clone, Copy)]
pub(crate) struct SockAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl SockAddr {
    /// An empty address for the kernel to fill (accept, getsockname).
    pub(crate) fn empty() -> SockAddr {
        SockAddr {
            // SAFETY: all-zero bytes are a valid `sockaddr_storage`.
            storage: unsafe { MaybeUninit::zeroed().assume_init() },
            len: size_of::<libc::sockaddr_storage>() as libc::socklen_t,
        }
    }

    /// The kernel form of `addr`.
    pub(crate) fn from_std(addr: SocketAddr) -> SockAddr {
        let mut out = SockAddr::empty();
        match addr {
            SocketAddr::V4(addr) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: addr.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(addr.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: `sockaddr_storage` is larger than and aligned for
                // every sockaddr type.
                unsafe { out.as_mut_ptr().cast::<libc::sockaddr_in>().write(sin) };
                out.len = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            }
            SocketAddr::V6(addr) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: addr.port().to_be(),
                    sin6_flowinfo: addr.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: addr.ip().octets(),
                    },
                    sin6_scope_id: addr.scope_id(),
                };
                // SAFETY: as above.
                unsafe { out.as_mut_ptr().cast::<libc::sockaddr_in6>().write(sin6) };
                out.len = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            }
        }
        out
    }

    /// The address as std's type.
    ///
    /// # Errors
    ///
    /// `InvalidData` for an address family other than IPv4 and IPv6.
    pub(crate) fn socket_addr(&self) -> io::Result<SocketAddr> {
        match i32::from(self.storage.ss_family) {
            libc::AF_INET => {
                // SAFETY: the family says the storage holds a `sockaddr_in`.
                let sin = unsafe { &*self.as_ptr().cast::<libc::sockaddr_in>() };
                let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
                Ok(SocketAddr::V4(SocketAddrV4::new(
                    ip,
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 => {
                // SAFETY: the family says the storage holds a `sockaddr_in6`.
                let sin6 = unsafe { &*self.as_ptr().cast::<libc::sockaddr_in6>() };
                Ok(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )))
            }
            family => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unexpected socket address family {family}"),
            )),
        }
    }

    /// The kernel form of a Unix socket path.
    ///
    /// # Errors
    ///
    /// `InvalidInput` when the path is too long for `sun_path` or holds a
    /// NUL byte.
    pub(crate) fn unix_path(path: &Path) -> io::Result<SockAddr> {
        let bytes = path.as_os_str().as_bytes();
        if bytes.contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a Unix socket path cannot contain NUL bytes",
            ));
        }
        // The path is NUL-terminated inside `sun_path`.
        SockAddr::unix_raw(bytes, 1)
    }

    /// The kernel form of a Linux abstract Unix socket name.
    ///
    /// # Errors
    ///
    /// `InvalidInput` when the name is too long for `sun_path`.
    pub(crate) fn unix_abstract(name: &[u8]) -> io::Result<SockAddr> {
        let mut bytes = Vec::with_capacity(name.len() + 1);
        bytes.push(0);
        bytes.extend_from_slice(name);
        SockAddr::unix_raw(&bytes, 0)
    }

    fn unix_raw(bytes: &[u8], terminator: usize) -> io::Result<SockAddr> {
        let mut out = SockAddr::empty();
        // SAFETY: `sockaddr_storage` is larger than and aligned for
        // `sockaddr_un`.
        let un = unsafe { &mut *out.as_mut_ptr().cast::<libc::sockaddr_un>() };
        if bytes.len() + terminator > un.sun_path.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "Unix socket path too long",
            ));
        }
        un.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (slot, &byte) in un.sun_path.iter_mut().zip(bytes) {
            *slot = byte as libc::c_char;
        }
        out.len = (SUN_PATH_OFFSET + bytes.len() + terminator) as libc::socklen_t;
        Ok(out)
    }

    /// The address as std's Unix socket address; `None` for an unnamed
    /// socket (a client that never bound).
    ///
    /// # Errors
    ///
    /// `InvalidData` for a family other than `AF_UNIX`.
    pub(crate) fn unix_addr(&self) -> io::Result<Option<std::os::unix::net::SocketAddr>> {
        // An unbound peer comes back with no name at all (length 0), or
        // with the family only.
        let len = (self.len as usize).saturating_sub(SUN_PATH_OFFSET);
        if len == 0 {
            return Ok(None);
        }
        if i32::from(self.storage.ss_family) != libc::AF_UNIX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not a Unix socket address",
            ));
        }
        // SAFETY: the family says the storage holds a `sockaddr_un`.
        let un = unsafe { &*self.as_ptr().cast::<libc::sockaddr_un>() };
        let bytes: Vec<u8> = un.sun_path[..len.min(un.sun_path.len())]
            .iter()
            .map(|&byte| byte as u8)
            .collect();
        match bytes.split_first() {
            Some((0, name)) => {
                use std::os::linux::net::SocketAddrExt;
                std::os::unix::net::SocketAddr::from_abstract_name(name).map(Some)
            }
            _ => {
                let path = bytes.split(|&byte| byte == 0).next().unwrap_or_default();
                std::os::unix::net::SocketAddr::from_pathname(Path::new(OsStr::from_bytes(path)))
                    .map(Some)
            }
        }
    }

    /// Sets the length the kernel reported for the address it wrote.
    pub(crate) fn set_len(&mut self, len: libc::socklen_t) {
        self.len = len.min(size_of::<libc::sockaddr_storage>() as libc::socklen_t);
    }

    pub(crate) fn as_ptr(&self) -> *const libc::sockaddr {
        (&self.storage as *const libc::sockaddr_storage).cast()
    }

    pub(crate) fn as_mut_ptr(&mut self) -> *mut libc::sockaddr {
        (&mut self.storage as *mut libc::sockaddr_storage).cast()
    }

    pub(crate) fn len(&self) -> libc::socklen_t {
        self.len
    }

    pub(crate) fn len_mut(&mut self) -> *mut libc::socklen_t {
        &mut self.len
    }
}

/// A new close-on-exec stream or datagram socket for `addr`'s family.
pub(crate) fn socket(addr: &SocketAddr, ty: libc::c_int) -> io::Result<OwnedFd> {
    let domain = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: socket takes no pointers.
    let fd = unsafe { syscall!(socket(domain, ty | libc::SOCK_CLOEXEC, 0)) }?;
    // SAFETY: `fd` was just returned by socket and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A new close-on-exec Unix socket of type `ty`.
pub(crate) fn unix_socket(ty: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: socket takes no pointers.
    let fd = unsafe { syscall!(socket(libc::AF_UNIX, ty | libc::SOCK_CLOEXEC, 0)) }?;
    // SAFETY: `fd` was just returned by socket and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Two connected close-on-exec Unix sockets of type `ty`.
pub(crate) fn unix_pair(ty: libc::c_int) -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors the kernel writes.
    unsafe {
        syscall!(socketpair(
            libc::AF_UNIX,
            ty | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr()
        ))
    }?;
    // SAFETY: both were just returned by socketpair and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Binds `fd` to a kernel-form address.
pub(crate) fn bind_raw(fd: RawFd, addr: &SockAddr) -> io::Result<()> {
    // SAFETY: the pointer and length describe `addr`, alive for the call.
    unsafe { syscall!(bind(fd, addr.as_ptr(), addr.len())) }.map(drop)
}

/// Starts listening on a bound socket.
pub(crate) fn listen_on(fd: RawFd, backlog: i32) -> io::Result<()> {
    // SAFETY: listen takes no pointers.
    unsafe { syscall!(listen(fd, backlog)) }.map(drop)
}

/// Connects a datagram socket (no waiting: it only sets the peer).
pub(crate) fn connect_now(fd: RawFd, addr: &SockAddr) -> io::Result<()> {
    // SAFETY: the pointer and length describe `addr`, alive for the call.
    unsafe { syscall!(connect(fd, addr.as_ptr(), addr.len())) }.map(drop)
}

/// The kernel-form local address of `fd`.
pub(crate) fn local_raw(fd: RawFd) -> io::Result<SockAddr> {
    let mut addr = SockAddr::empty();
    // SAFETY: the pointers describe `addr`'s storage and length.
    unsafe { syscall!(getsockname(fd, addr.as_mut_ptr(), addr.len_mut())) }?;
    Ok(addr)
}

/// The kernel-form peer address of `fd`.
pub(crate) fn peer_raw(fd: RawFd) -> io::Result<SockAddr> {
    let mut addr = SockAddr::empty();
    // SAFETY: the pointers describe `addr`'s storage and length.
    unsafe { syscall!(getpeername(fd, addr.as_mut_ptr(), addr.len_mut())) }?;
    Ok(addr)
}

/// Sets an integer socket option.
pub(crate) fn set_option(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: the pointer and length describe `value`, alive for the call.
    unsafe {
        syscall!(setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        ))
    }
    .map(drop)
}

/// Sets or clears `TCP_NODELAY`.
pub(crate) fn set_nodelay(fd: RawFd, nodelay: bool) -> io::Result<()> {
    set_option(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, nodelay.into())
}

/// Reads an integer socket option.
pub(crate) fn option(fd: RawFd, level: libc::c_int, name: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the pointers describe `value` and `len`, alive for the call.
    unsafe {
        syscall!(getsockopt(
            fd,
            level,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        ))
    }?;
    Ok(value)
}

/// A listening TCP socket bound to `addr`, with `SO_REUSEADDR` and, when
/// asked, `SO_REUSEPORT` (so several cores can each bind the same port and
/// the kernel spreads connections across them).
pub(crate) fn listen(addr: SocketAddr, reuse_port: bool, backlog: i32) -> io::Result<OwnedFd> {
    let fd = socket(&addr, libc::SOCK_STREAM)?;
    set_option(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    if reuse_port {
        set_option(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
    }
    bind_raw(fd.as_raw_fd(), &SockAddr::from_std(addr))?;
    listen_on(fd.as_raw_fd(), backlog)?;
    Ok(fd)
}

/// The address `fd` is bound to.
pub(crate) fn local_addr(fd: RawFd) -> io::Result<SocketAddr> {
    local_raw(fd)?.socket_addr()
}

/// The address of `fd`'s peer.
pub(crate) fn peer_addr(fd: RawFd) -> io::Result<SocketAddr> {
    peer_raw(fd)?.socket_addr()
}

/// One `recv(2)` that never waits (`MSG_DONTWAIT`, whatever the
/// descriptor's own mode): the bytes the kernel has now, `Ok(0)` at end of
/// stream, `WouldBlock` when it has none.
#[cfg(any(feature = "tokio-io", feature = "futures-io", feature = "hyper"))]
pub(crate) fn recv_now(fd: RawFd, buf: &mut [std::mem::MaybeUninit<u8>]) -> io::Result<usize> {
    // SAFETY: `buf` is live, writable memory of `buf.len()` bytes; recv
    // writes at most that many and never reads them.
    let n = unsafe {
        syscall!(recv(
            fd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT
        ))?
    };
    Ok(n as usize)
}

/// One `sendmsg(2)` of `bufs` (at most `IOV_MAX` of them: more is
/// `EMSGSIZE`) that never waits and never raises `SIGPIPE`: the bytes the
/// kernel took, `WouldBlock` when it took none.
#[cfg(any(feature = "tokio-io", feature = "futures-io", feature = "hyper"))]
pub(crate) fn send_now(fd: RawFd, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: a zeroed msghdr is valid (no address, no control data).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // `IoSlice` is ABI-compatible with `iovec`; the kernel only reads them.
    msg.msg_iov = bufs.as_ptr().cast_mut().cast();
    msg.msg_iovlen = bufs.len();
    // SAFETY: `msg` points at `msg_iovlen` live iovecs, each at live
    // memory of its length; sendmsg only reads them.
    let n = unsafe { syscall!(sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL))? };
    Ok(n as usize)
}

/// `shutdown(2)`'s `how` for std's direction.
pub(crate) fn shutdown_how(how: std::net::Shutdown) -> libc::c_int {
    match how {
        std::net::Shutdown::Read => libc::SHUT_RD,
        std::net::Shutdown::Write => libc::SHUT_WR,
        std::net::Shutdown::Both => libc::SHUT_RDWR,
    }
}

/// `shutdown(2)`: ends one or both directions of a connected socket now.
#[cfg(any(feature = "tokio-io", feature = "futures-io", feature = "hyper"))]
pub(crate) fn shutdown_now(fd: RawFd, how: std::net::Shutdown) -> io::Result<()> {
    // SAFETY: plain integers; shutdown never waits.
    unsafe { syscall!(shutdown(fd, shutdown_how(how))) }.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip() {
        for text in ["127.0.0.1:8080", "[::1]:443", "[fe80::1%2]:9", "0.0.0.0:0"] {
            let addr: SocketAddr = text.parse().unwrap();
            assert_eq!(SockAddr::from_std(addr).socket_addr().unwrap(), addr);
        }
    }

    #[test]
    fn unix_addresses_round_trip() {
        let path = SockAddr::unix_path(Path::new("/tmp/x.sock")).unwrap();
        let std = path.unix_addr().unwrap().unwrap();
        assert_eq!(std.as_pathname(), Some(Path::new("/tmp/x.sock")));
        let name = SockAddr::unix_abstract(b"corering").unwrap();
        use std::os::linux::net::SocketAddrExt;
        let std = name.unix_addr().unwrap().unwrap();
        assert_eq!(std.as_abstract_name(), Some(&b"corering"[..]));
        assert!(SockAddr::unix_path(Path::new(&"x".repeat(200))).is_err());
        assert!(SockAddr::unix_path(Path::new("a\0b")).is_err());
    }

    #[test]
    fn unknown_family_is_an_error() {
        let empty = SockAddr::empty();
        assert_eq!(
            empty.socket_addr().unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }
}
