//! hyper 1.x's runtime traits on corering: an executor that spawns on the
//! current core and a timer on the core's wheel.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::rt::{Executor, Sleep, Timer};

/// hyper's [`Executor`]: spawns each future hyper hands it (a connection's
/// background work, an HTTP/2 stream) as a task on the core that calls
/// it, which is the core serving the connection. The futures need not be
/// `Send`, as hyper's HTTP/2 ones are not when the service is not.
///
/// # Panics
///
/// [`execute`](Executor::execute) panics outside a corering runtime, as
/// [`spawn`](crate::spawn) does.
///
/// # Examples
///
/// ```
/// use corering::compat::HyperExecutor;
/// use hyper::rt::Executor;
///
/// corering::start(async {
///     let (tx, rx) = corering::sync::oneshot::channel();
///     HyperExecutor::new().execute(async move {
///         tx.send(7).unwrap();
///     });
///     assert_eq!(rx.await.unwrap(), 7);
/// });
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct HyperExecutor(());

impl HyperExecutor {
    /// The executor (it holds nothing: it spawns wherever it is called).
    pub fn new() -> HyperExecutor {
        HyperExecutor(())
    }
}

impl<F> Executor<F> for HyperExecutor
where
    F: Future + 'static,
    F::Output: 'static,
{
    fn execute(&self, future: F) {
        // Detached: hyper keeps no handle to what it spawns.
        drop(crate::spawn(future));
    }
}

/// hyper's [`Timer`] on the current core's timer wheel: each sleep is a
/// [`corering::time::Sleep`](crate::time::Sleep), registered on its first
/// poll on the core that polls it.
///
/// hyper needs its sleeps `Send + Sync`. A corering `Sleep` is plain data
/// (a deadline, a timer key, the id of its runtime), so it is both without
/// a lock: polling it touches only the polling core's wheel. Moving
/// hyper's connections between threads is what corering never does; a
/// sleep dropped on a thread other than its core's leaves its timer to fire
/// there unseen.
///
/// Resetting a sleep to a later deadline, which hyper does for its
/// keep-alive and header timeouts, touches no timer (see
/// [`Sleep::reset`](crate::time::Sleep::reset)).
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use corering::compat::HyperTimer;
/// use hyper::rt::Timer;
///
/// corering::start(async {
///     let started = Instant::now();
///     HyperTimer::new().sleep(Duration::from_millis(5)).await;
///     assert!(started.elapsed() >= Duration::from_millis(5));
/// });
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct HyperTimer(());

impl HyperTimer {
    /// The timer (it holds nothing: each sleep uses the wheel of the core
    /// that polls it).
    pub fn new() -> HyperTimer {
        HyperTimer(())
    }
}

impl Timer for HyperTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        Box::pin(HyperSleep(crate::time::sleep(duration)))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        Box::pin(HyperSleep(crate::time::sleep_until(deadline)))
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn Sleep>>, deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<HyperSleep>() {
            Some(mut ours) => ours.0.reset(deadline),
            None => *sleep = self.sleep_until(deadline),
        }
    }
}

/// A corering sleep as hyper's [`Sleep`].
struct HyperSleep(crate::time::Sleep);

impl Future for HyperSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl Sleep for HyperSleep {}

// `HyperSleep` must stay `Send + Sync` with no lock (hyper's `Sleep`
// requires both): checked here at compile time.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<crate::time::Sleep>();
};
