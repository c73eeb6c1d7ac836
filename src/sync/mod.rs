//! Channels between tasks, cores and threads.
//!
//! - [`mpsc`]: bounded, many senders anywhere, one receiver on one core;
//!   between two tasks of one core it takes no lock and no atomic
//!   read-modify-write.
//! - [`oneshot`]: one value, from anywhere to anywhere.
//!
//! The shutdown token ([`crate::shutdown::Shutdown`]) is built here too,
//! below the runtime that holds one per launch.

pub mod mpsc;
pub mod oneshot;
pub(crate) mod shutdown;
pub(crate) mod waker_slots;
