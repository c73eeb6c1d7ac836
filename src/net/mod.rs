//! Networking through the ring: every accept, connect, receive, send and
//! shutdown is an io_uring operation; binding and socket options are
//! immediate system calls, as in std.
//!
//! Sockets are owned by the core that created them, like every descriptor
//! here: their methods take `&self`, so two tasks of that core can read and
//! write one stream at once through an `Rc`.

mod tcp;

pub use tcp::{TcpListener, TcpStream};
