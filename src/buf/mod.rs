//! Owned buffers: what an operation may hand the kernel, and how it gets it
//! back.
//!
//! This module owns the buffer traits [`IoBuf`] and [`IoBufMut`], their
//! implementations for `Vec<u8>`, `Box<[u8]>`, `bytes::Bytes`,
//! `bytes::BytesMut`, `&'static [u8]` and `&'static str`, the [`Slice`] view,
//! and the [`BufResult`] every buffer-carrying operation returns.
//!
//! # Why buffers are passed by value
//!
//! With io_uring the kernel reads or writes a buffer *after* the operation is
//! submitted, until its completion is reaped. A future, though, can be
//! dropped at any `.await` (by a timeout, a `select`, an aborted task), and
//! its drop must not block the core waiting for the kernel. If the operation
//! only borrowed the buffer, the caller could free or reuse that memory while
//! the kernel still writes into it.
//!
//! So every operation takes its buffer by value and hands it back with the
//! outcome as a [`BufResult`]. When the future is dropped early, the buffer
//! moves into the driver's in-flight slot, a cancellation is queued, and the
//! buffer is freed only once the kernel's final completion arrives. The
//! buffer value therefore moves while the kernel holds a pointer into it,
//! which is why the traits ask for memory at a stable address: heap memory or
//! `'static` data, never an inline array.
//!
//! # Initialized bytes and capacity
//!
//! A buffer has [`bytes_init`](IoBuf::bytes_init) initialized bytes (what a
//! write sends) within [`bytes_total`](IoBuf::bytes_total) bytes of capacity
//! (what a read may fill). A read fills the buffer from its start and then
//! raises the initialized length to cover the bytes read
//! ([`IoBufMut::set_init`]). To write part of a buffer, or read into the
//! middle of one, pass a [`Slice`] of it made by [`IoBuf::slice`]; its range
//! is over the capacity.
//!
//! # Examples
//!
//! ```
//! use corering::buf::{BufResult, IoBuf, IoBufMut};
//!
//! // What a read does with the buffer it owns, without the kernel.
//! fn fake_read<B: IoBufMut>(mut buf: B, data: &[u8]) -> BufResult<usize, B> {
//!     let n = data.len().min(buf.bytes_total());
//!     // SAFETY: n <= bytes_total, and the n bytes are written before set_init.
//!     unsafe {
//!         buf.stable_mut_ptr().copy_from_nonoverlapping(data.as_ptr(), n);
//!         buf.set_init(n);
//!     }
//!     (Ok(n), buf)
//! }
//!
//! let (n, buf) = fake_read(Vec::with_capacity(8), b"hello");
//! assert_eq!(n.unwrap(), 5);
//! assert_eq!(buf, b"hello");
//!
//! // Append after the data already there by reading into a slice; the read
//! // stops at the buffer's capacity.
//! let (n, slice) = fake_read(buf.slice(5..), b"world");
//! assert_eq!(n.unwrap(), 3);
//! assert_eq!(slice.into_inner(), b"hellowor");
//! ```

mod aligned;
mod filled;
mod fixed;
mod io_buf;
mod ring;
mod slice;

pub use aligned::AlignedBuf;
pub use fixed::{FixedBuf, FixedBufPool};
pub use io_buf::{IoBuf, IoBufMut};
pub(crate) use ring::Inner as RingInner;
pub use ring::{BufRing, RingBuf};
pub use slice::Slice;

/// The result of an operation that owns a buffer: the outcome and the buffer
/// handed back.
///
/// The buffer comes back whether the operation succeeded or failed, so it can
/// be reused either way.
///
/// # Examples
///
/// ```
/// use corering::buf::BufResult;
///
/// let result: BufResult<usize, Vec<u8>> = (Ok(3), b"abc".to_vec());
/// let (n, buf) = result;
/// assert_eq!(n.unwrap(), buf.len());
/// ```
pub type BufResult<T, B> = (std::io::Result<T>, B);
