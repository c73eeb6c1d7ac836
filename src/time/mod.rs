//! Time: `sleep`, `timeout` and `interval` on the core's timer wheel.
//!
//! Timers live in the core's hierarchical wheel in user space
//! (`runtime/wheel`), not one SQE each: registering or cancelling one is
//! O(1) and costs no syscall. The run loop fires due timers every tick and
//! parks the ring no longer than the nearest deadline (`IORING_ENTER_EXT_ARG` with a timespec). A timer never
//! fires before its deadline: the wheel rounds deadlines up to its 1 ms tick
//! and fires a timer only once the run loop's clock reading has passed it,
//! so polling a registered timer reads no clock. The run loop reads the
//! clock once per turn, and not at all while no timer is pending.

mod interval;
mod sleep;
mod timeout;

pub use interval::{interval, Interval};
pub use sleep::{sleep, sleep_until, Sleep};
pub use timeout::{timeout, Elapsed, Timeout};

/// Removes timer `key` from the wheel of its own runtime, `owner`,
/// wherever this runs (inside another runtime of the thread, or outside
/// any); nothing when that runtime is gone, since its wheel went with it.
fn remove_timer(owner: crate::executor::RuntimeId, key: crate::runtime::wheel::TimerKey) {
    let _ = crate::runtime::context::with_owner(owner, |core| core.timers.borrow_mut().remove(key));
}
