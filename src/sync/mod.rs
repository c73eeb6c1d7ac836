//! Channels between tasks, cores and threads.
//!
//! - [`mpsc`]: bounded, many senders anywhere, one receiver on one core;
//!   between two tasks of one core it takes no lock and no atomic
//!   read-modify-write.
//! - [`oneshot`]: one value, from anywhere to anywhere.

pub mod mpsc;
pub mod oneshot;
