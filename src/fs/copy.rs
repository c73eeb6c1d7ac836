//! Moving file contents without copying them through user space: `splice`
//! through a pipe, to a socket ([`File::splice_to`]) or to another file
//! ([`copy`]).

use std::io;
use std::os::fd::AsFd;
use std::path::Path;

use super::{File, OpenOptions};
use crate::fd::StreamSocket;
use crate::op::Op;
use crate::op::SharedFd;
use crate::op::Splice;

/// The pipe between the two splices: its capacity is the most one round
/// moves.
struct Pipe {
    read: SharedFd,
    write: SharedFd,
    capacity: u32,
}

impl Pipe {
    /// A new pipe, grown to 1 MiB where the system allows (fewer rounds
    /// for large transfers).
    fn new() -> io::Result<Pipe> {
        let (read, write) = crate::sys::file::pipe()?;
        let capacity = crate::sys::file::grow_pipe(write.as_fd(), 1 << 20).unwrap_or(0);
        Ok(Pipe {
            read: SharedFd::new(read),
            write: SharedFd::new(write),
            capacity: u32::try_from(capacity).unwrap_or(0).max(4096),
        })
    }
}

/// Moves up to `len` bytes from `from` (at `from_offset`, a file) to `to`
/// (at `to_offset`, or its own position for a socket), through a pipe.
/// Returns the bytes moved: fewer than `len` only when `from` ends first.
async fn splice_all(
    from: &SharedFd,
    from_offset: u64,
    to: &SharedFd,
    to_offset: Option<u64>,
    len: u64,
) -> io::Result<u64> {
    let pipe = Pipe::new()?;
    let mut moved = 0u64;
    while moved < len {
        let chunk = (len - moved).min(u64::from(pipe.capacity)) as u32;
        let filled = Op::new(Splice::new(
            from.clone(),
            Some(from_offset + moved),
            pipe.write.clone(),
            None,
            chunk,
        ))
        .await?;
        if filled == 0 {
            break; // the file ended
        }
        let mut drained = 0;
        while drained < filled {
            let out = Op::new(Splice::new(
                pipe.read.clone(),
                None,
                to.clone(),
                to_offset.map(|offset| offset + moved + drained as u64),
                (filled - drained) as u32,
            ))
            .await?;
            if out == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "the destination took no more bytes",
                ));
            }
            drained += out;
        }
        moved += filled as u64;
    }
    Ok(moved)
}

impl File {
    /// Sends up to `len` bytes of this file, from `offset`, on `stream`
    /// (any [`StreamSocket`]: a TCP connection, direct or not, or a Unix
    /// stream) without copying them through user space: `splice` from the
    /// file into a pipe, then from the pipe into the socket. Returns the
    /// bytes sent, fewer than `len` only when the file ends first.
    ///
    /// # Errors
    ///
    /// The first error of a splice: of the file's read, or the socket's
    /// (`BrokenPipe`, `ConnectionReset`).
    pub async fn splice_to(
        &self,
        stream: &impl StreamSocket,
        offset: u64,
        len: u64,
    ) -> io::Result<u64> {
        splice_all(self.shared(), offset, stream.shared_fd().0, None, len).await
    }
}

/// Copies the contents of the file at `from` to `to`, which is created or
/// truncated; a file it creates gets `from`'s permission bits (less the
/// umask). The bytes go through a pipe with `splice`, never through user
/// space, until `from` ends (whatever size it reports: files in `/proc`
/// report 0); through a buffer for files that cannot splice. Returns the
/// bytes copied.
///
/// # Errors
///
/// As opening either file, or the first error of a splice.
pub async fn copy(from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<u64> {
    let source = File::open(from).await?;
    let metadata = source.metadata().await?;
    let target = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(metadata.mode() & 0o7777)
        .open(to)
        .await?;
    // Until the end, not the size: /proc and /sys files report 0 (or a
    // page) whatever they hold, and a file may grow meanwhile.
    let copied = match splice_all(source.shared(), 0, target.shared(), Some(0), u64::MAX).await {
        // Some files cannot splice (/proc/self/cmdline, ...): copy through
        // a buffer instead, from the start again.
        Err(error) if error.raw_os_error() == Some(libc::EINVAL) => {
            copy_through_buffer(&source, &target).await
        }
        spliced => spliced,
    }?;
    source.close().await?;
    target.close().await?;
    Ok(copied)
}

/// Copies `from` to `to` from their start until `from` ends, with reads
/// and writes through the ring: for files whose file system cannot splice.
async fn copy_through_buffer(from: &File, to: &File) -> io::Result<u64> {
    let mut buf = Vec::with_capacity(64 << 10);
    let mut copied = 0u64;
    loop {
        buf.clear();
        let (read, returned) = from.read_at(buf, copied).await;
        buf = returned;
        match read {
            Ok(0) => return Ok(copied),
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        }
        let (written, returned) = to.write_all_at(buf, copied).await;
        buf = returned;
        written?;
        copied += buf.len() as u64;
    }
}
