//! `futures-io`'s `AsyncRead` and `AsyncWrite` for [`PollIo`].

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};

use super::PollIo;

impl<S> AsyncRead for PollIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let len = buf.len();
        // SAFETY: `MaybeUninit<u8>` has the layout of `u8`, and `recv` only
        // writes initialized bytes, so `buf` stays initialized throughout.
        let buf = unsafe {
            std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<MaybeUninit<u8>>(), len)
        };
        self.get_mut().poll_recv(cx, buf)
    }
}

impl<S> AsyncWrite for PollIo<S> {
    super::poll_io::write_methods!(poll_close);
}
