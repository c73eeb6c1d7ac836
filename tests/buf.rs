//! Tests of the owned-buffer traits and slices: the exact numbers each
//! buffer type reports, slice bounds and offsets, and how a read's
//! `set_init` grows the initialized length without ever shrinking it.

use bytes::{Bytes, BytesMut};
use corering::buf::{BufResult, IoBuf, IoBufMut, Slice};

/// Does to `buf` what a read of `data` does: writes from its start, at most
/// its capacity, then marks the bytes written initialized.
fn fake_read<B: IoBufMut>(mut buf: B, data: &[u8]) -> BufResult<usize, B> {
    let n = data.len().min(buf.bytes_total());
    // SAFETY: n <= bytes_total, so the write stays inside the buffer, and the
    // n bytes are initialized before set_init claims them.
    unsafe {
        buf.stable_mut_ptr()
            .copy_from_nonoverlapping(data.as_ptr(), n);
        buf.set_init(n);
    }
    (Ok(n), buf)
}

/// Returns the bytes a write of `buf` would send.
fn fake_write<B: IoBuf>(buf: &B) -> Vec<u8> {
    // SAFETY: the IoBuf contract makes `bytes_init` bytes from `stable_ptr`
    // readable and initialized.
    unsafe { std::slice::from_raw_parts(buf.stable_ptr(), buf.bytes_init()) }.to_vec()
}

fn numbers<B: IoBuf>(buf: &B) -> (usize, usize) {
    (buf.bytes_init(), buf.bytes_total())
}

// ---- Each implementation's numbers ----

#[test]
fn vec_counts_len_as_init_and_capacity_as_total() {
    let mut vec = Vec::with_capacity(16);
    vec.extend_from_slice(b"hello");
    assert_eq!(numbers(&vec), (5, 16));
    assert_eq!(vec.stable_ptr(), vec.as_ptr());
    assert_eq!(fake_write(&vec), b"hello");
}

#[test]
fn empty_vec_has_nothing() {
    assert_eq!(numbers(&Vec::<u8>::new()), (0, 0));
}

#[test]
fn boxed_slice_is_fully_initialized() {
    let boxed: Box<[u8]> = Box::new(*b"abcd");
    assert_eq!(numbers(&boxed), (4, 4));
    assert_eq!(boxed.stable_ptr(), boxed.as_ptr());
    assert_eq!(fake_write(&boxed), b"abcd");
}

#[test]
fn bytes_is_fully_initialized() {
    let bytes = Bytes::from_static(b"abc");
    assert_eq!(numbers(&bytes), (3, 3));
    assert_eq!(bytes.stable_ptr(), bytes.as_ptr());
    assert_eq!(fake_write(&bytes), b"abc");
}

#[test]
fn bytes_mut_counts_len_as_init_and_capacity_as_total() {
    let mut bytes_mut = BytesMut::with_capacity(16);
    bytes_mut.extend_from_slice(b"hey");
    assert_eq!(numbers(&bytes_mut), (3, 16));
    assert_eq!(bytes_mut.stable_ptr(), bytes_mut.as_ptr());
    assert_eq!(fake_write(&bytes_mut), b"hey");
}

#[test]
fn static_bytes_and_str_are_fully_initialized() {
    let static_bytes: &'static [u8] = b"static";
    assert_eq!(numbers(&static_bytes), (6, 6));
    assert_eq!(static_bytes.stable_ptr(), static_bytes.as_ptr());
    assert_eq!(fake_write(&static_bytes), b"static");

    let static_str: &'static str = "str";
    assert_eq!(numbers(&static_str), (3, 3));
    assert_eq!(static_str.stable_ptr(), static_str.as_ptr());
    assert_eq!(fake_write(&static_str), b"str");
}

// ---- Reads: set_init grows the initialized length, never shrinks it ----

#[test]
fn vec_read_fills_from_start_up_to_capacity() {
    let (n, vec) = fake_read(Vec::with_capacity(4), b"abcdef");
    assert_eq!(n.unwrap(), 4);
    assert_eq!(vec, b"abcd");
    assert_eq!(numbers(&vec), (4, 4));
}

#[test]
fn vec_set_init_never_shrinks() {
    let mut vec = Vec::with_capacity(8);
    vec.extend_from_slice(b"abcdef");
    let (n, vec) = fake_read(vec, b"XY");
    assert_eq!(n.unwrap(), 2);
    // The read overwrote the first two bytes; the length stays 6.
    assert_eq!(vec, b"XYcdef");

    let mut vec = vec;
    // SAFETY: the first 3 bytes are initialized and 3 <= capacity.
    unsafe { vec.set_init(3) };
    assert_eq!(vec.len(), 6);
    // SAFETY: as above; 6 is the length already.
    unsafe { vec.set_init(6) };
    assert_eq!(vec.len(), 6);
}

#[test]
fn boxed_slice_set_init_changes_nothing() {
    let (n, boxed) = fake_read(Box::<[u8]>::from(vec![0; 4]), b"ab");
    assert_eq!(n.unwrap(), 2);
    assert_eq!(&boxed[..], b"ab\0\0");
    assert_eq!(numbers(&boxed), (4, 4));
}

#[test]
fn bytes_mut_read_grows_len() {
    let mut bytes_mut = BytesMut::with_capacity(8);
    bytes_mut.extend_from_slice(b"a");
    let (n, bytes_mut) = fake_read(bytes_mut, b"XYZ");
    assert_eq!(n.unwrap(), 3);
    assert_eq!(&bytes_mut[..], b"XYZ");
    assert_eq!(numbers(&bytes_mut), (3, 8));

    let (n, bytes_mut) = fake_read(bytes_mut, b"Q");
    assert_eq!(n.unwrap(), 1);
    assert_eq!(&bytes_mut[..], b"QYZ", "a shorter read must not shrink");
}

#[test]
fn read_into_empty_buffer_reads_nothing() {
    let (n, vec) = fake_read(Vec::new(), b"abc");
    assert_eq!(n.unwrap(), 0);
    assert!(vec.is_empty());
}

// ---- Slice bounds and offsets ----

#[test]
fn slice_bounds_are_over_capacity() {
    let vec = Vec::<u8>::with_capacity(10);
    let slice = vec.slice(2..7);
    assert_eq!((slice.begin(), slice.end()), (2, 7));
    assert_eq!(numbers(&slice), (0, 5));
    assert!(slice.is_empty());
}

#[test]
fn slice_range_forms() {
    let buf = || b"0123456789".to_vec();
    let ends = |slice: Slice<Vec<u8>>| (slice.begin(), slice.end());
    assert_eq!(ends(buf().slice(..)), (0, 10));
    assert_eq!(ends(buf().slice(3..)), (3, 10));
    assert_eq!(ends(buf().slice(..4)), (0, 4));
    assert_eq!(ends(buf().slice(..=4)), (0, 5));
    assert_eq!(ends(buf().slice(3..=4)), (3, 5));
    assert_eq!(ends(buf().slice(10..)), (10, 10));
}

#[test]
fn unbounded_end_is_capacity_not_len() {
    let mut vec = Vec::with_capacity(8);
    vec.extend_from_slice(b"ab");
    let slice = vec.slice(1..);
    assert_eq!((slice.begin(), slice.end()), (1, 8));
    assert_eq!(numbers(&slice), (1, 7));
    assert_eq!(&slice[..], b"b");
}

#[test]
fn slice_pointer_is_offset_by_begin() {
    let vec = b"0123456789".to_vec();
    let base = vec.as_ptr();
    let slice = vec.slice(3..8);
    assert_eq!(slice.stable_ptr(), base.wrapping_add(3));
    assert_eq!(fake_write(&slice), b"34567");

    let mut slice = slice;
    assert_eq!(slice.stable_mut_ptr().cast_const(), base.wrapping_add(3));
}

#[test]
fn bytes_init_is_clamped_to_the_range() {
    let mut vec = Vec::with_capacity(10);
    vec.extend_from_slice(b"abcdef");
    // Initialized part covers the whole range.
    let slice = vec.slice(1..4);
    assert_eq!(numbers(&slice), (3, 3));
    assert_eq!(&slice[..], b"bcd");
    // Range straddles the end of the initialized part.
    let slice = slice.into_inner().slice(4..9);
    assert_eq!(numbers(&slice), (2, 5));
    assert_eq!(&slice[..], b"ef");
    // Range starts at the end of the initialized part.
    let slice = slice.into_inner().slice(6..10);
    assert_eq!(numbers(&slice), (0, 4));
    // Range starts past it.
    let slice = slice.into_inner().slice(8..10);
    assert_eq!(numbers(&slice), (0, 2));
    assert_eq!(&slice[..], b"");
}

#[test]
fn slice_of_slice_composes_offsets() {
    let vec = b"0123456789".to_vec();
    let base = vec.as_ptr();
    let inner = vec.slice(2..9).slice(1..4);
    assert_eq!((inner.begin(), inner.end()), (1, 4));
    assert_eq!(inner.stable_ptr(), base.wrapping_add(3));
    assert_eq!(&inner[..], b"345");
    assert_eq!(inner.into_inner().into_inner(), b"0123456789");
}

#[test]
fn slice_accessors_reach_the_buffer() {
    let mut slice = b"abc".to_vec().slice(1..2);
    assert_eq!(slice.get_ref(), b"abc");
    slice.get_mut()[0] = b'X';
    assert_eq!(slice.into_inner(), b"Xbc");
}

#[test]
fn slice_deref_mut_writes_through() {
    let mut slice = b"abcd".to_vec().slice(1..3);
    slice.copy_from_slice(b"XY");
    assert_eq!(slice.into_inner(), b"aXYd");
}

// ---- Out-of-range slices panic ----

#[test]
#[should_panic(expected = "slice range end 11 out of range for buffer of capacity 10")]
fn slice_end_past_capacity_panics() {
    let _ = Vec::<u8>::with_capacity(10).slice(..11);
}

#[test]
#[should_panic(expected = "slice range end 5 out of range for buffer of capacity 4")]
fn slice_inclusive_end_past_capacity_panics() {
    let _ = Box::<[u8]>::from(vec![0; 4]).slice(..=4);
}

#[test]
#[should_panic(expected = "slice range starts at 11 but ends at 10")]
fn slice_start_past_capacity_panics() {
    let _ = Vec::<u8>::with_capacity(10).slice(11..);
}

#[test]
#[should_panic(expected = "slice range starts at 3 but ends at 2")]
#[allow(clippy::reversed_empty_ranges)]
fn slice_reversed_range_panics() {
    let _ = b"abcd".to_vec().slice(3..2);
}

#[test]
#[should_panic(expected = "slice range end 4 out of range for buffer of capacity 3")]
fn slice_of_slice_past_its_range_panics() {
    let _ = b"0123456789".to_vec().slice(2..5).slice(..4);
}

// ---- Reads into slices ----

#[test]
fn read_into_slice_of_spare_capacity_appends() {
    let mut vec = Vec::with_capacity(8);
    vec.extend_from_slice(b"ab");
    let (n, slice) = fake_read(vec.slice(2..), b"cdefghijk");
    assert_eq!(n.unwrap(), 6);
    assert_eq!(&slice[..], b"cdefgh");
    assert_eq!(numbers(&slice), (6, 6));
    assert_eq!(slice.into_inner(), b"abcdefgh");
}

#[test]
fn read_into_slice_inside_initialized_part_keeps_len() {
    let (n, slice) = fake_read(b"abcdef".to_vec().slice(1..3), b"XYZ");
    assert_eq!(n.unwrap(), 2);
    assert_eq!(&slice[..], b"XY");
    assert_eq!(slice.into_inner(), b"aXYdef");
}

#[test]
fn read_into_slice_past_initialized_part_zero_fills_the_gap() {
    let mut vec = Vec::with_capacity(8);
    vec.push(b'a');
    let (n, slice) = fake_read(vec.slice(4..8), b"XY");
    assert_eq!(n.unwrap(), 2);
    assert_eq!(numbers(&slice), (2, 4));
    assert_eq!(&slice[..], b"XY");
    assert_eq!(slice.into_inner(), b"a\0\0\0XY");
}

#[test]
fn slice_set_init_never_shrinks_the_buffer() {
    let slice = b"abcdef".to_vec().slice(0..4);
    let (n, mut slice) = fake_read(slice, b"X");
    assert_eq!(n.unwrap(), 1);
    assert_eq!(numbers(&slice), (4, 4));
    // SAFETY: zero bytes claimed.
    unsafe { slice.set_init(0) };
    assert_eq!(slice.into_inner(), b"Xbcdef");
}

#[test]
fn read_into_bytes_mut_slice() {
    let mut bytes_mut = BytesMut::with_capacity(6);
    bytes_mut.extend_from_slice(b"ab");
    let (n, slice) = fake_read(bytes_mut.slice(2..), b"cd");
    assert_eq!(n.unwrap(), 2);
    let bytes_mut = slice.into_inner();
    assert_eq!(&bytes_mut[..], b"abcd");
    assert_eq!(numbers(&bytes_mut), (4, 6));
}

#[test]
fn read_into_boxed_slice_slice() {
    let boxed = Box::<[u8]>::from(vec![b'.'; 6]);
    let (n, slice) = fake_read(boxed.slice(2..4), b"XYZ");
    assert_eq!(n.unwrap(), 2);
    assert_eq!(&slice.into_inner()[..], b"..XY..");
}

#[test]
#[should_panic(expected = "set_init(3) past the length 2 of a slice")]
fn slice_set_init_past_its_length_panics() {
    let mut slice = Vec::<u8>::with_capacity(8).slice(0..2);
    // SAFETY: rejected by the assertion before anything changes.
    unsafe { slice.set_init(3) };
}

// ---- Slices of read-only buffers ----

#[test]
fn slices_of_read_only_buffers() {
    // `Bytes` has an inherent `slice` (returning `Bytes`) that shadows the
    // trait method, so name the trait.
    let bytes = Bytes::from_static(b"hello world");
    let base = bytes.as_ptr();
    let slice: Slice<Bytes> = IoBuf::slice(bytes, 6..);
    assert_eq!(numbers(&slice), (5, 5));
    assert_eq!(slice.stable_ptr(), base.wrapping_add(6));
    assert_eq!(&slice[..], b"world");

    let static_str: &'static str = "hello";
    let slice = static_str.slice(1..=2);
    assert_eq!(slice.stable_ptr(), static_str.as_ptr().wrapping_add(1));
    assert_eq!(&slice[..], b"el");

    let static_bytes: &'static [u8] = b"xyz";
    assert_eq!(&static_bytes.slice(..1)[..], b"x");
}

#[test]
fn buf_result_hands_back_the_buffer_on_error() {
    fn failing<B: IoBuf>(buf: B) -> BufResult<usize, B> {
        (Err(std::io::ErrorKind::BrokenPipe.into()), buf)
    }
    let (result, buf) = failing(b"keep".to_vec());
    assert_eq!(result.unwrap_err().kind(), std::io::ErrorKind::BrokenPipe);
    assert_eq!(buf, b"keep");
}

/// Pools dropped outside `block_on`, while their runtime lives, still
/// unregister from its ring: their entries of the registered table are free
/// for the next pool, and buffer group ids are reused, so creating and
/// dropping pools never exhausts either.
#[test]
fn pools_dropped_outside_block_on_give_their_registration_back() {
    use corering::buf::{BufRing, FixedBufPool};
    let runtime = corering::Runtime::new().unwrap();
    // The ring's table holds 1,024 fixed buffers: two pools of 512 at most
    // at once.
    for round in 0..4 {
        let pool = runtime.block_on(async { FixedBufPool::new(512, 4096) });
        let pool = pool.unwrap_or_else(|error| panic!("pool {round}: {error}"));
        drop(pool);
    }
    // 65,536 group ids exist per ring; each ring dropped gives its own back.
    for round in 0..70_000 {
        let ring = runtime.block_on(async { BufRing::new(1, 16) });
        let ring = ring.unwrap_or_else(|error| panic!("ring {round}: {error}"));
        drop(ring);
    }
    // Dropped inside another runtime of the thread, too.
    let other = corering::Runtime::new().unwrap();
    let pools: Vec<_> = (0..2)
        .map(|_| runtime.block_on(async { FixedBufPool::new(512, 4096).unwrap() }))
        .collect();
    other.block_on(async move { drop(pools) });
    let pool = runtime.block_on(async { FixedBufPool::new(1024, 4096) });
    assert_eq!(pool.unwrap().available(), 1024);
}
