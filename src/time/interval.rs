//! `Interval`: ticks at a fixed period.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::sleep::{far_future, sleep_until, Sleep};

/// Ticks every `period`; the first tick completes immediately.
///
/// A tick that is late (the task was busy) is delivered at once, and the
/// following ticks keep the original schedule, skipping the ticks missed
/// entirely so a busy task does not get a burst.
///
/// # Panics
///
/// When `period` is zero.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// corering::start(async {
///     let mut ticks = corering::time::interval(Duration::from_millis(2));
///     let first = ticks.tick().await;
///     let second = ticks.tick().await;
///     assert!(second - first >= Duration::from_millis(2));
/// });
/// ```
pub fn interval(period: Duration) -> Interval {
    assert!(!period.is_zero(), "interval period must be non-zero");
    Interval {
        period,
        sleep: sleep_until(Instant::now()),
    }
}

/// The stream of ticks of [`interval`].
#[derive(Debug)]
pub struct Interval {
    period: Duration,
    sleep: Sleep,
}

impl Interval {
    /// Waits for the next tick and returns its scheduled instant.
    pub async fn tick(&mut self) -> Instant {
        poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// Polls for the next tick.
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        std::task::ready!(Pin::new(&mut self.sleep).poll(cx));
        let scheduled = self.sleep.deadline();
        self.sleep
            .reset(next_tick(scheduled, self.period, Instant::now()));
        Poll::Ready(scheduled)
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }
}

/// The first instant after `now` on the grid of `period`s from
/// `scheduled` (the tick just delivered), skipping the missed ones. A
/// period too long for the clock to count saturates at "never", as a
/// [`sleep`](super::sleep()) does.
fn next_tick(scheduled: Instant, period: Duration, now: Instant) -> Instant {
    let after = |periods: u32| {
        period
            .checked_mul(periods)
            .and_then(|span| scheduled.checked_add(span))
            .unwrap_or_else(far_future)
    };
    let next = after(1);
    if next > now {
        return next;
    }
    // Missed whole periods: skip them, keep the phase.
    let missed = (now - scheduled).as_nanos() / period.as_nanos();
    after(u32::try_from(missed).unwrap_or(u32::MAX).saturating_add(1))
}

impl futures_core::Stream for Interval {
    type Item = Instant;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Instant>> {
        self.poll_tick(cx).map(Some)
    }
}
