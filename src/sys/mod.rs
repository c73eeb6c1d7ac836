//! The operating-system boundary: every raw syscall and FFI call of the crate
//! lives under this module.
//!
//! # Contract
//!
//! - [`ring`] creates an io_uring with the best flags the running kernel
//!   accepts and turns setup failures into errors that name the cause and the
//!   fix.
//! - [`eventfd`] is the doorbell another thread rings to wake a parked core.
//! - [`memory`] says how much memory the machine has.
//! - [`queues`] reads and writes the ring's SQ and CQ directly.
//! - [`socket`] creates, binds and configures sockets and converts socket
//!   addresses.
//! - Everything here is synchronous and non-blocking (except the park in
//!   `io_uring_enter`, which is the driver's to call); nothing here knows about
//!   tasks, slots or futures.
//! - Raw file descriptors returned from here are owned by the caller.

pub(crate) mod eventfd;
pub(crate) mod memory;
pub(crate) mod queues;
pub(crate) mod ring;
pub(crate) mod socket;
