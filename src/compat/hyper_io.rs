//! hyper 1.x's `rt::Read` and `rt::Write` for [`PollIo`].

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use hyper::rt::{Read, ReadBufCursor, Write};

use super::PollIo;

impl<S> Read for PollIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        // SAFETY: `recv` only writes bytes into the cursor's unfilled part
        // (never de-initializes any).
        let n = ready!(self.get_mut().poll_recv(cx, unsafe { buf.as_mut() }))?;
        // SAFETY: `recv` initialized the first `n` bytes of that part.
        unsafe { buf.advance(n) };
        Poll::Ready(Ok(()))
    }
}

impl<S> Write for PollIo<S> {
    super::poll_io::write_methods!(poll_shutdown);

    fn is_write_vectored(&self) -> bool {
        true
    }
}
