//! The datagram core: sending and receiving datagrams, to and from an
//! address or the connected peer, and close, written once for
//! [`UdpSocket`](super::UdpSocket) and [`UnixDatagram`](super::UnixDatagram).
//!
//! `Datagram` works in the kernel's address form ([`SockAddr`]); each
//! public type converts its own address type at the edge, and the
//! [`datagram_methods!`] macro gives both the calls that name no address.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use crate::buf::{IoBuf, IoBufMut};
use crate::op::SharedFd;
use crate::op::{Op, Recv, RecvFrom, Send, SendTo};
use crate::sys::socket::{self, SockAddr};

/// A datagram socket's descriptor (never a direct one) and the operations
/// on it.
pub(crate) struct Datagram {
    fd: SharedFd,
}

impl Datagram {
    pub(crate) fn from_owned(fd: OwnedFd) -> Datagram {
        Datagram {
            fd: SharedFd::new(fd),
        }
    }

    /// The descriptor, for the immediate calls (bind, connect, names).
    pub(crate) fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.plain_fd()
    }

    pub(crate) fn shared(&self) -> &SharedFd {
        &self.fd
    }

    pub(crate) fn bind(&self, addr: &SockAddr) -> io::Result<()> {
        socket::bind_raw(self.as_fd().as_raw_fd(), addr)
    }

    /// Sets the default peer; immediate: connecting a datagram socket
    /// exchanges nothing.
    pub(crate) fn connect(&self, addr: &SockAddr) -> io::Result<()> {
        socket::connect_now(self.as_fd().as_raw_fd(), addr)
    }

    pub(crate) fn send<B: IoBuf>(&self, buf: B) -> Op<Send<B>> {
        Op::new(Send::new(self.fd.clone(), buf))
    }

    pub(crate) fn recv<B: IoBufMut>(&self, buf: B) -> Op<Recv<B>> {
        Op::new(Recv::new(self.fd.clone(), buf))
    }

    pub(crate) fn send_to<B: IoBuf>(&self, buf: B, addr: SockAddr) -> Op<SendTo<B>> {
        Op::new(SendTo::new(self.fd.clone(), buf, addr))
    }

    pub(crate) fn recv_from<B: IoBufMut>(&self, buf: B) -> Op<RecvFrom<B>> {
        Op::new(RecvFrom::new(self.fd.clone(), buf))
    }

    pub(crate) fn local_addr(&self) -> io::Result<SockAddr> {
        socket::local_raw(self.as_fd().as_raw_fd())
    }

    pub(crate) fn peer_addr(&self) -> io::Result<SockAddr> {
        socket::peer_raw(self.as_fd().as_raw_fd())
    }

    pub(crate) async fn close(self) -> io::Result<()> {
        self.fd.close().await
    }
}

/// The public methods of a datagram socket type `$name` that name no
/// address, for a type whose core is its `datagram` field, with their
/// docs; also its `AsFd`, `AsRawFd`, `From<OwnedFd>` and `Debug`.
macro_rules! datagram_methods {
    ($name:ident) => {
        impl $name {
            /// Sends the initialized bytes of `buf` as one datagram to the
            /// connected peer.
            ///
            /// # Errors
            ///
            /// As `send(2)`: `EDESTADDRREQ` without a peer; for UDP,
            /// `ConnectionRefused` once the peer reported its port closed.
            pub async fn send<B: $crate::buf::IoBuf>(
                &self,
                buf: B,
            ) -> $crate::buf::BufResult<usize, B> {
                self.datagram.send(buf).await
            }

            /// Receives one datagram from the connected peer into `buf`
            /// (from its start up to its capacity; a longer datagram is
            /// truncated).
            pub async fn recv<B: $crate::buf::IoBufMut>(
                &self,
                buf: B,
            ) -> $crate::buf::BufResult<usize, B> {
                self.datagram.recv(buf).await
            }

            /// Closes the socket through the ring once no operation is in
            /// flight on it, and reports the result.
            pub async fn close(self) -> std::io::Result<()> {
                self.datagram.close().await
            }
        }

        impl std::os::fd::AsFd for $name {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                self.datagram.as_fd()
            }
        }

        impl std::os::fd::AsRawFd for $name {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                self.datagram.as_fd().as_raw_fd()
            }
        }

        /// Takes a datagram socket of this family as it is: io_uring needs
        /// no `O_NONBLOCK`, so the descriptor's flags are left alone.
        /// Nothing checks the descriptor's kind; an operation it does not
        /// support fails with the kernel's error.
        impl From<std::os::fd::OwnedFd> for $name {
            fn from(fd: std::os::fd::OwnedFd) -> $name {
                $name {
                    datagram: $crate::net::datagram::Datagram::from_owned(fd),
                }
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("fd", self.datagram.shared())
                    .finish()
            }
        }
    };
}
pub(crate) use datagram_methods;
