//! File-system operations: `IORING_OP_OPENAT2`, `STATX`, `FSYNC`,
//! `FALLOCATE`, `FTRUNCATE`, `SPLICE`, and the path operations (`UNLINKAT`,
//! `RENAMEAT`, `MKDIRAT`, `SYMLINKAT`, `LINKAT`).
//!
//! Paths are owned `CString`s: their bytes live on the heap, so the pointers
//! in the SQE stay valid while the operation moves, until its final CQE.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use io_uring::{opcode, squeue, types};

use super::ready::{Attempt, Job};
use super::Operation;
use super::SharedFd;
use crate::driver::epoll::Interest;
use crate::driver::Completion;
use crate::driver::{with_target, Target};
use crate::runtime::defer_close;
use crate::sys::nowait;

/// Opens (or creates) `path` (`openat2`): relative to the current
/// directory, or beneath a directory, whose bounds the kernel then keeps.
pub(crate) struct OpenAt {
    path: CString,
    /// The directory `path` is resolved in, beneath which it must stay;
    /// `None`: the current directory, without bounds.
    beneath: Option<SharedFd>,
    /// Boxed: the SQE points at it.
    how: Box<types::OpenHow>,
}

impl OpenAt {
    /// `flags` as for `open(2)`; `O_CLOEXEC` is always added. With
    /// `beneath`, `RESOLVE_BENEATH`: `..`, absolute paths and symbolic
    /// links that would leave the directory fail with `EXDEV`.
    pub(crate) fn new(
        path: CString,
        flags: i32,
        mode: libc::mode_t,
        beneath: Option<SharedFd>,
    ) -> OpenAt {
        let resolve = if beneath.is_some() {
            libc::RESOLVE_BENEATH
        } else {
            0
        };
        // The mode only goes with flags that create; openat2 refuses it
        // otherwise.
        // (O_TMPFILE includes O_DIRECTORY's bit: test all of it.)
        let creates = flags & libc::O_CREAT != 0 || flags & libc::O_TMPFILE == libc::O_TMPFILE;
        let how = types::OpenHow::new()
            .flags((flags | libc::O_CLOEXEC) as u32 as u64)
            .mode(if creates { u64::from(mode) } else { 0 })
            .resolve(resolve);
        OpenAt {
            path,
            beneath,
            how: Box::new(how),
        }
    }
}

// SAFETY: the SQE points into `path` (a CString's heap bytes) and at
// `how` (a box), which stay put while the operation moves; `Op` keeps
// `self` until the final CQE. `beneath` keeps the directory open.
unsafe impl Operation for OpenAt {
    type Output = io::Result<OwnedFd>;

    fn build(&mut self) -> squeue::Entry {
        let dir = self
            .beneath
            .as_ref()
            .map_or(libc::AT_FDCWD, |dir| dir.plain_fd().as_raw_fd());
        opcode::OpenAt2::new(types::Fd(dir), self.path.as_ptr(), &*self.how).build()
    }

    fn complete(self, completion: Completion) -> io::Result<OwnedFd> {
        let fd = completion.into_result()? as i32;
        // SAFETY: the kernel just opened `fd` for us and nobody else has it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    fn late_completion(&mut self, completion: Completion) {
        // The future is gone: close what a late success opened.
        if completion.result >= 0 {
            defer_close(Target::Fd(completion.result), None);
        }
    }

    fn attempt(&mut self) -> Attempt {
        let dir = self
            .beneath
            .as_ref()
            .map_or(libc::AT_FDCWD, |dir| dir.plain_fd().as_raw_fd());
        let (path, how) = (
            self.path.as_ptr(),
            (&*self.how as *const types::OpenHow).cast(),
        );
        // SAFETY: the path and the boxed `open_how` (the layout
        // `types::OpenHow` wraps) live on the heap in the state, only read.
        Attempt::Blocking(unsafe { Job::new(move || nowait::openat2(dir, path, how)) })
    }
}

/// What `statx` looks at: an open descriptor, or a path.
pub(crate) enum StatxOf {
    Fd(SharedFd),
    Path { path: CString, follow: bool },
}

/// `statx(2)` into a boxed buffer: the basic fields and the birth time.
pub(crate) struct Statx {
    of: StatxOf,
    /// The empty path `AT_EMPTY_PATH` needs with a descriptor.
    empty: CString,
    buf: Box<libc::statx>,
    mask: u32,
}

impl Statx {
    /// `mask` as for `statx(2)`: the fields wanted.
    pub(crate) fn new(of: StatxOf, mask: u32) -> io::Result<Statx> {
        if let StatxOf::Fd(fd) = &of {
            // statx takes no direct descriptor.
            fd.raw_fd()?;
        }
        Ok(Statx {
            of,
            empty: CString::default(),
            // SAFETY: `statx` is plain data, for which all zeroes is valid.
            buf: Box::new(unsafe { std::mem::zeroed() }),
            mask,
        })
    }
    /// The call's directory, path and flags: the descriptor itself (an
    /// empty path), or a path from the working directory.
    fn target(&self) -> (RawFd, *const libc::c_char, i32) {
        match &self.of {
            StatxOf::Fd(fd) => (
                fd.plain_fd().as_raw_fd(),
                self.empty.as_ptr(),
                libc::AT_EMPTY_PATH,
            ),
            StatxOf::Path { path, follow } => {
                let flags = if *follow {
                    0
                } else {
                    libc::AT_SYMLINK_NOFOLLOW
                };
                (libc::AT_FDCWD, path.as_ptr(), flags)
            }
        }
    }
}

// SAFETY: the SQE points into `empty` or the path (heap bytes of a CString)
// and into `buf` (a box), all of which stay put while the operation moves;
// `Op` keeps `self` until the final CQE.
unsafe impl Operation for Statx {
    type Output = io::Result<libc::statx>;

    fn build(&mut self) -> squeue::Entry {
        let (dirfd, path, flags) = self.target();
        let buf: *mut libc::statx = &mut *self.buf;
        opcode::Statx::new(types::Fd(dirfd), path, buf.cast())
            .flags(flags)
            .mask(self.mask)
            .build()
    }

    fn complete(self, completion: Completion) -> io::Result<libc::statx> {
        completion.into_result()?;
        Ok(*self.buf)
    }

    fn attempt(&mut self) -> Attempt {
        let (dir, path, flags) = self.target();
        let (mask, buf): (u32, *mut libc::statx) = (self.mask, &mut *self.buf);
        // SAFETY: the path and the boxed `statx` live on the heap in the
        // state; the call writes only the latter.
        Attempt::Blocking(unsafe { Job::new(move || nowait::statx(dir, path, flags, mask, buf)) })
    }
}

/// `fsync(2)` or `fdatasync(2)`.
pub(crate) struct Fsync {
    fd: SharedFd,
    data_only: bool,
}

impl Fsync {
    pub(crate) fn new(fd: SharedFd, data_only: bool) -> Fsync {
        Fsync { fd, data_only }
    }
}

// SAFETY: the SQE refers to no memory.
unsafe impl Operation for Fsync {
    type Output = io::Result<()>;

    fn build(&mut self) -> squeue::Entry {
        let flags = if self.data_only {
            types::FsyncFlags::DATASYNC
        } else {
            types::FsyncFlags::empty()
        };
        with_target!(self.fd.target(), |t| opcode::Fsync::new(t)
            .flags(flags)
            .build())
    }

    fn complete(self, completion: Completion) -> io::Result<()> {
        completion.into_result().map(drop)
    }

    fn attempt(&mut self) -> Attempt {
        let (fd, data_only) = (self.fd.plain_raw(), self.data_only);
        // SAFETY: plain values.
        Attempt::Blocking(unsafe {
            Job::new(move || {
                if data_only {
                    nowait::fdatasync(fd)
                } else {
                    nowait::fsync(fd)
                }
            })
        })
    }
}

/// `fallocate(2)`, or `ftruncate(2)` (Linux 6.9).
pub(crate) enum Resize {
    Allocate {
        fd: SharedFd,
        offset: u64,
        len: u64,
        mode: i32,
    },
    Truncate {
        fd: SharedFd,
        len: u64,
    },
}

// SAFETY: the SQE refers to no memory.
unsafe impl Operation for Resize {
    type Output = io::Result<()>;

    fn build(&mut self) -> squeue::Entry {
        match self {
            Resize::Allocate {
                fd,
                offset,
                len,
                mode,
            } => with_target!(fd.target(), |t| opcode::Fallocate::new(t, *len)
                .offset(*offset)
                .mode(*mode)
                .build()),
            Resize::Truncate { fd, len } => {
                with_target!(fd.target(), |t| opcode::Ftruncate::new(t, *len).build())
            }
        }
    }

    fn complete(self, completion: Completion) -> io::Result<()> {
        completion.into_result().map(drop)
    }

    fn attempt(&mut self) -> Attempt {
        // The lengths are at most `i64::MAX` (checked by the callers).
        Attempt::Blocking(match *self {
            Resize::Allocate {
                ref fd,
                offset,
                len,
                mode,
            } => {
                let fd = fd.plain_raw();
                // SAFETY: plain values.
                unsafe { Job::new(move || nowait::fallocate(fd, mode, offset as i64, len as i64)) }
            }
            Resize::Truncate { ref fd, len } => {
                let fd = fd.plain_raw();
                // SAFETY: plain values.
                unsafe { Job::new(move || nowait::ftruncate(fd, len as i64)) }
            }
        })
    }
}

/// Moves up to `len` bytes from `from` to `to`, one of which is a pipe
/// (`splice(2)`). An offset of `None` uses (and advances) the descriptor's
/// position, as for a pipe or socket.
pub(crate) struct Splice {
    from: SharedFd,
    from_offset: Option<u64>,
    to: SharedFd,
    to_offset: Option<u64>,
    len: u32,
}

impl Splice {
    pub(crate) fn new(
        from: SharedFd,
        from_offset: Option<u64>,
        to: SharedFd,
        to_offset: Option<u64>,
        len: u32,
    ) -> Splice {
        Splice {
            from,
            from_offset,
            to,
            to_offset,
            len,
        }
    }
}

impl Splice {
    fn arguments(&self) -> (RawFd, Option<u64>, RawFd, Option<u64>, usize) {
        let (from, to) = (self.from.plain_raw(), self.to.plain_raw());
        (
            from,
            self.from_offset,
            to,
            self.to_offset,
            self.len as usize,
        )
    }

    fn splice(&self, flags: u32) -> i32 {
        let (from, from_offset, to, to_offset, len) = self.arguments();
        splice_at(from, from_offset, to, to_offset, len, flags)
    }
}

/// One `splice(2)`, each offset `None` for the descriptor's position.
fn splice_at(
    from: RawFd,
    from_offset: Option<u64>,
    to: RawFd,
    to_offset: Option<u64>,
    len: usize,
    flags: u32,
) -> i32 {
    let mut places = (
        from_offset.unwrap_or(0) as i64,
        to_offset.unwrap_or(0) as i64,
    );
    let at = |offset: Option<u64>, place: &mut i64| {
        offset.map_or(std::ptr::null_mut(), |_| place as *mut i64)
    };
    let (from_at, to_at) = (at(from_offset, &mut places.0), at(to_offset, &mut places.1));
    // SAFETY: the offsets are null or point at the locals above.
    unsafe { nowait::splice(from, from_at, to, to_at, len, flags) }
}

// SAFETY: the SQE refers to no memory.
unsafe impl Operation for Splice {
    type Output = io::Result<usize>;

    fn build(&mut self) -> squeue::Entry {
        // -1: no offset (the descriptor's own position).
        let offset = |offset: Option<u64>| offset.map_or(-1, |offset| offset as i64);
        let (from_offset, to_offset, len) =
            (offset(self.from_offset), offset(self.to_offset), self.len);
        with_target!(self.to.target(), |to| match self.from.target() {
            Target::Fd(from) => {
                opcode::Splice::new(types::Fd(from), from_offset, to, to_offset, len).build()
            }
            Target::Fixed(from) => {
                opcode::Splice::new(types::Fixed(from), from_offset, to, to_offset, len).build()
            }
        })
    }

    fn complete(self, completion: Completion) -> io::Result<usize> {
        completion.into_result().map(|moved| moved as usize)
    }

    /// Waits for room in the destination (a pipe or socket) when the
    /// non-blocking splice says `EAGAIN`; into a regular file, which epoll
    /// refuses, the splice blocks on the pool.
    fn interest(&self) -> Option<(&SharedFd, Interest)> {
        Some((&self.to, Interest::WRITE))
    }

    fn attempt(&mut self) -> Attempt {
        Attempt::Done(self.splice(libc::SPLICE_F_NONBLOCK))
    }

    fn blocking(&mut self) -> Option<Job> {
        let (from, from_offset, to, to_offset, len) = self.arguments();
        // SAFETY: plain values; the offsets are copied into the job.
        Some(unsafe { Job::new(move || splice_at(from, from_offset, to, to_offset, len, 0)) })
    }
}

/// An operation on paths that returns nothing but success.
pub(crate) enum PathOp {
    /// `unlinkat`: a file, or with `dir` an empty directory.
    Remove {
        path: CString,
        dir: bool,
    },
    Rename {
        from: CString,
        to: CString,
    },
    CreateDir {
        path: CString,
        mode: libc::mode_t,
    },
    /// `symlinkat`: `link` will point at `target`.
    Symlink {
        target: CString,
        link: CString,
    },
    HardLink {
        from: CString,
        to: CString,
    },
}

// SAFETY: the SQE points into the paths' heap bytes, which stay put while
// the operation moves; `Op` keeps `self` until the final CQE.
unsafe impl Operation for PathOp {
    type Output = io::Result<()>;

    fn build(&mut self) -> squeue::Entry {
        let cwd = types::Fd(libc::AT_FDCWD);
        match self {
            PathOp::Remove { path, dir } => opcode::UnlinkAt::new(cwd, path.as_ptr())
                .flags(if *dir { libc::AT_REMOVEDIR } else { 0 })
                .build(),
            PathOp::Rename { from, to } => {
                opcode::RenameAt::new(cwd, from.as_ptr(), cwd, to.as_ptr()).build()
            }
            PathOp::CreateDir { path, mode } => {
                opcode::MkDirAt::new(cwd, path.as_ptr()).mode(*mode).build()
            }
            PathOp::Symlink { target, link } => {
                opcode::SymlinkAt::new(cwd, target.as_ptr(), link.as_ptr()).build()
            }
            PathOp::HardLink { from, to } => {
                opcode::LinkAt::new(cwd, from.as_ptr(), cwd, to.as_ptr()).build()
            }
        }
    }

    fn complete(self, completion: Completion) -> io::Result<()> {
        completion.into_result().map(drop)
    }

    fn attempt(&mut self) -> Attempt {
        let cwd = libc::AT_FDCWD;
        // SAFETY: the paths are CStrings whose heap bytes the state keeps,
        // only read.
        Attempt::Blocking(unsafe {
            match self {
                PathOp::Remove { path, dir } => {
                    let (path, flags) = (path.as_ptr(), if *dir { libc::AT_REMOVEDIR } else { 0 });
                    Job::new(move || nowait::unlinkat(cwd, path, flags))
                }
                PathOp::Rename { from, to } => {
                    let (from, to) = (from.as_ptr(), to.as_ptr());
                    Job::new(move || nowait::renameat(cwd, from, cwd, to))
                }
                PathOp::CreateDir { path, mode } => {
                    let (path, mode) = (path.as_ptr(), *mode);
                    Job::new(move || nowait::mkdirat(cwd, path, mode))
                }
                PathOp::Symlink { target, link } => {
                    let (target, link) = (target.as_ptr(), link.as_ptr());
                    Job::new(move || nowait::symlinkat(target, cwd, link))
                }
                PathOp::HardLink { from, to } => {
                    let (from, to) = (from.as_ptr(), to.as_ptr());
                    Job::new(move || nowait::linkat(cwd, from, cwd, to))
                }
            }
        })
    }
}
