//! Files and directories, every call through the ring: [`File`] and
//! [`OpenOptions`] (openat, read and write at offsets, vectored I/O, fsync,
//! fallocate, ftruncate, statx, close), and free functions in the manner
//! of `std::fs`.
//!
//! Methods take `&self`, so tasks can share a file through an `Rc` and
//! have several reads and writes in flight at once: the kernel runs them
//! concurrently, which is how a single core keeps a fast device busy.
//!
//! # Examples
//!
//! ```
//! use corering::fs::{self, File};
//!
//! corering::start(async {
//!     let dir = std::env::temp_dir().join(format!("corering-doc-fs-{}", std::process::id()));
//!     fs::create_dir_all(&dir).await.unwrap();
//!     let path = dir.join("hello.txt");
//!     let file = File::create(&path).await.unwrap();
//!     file.write_all_at(b"hello, ring".to_vec(), 0).await.0.unwrap();
//!     file.sync_all().await.unwrap();
//!     assert_eq!(file.metadata().await.unwrap().len(), 11);
//!     file.close().await.unwrap();
//!     assert_eq!(fs::read(&path).await.unwrap(), b"hello, ring");
//!     fs::remove_file(&path).await.unwrap();
//!     fs::remove_dir(&dir).await.unwrap();
//! });
//! ```

mod copy;
mod metadata;
mod open;
mod path;

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;

use crate::buf::{AlignedBuf, BufResult, FixedBuf, IoBuf, IoBufMut};
use crate::fd::Fd;
use crate::op::Op;
use crate::op::SharedFd;
use crate::op::{Fsync, Offset, ReadFixed, Resize, Statx, StatxOf, WriteFixed};

pub use copy::copy;
pub use metadata::{FileType, Metadata};
pub use open::OpenOptions;
pub(crate) use path::c_path;
pub use path::{
    create_dir, create_dir_all, hard_link, metadata, read, remove_dir, remove_file, rename,
    symlink, symlink_metadata, write,
};

/// An open file. Reads and writes name their offset; nothing keeps a
/// position between calls.
///
/// Dropping a `File` closes it through the ring once the operations still
/// in flight on it have completed; [`close`](File::close) does the same and
/// reports the close's result.
pub struct File {
    fd: Fd,
    /// For a file opened with `O_DIRECT`: the alignment its I/O needs,
    /// checked before each submission.
    direct: Option<DirectIo>,
}

/// What `O_DIRECT` I/O on a file must be aligned to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct DirectIo {
    /// Of the buffer's address.
    memory: u32,
    /// Of the file offset and the length.
    offset: u32,
}

impl DirectIo {
    /// When the file system does not report its needs (kernels before
    /// 6.1): 4 KiB, which every common device's logical block divides.
    const FALLBACK: DirectIo = DirectIo {
        memory: 4096,
        offset: 4096,
    };

    /// `InvalidInput`, before anything is submitted, unless the offset,
    /// the buffer's address and the length are aligned.
    fn check(self, what: &str, pos: u64, address: *const u8, len: usize) -> io::Result<()> {
        let (memory, offset) = (self.memory as usize, u64::from(self.offset));
        if pos.is_multiple_of(offset)
            && (address as usize).is_multiple_of(memory)
            && (len as u64).is_multiple_of(offset)
        {
            return Ok(());
        }
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "O_DIRECT {what} misaligned: offset {pos} and length {len} must be multiples of \
                 {offset}, the buffer's address {address:p} of {memory} (use an AlignedBuf)"
            ),
        ))
    }
}

impl File {
    /// Opens `path` for reading.
    ///
    /// # Errors
    ///
    /// As `open(2)`: `NotFound`, `PermissionDenied`, ...
    pub async fn open(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new().read(true).open(path).await
    }

    /// Opens `path` for writing, creating it if needed and truncating it if
    /// not.
    ///
    /// # Errors
    ///
    /// As `open(2)`.
    pub async fn create(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .await
    }

    /// The options to open a file with (the same as [`OpenOptions::new`]).
    pub fn options() -> OpenOptions {
        OpenOptions::new()
    }

    pub(crate) fn from_owned(fd: OwnedFd) -> File {
        File {
            fd: Fd::from(fd),
            direct: None,
        }
    }

    /// Marks this file as opened with `O_DIRECT`, with the alignment its
    /// file system reports.
    pub(crate) async fn into_direct(mut self) -> io::Result<File> {
        let alignment = self.metadata().await?.direct_io_alignment();
        self.direct = Some(
            alignment.map_or(DirectIo::FALLBACK, |(memory, offset)| DirectIo {
                memory: memory.max(1),
                offset,
            }),
        );
        Ok(self)
    }

    /// Whether the file was opened with `O_DIRECT`; if so, the alignment
    /// its I/O needs, as `(memory, offset and length)` in bytes.
    pub fn direct_io_alignment(&self) -> Option<(u32, u32)> {
        self.direct.map(|direct| (direct.memory, direct.offset))
    }

    /// An empty [`AlignedBuf`] of at least `capacity` bytes, aligned for
    /// this file's direct I/O (4 KiB for a file opened without
    /// `O_DIRECT`).
    pub fn aligned_buf(&self, capacity: usize) -> AlignedBuf {
        let direct = self.direct.unwrap_or(DirectIo::FALLBACK);
        AlignedBuf::new(capacity, direct.memory.max(direct.offset) as usize)
    }

    /// For a direct-I/O file, the misalignment error of a transfer.
    fn check_direct(&self, what: &str, pos: u64, address: *const u8, len: usize) -> io::Result<()> {
        match self.direct {
            Some(direct) => direct.check(what, pos, address, len),
            None => Ok(()),
        }
    }

    pub(crate) fn shared(&self) -> &SharedFd {
        self.fd.shared()
    }

    /// Reads into `buf` from offset `pos`, filling it from its start up to
    /// its capacity; may read fewer bytes. `Ok(0)` means end of file.
    ///
    /// # Errors
    ///
    /// As `pread(2)`; `InvalidInput` before submission when `pos` is past
    /// the largest file offset (`i64::MAX`), or, for a file opened with
    /// `O_DIRECT`, when the offset, the buffer's address or its capacity is
    /// not aligned (see [`aligned_buf`](File::aligned_buf)).
    pub async fn read_at<B: IoBufMut>(&self, mut buf: B, pos: u64) -> BufResult<usize, B> {
        let (address, len) = (buf.stable_mut_ptr().cast_const(), buf.bytes_total());
        if let Err(error) = self.check_direct("read", pos, address, len) {
            return (Err(error), buf);
        }
        self.fd.read_at(buf, pos).await
    }

    /// Reads exactly `buf`'s capacity ([`bytes_total`](IoBuf::bytes_total))
    /// from offset `pos` into it from its start, retrying short reads.
    ///
    /// # Errors
    ///
    /// `UnexpectedEof` when the file ends first (the bytes read are kept in
    /// the buffer); otherwise the first error of a read (see
    /// [`read_at`](File::read_at)).
    pub async fn read_exact_at<B: IoBufMut>(&self, buf: B, pos: u64) -> BufResult<(), B> {
        let total = buf.bytes_total();
        let mut buf = buf;
        let mut filled = 0;
        while filled < total {
            let (read, returned) = self.read_at(buf.slice(filled..), pos + filled as u64).await;
            buf = returned.into_inner();
            match read {
                Ok(0) => {
                    let error = io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("the file ended after {filled} of {total} bytes"),
                    );
                    return (Err(error), buf);
                }
                // A short direct read ends at the end of the file (the
                // next offset would be misaligned).
                Ok(n) if self.direct.is_some() && filled + n < total => {
                    let error = io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("the file ended after {} of {total} bytes", filled + n),
                    );
                    return (Err(error), buf);
                }
                Ok(n) => filled += n,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return (Err(error), buf),
            }
        }
        (Ok(()), buf)
    }

    /// Writes the initialized bytes of `buf` at offset `pos`; may write
    /// fewer (see [`write_all_at`](File::write_all_at)).
    ///
    /// # Errors
    ///
    /// As `pwrite(2)`; `InvalidInput` before submission when `pos` is past
    /// the largest file offset (`i64::MAX`), or, for a file opened with
    /// `O_DIRECT`, when the offset, the buffer's address or its initialized
    /// length is not aligned.
    pub async fn write_at<B: IoBuf>(&self, buf: B, pos: u64) -> BufResult<usize, B> {
        if let Err(error) = self.check_direct("write", pos, buf.stable_ptr(), buf.bytes_init()) {
            return (Err(error), buf);
        }
        self.fd.write_at(buf, pos).await
    }

    /// Writes every initialized byte of `buf` from offset `pos`, retrying
    /// short writes.
    ///
    /// # Errors
    ///
    /// `WriteZero` when the file takes no more bytes (a full device gives
    /// its own error first); otherwise the first error of a write (see
    /// [`write_at`](File::write_at)).
    pub async fn write_all_at<B: IoBuf>(&self, buf: B, pos: u64) -> BufResult<(), B> {
        if let Err(error) = self.check_direct("write", pos, buf.stable_ptr(), buf.bytes_init()) {
            return (Err(error), buf);
        }
        self.fd.write_all_at(buf, pos).await
    }

    /// Reads into `bufs` in order from offset `pos` (`preadv`).
    ///
    /// # Errors
    ///
    /// As [`read_at`](File::read_at), for each buffer; `InvalidInput` before
    /// submission for more than 1,024 buffers (`IOV_MAX`).
    pub async fn readv_at<B: IoBufMut>(
        &self,
        mut bufs: Vec<B>,
        pos: u64,
    ) -> BufResult<usize, Vec<B>> {
        for buf in &mut bufs {
            let (address, len) = (buf.stable_mut_ptr().cast_const(), buf.bytes_total());
            if let Err(error) = self.check_direct("read", pos, address, len) {
                return (Err(error), bufs);
            }
        }
        self.fd.readv_at(bufs, pos).await
    }

    /// Writes the initialized bytes of `bufs` in order at offset `pos`
    /// (`pwritev`); may write fewer.
    ///
    /// # Errors
    ///
    /// As [`write_at`](File::write_at), for each buffer; `InvalidInput` before
    /// submission for more than 1,024 buffers (`IOV_MAX`).
    pub async fn writev_at<B: IoBuf>(&self, bufs: Vec<B>, pos: u64) -> BufResult<usize, Vec<B>> {
        for buf in &bufs {
            if let Err(error) = self.check_direct("write", pos, buf.stable_ptr(), buf.bytes_init())
            {
                return (Err(error), bufs);
            }
        }
        self.fd.writev_at(bufs, pos).await
    }

    /// Reads into a registered buffer from offset `pos`, filling it from
    /// its start up to its length (`IORING_OP_READ_FIXED`: the kernel
    /// skips mapping the buffer's pages). `Ok(0)` means end of file.
    ///
    /// # Errors
    ///
    /// As [`read_at`](File::read_at).
    pub async fn read_fixed_at(&self, mut buf: FixedBuf, pos: u64) -> BufResult<usize, FixedBuf> {
        let (address, len) = (buf.stable_mut_ptr().cast_const(), buf.bytes_total());
        let offset = self
            .check_direct("read", pos, address, len)
            .and_then(|()| Offset::at(pos, "read_fixed_at"));
        match offset {
            Ok(offset) => Op::new(ReadFixed::new(self.shared().clone(), buf, offset)).await,
            Err(error) => (Err(error), buf),
        }
    }

    /// Writes the initialized bytes of a registered buffer at offset `pos`
    /// (`IORING_OP_WRITE_FIXED`); may write fewer.
    ///
    /// # Errors
    ///
    /// As [`write_at`](File::write_at).
    pub async fn write_fixed_at(&self, buf: FixedBuf, pos: u64) -> BufResult<usize, FixedBuf> {
        let offset = self
            .check_direct("write", pos, buf.stable_ptr(), buf.bytes_init())
            .and_then(|()| Offset::at(pos, "write_fixed_at"));
        match offset {
            Ok(offset) => Op::new(WriteFixed::new(self.shared().clone(), buf, offset)).await,
            Err(error) => (Err(error), buf),
        }
    }

    /// Flushes the file's data and metadata to the device (`fsync`).
    pub async fn sync_all(&self) -> io::Result<()> {
        Op::new(Fsync::new(self.shared().clone(), false)).await
    }

    /// Flushes the file's data, and only the metadata needed to read it
    /// back (`fdatasync`).
    pub async fn sync_data(&self) -> io::Result<()> {
        Op::new(Fsync::new(self.shared().clone(), true)).await
    }

    /// Truncates or extends the file to `len` bytes (`ftruncate`, through
    /// the ring from Linux 6.9).
    ///
    /// # Errors
    ///
    /// As `ftruncate(2)`; `InvalidInput` on kernels without the operation.
    pub async fn set_len(&self, len: u64) -> io::Result<()> {
        let fd = self.shared().clone();
        Op::new(Resize::Truncate { fd, len }).await
    }

    /// Allocates the range `offset..offset + len` on the device
    /// (`fallocate` with mode 0), extending the file if the range ends
    /// beyond it, so that later writes there cannot fail for want of space.
    ///
    /// # Errors
    ///
    /// As `fallocate(2)`: `StorageFull`, or `Unsupported` on a file system
    /// that cannot.
    pub async fn allocate(&self, offset: u64, len: u64) -> io::Result<()> {
        let fd = self.shared().clone();
        Op::new(Resize::Allocate {
            fd,
            offset,
            len,
            mode: 0,
        })
        .await
    }

    /// The file's metadata (`statx` on the open descriptor).
    pub async fn metadata(&self) -> io::Result<Metadata> {
        let statx = Statx::new(StatxOf::Fd(self.shared().clone()), Metadata::MASK)?;
        Op::new(statx).await.map(Metadata::from_statx)
    }

    /// Closes the file through the ring after every operation still in
    /// flight on it has completed, and reports the close's result.
    pub async fn close(self) -> io::Result<()> {
        self.fd.close().await
    }
}

impl AsFd for File {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for File {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl From<OwnedFd> for File {
    fn from(fd: OwnedFd) -> File {
        File::from_owned(fd)
    }
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("File")
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}
