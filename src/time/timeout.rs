//! `timeout`: bound how long a future may take.

use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::executor::RuntimeId;
use crate::runtime::context;
use crate::runtime::wheel::TimerKey;

/// Runs `future` for at most `duration`.
///
/// Returns `Err(Elapsed)` if the deadline passes first; the future is then
/// dropped, which cancels its in-flight operations.
///
/// Like the future it bounds, the limit starts when first polled: more
/// exactly, at the run loop's clock reading at the end of that turn, so a
/// timeout reads no clock of its own and one whose future completes on the
/// first poll registers no timer at all. It elapses at least `duration`
/// after the first poll.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use corering::time::{sleep, timeout};
///
/// corering::start(async {
///     let slow = timeout(Duration::from_millis(1), sleep(Duration::from_secs(10))).await;
///     assert!(slow.is_err());
///     let fast = timeout(Duration::from_secs(10), async { 7 }).await;
///     assert_eq!(fast.unwrap(), 7);
/// });
/// ```
pub fn timeout<F: Future>(duration: Duration, future: F) -> Timeout<F> {
    Timeout {
        future,
        limit: Limit {
            duration,
            key: None,
            owner: None,
        },
    }
}

/// The future of [`timeout`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Timeout<F> {
    future: F,
    limit: Limit,
}

/// The timer of a [`Timeout`]: registered on the first poll with its
/// duration, filed by the wheel at its next clock reading.
#[derive(Debug)]
struct Limit {
    duration: Duration,
    key: Option<TimerKey>,
    /// The runtime whose wheel holds `key` (set with it).
    owner: Option<RuntimeId>,
}

impl Limit {
    fn poll_elapsed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut moved = None;
        let poll = context::with_core(|core| {
            let mut timers = core.timers.borrow_mut();
            if self.owner != Some(core.id()) {
                // Filed on another runtime: file it here instead.
                moved = self.key.take().zip(self.owner);
                self.owner = Some(core.id());
            }
            match self.key {
                Some(key) if timers.set_waker(key, cx.waker()) => Poll::Pending,
                // The wheel fires only once the clock passed the deadline.
                Some(key) if timers.is_fired(key) => {
                    timers.remove(key);
                    self.key = None;
                    Poll::Ready(())
                }
                // First poll, or moved from another runtime.
                _ => {
                    self.key = Some(timers.insert_after(self.duration, cx.waker().clone()));
                    Poll::Pending
                }
            }
        });
        if let Some((key, owner)) = moved {
            super::remove_timer(owner, key);
        }
        poll
    }
}

impl Drop for Limit {
    fn drop(&mut self) {
        if let (Some(key), Some(owner)) = (self.key.take(), self.owner) {
            super::remove_timer(owner, key);
        }
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `future` is structurally pinned (never moved out of
        // `Timeout`, which has no Drop); `limit` is Unpin.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: see above.
        let future = unsafe { Pin::new_unchecked(&mut this.future) };
        if let Poll::Ready(output) = future.poll(cx) {
            return Poll::Ready(Ok(output));
        }
        this.limit.poll_elapsed(cx).map(|()| Err(Elapsed(())))
    }
}

/// The error of a [`timeout`] whose deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed(());

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl Error for Elapsed {}

impl From<Elapsed> for std::io::Error {
    fn from(elapsed: Elapsed) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::TimedOut, elapsed)
    }
}
