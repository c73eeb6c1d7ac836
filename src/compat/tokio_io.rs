//! tokio's `AsyncRead` and `AsyncWrite` for [`PollIo`].

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::PollIo;

impl<S> AsyncRead for PollIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // SAFETY: `recv` only writes bytes into the unfilled part (never
        // de-initializes any), and only the `n` it wrote are marked filled.
        let n = ready!(self.get_mut().poll_recv(cx, unsafe { buf.unfilled_mut() }))?;
        // SAFETY: `recv` initialized the first `n` bytes of the unfilled part.
        unsafe { buf.assume_init(n) };
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<S> AsyncWrite for PollIo<S> {
    super::poll_io::write_methods!(poll_shutdown);

    fn is_write_vectored(&self) -> bool {
        true
    }
}
