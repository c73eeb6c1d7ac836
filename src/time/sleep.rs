//! `Sleep`: a future that completes at a deadline.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::wheel::TimerKey;
use crate::runtime::context;

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
    sleep_until(
        Instant::now()
            .checked_add(duration)
            .unwrap_or_else(far_future),
    )
}

/// Waits until `deadline`.
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline,
        key: None,
    }
}

/// About thirty years from now: "never" for a timer.
pub(crate) fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365 * 30)
}

/// The future of [`sleep`] and [`sleep_until`]. Registers its timer on first
/// poll; dropping it removes the timer.
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    deadline: Instant,
    key: Option<TimerKey>,
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

    /// Moves the deadline; the sleep is pending again until then.
    pub fn reset(&mut self, deadline: Instant) {
        self.deadline = deadline;
        self.unregister();
    }

    fn unregister(&mut self) {
        if let Some(key) = self.key.take() {
            context::try_with_core(|core| core.timers.borrow_mut().remove(key));
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let now = Instant::now();
        if now >= self.deadline {
            self.unregister();
            return Poll::Ready(());
        }
        let deadline = self.deadline;
        let key = self.key;
        self.key = Some(context::with_core(|core| {
            let mut timers = core.timers.borrow_mut();
            match key {
                // Still pending: just keep the newest waker.
                Some(key) if timers.set_waker(key, cx.waker()) => key,
                // Fired, yet the clock says not yet (cannot happen with a
                // tick-rounded wheel, but never complete early): re-arm.
                Some(key) => {
                    timers.reset(key, deadline, cx.waker());
                    key
                }
                None => timers.insert(deadline, cx.waker().clone()),
            }
        }));
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.unregister();
    }
}
