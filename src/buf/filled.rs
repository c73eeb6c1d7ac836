//! `Filled`: memory of a fixed size, all of it initialized, with a count of
//! the bytes that hold data. What [`AlignedBuf`](super::AlignedBuf) and
//! [`FixedBuf`](super::FixedBuf) are made of; each owns the memory its
//! own way.

use std::ptr::NonNull;

/// `capacity` initialized bytes at `ptr`, the first `len` of them data.
pub(crate) struct Filled {
    ptr: NonNull<u8>,
    capacity: usize,
    len: usize,
}

impl Filled {
    /// # Safety
    ///
    /// `capacity` bytes at `ptr` are initialized and belong to the value
    /// alone, at the same address, for as long as it lives.
    pub(crate) unsafe fn new(ptr: NonNull<u8>, capacity: usize) -> Filled {
        Filled {
            ptr,
            capacity,
            len: 0,
        }
    }

    pub(crate) fn ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Appends `data` after the data; panics, naming `what`, when it does
    /// not fit.
    pub(crate) fn extend_from_slice(&mut self, data: &[u8], what: &str) {
        let end = self.len + data.len();
        assert!(
            end <= self.capacity,
            "{end} bytes exceed the {what}'s capacity {}",
            self.capacity
        );
        // SAFETY: `len..end` is inside the memory (asserted), which `data`
        // cannot overlap since this value is borrowed mutably.
        unsafe {
            self.ptr()
                .add(self.len)
                .copy_from_nonoverlapping(data.as_ptr(), data.len());
        }
        self.len = end;
    }

    /// Any length up to the capacity: every byte is initialized. Panics,
    /// naming `what`, past it.
    pub(crate) fn set_len(&mut self, len: usize, what: &str) {
        assert!(
            len <= self.capacity,
            "length {len} past the {what}'s capacity {}",
            self.capacity
        );
        self.len = len;
    }

    /// Raises the length to `pos` (what a read into the memory does).
    pub(crate) fn raise_len(&mut self, pos: usize, what: &str) {
        assert!(pos <= self.capacity, "set_init({pos}) past the {what}");
        self.len = self.len.max(pos);
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        // SAFETY: the first `len` bytes are inside the memory and
        // initialized (all of it is).
        unsafe { std::slice::from_raw_parts(self.ptr(), self.len) }
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as for `as_slice`, and borrowed mutably.
        unsafe { std::slice::from_raw_parts_mut(self.ptr(), self.len) }
    }
}
