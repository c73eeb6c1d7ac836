//! Networking through the ring: every accept, connect, receive, send and
//! shutdown is an io_uring operation; binding and socket options are
//! immediate system calls, as in std.
//!
//! Sockets are owned by the core that created them, like every descriptor
//! here: their methods take `&self`, so two tasks of that core can read and
//! write one stream at once through an `Rc`.

/// `AsRawFd` and a `Debug` showing the descriptor, for socket types that
/// hold their `SharedFd` in `fd`.
macro_rules! raw_fd_and_debug {
    ($($name:ident),*) => {$(
        impl std::os::fd::AsRawFd for $name {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                self.fd.raw()
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name)).field("fd", &self.fd.raw()).finish()
            }
        }
    )*};
}
use raw_fd_and_debug;

mod recv;
mod tcp;
mod udp;
mod unix;

pub use recv::RecvStream;
pub use tcp::{Incoming, TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixDatagram, UnixListener, UnixStream};
