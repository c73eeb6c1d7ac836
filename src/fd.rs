//! `Fd`: a file descriptor whose I/O goes through the ring.
//!
//! Every in-flight operation holds a clone of the descriptor's shared
//! handle, and a dropped operation's state (with its clone) stays in its slot
//! until the final CQE. So the descriptor is closed only once the last
//! operation on it has completed, and the close itself goes through the ring
//! (`IORING_OP_CLOSE`), never blocking the core.
//!
//! Higher-level types (files, sockets) wrap an `Fd`. It is also usable on
//! its own for pipes, eventfds and any descriptor the kernel can read or
//! write.

use std::cell::Cell;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::task::{Poll, Waker};

use crate::buf::{BufResult, IoBuf, IoBufMut, Slice};
use crate::driver::Target;
use crate::executor::RuntimeId;
use crate::op::{readv, writev, Close, Offset, Read, Write};
use crate::op::{Op, Operation};
use crate::runtime::defer_close;

/// The handle that operations share.
#[derive(Clone)]
pub(crate) struct SharedFd {
    inner: Rc<Inner>,
}

struct Inner {
    /// The descriptor; `None` once `close` has taken it.
    target: Cell<Option<Target>>,
    /// The runtime whose ring's table holds a direct descriptor (`None`
    /// for a plain one, which any ring or `close(2)` can close).
    owner: Option<RuntimeId>,
    /// The task waiting in `close` for the other handles to go.
    closer: Cell<Option<Waker>>,
}

impl SharedFd {
    pub(crate) fn new(fd: OwnedFd) -> SharedFd {
        SharedFd::from_target(Target::Fd(fd.into_raw_fd()), None)
    }

    /// Takes ownership of entry `index` of the ring's direct descriptor table.
    ///
    /// # Panics
    ///
    /// Outside a runtime (a direct descriptor belongs to the current one).
    pub(crate) fn new_direct(index: u32) -> SharedFd {
        let owner = crate::runtime::context::with_core(|core| core.id());
        SharedFd::from_target(Target::Fixed(index), Some(owner))
    }

    fn from_target(target: Target, owner: Option<RuntimeId>) -> SharedFd {
        SharedFd {
            inner: Rc::new(Inner {
                target: Cell::new(Some(target)),
                owner,
                closer: Cell::new(None),
            }),
        }
    }

    /// What operations name.
    ///
    /// # Panics
    ///
    /// After `close` took the descriptor (no operation is built then: close
    /// waits for every other handle).
    pub(crate) fn target(&self) -> Target {
        self.inner
            .target
            .get()
            .expect("descriptor used after close")
    }

    /// The file descriptor, or -1 for a direct descriptor (which has none).
    pub(crate) fn raw(&self) -> RawFd {
        match self.inner.target.get() {
            Some(Target::Fd(fd)) => fd,
            _ => -1,
        }
    }

    /// The file descriptor, for system calls outside the ring.
    ///
    /// # Errors
    ///
    /// `Unsupported` for a direct descriptor.
    pub(crate) fn raw_fd(&self) -> io::Result<RawFd> {
        match self.inner.target.get() {
            Some(Target::Fd(fd)) => Ok(fd),
            _ => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a direct (registered) descriptor has no file descriptor for this call",
            )),
        }
    }

    /// Waits until this is the only handle, then closes through the ring.
    pub(crate) async fn close(self) -> io::Result<()> {
        poll_fn(|cx| {
            if Rc::strong_count(&self.inner) == 1 {
                Poll::Ready(())
            } else {
                self.inner.closer.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await;
        let target = self.inner.target.take().expect("closed once");
        Op::new(Close::new(target, self.inner.owner)).await
    }
}

impl Drop for SharedFd {
    fn drop(&mut self) {
        // The handle left after this one may be a `close` waiting for it.
        if Rc::strong_count(&self.inner) == 2 {
            if let Some(waker) = self.inner.closer.take() {
                waker.wake();
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(target) = self.target.get() {
            defer_close(target, self.owner);
        }
    }
}

/// An owned file descriptor whose reads, writes and close go through the
/// current core's ring.
///
/// Methods take `&self`, so two tasks can read and write at once (share the
/// `Fd` through an `Rc`). Dropping it closes the descriptor through the ring
/// once every operation on it has completed; [`close`](Fd::close) does the
/// same and reports the result.
///
/// # Examples
///
/// ```
/// use std::os::fd::OwnedFd;
/// use corering::fd::Fd;
///
/// corering::start(async {
///     let (reader, writer) = std::io::pipe().unwrap();
///     let (reader, writer) = (Fd::from(OwnedFd::from(reader)), Fd::from(OwnedFd::from(writer)));
///     let (written, _) = writer.write(b"ping".as_slice()).await;
///     assert_eq!(written.unwrap(), 4);
///     let (read, buf) = reader.read(Vec::with_capacity(16)).await;
///     assert_eq!(read.unwrap(), 4);
///     assert_eq!(buf, b"ping");
/// });
/// ```
pub struct Fd {
    shared: SharedFd,
}

impl Fd {
    /// Reads into `buf` from offset `pos`, filling it from its start up to
    /// its capacity; the buffer's initialized length grows to cover the bytes
    /// read. `Ok(0)` means end of file.
    ///
    /// # Errors
    ///
    /// As `pread(2)`; `InvalidInput`, with nothing submitted, when `pos` is
    /// past the largest file offset (`i64::MAX`).
    pub async fn read_at<B: IoBufMut>(&self, buf: B, pos: u64) -> BufResult<usize, B> {
        match Offset::at(pos, "read_at") {
            Ok(offset) => self.read_from(buf, offset).await,
            Err(error) => (Err(error), buf),
        }
    }

    /// Reads into `buf` at the descriptor's current position (pipes,
    /// sockets, character devices).
    pub async fn read<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        self.read_from(buf, Offset::CURRENT).await
    }

    async fn read_from<B: IoBufMut>(&self, buf: B, offset: Offset) -> BufResult<usize, B> {
        Op::new(Read::new(self.shared.clone(), buf, offset)).await
    }

    /// Writes the initialized bytes of `buf` at offset `pos`; may write
    /// fewer (see [`write_all_at`](Fd::write_all_at)).
    ///
    /// # Errors
    ///
    /// As `pwrite(2)`; `InvalidInput`, with nothing submitted, when `pos`
    /// is past the largest file offset (`i64::MAX`).
    pub async fn write_at<B: IoBuf>(&self, buf: B, pos: u64) -> BufResult<usize, B> {
        match Offset::at(pos, "write_at") {
            Ok(offset) => self.write_to(buf, offset).await,
            Err(error) => (Err(error), buf),
        }
    }

    /// Writes the initialized bytes of `buf` at the current position.
    pub async fn write<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        self.write_to(buf, Offset::CURRENT).await
    }

    async fn write_to<B: IoBuf>(&self, buf: B, offset: Offset) -> BufResult<usize, B> {
        Op::new(Write::new(self.shared.clone(), buf, offset)).await
    }

    /// Writes every initialized byte of `buf` starting at offset `pos`,
    /// retrying short writes.
    ///
    /// # Errors
    ///
    /// `WriteZero` when the descriptor accepts no more bytes; otherwise the
    /// first error of a write; `InvalidInput`, with nothing submitted, when
    /// `pos` is past the largest file offset (`i64::MAX`). The buffer is
    /// handed back either way.
    pub async fn write_all_at<B: IoBuf>(&self, buf: B, pos: u64) -> BufResult<(), B> {
        match Offset::at(pos, "write_all_at") {
            Ok(offset) => self.write_all_from(buf, offset).await,
            Err(error) => (Err(error), buf),
        }
    }

    /// Writes every initialized byte of `buf` at the current position.
    pub async fn write_all<B: IoBuf>(&self, buf: B) -> BufResult<(), B> {
        self.write_all_from(buf, Offset::CURRENT).await
    }

    async fn write_all_from<B: IoBuf>(&self, buf: B, offset: Offset) -> BufResult<(), B> {
        write_all_with(buf, |slice, written| {
            Write::new(self.shared.clone(), slice, offset.advanced(written))
        })
        .await
    }

    /// Reads into `bufs` in order from offset `pos` (`preadv`); each buffer
    /// is filled from its start up to its capacity.
    ///
    /// # Errors
    ///
    /// As `preadv(2)`; `InvalidInput`, with nothing submitted, when `pos`
    /// is past the largest file offset (`i64::MAX`) or for more than 1,024
    /// buffers (`IOV_MAX`). The buffers are handed back either way.
    pub async fn readv_at<B: IoBufMut>(&self, bufs: Vec<B>, pos: u64) -> BufResult<usize, Vec<B>> {
        match Offset::at(pos, "readv_at") {
            Ok(offset) => readv("readv_at", self.shared.clone(), bufs, offset).await,
            Err(error) => (Err(error), bufs),
        }
    }

    /// Writes the initialized bytes of `bufs` in order at offset `pos`
    /// (`pwritev`); may write fewer.
    ///
    /// # Errors
    ///
    /// As `pwritev(2)`; `InvalidInput`, with nothing submitted, when `pos`
    /// is past the largest file offset (`i64::MAX`) or for more than 1,024
    /// buffers (`IOV_MAX`). The buffers are handed back either way.
    pub async fn writev_at<B: IoBuf>(&self, bufs: Vec<B>, pos: u64) -> BufResult<usize, Vec<B>> {
        match Offset::at(pos, "writev_at") {
            Ok(offset) => writev("writev_at", self.shared.clone(), bufs, offset).await,
            Err(error) => (Err(error), bufs),
        }
    }

    /// Reads into `bufs` in order at the descriptor's current position
    /// (`readv`: pipes, sockets, character devices).
    ///
    /// # Errors
    ///
    /// As `readv(2)`; `InvalidInput`, with nothing submitted, for more than
    /// 1,024 buffers. The buffers are handed back either way.
    pub async fn readv<B: IoBufMut>(&self, bufs: Vec<B>) -> BufResult<usize, Vec<B>> {
        readv("readv", self.shared.clone(), bufs, Offset::CURRENT).await
    }

    /// Writes the initialized bytes of `bufs` in order at the descriptor's
    /// current position (`writev`); may write fewer.
    ///
    /// # Errors
    ///
    /// As `writev(2)`; `InvalidInput`, with nothing submitted, for more
    /// than 1,024 buffers. The buffers are handed back either way.
    pub async fn writev<B: IoBuf>(&self, bufs: Vec<B>) -> BufResult<usize, Vec<B>> {
        writev("writev", self.shared.clone(), bufs, Offset::CURRENT).await
    }

    /// Closes the descriptor through the ring after every operation still
    /// in flight on it (from dropped futures) has completed.
    pub async fn close(self) -> io::Result<()> {
        self.shared.close().await
    }
    pub(crate) fn shared(&self) -> &SharedFd {
        &self.shared
    }
}

/// Writes every initialized byte of `buf` with the operations `write`
/// builds (given the rest of the buffer and the count written so far),
/// retrying short writes and `EINTR`.
///
/// # Errors
///
/// `WriteZero` when a write moves no byte; otherwise the first error. The
/// buffer is handed back either way.
pub(crate) async fn write_all_with<B, O>(
    buf: B,
    mut write: impl FnMut(Slice<B>, usize) -> O,
) -> BufResult<(), B>
where
    B: IoBuf,
    O: Operation<Output = BufResult<usize, Slice<B>>>,
{
    let len = buf.bytes_init();
    let mut written = 0;
    let mut slice = buf.slice(0..len);
    while written < len {
        let (result, returned) = Op::new(write(slice, written)).await;
        let buf = returned.into_inner();
        match result {
            Ok(0) => {
                let error = io::Error::new(io::ErrorKind::WriteZero, "write returned 0 bytes");
                return (Err(error), buf);
            }
            Ok(n) => written += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return (Err(error), buf),
        }
        slice = buf.slice(written..len);
    }
    (Ok(()), slice.into_inner())
}

impl From<OwnedFd> for Fd {
    fn from(fd: OwnedFd) -> Fd {
        Fd {
            shared: SharedFd::new(fd),
        }
    }
}

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.shared.raw()
    }
}

impl fmt::Debug for Fd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Fd").field(&self.shared.raw()).finish()
    }
}
