//! The buffer contract: [`IoBuf`] (memory the kernel may read) and
//! [`IoBufMut`] (memory the kernel may write), with their implementations for
//! std and `bytes` types.
//!
//! Both traits are `unsafe` because operations hand the kernel a raw pointer
//! and a length taken from them and trust those numbers without checking: a
//! wrong length or a pointer that moves with the value would let the kernel
//! touch memory that is not the buffer's. The traits are one of the crate's
//! few chokepoints of unsafety; an operation needs no `unsafe` of its own to
//! describe its buffer, only to push the SQE that carries it.

use super::slice::{self, Slice};
use std::ops::RangeBounds;

/// A buffer the kernel may read from: the data of a write or a send.
///
/// An operation takes its buffer by value, keeps it while the kernel may read
/// it and hands it back with the result (see the [module docs](super)). The
/// value moves several times meanwhile (into the future, into the driver's
/// slot), so the memory it describes must not move with it: heap memory or
/// `'static` data qualifies, an inline array does not.
///
/// # Safety
///
/// An implementation must guarantee, for as long as the value exists and no
/// method other than this trait's (and [`IoBufMut`]'s) is called on it:
///
/// - [`stable_ptr`](IoBuf::stable_ptr) returns the same address every time,
///   even after the value is moved;
/// - the memory from that address is valid for reads of
///   [`bytes_init`](IoBuf::bytes_init) bytes, which are initialized, and
///   belongs to the buffer for [`bytes_total`](IoBuf::bytes_total) bytes;
/// - `bytes_init() <= bytes_total()`.
///
/// # Examples
///
/// ```
/// use corering::buf::IoBuf;
///
/// let mut buf = Vec::with_capacity(16);
/// buf.extend_from_slice(b"hello");
/// assert_eq!(buf.bytes_init(), 5); // a write sends these
/// assert_eq!(buf.bytes_total(), 16); // a read may fill up to these
/// assert_eq!(buf.stable_ptr(), buf.as_ptr());
/// ```
pub unsafe trait IoBuf: Unpin + 'static {
    /// Returns the address of the first byte of the buffer.
    ///
    /// The address stays the same when the value is moved. For an empty
    /// buffer it may be dangling; it is then never read through.
    fn stable_ptr(&self) -> *const u8;

    /// Returns how many bytes from the start are initialized: the bytes a
    /// write sends.
    ///
    /// For a `Vec<u8>` this is its length.
    fn bytes_init(&self) -> usize;

    /// Returns how many bytes the buffer holds in all, initialized or not: the
    /// most a read may fill.
    ///
    /// For a `Vec<u8>` this is its capacity.
    fn bytes_total(&self) -> usize;

    /// Returns a view of `range` of this buffer, taking ownership of it.
    ///
    /// The range is over the buffer's capacity ([`bytes_total`]), not only
    /// its initialized bytes, so a read can target part of an empty `Vec`
    /// with spare capacity. An unbounded end means `bytes_total()`. The
    /// buffer is returned by [`Slice::into_inner`].
    ///
    /// [`bytes_total`]: IoBuf::bytes_total
    ///
    /// # Panics
    ///
    /// Panics if the range starts after it ends or ends past
    /// `bytes_total()`, with a message naming the offending bound.
    ///
    /// # Examples
    ///
    /// ```
    /// use corering::buf::IoBuf;
    ///
    /// let slice = b"hello world".to_vec().slice(6..);
    /// assert_eq!((slice.begin(), slice.end()), (6, 11));
    /// assert_eq!(&slice[..], b"world");
    ///
    /// // Over capacity: nothing is initialized yet, but a read may fill it.
    /// let slice = Vec::<u8>::with_capacity(8).slice(2..6);
    /// assert_eq!((slice.bytes_init(), slice.bytes_total()), (0, 4));
    /// ```
    fn slice(self, range: impl RangeBounds<usize>) -> Slice<Self>
    where
        Self: Sized,
    {
        let (begin, end) = slice::bounds(&range, self.bytes_total());
        Slice::new(self, begin, end)
    }
}

/// A buffer the kernel may write into: the destination of a read or a
/// receive.
///
/// A read fills the buffer from [`stable_mut_ptr`](IoBufMut::stable_mut_ptr)
/// up to [`bytes_total`](IoBuf::bytes_total) bytes; the operation then calls
/// [`set_init`](IoBufMut::set_init) so the initialized length covers the
/// bytes read. To read into the middle of a buffer, read into a
/// [`Slice`] of it.
///
/// # Safety
///
/// Besides the guarantees of [`IoBuf`], an implementation must guarantee
/// that [`stable_mut_ptr`](IoBufMut::stable_mut_ptr) returns the same address
/// as `stable_ptr`, valid for writes of `bytes_total()` bytes, and that
/// [`set_init`](IoBufMut::set_init) makes `bytes_init()` at least `pos` and
/// never smaller than it was.
///
/// # Examples
///
/// ```
/// use corering::buf::{IoBuf, IoBufMut};
///
/// let mut buf = Vec::<u8>::with_capacity(8);
/// // What a read of 3 bytes does, by hand.
/// // SAFETY: 3 <= capacity, and the 3 bytes are written before set_init.
/// unsafe {
///     buf.stable_mut_ptr().copy_from_nonoverlapping(b"abc".as_ptr(), 3);
///     buf.set_init(3);
/// }
/// assert_eq!(buf, b"abc");
/// ```
pub unsafe trait IoBufMut: IoBuf {
    /// Returns the address of the first byte of the buffer, for writing.
    ///
    /// The same address as [`stable_ptr`](IoBuf::stable_ptr).
    fn stable_mut_ptr(&mut self) -> *mut u8;

    /// Marks the first `pos` bytes initialized; never shrinks the initialized
    /// length.
    ///
    /// A read calls this with the number of bytes the kernel wrote. When
    /// `pos` is at most `bytes_init()` nothing changes.
    ///
    /// # Safety
    ///
    /// The first `pos` bytes from `stable_mut_ptr()` must be initialized, and
    /// `pos` must not exceed `bytes_total()` (the implementations in this
    /// crate assert the latter).
    unsafe fn set_init(&mut self, pos: usize);
}

// SAFETY: a Vec's heap allocation does not move when the Vec value moves;
// `as_ptr` points at it, `len` bytes are initialized and `capacity` bytes
// belong to it, and len <= capacity.
unsafe impl IoBuf for Vec<u8> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }

    fn bytes_init(&self) -> usize {
        self.len()
    }

    fn bytes_total(&self) -> usize {
        self.capacity()
    }
}

// SAFETY: `as_mut_ptr` is the same address as `as_ptr`, valid for writes of
// the whole capacity; `set_init` only ever raises the length.
unsafe impl IoBufMut for Vec<u8> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }

    unsafe fn set_init(&mut self, pos: usize) {
        assert!(
            pos <= self.capacity(),
            "set_init({pos}) past the capacity {} of a Vec",
            self.capacity()
        );
        if pos > self.len() {
            // SAFETY: pos <= capacity (asserted) and the caller guarantees
            // the first pos bytes are initialized.
            unsafe { self.set_len(pos) };
        }
    }
}

// SAFETY: a boxed slice's allocation does not move with the box; all `len`
// bytes are initialized and belong to it.
unsafe impl IoBuf for Box<[u8]> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }

    fn bytes_init(&self) -> usize {
        self.len()
    }

    fn bytes_total(&self) -> usize {
        self.len()
    }
}

// SAFETY: the pointer is the allocation's, valid for writes of `len` bytes;
// a boxed slice is always fully initialized, so `set_init` has nothing to
// raise.
unsafe impl IoBufMut for Box<[u8]> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }

    unsafe fn set_init(&mut self, pos: usize) {
        assert!(
            pos <= self.len(),
            "set_init({pos}) past the length {} of a boxed slice",
            self.len()
        );
    }
}

// SAFETY: `Bytes` points at shared heap or 'static memory that does not move
// with the handle (it has no inline storage); all `len` bytes are
// initialized. It is never written through, so sharing it is fine.
unsafe impl IoBuf for bytes::Bytes {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }

    fn bytes_init(&self) -> usize {
        self.len()
    }

    fn bytes_total(&self) -> usize {
        self.len()
    }
}

// SAFETY: `BytesMut` owns a heap region that does not move with the handle
// (it has no inline storage); `len` bytes are initialized and `capacity`
// bytes belong to it, and len <= capacity.
unsafe impl IoBuf for bytes::BytesMut {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }

    fn bytes_init(&self) -> usize {
        self.len()
    }

    fn bytes_total(&self) -> usize {
        self.capacity()
    }
}

// SAFETY: the pointer is the start of the region, whose `capacity` bytes are
// exclusively this handle's; `set_init` only ever raises the length.
unsafe impl IoBufMut for bytes::BytesMut {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        // `BytesMut` has no public pointer to its whole region, and the one
        // from its `[u8]` view may only reach `len` bytes. With the length
        // at zero, the spare capacity is the whole region, so its pointer
        // may reach every byte a read fills.
        let len = self.len();
        // SAFETY: zero bytes are trivially initialized and 0 <= capacity.
        unsafe { self.set_len(0) };
        let ptr = self.spare_capacity_mut().as_mut_ptr().cast::<u8>();
        // SAFETY: restores the length read above; nothing was written, so
        // those `len` bytes are still initialized.
        unsafe { self.set_len(len) };
        ptr
    }

    unsafe fn set_init(&mut self, pos: usize) {
        assert!(
            pos <= self.capacity(),
            "set_init({pos}) past the capacity {} of a BytesMut",
            self.capacity()
        );
        if pos > self.len() {
            // SAFETY: pos <= capacity (asserted) and the caller guarantees
            // the first pos bytes are initialized.
            unsafe { self.set_len(pos) };
        }
    }
}

// SAFETY: 'static data never moves or goes away; all of it is initialized.
// It is never written through.
unsafe impl IoBuf for &'static [u8] {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }

    fn bytes_init(&self) -> usize {
        self.len()
    }

    fn bytes_total(&self) -> usize {
        self.len()
    }
}

// SAFETY: as for `&'static [u8]`: a str is 'static initialized bytes.
unsafe impl IoBuf for &'static str {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }

    fn bytes_init(&self) -> usize {
        self.len()
    }

    fn bytes_total(&self) -> usize {
        self.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Moving a buffer (as an operation does, into its future and its slot)
    /// must not change the address the kernel was given.
    #[test]
    fn stable_ptr_survives_moves() {
        fn moved<B: IoBuf>(buf: B) -> B {
            let boxed = Box::new(buf);
            *boxed
        }
        let vec = b"abc".to_vec();
        let ptr = vec.stable_ptr();
        assert_eq!(moved(vec).stable_ptr(), ptr);

        let boxed: Box<[u8]> = Box::new(*b"abc");
        let ptr = boxed.stable_ptr();
        assert_eq!(moved(boxed).stable_ptr(), ptr);

        let bytes = bytes::Bytes::from(b"abc".to_vec());
        let ptr = bytes.stable_ptr();
        assert_eq!(moved(bytes).stable_ptr(), ptr);

        let bytes_mut = bytes::BytesMut::from(&b"abc"[..]);
        let ptr = bytes_mut.stable_ptr();
        assert_eq!(moved(bytes_mut).stable_ptr(), ptr);
    }

    #[test]
    fn mut_ptr_equals_ptr() {
        let mut vec = Vec::<u8>::with_capacity(4);
        assert_eq!(vec.stable_mut_ptr().cast_const(), vec.stable_ptr());
        let mut boxed: Box<[u8]> = Box::new([0; 4]);
        assert_eq!(boxed.stable_mut_ptr().cast_const(), boxed.stable_ptr());
        let mut bytes_mut = bytes::BytesMut::with_capacity(4);
        assert_eq!(
            bytes_mut.stable_mut_ptr().cast_const(),
            bytes_mut.stable_ptr()
        );
    }

    #[test]
    #[should_panic(expected = "set_init(5) past the capacity 4 of a Vec")]
    fn vec_set_init_past_capacity_panics() {
        let mut vec = Vec::<u8>::with_capacity(4);
        // SAFETY: the call is rejected by the assertion before any length
        // changes, which is what this test checks.
        unsafe { vec.set_init(5) };
    }

    #[test]
    #[should_panic(expected = "set_init(5) past the capacity 4 of a BytesMut")]
    fn bytes_mut_set_init_past_capacity_panics() {
        let mut bytes_mut = bytes::BytesMut::with_capacity(4);
        // SAFETY: rejected by the assertion before any length changes.
        unsafe { bytes_mut.set_init(5) };
    }

    #[test]
    #[should_panic(expected = "set_init(3) past the length 2 of a boxed slice")]
    fn box_set_init_past_length_panics() {
        let mut boxed: Box<[u8]> = Box::new([0; 2]);
        // SAFETY: rejected by the assertion; a boxed slice has no length to
        // change anyway.
        unsafe { boxed.set_init(3) };
    }
}
