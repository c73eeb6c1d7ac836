//! `AlignedBuf`: heap memory whose address and size are multiples of an
//! alignment, as `O_DIRECT` I/O needs.

use std::alloc::{self, Layout};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

use super::filled::Filled;
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
    memory: Filled,
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
            // SAFETY: `size` zeroed bytes, owned by this buffer until its
            // drop frees them.
            memory: unsafe { Filled::new(ptr, size) },
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
        self.memory.len()
    }

    /// Whether no byte is initialized.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Marks no byte initialized (the memory is kept).
    pub fn clear(&mut self) {
        self.memory.set_len(0, WHAT);
    }

    /// Appends `data` after the initialized bytes.
    ///
    /// # Panics
    ///
    /// When it does not fit in the capacity.
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        self.memory.extend_from_slice(data, WHAT);
    }

    /// Sets the initialized length to `len`: the memory is always
    /// initialized (zeroed at first), so any length up to the capacity is
    /// valid.
    ///
    /// # Panics
    ///
    /// When `len` exceeds the capacity.
    pub fn set_len(&mut self, len: usize) {
        self.memory.set_len(len, WHAT);
    }
}

/// How panics name this buffer.
const WHAT: &str = "aligned buffer";

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { alloc::dealloc(self.memory.ptr(), self.layout) };
    }
}

impl Deref for AlignedBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.memory.as_slice()
    }
}

impl DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.memory.as_mut_slice()
    }
}

impl fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlignedBuf")
            .field("len", &self.len())
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
        self.memory.ptr()
    }

    fn bytes_init(&self) -> usize {
        self.len()
    }

    fn bytes_total(&self) -> usize {
        self.capacity()
    }
}

// SAFETY: the same address, valid for writes of the whole capacity;
// `set_init` only ever raises the length, within the capacity.
unsafe impl IoBufMut for AlignedBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.memory.ptr()
    }

    unsafe fn set_init(&mut self, pos: usize) {
        self.memory.raise_len(pos, WHAT);
    }
}
