//! One epoll instance: the epoll backend's wait.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// An epoll instance, closed on drop.
pub(crate) struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    /// A new epoll instance (`EPOLL_CLOEXEC`).
    pub(crate) fn new() -> io::Result<Epoll> {
        // SAFETY: a plain flag; the descriptor returned is ours.
        let fd = unsafe { syscall!(epoll_create1(libc::EPOLL_CLOEXEC)) }?;
        // SAFETY: `fd` was just created and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Epoll { fd })
    }

    /// Adds `fd` with `events`; `data` comes back with each of its events.
    pub(crate) fn add(&self, fd: RawFd, events: u32, data: u64) -> io::Result<()> {
        let mut event = libc::epoll_event { events, u64: data };
        // SAFETY: `event` is a live epoll_event the kernel only reads.
        unsafe {
            syscall!(epoll_ctl(
                self.fd.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                fd,
                &mut event
            ))
        }
        .map(drop)
    }

    /// Removes `fd` (before it is closed, so that a descriptor another
    /// file description still shares stops reporting here).
    pub(crate) fn delete(&self, fd: RawFd) -> io::Result<()> {
        // SAFETY: `EPOLL_CTL_DEL` ignores the event (null is allowed since
        // 2.6.9).
        unsafe {
            syscall!(epoll_ctl(
                self.fd.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd,
                std::ptr::null_mut()
            ))
        }
        .map(drop)
    }

    /// Waits for events (at most `timeout`, rounded up to a millisecond;
    /// `None`: until one comes; zero: not at all) and fills `events` with
    /// them, up to its capacity. `EINTR` reads as no event.
    pub(crate) fn wait(
        &self,
        events: &mut Vec<libc::epoll_event>,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        let millis = match timeout {
            None => -1,
            Some(timeout) => {
                let millis = timeout.as_nanos().div_ceil(1_000_000);
                i32::try_from(millis).unwrap_or(i32::MAX)
            }
        };
        events.clear();
        let room = i32::try_from(events.capacity()).unwrap_or(i32::MAX);
        // SAFETY: the kernel writes at most `room` events into the vector's
        // spare capacity, and says how many.
        let count = unsafe {
            syscall!(epoll_wait(
                self.fd.as_raw_fd(),
                events.as_mut_ptr(),
                room,
                millis
            ))
        };
        match count {
            // SAFETY: the kernel initialized the first `count` entries.
            Ok(count) => unsafe { events.set_len(count as usize) },
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
        Ok(())
    }
}
