//! `Fd`: a file descriptor whose I/O goes through the ring.
//!
//! Every in-flight operation holds a clone of the descriptor's shared
//! handle (`op/shared_fd.rs`), so the descriptor is closed only once the
//! last operation on it has completed, and the close itself goes through
//! the ring (`IORING_OP_CLOSE`), never blocking the core.
//!
//! Higher-level types (files, sockets) wrap an `Fd`. It is also usable on
//! its own for pipes, eventfds and any descriptor the kernel can read or
//! write.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use crate::buf::{BufResult, IoBuf, IoBufMut, Slice};
use crate::op::{readv, writev, Offset, Read, Write};
use crate::op::{Op, Operation, SharedFd};

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

// An `Fd` is made only from an `OwnedFd` (never from a direct descriptor),
// so it always has a file descriptor to lend.
impl AsFd for Fd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.shared.plain_fd()
    }
}

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}

impl fmt::Debug for Fd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Fd").field(&self.shared).finish()
    }
}

/// A connected stream socket: [`TcpStream`](crate::net::TcpStream) or
/// [`UnixStream`](crate::net::UnixStream), what
/// [`File::splice_to`](crate::fs::File::splice_to) sends to.
///
/// Sealed: the types that implement it hand their shared descriptor
/// (plain or direct) to the operations of other modules.
pub trait StreamSocket: sealed::Sealed {}

pub(crate) mod sealed {
    use super::SharedFd;

    /// What [`StreamSocket`](super::StreamSocket) needs, out of reach of
    /// other crates: they cannot name it, so cannot implement it, and what
    /// it lends them is opaque.
    pub trait Sealed {
        /// The handle operations on the socket share.
        fn shared_fd(&self) -> Lent<'_>;
    }

    /// A borrowed [`SharedFd`], opaque outside this crate.
    pub struct Lent<'a>(pub(crate) &'a SharedFd);
}
