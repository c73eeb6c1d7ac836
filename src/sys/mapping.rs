//! One `mmap` of memory the kernel shares with us: the ring's queues (a
//! mapping of the ring descriptor) and a provided-buffer ring (anonymous
//! memory whose address is registered with the ring). Both are unmapped on
//! drop, and only there.

use std::io;
use std::os::fd::RawFd;
use std::ptr::NonNull;

/// One mapping, unmapped on drop.
///
/// The kernel may read and write the memory as long as the ring uses it;
/// its owner keeps the `Mapping` alive that long, or leaks it.
pub(crate) struct Mapping {
    base: NonNull<u8>,
    len: usize,
}

impl Mapping {
    /// Maps `len` bytes of the ring `ring_fd` at `offset` (one of the
    /// `IORING_OFF_*` regions), shared with the kernel and populated.
    pub(crate) fn ring(ring_fd: RawFd, offset: libc::off_t, len: usize) -> io::Result<Mapping> {
        let flags = libc::MAP_SHARED | libc::MAP_POPULATE;
        Mapping::new(len, flags, ring_fd, offset)
    }

    /// Maps `len` bytes of fresh zeroed memory, populated. The address is
    /// page-aligned, as a provided-buffer ring must be.
    pub(crate) fn anonymous(len: usize) -> io::Result<Mapping> {
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE;
        Mapping::new(len, flags, -1, 0)
    }

    fn new(len: usize, flags: libc::c_int, fd: RawFd, offset: libc::off_t) -> io::Result<Mapping> {
        let protection = libc::PROT_READ | libc::PROT_WRITE;
        // SAFETY: a fresh mapping at an address the kernel picks, so nothing
        // else is placed there; no pointer is passed in.
        let base = unsafe {
            syscall!(mmap(
                std::ptr::null_mut(),
                len,
                protection,
                flags,
                fd,
                offset
            ))
        }?;
        Ok(Mapping {
            base: NonNull::new(base.cast()).expect("mmap does not return null on success"),
            len,
        })
    }

    /// The first byte.
    pub(crate) fn base(&self) -> NonNull<u8> {
        self.base
    }

    /// The address `offset` bytes in, as a `T`.
    pub(crate) fn at<T>(&self, offset: u32) -> *mut T {
        debug_assert!((offset as usize) < self.len);
        // SAFETY: the offsets come from the kernel and lie inside the mapping.
        unsafe { self.base.as_ptr().add(offset as usize).cast() }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by `Mapping::new` and nothing refers
        // to it any more: its owner is being dropped, and the kernel is done
        // with it (the owner's contract).
        let unmapped = unsafe { syscall!(munmap(self.base.as_ptr().cast(), self.len)) };
        debug_assert!(unmapped.is_ok(), "munmap: {unmapped:?}");
    }
}
