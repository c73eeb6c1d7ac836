//! `Metadata`: what `statx(2)` reports about a file.

use std::fmt;
use std::io;
use std::time::{Duration, SystemTime};

/// A file's metadata, from `statx(2)`: the fields of `std::fs::Metadata`
/// and `std::os::unix::fs::MetadataExt`, and the alignment direct I/O on
/// the file needs.
#[derive(Clone, Copy)]
pub struct Metadata {
    statx: libc::statx,
}

/// The kind of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileType {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (only from `symlink_metadata`).
    Symlink,
    /// A block device.
    BlockDevice,
    /// A character device.
    CharDevice,
    /// A FIFO (named pipe).
    Fifo,
    /// A Unix socket.
    Socket,
}

impl Metadata {
    /// The fields asked of `statx`: the basic ones, the birth time and the
    /// direct-I/O alignment.
    pub(crate) const MASK: u32 = libc::STATX_BASIC_STATS | libc::STATX_BTIME | libc::STATX_DIOALIGN;

    pub(crate) fn from_statx(statx: libc::statx) -> Metadata {
        Metadata { statx }
    }

    /// The size in bytes.
    pub fn len(&self) -> u64 {
        self.statx.stx_size
    }

    /// Whether the size is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The kind of file.
    pub fn file_type(&self) -> FileType {
        match u32::from(self.statx.stx_mode) & libc::S_IFMT {
            libc::S_IFDIR => FileType::Dir,
            libc::S_IFLNK => FileType::Symlink,
            libc::S_IFBLK => FileType::BlockDevice,
            libc::S_IFCHR => FileType::CharDevice,
            libc::S_IFIFO => FileType::Fifo,
            libc::S_IFSOCK => FileType::Socket,
            _ => FileType::File,
        }
    }

    /// Whether this is a regular file.
    pub fn is_file(&self) -> bool {
        self.file_type() == FileType::File
    }

    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.file_type() == FileType::Dir
    }

    /// Whether this is a symbolic link.
    pub fn is_symlink(&self) -> bool {
        self.file_type() == FileType::Symlink
    }

    /// The mode: the file type and permission bits (`st_mode`).
    pub fn mode(&self) -> u32 {
        u32::from(self.statx.stx_mode)
    }

    /// The permissions, as `std` represents them.
    pub fn permissions(&self) -> std::fs::Permissions {
        use std::os::unix::fs::PermissionsExt;
        std::fs::Permissions::from_mode(self.mode())
    }

    /// The time of the last modification of the contents.
    ///
    /// # Errors
    ///
    /// `Unsupported` when the file system did not report it.
    pub fn modified(&self) -> io::Result<SystemTime> {
        self.time(libc::STATX_MTIME, self.statx.stx_mtime)
    }

    /// The time of the last access.
    ///
    /// # Errors
    ///
    /// `Unsupported` when the file system did not report it.
    pub fn accessed(&self) -> io::Result<SystemTime> {
        self.time(libc::STATX_ATIME, self.statx.stx_atime)
    }

    /// The time of creation (birth).
    ///
    /// # Errors
    ///
    /// `Unsupported` when the file system does not record it.
    pub fn created(&self) -> io::Result<SystemTime> {
        self.time(libc::STATX_BTIME, self.statx.stx_btime)
    }

    fn time(&self, field: u32, time: libc::statx_timestamp) -> io::Result<SystemTime> {
        if self.statx.stx_mask & field == 0 {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the file system did not report this time",
            ));
        }
        let nanos = Duration::from_nanos(u64::from(time.tv_nsec));
        let at = if time.tv_sec >= 0 {
            SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(time.tv_sec as u64) + nanos)
        } else {
            SystemTime::UNIX_EPOCH
                .checked_sub(Duration::from_secs(time.tv_sec.unsigned_abs()))
                .and_then(|at| at.checked_add(nanos))
        };
        at.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "time out of range"))
    }

    /// The inode number.
    pub fn ino(&self) -> u64 {
        self.statx.stx_ino
    }

    /// The device the file lives on, as `st_dev` encodes it.
    pub fn dev(&self) -> u64 {
        crate::sys::file::device_number(self.statx.stx_dev_major, self.statx.stx_dev_minor)
    }

    /// The number of hard links.
    pub fn nlink(&self) -> u64 {
        u64::from(self.statx.stx_nlink)
    }

    /// The owner's user id.
    pub fn uid(&self) -> u32 {
        self.statx.stx_uid
    }

    /// The owner's group id.
    pub fn gid(&self) -> u32 {
        self.statx.stx_gid
    }

    /// The preferred I/O block size.
    pub fn blksize(&self) -> u64 {
        u64::from(self.statx.stx_blksize)
    }

    /// The number of 512-byte blocks allocated.
    pub fn blocks(&self) -> u64 {
        self.statx.stx_blocks
    }

    /// The alignment `O_DIRECT` I/O on this file needs, as
    /// `(memory, offset and length)` in bytes, or `None` when the file
    /// system does not support direct I/O on it (or the kernel, before 6.1,
    /// does not say).
    pub fn direct_io_alignment(&self) -> Option<(u32, u32)> {
        let statx = &self.statx;
        (statx.stx_mask & libc::STATX_DIOALIGN != 0 && statx.stx_dio_offset_align != 0)
            .then_some((statx.stx_dio_mem_align, statx.stx_dio_offset_align))
    }
}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metadata")
            .field("file_type", &self.file_type())
            .field("len", &self.len())
            .field("mode", &format_args!("{:o}", self.mode()))
            .field("ino", &self.ino())
            .finish_non_exhaustive()
    }
}
