//! `Sleep`: a future that completes at a deadline.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::executor::RuntimeId;
use crate::runtime::context;
use crate::runtime::wheel::{TimerKey, TICK};

/// Waits until `duration` has elapsed.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
///
/// corering::start(async {
///     let started = Instant::now();
///     corering::time::sleep(Duration::from_millis(5)).await;
///     assert!(started.elapsed() >= Duration::from_millis(5));
/// });
/// ```
pub fn sleep(duration: Duration) -> Sleep {
    Sleep {
        deadline: Instant::now()
            .checked_add(duration)
            .unwrap_or_else(far_future),
        entry: None,
        owner: None,
        // A sleep of a tick or more cannot be over before its first poll
        // unless the task stalled, and then the wheel fires it at its next
        // advance, within its resolution: no second clock reading needed.
        check_clock: duration < TICK,
    }
}

/// Waits until `deadline`.
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline,
        entry: None,
        owner: None,
        check_clock: true,
    }
}

/// About thirty years from now: "never" for a timer.
pub(crate) fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365 * 30)
}

/// The future of [`sleep`] and [`sleep_until`]. Registers its timer on first
/// poll; dropping it removes the timer.
///
/// Polling reads no clock once the timer is registered: the wheel fires a
/// timer only once the clock has passed its deadline. Moving the deadline
/// later ([`Sleep::reset`]) leaves the timer where it is; when it fires
/// early the sleep files it again at the new deadline. Pushing an idle
/// timeout forward on every request therefore costs a clock reading and no
/// timer work.
///
/// A sleep polled on a runtime other than the one it registered on moves
/// its timer there (removing the first from its own runtime's wheel), and
/// dropped anywhere it removes its timer from the wheel it is in: timer
/// keys are unique in the process and remember their runtime, so a sleep
/// never touches another runtime's timers.
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    deadline: Instant,
    /// The wheel's timer and the deadline it was filed for (never later
    /// than `deadline`).
    entry: Option<(TimerKey, Instant)>,
    /// The runtime whose wheel holds `entry` (set with it).
    owner: Option<RuntimeId>,
    /// Whether the next registration first asks the clock if the deadline
    /// has passed already.
    check_clock: bool,
}

impl Sleep {
    /// When the sleep completes.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the deadline has passed.
    pub fn is_elapsed(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Moves the deadline; the sleep is pending again until then. Moving it
    /// later touches no timer (see the type's docs).
    pub fn reset(&mut self, deadline: Instant) {
        self.deadline = deadline;
        match self.entry {
            Some((_, filed)) if filed <= deadline => {}
            _ => {
                self.unregister();
                self.check_clock = true;
            }
        }
    }

    fn unregister(&mut self) {
        if let (Some((key, _)), Some(owner)) = (self.entry.take(), self.owner) {
            super::remove_timer(owner, key);
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let deadline = this.deadline;
        let mut moved = None;
        let ready = context::with_core(|core| {
            let mut timers = core.timers.borrow_mut();
            if this.owner != Some(core.id()) {
                // Filed on another runtime: file it here instead.
                moved = this
                    .entry
                    .take()
                    .zip(this.owner)
                    .map(|((key, _), owner)| (owner, key));
                this.owner = Some(core.id());
            }
            match this.entry {
                // Still pending: just keep the newest waker.
                Some((key, _)) if timers.set_waker(key, cx.waker()) => false,
                // Fired at the deadline it was filed for, so the clock has
                // passed that; done when the deadline was not moved since.
                Some((key, filed)) if timers.is_fired(key) => {
                    if filed >= deadline {
                        timers.remove(key);
                        this.entry = None;
                        // Polled again, it asks the clock and stays done.
                        this.check_clock = true;
                        return true;
                    }
                    timers.reset(key, deadline, cx.waker());
                    this.entry = Some((key, deadline));
                    false
                }
                // Never registered, or moved from another runtime.
                _ => {
                    if this.check_clock && Instant::now() >= deadline {
                        this.entry = None;
                        return true;
                    }
                    this.entry = Some((timers.insert(deadline, cx.waker().clone()), deadline));
                    false
                }
            }
        });
        if let Some((owner, key)) = moved {
            super::remove_timer(owner, key);
        }
        if ready {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.unregister();
    }
}
