//! Runtime micro-benchmarks: corering against tokio (current-thread runtime
//! with a `LocalSet`, tasks spawned with `spawn_local`) and monoio (io_uring
//! driver with its timer), each on this one thread, doing the same work:
//!
//! - `spawn+join`: spawn a task returning a number and await its handle, in
//!   batches of 64 spawned then awaited; ns per task.
//! - `yield`: 128 tasks each yielding in a loop; ns per yield. monoio has no
//!   `yield_now`, so all three use the same `YieldOnce` future (wake itself,
//!   return `Pending` once), which is what `corering::yield_now` does.
//! - `timer-cancel`: create a 10 s sleep, poll it once so it registers, drop
//!   it; ns per sleep. The loop yields every 32 sleeps so that tokio's
//!   cooperative budget never runs out (an exhausted budget makes its sleep
//!   return `Pending` without registering).
//! - `timer-fire`: batches of 1000 tasks each sleeping 1 ms; reported as ms
//!   per batch, dominated by the 1 ms sleep and the timer's granularity.
//! - `cross-wake`: another OS thread wakes a task through the `Waker` the
//!   task left in a `Mutex<Option<Waker>>`, waits (spinning) until the task
//!   leaves it again, and so on; ns per round trip. monoio wakes from other
//!   threads only with its `sync` feature (otherwise it panics), which the
//!   benches do not enable, so it is left out.
//! - `nop`: `corering::op::nop()` awaited in turn by one task (depth 1); ns
//!   per round trip through the ring. tokio and monoio have no nop op.
//!
//! Every run builds a fresh runtime and times the work inside it. Rounds
//! alternate between the runtimes (A B C A B C ...) after one warm-up run
//! each; the table gives the median ns/op of each and the median over the
//! rounds of corering's time divided by the other's in the same round. One
//! machine-readable line per benchmark follows
//! (`micro-<name> corering-ns X tokio-ns Y monoio-ns Z`, `nan` where not
//! applicable; for `timer-fire` the batch time / 1000), and the table is
//! written to `target/bench/micro.md`.
//!
//! Usage: `micro [--quick]`

use std::future::{poll_fn, Future};
use std::hint::black_box;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

const SPAWN_BATCH: usize = 64;
const YIELD_TASKS: usize = 128;
const FIRE_BATCH: usize = 1000;

/// What each benchmark needs from a runtime. Every `block_on` builds a
/// fresh single-thread runtime.
trait Rt {
    fn block_on<F: Future>(future: F) -> F::Output;
    /// Spawns at once; the returned future resolves to the task's output.
    fn spawn<T: 'static>(future: impl Future<Output = T> + 'static) -> impl Future<Output = T>;
    fn sleep(duration: Duration) -> impl Future<Output = ()> + 'static;
}

struct Corering;
struct Tokio;
struct Monoio;

impl Rt for Corering {
    fn block_on<F: Future>(future: F) -> F::Output {
        corering::start(future)
    }
    fn spawn<T: 'static>(future: impl Future<Output = T> + 'static) -> impl Future<Output = T> {
        let handle = corering::spawn(future);
        async move { handle.await.expect("corering task") }
    }
    fn sleep(duration: Duration) -> impl Future<Output = ()> + 'static {
        corering::time::sleep(duration)
    }
}

impl Rt for Tokio {
    fn block_on<F: Future>(future: F) -> F::Output {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        tokio::task::LocalSet::new().block_on(&runtime, future)
    }
    fn spawn<T: 'static>(future: impl Future<Output = T> + 'static) -> impl Future<Output = T> {
        let handle = tokio::task::spawn_local(future);
        async move { handle.await.expect("tokio task") }
    }
    fn sleep(duration: Duration) -> impl Future<Output = ()> + 'static {
        tokio::time::sleep(duration)
    }
}

impl Rt for Monoio {
    fn block_on<F: Future>(future: F) -> F::Output {
        monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .enable_timer()
            .build()
            .expect("monoio runtime")
            .block_on(future)
    }
    fn spawn<T: 'static>(future: impl Future<Output = T> + 'static) -> impl Future<Output = T> {
        monoio::spawn(future)
    }
    fn sleep(duration: Duration) -> impl Future<Output = ()> + 'static {
        monoio::time::sleep(duration)
    }
}

/// Wakes its task and returns `Pending` once, then `Ready`.
#[derive(Default)]
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if std::mem::replace(&mut self.0, true) {
            return Poll::Ready(());
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

fn spawn_join<R: Rt>(n: usize) -> Duration {
    R::block_on(async {
        let started = Instant::now();
        let mut handles = Vec::with_capacity(SPAWN_BATCH);
        let mut sum = 0;
        for batch in 0..n / SPAWN_BATCH {
            handles.extend((0..SPAWN_BATCH).map(|i| R::spawn(async move { batch + i })));
            for handle in handles.drain(..) {
                sum += handle.await;
            }
        }
        black_box(sum);
        started.elapsed()
    })
}

fn yields<R: Rt>(n: usize) -> Duration {
    let per_task = n / YIELD_TASKS;
    R::block_on(async {
        let started = Instant::now();
        let handles: Vec<_> = (0..YIELD_TASKS)
            .map(|_| {
                R::spawn(async move {
                    for _ in 0..per_task {
                        YieldOnce::default().await;
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.await;
        }
        started.elapsed()
    })
}

fn timer_cancel<R: Rt>(n: usize) -> Duration {
    R::block_on(async {
        let started = Instant::now();
        for i in 0..n {
            let mut sleep = pin!(R::sleep(Duration::from_secs(10)));
            let pending = poll_fn(|cx| Poll::Ready(sleep.as_mut().poll(cx).is_pending())).await;
            assert!(pending, "a 10 s sleep completed");
            if i % 32 == 31 {
                YieldOnce::default().await;
            }
        }
        started.elapsed()
    })
}

fn timer_fire<R: Rt>(n: usize) -> Duration {
    R::block_on(async {
        let started = Instant::now();
        let mut handles = Vec::with_capacity(FIRE_BATCH);
        for _ in 0..n / FIRE_BATCH {
            handles.extend((0..FIRE_BATCH).map(|_| R::spawn(R::sleep(Duration::from_millis(1)))));
            for handle in handles.drain(..) {
                handle.await;
            }
        }
        started.elapsed()
    })
}

/// The meeting point of the cross-thread ping-pong.
#[derive(Default)]
struct Mailbox {
    waker: Mutex<Option<Waker>>,
    /// Set once `waker` holds a waker, so the other thread spins on an
    /// atomic rather than on the lock.
    posted: AtomicBool,
}

/// Leaves the task's waker in the mailbox and returns `Pending` once.
struct AwaitWake<'a>(&'a Mailbox, bool);

impl Future for AwaitWake<'_> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if std::mem::replace(&mut self.1, true) {
            return Poll::Ready(());
        }
        *self.0.waker.lock().unwrap() = Some(cx.waker().clone());
        self.0.posted.store(true, Ordering::Release);
        Poll::Pending
    }
}

fn cross_wake<R: Rt>(n: usize) -> Duration {
    let mailbox = Arc::new(Mailbox::default());
    let waking = {
        let mailbox = mailbox.clone();
        std::thread::spawn(move || {
            for _ in 0..n {
                while !mailbox.posted.swap(false, Ordering::Acquire) {
                    std::hint::spin_loop();
                }
                let waker = mailbox.waker.lock().unwrap().take().expect("waker");
                waker.wake();
            }
        })
    };
    let elapsed = R::block_on(async {
        let started = Instant::now();
        R::spawn(async move {
            for _ in 0..n {
                AwaitWake(&mailbox, false).await;
            }
        })
        .await;
        started.elapsed()
    });
    waking.join().expect("waking thread");
    elapsed
}

fn nop_corering(n: usize) -> Duration {
    corering::start(async {
        let started = Instant::now();
        for _ in 0..n {
            corering::op::nop().await.expect("nop");
        }
        started.elapsed()
    })
}

type Run = fn(usize) -> Duration;

/// One benchmark's result: medians in ns per op (`None`: not run).
struct Row {
    name: &'static str,
    ns: [Option<f64>; 3],
    /// corering / tokio and corering / monoio: medians of per-round ratios.
    ratios: [Option<f64>; 2],
}

/// Runs each present contender once to warm up, then once per round in
/// turn (A B C A B C ...), and takes the medians.
fn measure(name: &'static str, rounds: usize, ops: usize, runs: [Option<Run>; 3]) -> Row {
    let mut samples: [Vec<f64>; 3] = Default::default();
    for run in runs.iter().flatten() {
        run(ops / 10);
    }
    for _ in 0..rounds {
        for (run, samples) in runs.iter().zip(&mut samples) {
            if let Some(run) = run {
                samples.push(run(ops).as_nanos() as f64 / ops as f64);
            }
        }
    }
    let ratio = |other: &Vec<f64>| {
        (!other.is_empty() && !samples[0].is_empty())
            .then(|| median(samples[0].iter().zip(other).map(|(a, b)| a / b).collect()))
    };
    let ratios = [ratio(&samples[1]), ratio(&samples[2])];
    eprintln!("  {name} done");
    Row {
        name,
        ns: samples.map(|s| (!s.is_empty()).then(|| median(s))),
        ratios,
    }
}

impl Row {
    /// The table's cells for this row: timer-fire in ms per batch, the
    /// others in ns/op.
    fn cells(&self) -> [String; 7] {
        let (unit, per_unit, digits) = match self.name {
            "timer-fire" => ("ms/batch (1000 × 1 ms)", 1e6 / FIRE_BATCH as f64, 3),
            _ => ("ns/op", 1.0, 1),
        };
        let value = |v: Option<f64>| show(v.map(|v| v / per_unit), digits);
        let [c, t, m] = self.ns.map(value);
        let [ct, cm] = self.ratios.map(|r| show(r, 2));
        [self.name.into(), unit.into(), c, t, m, ct, cm]
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn show(value: Option<f64>, digits: usize) -> String {
    value.map_or("n/a".into(), |v| format!("{v:.digits$}"))
}

fn main() {
    let quick = std::env::args().any(|arg| arg == "--quick");
    let (rounds, scale) = if quick { (5, 2) } else { (11, 6) };
    // The same generic benchmark on each runtime.
    macro_rules! all {
        ($bench:ident) => {
            [
                Some($bench::<Corering> as Run),
                Some($bench::<Tokio>),
                Some($bench::<Monoio>),
            ]
        };
    }
    eprintln!("micro: {rounds} rounds per benchmark");
    let k = 1024 * scale;
    // monoio: no cross-thread wakes without its `sync` feature.
    let cross: [Option<Run>; 3] = [
        Some(cross_wake::<Corering>),
        Some(cross_wake::<Tokio>),
        None,
    ];
    let rows = [
        measure("spawn+join", rounds, 256 * k, all!(spawn_join)),
        measure("yield", rounds, 1024 * k, all!(yields)),
        measure("timer-cancel", rounds, 256 * k, all!(timer_cancel)),
        measure(
            "timer-fire",
            rounds,
            FIRE_BATCH * 10 * scale,
            all!(timer_fire),
        ),
        measure("cross-wake", rounds, 20 * k, cross),
        measure("nop", rounds, 256 * k, [Some(nop_corering), None, None]),
    ];

    let title = format!(
        "Runtime micro-benchmarks (`micro{}`), one thread per runtime, median of {rounds} \
         rounds. c/tokio and c/monoio: corering's time over the other's, median of the \
         per-round ratios (below 1: corering faster). \
         tokio: current-thread runtime with a `LocalSet`; monoio: io_uring driver.",
        if quick { " --quick" } else { "" }
    );
    report(&title, &rows);
}

const HEADER: [&str; 7] = [
    "benchmark",
    "unit",
    "corering",
    "tokio",
    "monoio",
    "c/tokio",
    "c/monoio",
];

/// Prints the table and the machine-readable lines, and writes the table
/// as markdown to `target/bench/micro.md`.
fn report(title: &str, rows: &[Row]) {
    let cells: Vec<[String; 7]> = rows.iter().map(Row::cells).collect();
    let line = |c: [&str; 7]| {
        format!(
            "{:<12}  {:<22}  {:>9}  {:>9}  {:>9}  {:>8}  {:>8}",
            c[0], c[1], c[2], c[3], c[4], c[5], c[6]
        )
    };
    println!("\n{title}\n{}", line(HEADER));
    let mut markdown = format!(
        "{title}\n\n| {} |\n|{}\n",
        HEADER.join(" | "),
        "---|".repeat(7)
    );
    for c in &cells {
        println!("{}", line(c.each_ref().map(String::as_str)));
        markdown += &format!("| {} |\n", c.join(" | "));
    }
    for row in rows {
        let [c, t, m] = row
            .ns
            .map(|v| v.map_or("nan".into(), |v| format!("{v:.1}")));
        println!(
            "micro-{} corering-ns {c} tokio-ns {t} monoio-ns {m}",
            row.name
        );
    }
    let dir = std::path::Path::new("target/bench");
    std::fs::create_dir_all(dir).expect("create target/bench");
    std::fs::write(dir.join("micro.md"), markdown).expect("write target/bench/micro.md");
    println!("report: target/bench/micro.md");
}
