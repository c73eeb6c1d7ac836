//! [`Slice`]: an owned view of a range of a buffer's capacity.
//!
//! Operations always start at a buffer's first byte, so a slice is how a
//! caller writes part of a buffer or reads into the middle of one, without
//! giving up ownership: the slice owns the buffer and forwards the buffer
//! traits with its offsets applied. This file owns the range arithmetic and
//! the one subtle step, growing the parent's initialized length when a read
//! into the slice completes.

use super::io_buf::{IoBuf, IoBufMut};
use std::ops::{Bound, Deref, DerefMut, RangeBounds};

/// An owned view of the bytes `begin..end` of a buffer's capacity.
///
/// Made by [`IoBuf::slice`]. A `Slice` is itself an [`IoBuf`] (and an
/// [`IoBufMut`] when the buffer is): its pointer is the buffer's plus
/// `begin`, its capacity is `end - begin`, and its initialized bytes are
/// those of the buffer that fall inside the range. It dereferences to those
/// initialized bytes.
///
/// # Examples
///
/// Read into the spare capacity after the data already in a buffer:
///
/// ```
/// use corering::buf::{IoBuf, IoBufMut};
///
/// let mut buf = Vec::with_capacity(8);
/// buf.extend_from_slice(b"ab");
/// let mut tail = buf.slice(2..);
/// assert_eq!((tail.bytes_init(), tail.bytes_total()), (0, 6));
///
/// // What a read of 2 bytes does, by hand.
/// // SAFETY: 2 <= tail.bytes_total(), and the bytes are written first.
/// unsafe {
///     tail.stable_mut_ptr().copy_from_nonoverlapping(b"cd".as_ptr(), 2);
///     tail.set_init(2);
/// }
/// assert_eq!(&tail[..], b"cd");
/// assert_eq!(tail.into_inner(), b"abcd");
/// ```
#[derive(Debug)]
pub struct Slice<T> {
    /// The buffer, owned so that the slice can be handed to an operation.
    buf: T,
    /// Offset of the view's first byte in `buf`; `begin <= end`.
    begin: usize,
    /// Offset one past the view's last byte; `end <= buf.bytes_total()`.
    end: usize,
}

impl<T> Slice<T> {
    /// Wraps `buf`; the caller has checked the bounds (see [`bounds`]).
    pub(crate) fn new(buf: T, begin: usize, end: usize) -> Self {
        debug_assert!(begin <= end, "slice begins at {begin} after its end {end}");
        Self { buf, begin, end }
    }

    /// Returns the offset of the slice's first byte in the buffer.
    ///
    /// # Examples
    ///
    /// ```
    /// use corering::buf::IoBuf;
    ///
    /// assert_eq!(vec![0u8; 8].slice(3..5).begin(), 3);
    /// ```
    pub fn begin(&self) -> usize {
        self.begin
    }

    /// Returns the offset one past the slice's last byte in the buffer.
    ///
    /// # Examples
    ///
    /// ```
    /// use corering::buf::IoBuf;
    ///
    /// assert_eq!(vec![0u8; 8].slice(3..5).end(), 5);
    /// assert_eq!(vec![0u8; 8].slice(3..).end(), 8);
    /// ```
    pub fn end(&self) -> usize {
        self.end
    }

    /// Returns a reference to the whole underlying buffer.
    pub fn get_ref(&self) -> &T {
        &self.buf
    }

    /// Returns a mutable reference to the whole underlying buffer.
    ///
    /// The slice keeps its bounds; shrinking the buffer's capacity through
    /// this reference below [`end`](Slice::end) makes the slice's
    /// [`IoBuf`] methods panic rather than describe memory the buffer no
    /// longer has.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.buf
    }

    /// Returns the underlying buffer, ending the view.
    ///
    /// # Examples
    ///
    /// ```
    /// use corering::buf::IoBuf;
    ///
    /// let buf = b"hello".to_vec().slice(1..3).into_inner();
    /// assert_eq!(buf, b"hello");
    /// ```
    pub fn into_inner(self) -> T {
        self.buf
    }
}

impl<T: IoBuf> Slice<T> {
    /// Checks that the range still lies inside the buffer. It can only stop
    /// doing so if the buffer was shrunk through [`Slice::get_mut`].
    fn assert_in_bounds(&self) {
        let total = self.buf.bytes_total();
        assert!(
            self.end <= total,
            "slice end {} out of range for buffer of capacity {total}",
            self.end
        );
    }
}

// SAFETY: the slice owns `buf`, so its address is as stable as the buffer's.
// `begin <= end <= buf.bytes_total()` (checked at creation, re-asserted
// before use), so `ptr + begin` stays inside the buffer, the range's
// `end - begin` bytes belong to it, and the initialized bytes counted here
// are the buffer's initialized bytes inside the range, at most `end - begin`.
unsafe impl<T: IoBuf> IoBuf for Slice<T> {
    fn stable_ptr(&self) -> *const u8 {
        self.assert_in_bounds();
        // `begin` is within the buffer (or one past its end), so the offset
        // pointer keeps the buffer's provenance and stays in its allocation.
        self.buf.stable_ptr().wrapping_add(self.begin)
    }

    fn bytes_init(&self) -> usize {
        let len = self.end - self.begin;
        self.buf.bytes_init().saturating_sub(self.begin).min(len)
    }

    fn bytes_total(&self) -> usize {
        self.end - self.begin
    }
}

// SAFETY: the pointer is the buffer's writable pointer plus `begin`, valid
// for writes of `end - begin` bytes as for `stable_ptr`. `set_init` forwards
// a larger-or-equal position to the buffer, whose own `set_init` never
// shrinks; it first makes every byte below `begin` initialized so that the
// buffer's contract holds.
unsafe impl<T: IoBufMut> IoBufMut for Slice<T> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.assert_in_bounds();
        self.buf.stable_mut_ptr().wrapping_add(self.begin)
    }

    /// Marks the first `pos` bytes of the slice initialized, and so the
    /// buffer's first `begin + pos` bytes.
    ///
    /// If the buffer's initialized bytes ended before `begin`, the gap
    /// between them and the slice is filled with zeros first: the buffer's
    /// initialized length can only cover a contiguous prefix, and leaving the
    /// bytes read uncounted would lose them.
    unsafe fn set_init(&mut self, pos: usize) {
        let len = self.end - self.begin;
        assert!(
            pos <= len,
            "set_init({pos}) past the length {len} of a slice"
        );
        if pos == 0 {
            return;
        }
        self.assert_in_bounds();
        let init = self.buf.bytes_init();
        if init < self.begin {
            let gap = self.buf.stable_mut_ptr().wrapping_add(init);
            // SAFETY: `init..begin` lies inside the buffer (begin <= end <=
            // bytes_total, asserted above) and the pointer is valid for
            // writes there by the `IoBufMut` contract. The range is disjoint
            // from `begin..begin + pos`, which the caller filled.
            unsafe { gap.write_bytes(0, self.begin - init) };
        }
        // SAFETY: bytes below `init` were initialized, `init..begin` were
        // just zeroed, `begin..begin + pos` are initialized by our caller;
        // begin + pos <= end <= bytes_total.
        unsafe { self.buf.set_init(self.begin + pos) };
    }
}

impl<T: IoBuf> Deref for Slice<T> {
    type Target = [u8];

    /// Returns the slice's initialized bytes.
    fn deref(&self) -> &[u8] {
        let ptr = self.stable_ptr();
        // SAFETY: by the `IoBuf` contract of `Slice` (above), `ptr` is valid
        // for reads of `bytes_init()` initialized bytes, and they are not
        // written while the shared borrow of `self` lasts.
        unsafe { std::slice::from_raw_parts(ptr, self.bytes_init()) }
    }
}

impl<T: IoBufMut> DerefMut for Slice<T> {
    /// Returns the slice's initialized bytes, for writing.
    fn deref_mut(&mut self) -> &mut [u8] {
        let len = self.bytes_init();
        let ptr = self.stable_mut_ptr();
        // SAFETY: `ptr` is valid for writes of the slice's capacity and its
        // first `len` bytes are initialized; the exclusive borrow of `self`
        // keeps every other access out while the reference lives.
        unsafe { std::slice::from_raw_parts_mut(ptr, len) }
    }
}

/// Resolves `range` against a buffer of `total` bytes into `(begin, end)`.
///
/// # Panics
///
/// Panics if the range starts after it ends, ends past `total`, or names a
/// bound that overflows `usize`.
pub(crate) fn bounds(range: &impl RangeBounds<usize>, total: usize) -> (usize, usize) {
    let begin = match range.start_bound() {
        Bound::Included(&n) => n,
        Bound::Excluded(&n) => n.checked_add(1).expect("slice range start overflows usize"),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&n) => n.checked_add(1).expect("slice range end overflows usize"),
        Bound::Excluded(&n) => n,
        Bound::Unbounded => total,
    };
    assert!(
        begin <= end,
        "slice range starts at {begin} but ends at {end}"
    );
    assert!(
        end <= total,
        "slice range end {end} out of range for buffer of capacity {total}"
    );
    (begin, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_resolves_every_range_form() {
        assert_eq!(bounds(&(..), 10), (0, 10));
        assert_eq!(bounds(&(2..), 10), (2, 10));
        assert_eq!(bounds(&(..4), 10), (0, 4));
        assert_eq!(bounds(&(..=4), 10), (0, 5));
        assert_eq!(bounds(&(2..4), 10), (2, 4));
        assert_eq!(bounds(&(2..=4), 10), (2, 5));
        assert_eq!(bounds(&(10..), 10), (10, 10));
        assert_eq!(bounds(&(0..0), 0), (0, 0));
        let excluded_start = (Bound::Excluded(2), Bound::Excluded(4));
        assert_eq!(bounds(&excluded_start, 10), (3, 4));
    }

    #[test]
    #[should_panic(expected = "slice range start overflows usize")]
    fn bounds_start_overflow_panics() {
        bounds(&(Bound::Excluded(usize::MAX), Bound::Unbounded), 10);
    }

    #[test]
    #[should_panic(expected = "slice range end overflows usize")]
    fn bounds_end_overflow_panics() {
        bounds(&(..=usize::MAX), 10);
    }

    #[test]
    #[should_panic(expected = "slice range starts at 5 but ends at 3")]
    #[allow(clippy::reversed_empty_ranges)]
    fn bounds_reversed_panics() {
        bounds(&(5..3), 10);
    }

    #[test]
    #[should_panic(expected = "slice end 8 out of range for buffer of capacity 4")]
    fn shrunk_buffer_is_caught_before_use() {
        let mut slice = Slice::new(vec![0u8; 8], 2, 8);
        slice.get_mut().truncate(4);
        slice.get_mut().shrink_to_fit();
        let _ = slice.stable_ptr();
    }

    /// The gap between a buffer's initialized bytes and a slice read past
    /// them is zeroed, so the buffer's initialized prefix stays contiguous.
    #[test]
    fn set_init_past_gap_zeroes_the_gap() {
        let mut buf = Vec::with_capacity(8);
        buf.push(7u8);
        let mut slice = Slice::new(buf, 4, 8);
        // SAFETY: 2 <= 4 = slice capacity; both bytes are written first.
        unsafe {
            slice.stable_mut_ptr().write_bytes(9, 2);
            slice.set_init(2);
        }
        assert_eq!(slice.into_inner(), [7, 0, 0, 0, 9, 9]);
    }

    /// `set_init(0)` must leave the buffer untouched, not zero-extend it up
    /// to the slice.
    #[test]
    fn set_init_zero_leaves_gap_alone() {
        let mut slice = Slice::new(Vec::<u8>::with_capacity(8), 4, 8);
        // SAFETY: zero bytes are claimed.
        unsafe { slice.set_init(0) };
        assert_eq!(slice.into_inner().len(), 0);
    }
}
