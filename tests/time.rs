//! Timers: sleeps never fire early and all fire; timeout; interval.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use corering::time::{interval, sleep, sleep_until, timeout};

#[test]
fn hundred_thousand_random_sleeps_none_early_all_fire() {
    const SLEEPS: u64 = 100_000;
    let (fired, early) = corering::start(async {
        let fired = Rc::new(Cell::new(0u64));
        let early = Rc::new(Cell::new(0u64));
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let start = Instant::now();
        for _ in 0..SLEEPS {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let deadline = start + Duration::from_micros(seed % 300_000);
            let (fired, early) = (fired.clone(), early.clone());
            corering::spawn(async move {
                sleep_until(deadline).await;
                if Instant::now() < deadline {
                    early.set(early.get() + 1);
                }
                fired.set(fired.get() + 1);
            });
        }
        while fired.get() < SLEEPS {
            sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(corering::stats().timers, 0, "every timer left the wheel");
        (fired.get(), early.get())
    });
    assert_eq!(fired, SLEEPS);
    assert_eq!(early, 0);
}

#[test]
fn sleep_waits_at_least_its_duration() {
    corering::start(async {
        for millis in [0, 1, 3, 17] {
            let started = Instant::now();
            sleep(Duration::from_millis(millis)).await;
            assert!(started.elapsed() >= Duration::from_millis(millis));
        }
    });
}

#[test]
fn timeout_elapses_and_passes_through() {
    corering::start(async {
        let started = Instant::now();
        let error = timeout(Duration::from_millis(10), sleep(Duration::from_secs(30)))
            .await
            .unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(10));
        assert_eq!(error.to_string(), "deadline has elapsed");
        let io_error: std::io::Error = error.into();
        assert_eq!(io_error.kind(), std::io::ErrorKind::TimedOut);
        assert_eq!(
            timeout(Duration::from_secs(30), async { 9 }).await.unwrap(),
            9
        );
        assert_eq!(corering::stats().timers, 0);
    });
}

#[test]
fn interval_ticks_on_schedule() {
    corering::start(async {
        let period = Duration::from_millis(5);
        let mut ticks = interval(period);
        let first = ticks.tick().await;
        let mut previous = first;
        for _ in 0..5 {
            let tick = ticks.tick().await;
            // On the grid of periods from the first tick, never early. A
            // stalled (loaded) machine may skip ticks, so the step is one
            // period or more, never a fraction.
            assert!(tick > previous);
            assert_eq!((tick - first).as_nanos() % period.as_nanos(), 0);
            assert!(Instant::now() >= tick);
            previous = tick;
        }
        assert!(previous - first >= 5 * period);
    });
}

#[test]
fn interval_skips_missed_ticks() {
    corering::start(async {
        let mut ticks = interval(Duration::from_millis(2));
        let first = ticks.tick().await;
        // Busy the core past several periods.
        std::thread::sleep(Duration::from_millis(9));
        let late = ticks.tick().await;
        assert_eq!(
            late - first,
            Duration::from_millis(2),
            "the late tick is delivered once"
        );
        let next = ticks.tick().await;
        assert!(
            next >= first + Duration::from_millis(10),
            "missed periods skipped"
        );
        assert_eq!(
            (next - first).as_nanos() % Duration::from_millis(2).as_nanos(),
            0
        );
    });
}

/// Polls `sleep` once, registering its timer.
async fn poll_once(sleep: &mut corering::time::Sleep) -> bool {
    use std::future::Future as _;
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(std::pin::Pin::new(&mut *sleep).poll(cx).is_ready())
    })
    .await
}

#[test]
fn reset_moves_the_deadline_with_one_timer() {
    corering::start(async {
        let started = Instant::now();
        let mut idle = sleep(Duration::from_millis(5));
        assert!(!poll_once(&mut idle).await);
        assert_eq!(corering::stats().timers, 1);
        // Later deadlines keep the timer filed; it fires early once and the
        // sleep files it again, so completion is at the last deadline.
        for step in 1..=3 {
            idle.reset(started + Duration::from_millis(5 + 5 * step));
            assert!(!poll_once(&mut idle).await);
            assert_eq!(corering::stats().timers, 1);
        }
        (&mut idle).await;
        assert!(started.elapsed() >= Duration::from_millis(20));
        assert_eq!(corering::stats().timers, 0);
        // Done stays done.
        assert!(poll_once(&mut idle).await);
        assert_eq!(corering::stats().timers, 0);

        // An earlier deadline than the one filed takes effect.
        idle.reset(Instant::now() + Duration::from_secs(3600));
        assert!(!poll_once(&mut idle).await);
        let shortened = Instant::now();
        idle.reset(shortened + Duration::from_millis(3));
        (&mut idle).await;
        let waited = shortened.elapsed();
        assert!(waited >= Duration::from_millis(3) && waited < Duration::from_secs(60));
        assert_eq!(corering::stats().timers, 0);

        // A deadline already past completes on the first poll.
        idle.reset(Instant::now());
        assert!(poll_once(&mut idle).await);
        assert!(poll_once(&mut sleep(Duration::ZERO)).await);
        assert_eq!(corering::stats().timers, 0);
    });
}

/// A sleep registered on runtime `a` and polled once there, handed back
/// pending: its key names a timer of `a`'s wheel.
#[allow(clippy::async_yields_async)] // handing the pending sleep out is the point
fn sleep_registered_on(a: &corering::Runtime) -> corering::time::Sleep {
    a.block_on(async {
        let mut foreign = sleep(Duration::from_secs(3600));
        assert!(!poll_once(&mut foreign).await);
        foreign
    })
}

/// Inside runtime `b`: a task sleeping 20 ms whose timer takes the same
/// slab index and first generation as the foreign sleep's in `a`; `meddle`
/// touches the foreign sleep meanwhile. Returns how long the task took, or
/// `None` when it did not wake within a second.
fn task_sleep_beside(b: &corering::Runtime, meddle: impl AsyncFnOnce() -> ()) -> Option<Duration> {
    b.block_on(async {
        let started = Instant::now();
        let task = corering::spawn(sleep(Duration::from_millis(20)));
        // The task's first poll files its timer.
        corering::yield_now().await;
        assert_eq!(corering::stats().timers, 1);
        meddle().await;
        let woke = timeout(Duration::from_secs(1), task).await.ok()?;
        woke.unwrap();
        Some(started.elapsed())
    })
}

#[test]
fn a_sleep_dropped_on_another_runtime_leaves_its_timers_alone() {
    let (a, b) = (
        corering::Runtime::new().unwrap(),
        corering::Runtime::new().unwrap(),
    );
    let foreign = sleep_registered_on(&a);
    let took = task_sleep_beside(&b, async || drop(foreign));
    let took = took.expect("the task's timer was removed by a foreign sleep's drop");
    assert!(took >= Duration::from_millis(20));
    assert_eq!(b.stats().timers, 0);
}

#[test]
fn a_sleep_polled_on_another_runtime_files_its_own_timer_there() {
    let (a, b) = (
        corering::Runtime::new().unwrap(),
        corering::Runtime::new().unwrap(),
    );
    let mut foreign = sleep_registered_on(&a);
    assert_eq!(a.stats().timers, 1);
    let took = task_sleep_beside(&b, async || {
        assert!(!poll_once(&mut foreign).await);
        // Its own timer beside the task's, not the task's taken over.
        assert_eq!(corering::stats().timers, 2);
    });
    let took = took.expect("the task's timer was taken over by a foreign sleep's poll");
    assert!(took >= Duration::from_millis(20));
    // Moved: its first timer left its first runtime's wheel.
    assert_eq!(a.stats().timers, 0);
    b.block_on(async { drop(foreign) });
    assert_eq!(b.stats().timers, 0);
}

#[test]
fn an_interval_too_long_to_reach_ticks_once_then_waits() {
    corering::start(async {
        for period in [Duration::MAX, Duration::from_secs(u64::MAX / 2)] {
            let started = Instant::now();
            let mut ticks = interval(period);
            let first = timeout(Duration::from_secs(10), ticks.tick()).await;
            let first = first.expect("the first tick is immediate");
            assert!(first >= started && first <= Instant::now());
            let second = timeout(Duration::from_millis(50), ticks.tick()).await;
            assert!(second.is_err(), "the second tick is beyond any clock");
            assert_eq!(ticks.period(), period);
        }
        assert_eq!(corering::stats().timers, 0);
    });
}
