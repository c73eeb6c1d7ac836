//! Eventfds: the one a core parks on when no other ring can message it,
//! and the signal doorbell.
//!
//! A waker that fires on a thread without a corering ring writes to the
//! owning core's eventfd; the core always keeps one read of that eventfd in
//! flight on its ring, so the write completes the read and ends the park.
//! The signal handler writes the signal doorbell, a blocking eventfd that
//! the signal thread waits on (see `signal`).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A non-blocking, close-on-exec eventfd.
#[derive(Debug)]
pub(crate) struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    /// Creates an eventfd with a zero counter.
    pub(crate) fn new() -> io::Result<EventFd> {
        // SAFETY: eventfd takes no pointers.
        let fd = unsafe { syscall!(eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK)) }?;
        // SAFETY: `fd` was just returned by eventfd and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(EventFd { fd })
    }

    /// Creates a blocking eventfd with a zero counter, for a thread that
    /// waits on it with [`wait`](Self::wait).
    pub(crate) fn blocking() -> io::Result<EventFd> {
        // SAFETY: eventfd takes no pointers.
        let fd = unsafe { syscall!(eventfd(0, libc::EFD_CLOEXEC)) }?;
        // SAFETY: `fd` was just returned by eventfd and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(EventFd { fd })
    }

    /// On a blocking eventfd: waits until the counter is above zero, then
    /// takes it (resets it to zero) and returns what it was.
    pub(crate) fn wait(&self) -> io::Result<u64> {
        let mut count: u64 = 0;
        loop {
            // SAFETY: the pointer and length describe `count`, which
            // outlives the call.
            let read = unsafe {
                syscall!(read(
                    self.fd.as_raw_fd(),
                    (&mut count as *mut u64).cast(),
                    std::mem::size_of::<u64>(),
                ))
            };
            match read {
                Ok(_) => return Ok(count),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            }
        }
    }

    /// Adds one to the counter, completing any read in flight on it.
    ///
    /// A full counter (`EAGAIN`) already guarantees a pending wake-up, so it
    /// is not an error. Async-signal-safe: one `write(2)` (a signal
    /// handler calls it); a failure is checked only in debug builds.
    pub(crate) fn notify(&self) {
        let one: u64 = 1;
        // SAFETY: the pointer and length describe `one`, which outlives the call.
        let written = unsafe {
            syscall!(write(
                self.fd.as_raw_fd(),
                (&one as *const u64).cast(),
                std::mem::size_of::<u64>(),
            ))
        };
        debug_assert!(
            matches!(&written, Ok(8))
                || matches!(&written, Err(error) if error.raw_os_error() == Some(libc::EAGAIN)),
            "eventfd write failed: {written:?}"
        );
    }
}

impl AsRawFd for EventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
