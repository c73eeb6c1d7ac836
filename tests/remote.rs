//! Work on another core (`spawn_on`) and off the cores (`spawn_blocking`),
//! and the wakes between cores (`MSG_RING`, or the eventfd).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use corering::sync::mpsc;
use corering::CoreId;

/// Serializes the tests that configure the process-wide blocking pool or
/// count its threads.
fn pool_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Threads of this process named by the blocking pool.
fn pool_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("corering-block"))
        .count()
}

/// Runs the future `make` returns on core 0 of a 2-core launch, while
/// core 1 serves (it stays up until core 0 is done), and returns its
/// output.
fn on_core_zero<T, Fut>(make: impl Fn() -> Fut + Sync) -> T
where
    Fut: std::future::Future<Output = T>,
    T: Send,
{
    let (done_tx, done_rx) = corering::sync::oneshot::channel::<()>();
    let ends = Mutex::new((Some(done_tx), Some(done_rx)));
    let outputs = corering::Runtime::builder()
        .cores(2)
        .run_on_cores(|core| {
            let mut ends = ends.lock().unwrap();
            let (done_tx, done_rx) = if core.index() == 0 {
                (ends.0.take(), None)
            } else {
                (None, ends.1.take())
            };
            let work = (core.index() == 0).then(&make);
            async move {
                assert_eq!(corering::cores(), 2);
                assert_eq!(corering::current_core(), core);
                match (work, done_rx) {
                    (Some(work), _) => {
                        let output = work.await;
                        done_tx.unwrap().send(()).unwrap();
                        Some(output)
                    }
                    (None, Some(done)) => {
                        done.await.unwrap();
                        None
                    }
                    _ => unreachable!(),
                }
            }
        })
        .unwrap();
    outputs.into_iter().next().unwrap().unwrap()
}

#[test]
fn spawn_on_runs_a_non_send_future_there_and_brings_back_its_output() {
    let seen = on_core_zero(|| async {
        let mut seen = Vec::new();
        for round in 0..100u32 {
            let there = corering::spawn_on(CoreId::new(1), move || async move {
                // An Rc: the future is built on core 1 and stays there.
                let local = std::rc::Rc::new(round);
                corering::yield_now().await;
                (corering::current_core().index(), *local * 2)
            });
            seen.push(there.await.unwrap());
        }
        let here = corering::spawn_on(CoreId::new(0), || async { corering::current_core() });
        assert_eq!(here.await.unwrap(), CoreId::new(0));
        seen
    });
    let want: Vec<_> = (0..100u32).map(|round| (1, round * 2)).collect();
    assert_eq!(seen, want);
}

#[test]
fn a_lone_runtime_is_core_zero_of_one() {
    corering::start(async {
        assert_eq!(
            (corering::current_core(), corering::cores()),
            (CoreId::new(0), 1)
        );
        let value = corering::spawn_on(CoreId::new(0), || async { 7 }).await;
        assert_eq!(value.unwrap(), 7);
    });
}

#[test]
fn a_panic_there_comes_back_as_a_join_error() {
    let panics = on_core_zero(|| async {
        let in_future = corering::spawn_on(CoreId::new(1), || async {
            panic!("in the future");
        });
        let in_make = corering::spawn_on(CoreId::new(1), || -> std::future::Ready<()> {
            panic!("in make")
        });
        let (a, b) = (in_future.await.unwrap_err(), in_make.await.unwrap_err());
        (a.is_panic(), b.is_panic())
    });
    assert_eq!(panics, (true, true));
}

#[test]
fn abort_cancels_the_task_there_and_drops_its_future() {
    struct Flag(Arc<AtomicUsize>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let dropped = Arc::new(AtomicUsize::new(0));
    let cancelled = on_core_zero(|| {
        let dropped = dropped.clone();
        async move {
            let (started_tx, mut started_rx) = mpsc::channel(1);
            let there = corering::spawn_on(CoreId::new(1), move || async move {
                let _flag = Flag(dropped);
                started_tx.send(()).await.unwrap();
                std::future::pending::<()>().await
            });
            started_rx.recv().await.unwrap();
            there.abort();
            there.await.unwrap_err().is_cancelled()
        }
    });
    assert!(cancelled);
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        1,
        "the future was dropped once"
    );
}

#[test]
fn a_spawn_to_a_finished_core_resolves_cancelled() {
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let ends = Mutex::new((Some(done_tx), Some(done_rx)));
    let outputs = corering::Runtime::builder()
        .cores(2)
        .run_on_cores(|core| {
            let mut ends = ends.lock().unwrap();
            let first = core.index() == 0;
            let (done_tx, done_rx) = if first {
                (None, ends.1.take())
            } else {
                (ends.0.take(), None)
            };
            async move {
                if !first {
                    // Finish at once, and say so.
                    done_tx.unwrap().send(()).unwrap();
                    return true;
                }
                // Core 1 has returned from its future: its runtime shuts
                // down (or has). A spawn there must resolve, not hang.
                done_rx.unwrap().recv().unwrap();
                std::thread::sleep(Duration::from_millis(50));
                let late = corering::spawn_on(CoreId::new(1), || async { 1 });
                late.await.unwrap_err().is_cancelled()
            }
        })
        .unwrap();
    assert_eq!(outputs, [true, true]);
}

#[test]
fn spawn_blocking_returns_results_and_panics() {
    let _pool = pool_lock();
    corering::start(async {
        let sum = corering::spawn_blocking(|| (1..=100u64).sum::<u64>());
        assert_eq!(sum.await.unwrap(), 5050);
        let panicked = corering::spawn_blocking(|| -> u8 { panic!("blocking") });
        assert!(panicked.await.unwrap_err().is_panic());
    });
}

#[test]
fn the_blocking_pool_keeps_to_its_cap_and_lets_idle_threads_go() {
    let _pool = pool_lock();
    let runtime = corering::Runtime::builder()
        .blocking_threads(3)
        .blocking_keep_alive(Duration::from_millis(200))
        .build()
        .unwrap();
    // Threads other tests left idle leave once the cap is lowered; give
    // their exits (which /proc shows a moment late) time to finish.
    let deadline = Instant::now() + Duration::from_secs(5);
    while pool_threads() > 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(pool_threads() <= 3, "threads over a lowered cap leave");
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    runtime.block_on(async {
        let jobs: Vec<_> = (0..12)
            .map(|_| {
                let (running, most) = (running.clone(), most.clone());
                corering::spawn_blocking(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(30));
                    running.fetch_sub(1, Ordering::SeqCst);
                    pool_threads()
                })
            })
            .collect();
        for job in jobs {
            assert!(job.await.unwrap() <= 3, "never more threads than the cap");
        }
    });
    assert_eq!(
        most.load(Ordering::SeqCst),
        3,
        "the cap was reached, not passed"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while pool_threads() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(pool_threads(), 0, "idle threads leave after the keep-alive");
    // Put the defaults back for the other tests of this binary.
    drop(
        corering::Runtime::builder()
            .blocking_threads(512)
            .blocking_keep_alive(Duration::from_secs(10))
            .build()
            .unwrap(),
    );
}

#[test]
fn a_core_serves_timers_while_sixteen_blocking_jobs_sleep() {
    let _pool = pool_lock();
    corering::start(async {
        let started = Instant::now();
        let jobs: Vec<_> = (0..16)
            .map(|_| corering::spawn_blocking(|| std::thread::sleep(Duration::from_millis(300))))
            .collect();
        let mut ticks = 0;
        let mut interval = corering::time::interval(Duration::from_millis(10));
        while started.elapsed() < Duration::from_millis(250) {
            interval.tick().await;
            ticks += 1;
        }
        assert!(ticks >= 10, "the core kept its timers: {ticks} ticks");
        for job in jobs {
            job.await.unwrap();
        }
    });
}

/// Ping-pong between two cores that park between messages, once waking
/// each other with `MSG_RING` and once with the eventfd: both finish, and
/// the counters show which way the wakes went.
/// On io_uring in both runs: `MSG_RING` is the ring's.
#[test]
fn cores_wake_each_other_by_msg_ring_or_by_eventfd() {
    for msg_ring in [true, false] {
        let there = Arc::new(Mutex::new(Some(mpsc::channel::<u32>(1))));
        let back = Arc::new(Mutex::new(Some(mpsc::channel::<u32>(1))));
        let (there_tx, there_rx) = there.lock().unwrap().take().unwrap();
        let (back_tx, back_rx) = back.lock().unwrap().take().unwrap();
        let ends = Mutex::new(vec![Some((there_tx, back_rx)), None]);
        let other = Mutex::new(Some((back_tx, there_rx)));
        let stats = common::ring_builder()
            .cores(2)
            .msg_ring(msg_ring)
            .run_on_cores(|core| {
                let first = ends.lock().unwrap()[core.index()].take();
                let second = if core.index() == 1 {
                    other.lock().unwrap().take()
                } else {
                    None
                };
                async move {
                    if let Some((tx, mut rx)) = first {
                        for round in 0..2_000 {
                            tx.send(round).await.unwrap();
                            assert_eq!(rx.recv().await, Some(round));
                        }
                    } else {
                        let (tx, mut rx) = second.unwrap();
                        while let Some(round) = rx.recv().await {
                            tx.send(round).await.unwrap();
                        }
                    }
                    corering::stats()
                }
            })
            .unwrap();
        let sent: u64 = stats.iter().map(|stats| stats.msg_ring_sent).sum();
        let woken: u64 = stats.iter().map(|stats| stats.msg_ring_wakes).sum();
        if msg_ring {
            assert!(
                sent > 0 && woken > 0,
                "MSG_RING carried the wakes: {sent} sent, {woken} woken"
            );
            assert!(woken <= sent);
        } else {
            assert_eq!((sent, woken), (0, 0));
        }
    }
}
