//! The ecosystem's I/O and runtime traits on corering.
//!
//! - [`PollIo`] puts a [`TcpStream`](crate::net::TcpStream) or
//!   [`UnixStream`](crate::net::UnixStream) behind the readiness traits:
//!   tokio's `AsyncRead`/`AsyncWrite` (feature `tokio-io`), `futures-io`'s
//!   (feature `futures-io`) and hyper 1.x's `rt::Read`/`rt::Write`
//!   (feature `hyper`), with exact semantics: a write that returns
//!   `Ready(Ok(n))` handed exactly `n` bytes to the kernel, and `Pending`
//!   means none (no hidden buffer), so tokio-util codecs, tokio-rustls and
//!   h2 run on it unchanged.
//! - [`HyperExecutor`] and [`HyperTimer`] (feature `hyper`) are hyper's
//!   `rt::Executor` and `rt::Timer`: spawn on the current core, sleep on
//!   its timer wheel.
//!
//! Readiness comes from the ring: a non-blocking system call first, and
//! only when it would block an `IORING_OP_POLL_ADD` for that direction
//! (`poll_io.rs`). None of these features is on by default.

#[cfg(feature = "futures-io")]
mod futures_io;
#[cfg(feature = "hyper")]
mod hyper_io;
#[cfg(feature = "hyper")]
mod hyper_rt;
mod poll_io;
#[cfg(feature = "tokio-io")]
mod tokio_io;

#[cfg(feature = "hyper")]
pub use hyper_rt::{HyperExecutor, HyperTimer};
pub use poll_io::{PollIo, PollSource};
