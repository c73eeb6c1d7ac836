//! Descriptors and files outside the ring: closing a descriptor where no
//! ring can take the close, the pipe between two splices, and device
//! numbers.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Closes `fd` with `close(2)`, ignoring errors (nothing is left to undo)
/// and never retrying: Linux frees the descriptor before it reports
/// `EINTR`, so a second close could hit a descriptor another thread was
/// just given.
///
/// # Safety
///
/// The caller owns `fd`, and nothing uses it after.
pub(crate) unsafe fn close(fd: RawFd) {
    // SAFETY: the caller owns `fd` and gives it up (this function's contract).
    let _ = unsafe { syscall!(close(fd)) };
}

/// A new close-on-exec pipe: (read end, write end).
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    unsafe { syscall!(pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC)) }?;
    // SAFETY: pipe2 just created both descriptors for us alone.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Asks for a pipe of `capacity` bytes (`F_SETPIPE_SZ`; a refusal, such as
/// a size past `/proc/sys/fs/pipe-max-size` for an unprivileged user, leaves
/// it as it was), then returns the capacity it has (`F_GETPIPE_SZ`).
pub(crate) fn grow_pipe(pipe: BorrowedFd<'_>, capacity: libc::c_int) -> io::Result<libc::c_int> {
    let fd = pipe.as_raw_fd();
    // SAFETY: fcntl on a descriptor the caller holds; no pointer is passed.
    let _ = unsafe { syscall!(fcntl(fd, libc::F_SETPIPE_SZ, capacity)) };
    // SAFETY: as above.
    unsafe { syscall!(fcntl(fd, libc::F_GETPIPE_SZ)) }
}

/// The device number `st_dev` encodes for `major` and `minor`
/// (`makedev(3)`, glibc's encoding, which the kernel's `stat` uses too).
pub(crate) fn device_number(major: u32, minor: u32) -> u64 {
    libc::makedev(major, minor)
}
