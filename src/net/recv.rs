//! `RecvStream`: a multishot receive into a provided-buffer ring, as a
//! `Stream` of filled buffers.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;

use crate::buf::{BufRing, RingBuf};
use crate::op::MultiOp;
use crate::op::RecvMulti;
use crate::op::SharedFd;

/// The data a connection receives, as buffers picked from a [`BufRing`]
/// when it arrives; ends when the peer closes its side.
///
/// One submission serves many receives. When the ring runs dry the kernel
/// ends the receive with `ENOBUFS`; the stream then waits for a buffer to
/// come back and receives again, so nothing is lost or reordered (the data
/// waits in the socket meanwhile). Dropping the stream cancels the receive
/// and gives back every buffer it still held.
///
/// Made by [`TcpStream::recv_multi`](super::TcpStream::recv_multi) and
/// [`UnixStream::recv_multi`](super::UnixStream::recv_multi).
pub struct RecvStream {
    fd: SharedFd,
    ring: BufRing,
    /// The multishot receive in flight, if armed.
    op: Option<MultiOp<RecvMulti>>,
    /// The last receive ended for want of a buffer: `Some` with the ring's
    /// give-back count when it was armed (see `Inner::starved`).
    starved: Option<u64>,
    /// The ring's give-back count when the receive in flight was armed.
    armed_at: u64,
    /// The peer closed, or an error ended the stream.
    ended: bool,
}

impl RecvStream {
    pub(crate) fn new(fd: SharedFd, ring: &BufRing) -> RecvStream {
        RecvStream {
            fd,
            ring: ring.clone(),
            op: None,
            starved: None,
            armed_at: 0,
            ended: false,
        }
    }
}

impl RecvStream {
    /// The next buffer received, `None` once the peer has closed its side
    /// (or after an error): [`Stream::poll_next`] as a future, so no stream
    /// extension crate is needed.
    ///
    /// Cancel-safe: dropping the future loses nothing; data that arrives
    /// meanwhile waits for the next call.
    pub async fn next(&mut self) -> Option<io::Result<RingBuf>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }
}

impl Stream for RecvStream {
    type Item = io::Result<RingBuf>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.ended {
                return Poll::Ready(None);
            }
            let op = match &mut this.op {
                Some(op) => op,
                None => {
                    let ring = this.ring.inner();
                    if let Some(since) = this.starved {
                        if !ring.wait_for_buffer(since, cx.waker()) {
                            return Poll::Pending;
                        }
                    }
                    this.starved = None;
                    this.armed_at = ring.returned();
                    this.op
                        .insert(MultiOp::new(RecvMulti::new(this.fd.clone(), ring.clone())))
                }
            };
            match std::task::ready!(Pin::new(op).poll_next(cx)) {
                Some(Ok(Some(buf))) => return Poll::Ready(Some(Ok(buf))),
                Some(Ok(None)) => this.ended = true,
                Some(Err(error)) if error.raw_os_error() == Some(libc::ENOBUFS) => {
                    this.ring.inner().note_exhausted();
                    this.starved = Some(this.armed_at);
                }
                Some(Err(error)) => {
                    this.ended = true;
                    return Poll::Ready(Some(Err(error)));
                }
                // The kernel ended this receive (for want of buffers, or on
                // its own): arm another.
                None => this.op = None,
            }
        }
    }
}

impl fmt::Debug for RecvStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvStream")
            .field("fd", &self.fd)
            .field("ring", &self.ring)
            .field("starved", &self.starved)
            .field("ended", &self.ended)
            .finish()
    }
}
