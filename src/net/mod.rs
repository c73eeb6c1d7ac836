//! Networking through the ring: every accept, connect, receive, send and
//! shutdown is an io_uring operation; binding and socket options are
//! immediate system calls, as in std.
//!
//! Sockets are owned by the core that created them, like every descriptor
//! here: their methods take `&self`, so two tasks of that core can read and
//! write one stream at once through an `Rc`.
//!
//! The stream types ([`TcpStream`], [`UnixStream`]) share one core,
//! `stream.rs`, and the datagram types ([`UdpSocket`], [`UnixDatagram`])
//! another, `datagram.rs`: the operations are written once, and each type
//! adds only how it connects and its address type.
//!
//! Every type converts from its std counterpart and from an `OwnedFd`,
//! keeping the descriptor as it is: io_uring needs no `O_NONBLOCK`, and
//! waits for a socket to be ready whether the flag is set or not (kernels
//! before 5.13 may give `WouldBlock` to a vectored call on a non-blocking
//! socket). A type that always has a file descriptor implements `AsFd`
//! and `AsRawFd`; a [`TcpStream`] may live in the ring's table of direct
//! descriptors instead, so its [`as_fd`](TcpStream::as_fd) gives an
//! `Option`.
//!
//! Addresses to connect or send to are corering's own [`ToSocketAddrs`]:
//! a host name is resolved on the blocking pool ([`lookup_host`]), never on
//! the core. Binding stays synchronous and takes std's `ToSocketAddrs`, as
//! a server binds once, at start, usually to a literal address.

use std::io;
use std::net::SocketAddr;

mod addr;
mod datagram;
mod recv;
mod stream;
mod tcp;
mod udp;
mod unix;

pub use addr::{lookup_host, ToSocketAddrs};
pub use recv::RecvStream;
pub use tcp::{Incoming, TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixDatagram, UnixListener, UnixStream};

/// Connections the kernel queues for `accept` before refusing more.
const BACKLOG: i32 = 4096;

/// Runs `f` on each address `addr` resolves to until one succeeds; for
/// the synchronous calls (bind), with std's resolver on the calling thread.
fn each_addr<A: std::net::ToSocketAddrs, T>(
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
