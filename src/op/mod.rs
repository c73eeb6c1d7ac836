//! One file per operation family. Each operation is a small struct that owns
//! what the kernel touches, builds its SQE and maps its CQE (every errno is
//! passed through as an `io::Error`; none panics).
//!
//! The operations themselves are reached through the types that use them
//! ([`Fd`](crate::fd::Fd), sockets in [`net`](crate::net), later files); [`nop`] is public for
//! measuring the runtime itself.

mod close;
mod net;
mod nop;
mod read_write;
mod vectored;

pub(crate) use close::Close;
pub(crate) use net::{
    Accept, AcceptMulti, Connect, Recv, RecvFrom, RecvMulti, Send, SendTo, SendZc, Shutdown,
};
pub use nop::{nop, Nop};
pub(crate) use read_write::{Read, Write};
pub(crate) use vectored::{Readv, Writev};
