//! Channels between tasks, cores and threads.
//!
//! - [`oneshot`]: one value, from anywhere to anywhere.

pub mod oneshot;
