//! `AlignedBuf`: heap memory whose address and size are multiples of an
//! alignment, as `O_DIRECT` I/O needs.

use std::alloc::{self, Layout};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

use super::{IoBuf, IoBufMut};

/// A buffer for direct I/O (`O_DIRECT`): it starts at a multiple of its
/// alignment and its capacity is a multiple of it too. Like a `Vec<u8>`,
/// it has initialized bytes (what a write sends) within its capacity (what
/// a read may fill).
///
/// The alignment a file needs comes from
/// [`Metadata::direct_io_alignment`](crate::fs::Metadata::direct_io_alignment)
/// (the device's logical block size on most file systems);
/// [`File::aligned_buf`](crate::fs::File::aligned_buf) makes one for a file
/// opened with `O_DIRECT`.
///
/// # Examples
///
/// ```
/// use corering::buf::{AlignedBuf, IoBuf};
///
/// let mut buf = AlignedBuf::new(5000, 4096);
/// assert_eq!((buf.capacity(), buf.align()), (8192, 4096));
/// assert_eq!(buf.stable_ptr() as usize % 4096, 0);
/// buf.extend_from_slice(b"block");
/// assert_eq!(&buf[..], b"block");
/// ```
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    len: usize,
    layout: Layout,
}

impl AlignedBuf {
    /// An empty buffer of at least `capacity` bytes (rounded up to a
    /// multiple of `align`, and at least `align`), starting at a multiple
    /// of `align`. The memory is zeroed.
    ///
    /// # Panics
    ///
    /// When `align` is not a power of two, or the size overflows.
    pub fn new(capacity: usize, align: usize) -> AlignedBuf {
        assert!(
            align.is_power_of_two(),
            "alignment {align} is not a power of two"
        );
        let size = capacity
            .max(1)
            .checked_next_multiple_of(align)
            .expect("aligned buffer size overflows");
        let layout = Layout::from_size_align(size, align).expect("aligned buffer layout");
        // SAFETY: the layout's size is at least `align` > 0.
        let ptr = unsafe { alloc::alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(ptr) else {
            alloc::handle_alloc_error(layout);
        };
        AlignedBuf {
            ptr,
            len: 0,
            layout,
        }
    }

    /// The alignment of the start and of the capacity.
    pub fn align(&self) -> usize {
        self.layout.align()
    }

    /// The capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.layout.size()
    }

    /// The initialized bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no byte is initialized.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Marks no byte initialized (the memory is kept).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Appends `data` after the initialized bytes.
    ///
    /// # Panics
    ///
    /// When it does not fit in the capacity.
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        let end = self.len + data.len();
        assert!(
            end <= self.capacity(),
            "{end} bytes exceed the aligned buffer's capacity {}",
            self.capacity()
        );
        // SAFETY: `len..end` is inside the allocation (asserted), which
        // `data` cannot overlap since this buffer is borrowed mutably.
        unsafe {
            self.ptr
                .as_ptr()
                .add(self.len)
                .copy_from_nonoverlapping(data.as_ptr(), data.len());
        }
        self.len = end;
    }

    /// Sets the initialized length to `len`: the memory is always
    /// initialized (zeroed at first), so any length up to the capacity is
    /// valid.
    ///
    /// # Panics
    ///
    /// When `len` exceeds the capacity.
    pub fn set_len(&mut self, len: usize) {
        assert!(
            len <= self.capacity(),
            "length {len} past the aligned buffer's capacity {}",
            self.capacity()
        );
        self.len = len;
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

impl Deref for AlignedBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: the first `len` bytes are inside the allocation and
        // initialized (the whole allocation is).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as for `deref`, and borrowed mutably.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlignedBuf")
            .field("len", &self.len)
            .field("capacity", &self.capacity())
            .field("align", &self.align())
            .finish()
    }
}

// SAFETY: the buffer owns its allocation exclusively, like a `Box<[u8]>`.
unsafe impl Send for AlignedBuf {}

// SAFETY: the heap allocation does not move when the value moves; all
// `capacity` bytes belong to it and are initialized; len <= capacity.
unsafe impl IoBuf for AlignedBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    fn bytes_init(&self) -> usize {
        self.len
    }

    fn bytes_total(&self) -> usize {
        self.capacity()
    }
}

// SAFETY: the same address, valid for writes of the whole capacity;
// `set_init` only ever raises the length, within the capacity.
unsafe impl IoBufMut for AlignedBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    unsafe fn set_init(&mut self, pos: usize) {
        assert!(pos <= self.capacity(), "set_init({pos}) past the capacity");
        self.len = self.len.max(pos);
    }
}
