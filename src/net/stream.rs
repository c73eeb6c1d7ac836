//! The stream core: every receive, send, vectored call, zero-copy send,
//! provided-buffer receive, linked turn, shutdown and close of a connected
//! stream socket, written once for [`TcpStream`](super::TcpStream) and
//! [`UnixStream`](super::UnixStream).
//!
//! `Stream` holds the shared descriptor and does the work; the
//! [`stream_methods!`] macro gives each public stream type the same
//! documented methods, each a one-line call into its `Stream`, so the two
//! types differ only in how they connect and in their address types.
//! The calls that only build an operation (`read`, `write`, `write_all`,
//! `readv`, `writev`, `shutdown`) return its future itself, so a public
//! `read` is one `async fn` around one `Op<Recv>`: no layer, no
//! allocation, no dynamic call added by the core.

use std::future::Future;
use std::io;
use std::net::Shutdown;
use std::pin::Pin;

use futures_core::Stream as _;
use io_uring::cqueue;

use super::RecvStream;
use crate::buf::{BufResult, BufRing, IoBuf, IoBufMut, RingBuf};
use crate::fd::write_all_with;
use crate::op::SharedFd;
use crate::op::{
    readv, writev, MultiOp, Offset, Op, Recv, RecvBuf, Send, SendAllRecv, SendAllRecvBuf, SendZc,
    Shutdown as ShutdownOp, MAX_RW_COUNT,
};
use crate::runtime::context;

/// A connected stream socket's descriptor and the operations on it.
pub(crate) struct Stream {
    fd: SharedFd,
}

impl Stream {
    pub(crate) fn new(fd: SharedFd) -> Stream {
        Stream { fd }
    }

    /// The handle operations share.
    pub(crate) fn shared(&self) -> &SharedFd {
        &self.fd
    }

    pub(crate) fn read<B: IoBufMut>(&self, buf: B) -> Op<Recv<B>> {
        Op::new(Recv::on_stream(self.fd.clone(), buf))
    }

    pub(crate) fn write<B: IoBuf>(&self, buf: B) -> Op<Send<B>> {
        Op::new(Send::new(self.fd.clone(), buf))
    }

    pub(crate) fn write_all<B: IoBuf>(
        &self,
        buf: B,
    ) -> impl Future<Output = BufResult<(), B>> + '_ {
        write_all_with(buf, |rest, _| Send::new(self.fd.clone(), rest))
    }

    pub(crate) fn readv<B: IoBufMut>(
        &self,
        bufs: Vec<B>,
    ) -> impl Future<Output = BufResult<usize, Vec<B>>> {
        readv("readv", self.fd.clone(), bufs, Offset::CURRENT)
    }

    pub(crate) fn writev<B: IoBuf>(
        &self,
        bufs: Vec<B>,
    ) -> impl Future<Output = BufResult<usize, Vec<B>>> {
        writev("writev", self.fd.clone(), bufs, Offset::CURRENT)
    }

    /// A zero-copy send: the result CQE, then the notification that the
    /// kernel is done with the buffer, which ends the operation.
    pub(crate) async fn send_zc<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        if !context::with_core(|core| core.ring().is_some()) {
            // The epoll backend has no zero-copy send: a plain one, with
            // the same result.
            return self.write(buf).await;
        }
        let mut op = MultiOp::new(SendZc::new(self.fd.clone(), buf));
        let mut sent = None;
        while let Some(completion) =
            std::future::poll_fn(|cx| Pin::new(&mut op).poll_next(cx)).await
        {
            if !cqueue::notif(completion.flags) {
                sent = Some(completion.into_result().map(|sent| sent as usize));
            }
        }
        let buf = op.into_finished().expect("the stream ended").into_buf();
        let sent =
            sent.unwrap_or_else(|| Err(io::Error::other("zero-copy send ended without a result")));
        (sent, buf)
    }

    pub(crate) fn recv_multi(&self, ring: &BufRing) -> RecvStream {
        RecvStream::new(self.fd.clone(), ring)
    }

    /// One provided-buffer receive; one that finds the ring empty waits
    /// for a buffer to come back (the data waits in the socket) and
    /// receives again.
    pub(crate) async fn recv_buf(&self, ring: &BufRing) -> io::Result<Option<RingBuf>> {
        loop {
            let since = ring.inner().returned();
            match Op::new(RecvBuf::new(self.fd.clone(), ring.inner().clone())).await {
                Err(error) if error.raw_os_error() == Some(libc::ENOBUFS) => {
                    ring.inner().starved(since).await;
                }
                received => return received,
            }
        }
    }

    pub(crate) async fn write_all_then_recv_buf<O: IoBuf>(
        &self,
        out: O,
        ring: &BufRing,
    ) -> (io::Result<Option<RingBuf>>, O) {
        let out = if out.bytes_init() == 0 {
            out
        } else if self.can_link(&out) {
            let pair = SendAllRecvBuf::new(self.fd.clone(), out, ring.inner().clone());
            let since = ring.inner().returned();
            match Op::new(pair).await {
                (Err(send_failed), out) => return (Err(send_failed), out),
                // Sent, but the ring was empty: receive once a buffer is
                // back.
                (Ok(Err(error)), out) if error.raw_os_error() == Some(libc::ENOBUFS) => {
                    ring.inner().starved(since).await;
                    out
                }
                (Ok(received), out) => return (received, out),
            }
        } else {
            let (written, out) = self.write_all(out).await;
            if let Err(error) = written {
                return (Err(error), out);
            }
            out
        };
        (self.recv_buf(ring).await, out)
    }

    pub(crate) async fn write_all_then_read<O: IoBuf, I: IoBufMut>(
        &self,
        out: O,
        into: I,
    ) -> (io::Result<usize>, O, I) {
        if out.bytes_init() > 0 {
            if self.can_link(&out) {
                return Op::new(SendAllRecv::new(self.fd.clone(), out, into)).await;
            }
            let (written, returned) = self.write_all(out).await;
            if let Err(error) = written {
                return (Err(error), returned, into);
            }
            let (received, into) = self.read(into).await;
            return (received, returned, into);
        }
        let (received, into) = self.read(into).await;
        (received, out, into)
    }

    /// Whether `out` can head a linked send-then-receive: one send moves
    /// at most `MAX_RW_COUNT` bytes, and the kernel must skip a successful
    /// send's CQE.
    fn can_link(&self, out: &impl IoBuf) -> bool {
        out.bytes_init() <= MAX_RW_COUNT
            && context::with_core(|core| {
                core.ring().is_some_and(|driver| driver.borrow().can_link())
            })
    }

    pub(crate) fn shutdown(&self, how: Shutdown) -> Op<ShutdownOp> {
        Op::new(ShutdownOp::new(self.fd.clone(), how))
    }

    pub(crate) async fn close(self) -> io::Result<()> {
        self.fd.close().await
    }
}

/// The public methods of a stream socket type `$name` whose core is its
/// `stream` field, with their docs, written once for every stream type;
/// also its `Debug` and [`StreamSocket`](crate::fd::StreamSocket).
///
/// `$pair` is the setup of the examples: hidden doc-test lines (each
/// starting with `# `) that bind a connected `client` and `server` of the
/// type inside `corering::start`.
macro_rules! stream_methods {
    ($name:ident, $pair:literal) => {
        impl $name {
            /// The descriptor handle its operations share (for
            /// `compat::PollIo`).
            #[cfg(any(feature = "tokio-io", feature = "futures-io", feature = "hyper"))]
            pub(crate) fn shared_fd(&self) -> &$crate::op::SharedFd {
                self.stream.shared()
            }

            /// Receives into `buf`, filling it from its start up to its
            /// capacity. `Ok(0)` means the peer closed its side.
            pub async fn read<B: $crate::buf::IoBufMut>(
                &self,
                buf: B,
            ) -> $crate::buf::BufResult<usize, B> {
                self.stream.read(buf).await
            }

            /// Sends the initialized bytes of `buf`; may send fewer (see
            /// [`write_all`](Self::write_all)). A closed peer gives
            /// `BrokenPipe`, never `SIGPIPE`.
            pub async fn write<B: $crate::buf::IoBuf>(
                &self,
                buf: B,
            ) -> $crate::buf::BufResult<usize, B> {
                self.stream.write(buf).await
            }

            /// Sends every initialized byte of `buf`, retrying short sends.
            ///
            /// # Errors
            ///
            /// The first error of a send (`BrokenPipe`, `ConnectionReset`,
            /// ...), or `WriteZero`. The buffer is handed back either way.
            pub async fn write_all<B: $crate::buf::IoBuf>(
                &self,
                buf: B,
            ) -> $crate::buf::BufResult<(), B> {
                self.stream.write_all(buf).await
            }

            /// Receives into `bufs` in order (`readv`), each filled from its
            /// start up to its capacity.
            ///
            /// # Errors
            ///
            /// As `readv(2)`; `InvalidInput`, with nothing submitted, for
            /// more than 1,024 buffers (`IOV_MAX`). The buffers are handed
            /// back either way.
            pub async fn readv<B: $crate::buf::IoBufMut>(
                &self,
                bufs: Vec<B>,
            ) -> $crate::buf::BufResult<usize, Vec<B>> {
                self.stream.readv(bufs).await
            }

            /// Sends the initialized bytes of `bufs` in order (`writev`);
            /// may send fewer.
            ///
            /// # Errors
            ///
            /// As `writev(2)`; `InvalidInput`, with nothing submitted, for
            /// more than 1,024 buffers (`IOV_MAX`). The buffers are handed
            /// back either way.
            pub async fn writev<B: $crate::buf::IoBuf>(
                &self,
                bufs: Vec<B>,
            ) -> $crate::buf::BufResult<usize, Vec<B>> {
                self.stream.writev(bufs).await
            }

            /// Sends the initialized bytes of `buf` without copying them
            /// into the kernel (`IORING_OP_SEND_ZC`); may send fewer. The
            /// buffer comes back once the network stack no longer reads it,
            /// which pays off for large buffers; small ones are cheaper to
            /// copy with [`write`](Self::write).
            ///
            /// # Errors
            ///
            /// As [`write`](Self::write); `Unsupported` (`EOPNOTSUPP`)
            /// where the kernel has no zero-copy send for the socket: Unix
            /// sockets (Linux sends only TCP and UDP without copying), and
            /// kernels before 6.0 (or `EINVAL` there). Nothing is sent
            /// then, and the buffer is handed back.
            pub async fn send_zc<B: $crate::buf::IoBuf>(
                &self,
                buf: B,
            ) -> $crate::buf::BufResult<usize, B> {
                self.stream.send_zc(buf).await
            }

            /// Receives into buffers picked from `ring` as data arrives, as
            /// a stream that ends when the peer closes (see
            /// [`RecvStream`](crate::net::RecvStream)). While no data is
            /// waiting, the connection holds no buffer.
            pub fn recv_multi(&self, ring: &$crate::buf::BufRing) -> $crate::net::RecvStream {
                self.stream.recv_multi(ring)
            }

            #[doc = concat!(
                "Receives once into a buffer picked from `ring` when the data\n",
                "arrives, so a connection waiting for data holds no buffer.\n",
                "`Ok(None)` means the peer closed its side.\n",
                "\n",
                "When the ring has no buffer to give (`ENOBUFS`), waits for one\n",
                "to come back and receives again; the data waits in the socket\n",
                "meanwhile. Dropping the future in flight loses no buffer.\n",
                "\n",
                "# Examples\n",
                "\n",
                "```\n",
                "use corering::buf::BufRing;\n",
                "\n",
                "corering::start(async {\n",
                $pair,
                "    let ring = BufRing::new(4, 1024).unwrap();\n",
                "    client.write_all(b\"ping\".as_slice()).await.0.unwrap();\n",
                "    let buf = server.recv_buf(&ring).await.unwrap().unwrap();\n",
                "    assert_eq!(&buf[..], b\"ping\");\n",
                "    drop(buf); // back to the ring\n",
                "    drop(client);\n",
                "    assert!(server.recv_buf(&ring).await.unwrap().is_none());\n",
                "    assert_eq!(ring.available(), 4);\n",
                "});\n",
                "```",
            )]
            pub async fn recv_buf(
                &self,
                ring: &$crate::buf::BufRing,
            ) -> std::io::Result<Option<$crate::buf::RingBuf>> {
                self.stream.recv_buf(ring).await
            }

            /// Sends all of `out`, then [`recv_buf`](Self::recv_buf): a
            /// turn of a request-response protocol in one submission with
            /// one wake, like [`write_all_then_read`](Self::write_all_then_read),
            /// but holding no receive buffer while the peer is silent.
            /// Gives `out` back.
            ///
            /// # Errors
            ///
            /// The send's error (and no receive) when it failed; otherwise
            /// the receive's.
            pub async fn write_all_then_recv_buf<O: $crate::buf::IoBuf>(
                &self,
                out: O,
                ring: &$crate::buf::BufRing,
            ) -> (std::io::Result<Option<$crate::buf::RingBuf>>, O) {
                self.stream.write_all_then_recv_buf(out, ring).await
            }

            #[doc = concat!(
                "Sends every initialized byte of `out`, then receives into\n",
                "`into` (as [`read`](Self::read)): a request-response turn in\n",
                "one submission. The two are linked in the ring, so the receive\n",
                "starts once the send is done, and the task wakes once, when the\n",
                "receive completes, instead of once per operation. Returns the\n",
                "bytes received.\n",
                "\n",
                "On kernels without `IOSQE_CQE_SKIP_SUCCESS` (before 5.17) it is\n",
                "[`write_all`](Self::write_all) then `read`.\n",
                "\n",
                "# Errors\n",
                "\n",
                "The send's error (`BrokenPipe`, `ConnectionReset`, ..., or\n",
                "`WriteZero` when it stopped short), in which case nothing was\n",
                "received; otherwise the receive's. Both buffers are handed back\n",
                "either way.\n",
                "\n",
                "# Examples\n",
                "\n",
                "```\n",
                "corering::start(async {\n",
                $pair,
                "    let echo = corering::spawn(async move {\n",
                "        let (_, request) = server.read(vec![0u8; 4]).await;\n",
                "        server.write_all(request).await.0.unwrap();\n",
                "    });\n",
                "    let (received, _, reply) = client\n",
                "        .write_all_then_read(b\"ping\".to_vec(), Vec::with_capacity(16))\n",
                "        .await;\n",
                "    assert_eq!(received.unwrap(), 4);\n",
                "    assert_eq!(reply, b\"ping\");\n",
                "    echo.await.unwrap();\n",
                "});\n",
                "```",
            )]
            pub async fn write_all_then_read<O: $crate::buf::IoBuf, I: $crate::buf::IoBufMut>(
                &self,
                out: O,
                into: I,
            ) -> (std::io::Result<usize>, O, I) {
                self.stream.write_all_then_read(out, into).await
            }

            /// Shuts down the read side, the write side or both.
            pub async fn shutdown(&self, how: std::net::Shutdown) -> std::io::Result<()> {
                self.stream.shutdown(how).await
            }

            /// Closes the socket through the ring once no operation is in
            /// flight on it, and reports the result.
            pub async fn close(self) -> std::io::Result<()> {
                self.stream.close().await
            }
        }

        impl $crate::fd::sealed::Sealed for $name {
            fn shared_fd(&self) -> $crate::fd::sealed::Lent<'_> {
                $crate::fd::sealed::Lent(self.stream.shared())
            }
        }

        impl $crate::fd::StreamSocket for $name {}

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("fd", self.stream.shared())
                    .finish()
            }
        }
    };
}
pub(crate) use stream_methods;
