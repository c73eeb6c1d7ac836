//! corering: a thread-per-core async runtime for Linux built on io_uring.
//!
//! Each core runs one thread that owns one io_uring, one task queue and one
//! timer wheel. Nothing is shared between cores except explicit messages.
//!
//! # The model
//!
//! An I/O operation is a future. On its first poll the driver claims a slot
//! in its in-flight table and pushes one submission queue entry (SQE) whose
//! `user_data` names the slot and its generation. The kernel performs the
//! operation and posts a completion (CQE). The driver reaps completions in a
//! batch, marks each slot complete and only then wakes the tasks, which take
//! their result on their next poll.
//!
//! ```text
//! user code ── fd.read_at(buf, 0) ──> Op<Read> (owns buf + fd handle)
//!    first poll:  driver pushes one SQE, user_data = slot id + generation
//!    kernel:      does the read
//!    driver:      reaps CQEs in a batch -> marks the slot complete -> wakes the task
//!    executor:    polls the task -> Op::poll takes the result -> returns (result, buf)
//! ```
//!
//! Buffers are passed by value and handed back with the result
//! ([`BufResult`](buf::BufResult)), so a future dropped while the kernel still
//! writes into its buffer cannot free that memory: the buffer moves into the
//! slot, an `ASYNC_CANCEL` is queued, and the buffer is freed when the final
//! completion arrives.
//!
//! # What is where
//!
//! - The runtime: [`start`], [`Runtime`] and its [`Builder`] (ring size,
//!   SQPOLL, slot and task limits, the shutdown deadline, batch waits, and
//!   [`Builder::run_on_cores`] for one runtime per core), [`stats`].
//! - Tasks: [`spawn`] for `!Send` futures on the current core,
//!   [`JoinHandle`] (a [`JoinError`] on panic or abort), [`yield_now`].
//! - [`time`]: `sleep`, `timeout`, `interval` on the core's timer wheel.
//! - [`net`]: TCP, UDP and Unix sockets; linked send-then-receive turns,
//!   multishot accepts and receives, receives into buffer rings, zero-copy
//!   sends, direct (registered) descriptors.
//! - [`fs`]: files and directories, `O_DIRECT`, registered buffers,
//!   `splice` to sockets.
//! - [`fd`]: any descriptor (pipes, eventfds) with its I/O on the ring.
//! - [`signal`]: process signals any task can await; [`shutdown`]: the
//!   launch's shutdown token and the connection tracking of a graceful
//!   shutdown.
//! - [`buf`]: the owned-buffer traits, buffer rings, registered buffer
//!   pools, aligned buffers.
//! - [`op`]: the operations themselves; [`op::nop`] measures the runtime.
//! - `compat` (features `tokio-io`, `futures-io`, `hyper`): tokio's,
//!   futures-io's and hyper's I/O traits on a socket (`compat::PollIo`),
//!   hyper's executor and timer.
//!
//! # Example
//!
//! ```
//! let value = corering::start(async {
//!     let task = corering::spawn(async { 40 + 2 });
//!     task.await.unwrap()
//! });
//! assert_eq!(value, 42);
//! ```
#![deny(
    unsafe_op_in_unsafe_fn,
    clippy::undocumented_unsafe_blocks,
    missing_docs
)]

pub mod buf;
#[cfg(any(feature = "tokio-io", feature = "futures-io", feature = "hyper"))]
pub mod compat;
mod driver;
mod executor;
pub mod fd;
pub mod fs;
pub mod net;
pub mod op;
mod runtime;
pub mod shutdown;
pub mod signal;
pub mod sync;
mod sys;
pub mod time;

#[cfg(feature = "fault-injection")]
pub use driver::faults::Faults;
pub use driver::Stats;
pub use executor::{yield_now, JoinError, JoinHandle};
pub use runtime::{
    backend, core_stats, cores, current_core, spawn, spawn_blocking, spawn_on, start, stats,
    Backend, Builder, CoreId, CoreStats, RemoteHandle, Runtime, Stall,
};

/// The README's code blocks, compiled and run as doc tests so that they
/// stay true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
