//! Cross-core benchmarks: two cores (threads pinned to CPU 0 and CPU 1)
//! that talk, side by side in one run, rounds alternating between the
//! contenders:
//!
//! - `ping-pong`: one message there and one back through a pair of
//!   capacity-1 channels, each side parked between messages; the latency of
//!   a round trip, p50 and p99 over the rounds' samples. corering with
//!   `MSG_RING` waking the parked core, corering with the eventfd (the
//!   switch `Builder::msg_ring(false)`), tokio's `mpsc` between two
//!   current-thread runtimes, and glommio's `shared_channel` between two
//!   executors placed on the two CPUs.
//! - `one-way`: messages per second from one core to the other through a
//!   channel of capacity 1024 (the same contenders).
//! - `spawn-on`: a `spawn_on` of an empty future to the other core and the
//!   await of its handle, ns per round trip, against tokio-util's
//!   `LocalPoolHandle::spawn_pinned_by_idx` from a current-thread runtime
//!   to a one-thread pool on the other CPU.
//! - `spawn-blocking`: a `spawn_blocking` of an empty closure awaited, ns
//!   per round trip, against tokio's `spawn_blocking`, each from a
//!   current-thread runtime on a thread free to run on either CPU.
//!
//! Prints one machine-readable line per figure (`cross-<name> ...`) and
//! writes the table to `target/bench/cross.md`.
//!
//! Usage: `cross [--quick]`; `cross --one-way-only` or `cross
//! --blocking-only` runs that figure alone, 5 times, for profiling.

use std::sync::Mutex;
use std::time::Instant;

use corering::sync::mpsc;

/// Round trips per ping-pong round, messages per one-way round, spawns
/// per round.
struct Sizes {
    rounds: usize,
    ping_pong: usize,
    one_way: usize,
    spawns: usize,
}

fn pin(cpu: usize) {
    // SAFETY: an all-zero cpu_set_t is an empty set; the set is a plain
    // bit set the kernel reads, its size passed.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Runs `body` on a new thread pinned to `cpu`, or free to run on every
/// CPU (`None`). The main thread is never pinned: a corering launch takes
/// its CPUs from the launching thread's affinity, so a pin left on the main
/// thread by a peer's round would put both corering cores on one CPU. A
/// pool thread started from a pinned thread inherits its CPU (tokio's do;
/// corering's reset theirs, so that blocking work does not take the core's
/// CPU), so each spawn_blocking round says where its caller runs.
fn on_cpu<T: Send>(cpu: Option<usize>, body: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                match cpu {
                    Some(cpu) => pin(cpu),
                    // SAFETY: as in `pin`; every CPU of the set is allowed.
                    None => unsafe {
                        let mut set: libc::cpu_set_t = std::mem::zeroed();
                        for cpu in 0..libc::CPU_SETSIZE as usize {
                            libc::CPU_SET(cpu, &mut set);
                        }
                        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
                    },
                }
                body()
            })
            .join()
            .unwrap()
    })
}

/// Two channel ends handed to the two cores of a launch.
struct Ends<T> {
    there: Mutex<Option<(mpsc::Sender<T>, mpsc::Receiver<T>)>>,
    back: Mutex<Option<(mpsc::Sender<T>, mpsc::Receiver<T>)>>,
}

/// Round-trip latencies of `count` ping-pongs between two corering cores,
/// in ns.
fn corering_ping_pong(count: usize, msg_ring: bool) -> Vec<f64> {
    let ends = Ends {
        there: Mutex::new(Some(mpsc::channel::<u32>(1))),
        back: Mutex::new(Some(mpsc::channel::<u32>(1))),
    };
    let (there_tx, there_rx) = ends.there.lock().unwrap().take().unwrap();
    let (back_tx, back_rx) = ends.back.lock().unwrap().take().unwrap();
    let first = Mutex::new(Some((there_tx, back_rx)));
    let second = Mutex::new(Some((back_tx, there_rx)));
    let outputs = corering::Runtime::builder()
        .cores(2)
        .pin_cores(true)
        .msg_ring(msg_ring)
        .run_on_cores(|core| {
            let mine = if core.index() == 0 {
                first.lock().unwrap().take().map(Ok)
            } else {
                second.lock().unwrap().take().map(Err)
            };
            async move {
                match mine.unwrap() {
                    Ok((tx, mut rx)) => {
                        let mut samples = Vec::with_capacity(count);
                        for round in 0..count as u32 {
                            let started = Instant::now();
                            tx.send(round).await.unwrap();
                            rx.recv().await.unwrap();
                            samples.push(started.elapsed().as_nanos() as f64);
                        }
                        samples
                    }
                    Err((tx, mut rx)) => {
                        while let Some(round) = rx.recv().await {
                            tx.send(round).await.unwrap();
                        }
                        Vec::new()
                    }
                }
            }
        })
        .unwrap();
    outputs.into_iter().next().unwrap()
}

/// The same between two tokio current-thread runtimes on pinned threads.
fn tokio_ping_pong(count: usize) -> Vec<f64> {
    let (there_tx, mut there_rx) = tokio::sync::mpsc::channel::<u32>(1);
    let (back_tx, mut back_rx) = tokio::sync::mpsc::channel::<u32>(1);
    let echo = std::thread::spawn(move || {
        pin(1);
        tokio_runtime().block_on(async move {
            while let Some(round) = there_rx.recv().await {
                back_tx.send(round).await.unwrap();
            }
        })
    });
    let samples = on_cpu(Some(0), || {
        tokio_runtime().block_on(async move {
            let mut samples = Vec::with_capacity(count);
            for round in 0..count as u32 {
                let started = Instant::now();
                there_tx.send(round).await.unwrap();
                back_rx.recv().await.unwrap();
                samples.push(started.elapsed().as_nanos() as f64);
            }
            samples
        })
    });
    echo.join().unwrap();
    samples
}

fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The same between two glommio executors placed on CPU 0 and CPU 1,
/// through a pair of `shared_channel`s of capacity 1.
fn glommio_ping_pong(count: usize) -> Vec<f64> {
    use glommio::channels::shared_channel;
    let (there_tx, there_rx) = shared_channel::new_bounded::<u32>(1);
    let (back_tx, back_rx) = shared_channel::new_bounded::<u32>(1);
    let echo = glommio_executor(1)
        .spawn(move || async move {
            let (rx, tx) = (there_rx.connect().await, back_tx.connect().await);
            while let Some(round) = rx.recv().await {
                tx.send(round).await.unwrap();
            }
        })
        .unwrap();
    let samples = glommio_executor(0)
        .spawn(move || async move {
            let (tx, rx) = (there_tx.connect().await, back_rx.connect().await);
            let mut samples = Vec::with_capacity(count);
            for round in 0..count as u32 {
                let started = Instant::now();
                tx.send(round).await.unwrap();
                rx.recv().await.unwrap();
                samples.push(started.elapsed().as_nanos() as f64);
            }
            samples
        })
        .unwrap()
        .join()
        .unwrap();
    echo.join().unwrap();
    samples
}

fn glommio_executor(cpu: usize) -> glommio::LocalExecutorBuilder {
    glommio::LocalExecutorBuilder::new(glommio::Placement::Fixed(cpu))
}

/// Messages per second, `count` of them from core 0 to core 1.
fn corering_one_way(count: usize, msg_ring: bool) -> f64 {
    let (tx, rx) = mpsc::channel::<u64>(1024);
    let (tx, rx) = (Mutex::new(Some(tx)), Mutex::new(Some(rx)));
    let outputs = corering::Runtime::builder()
        .cores(2)
        .pin_cores(true)
        .msg_ring(msg_ring)
        .run_on_cores(|core| {
            let (tx, rx) = match core.index() {
                0 => (tx.lock().unwrap().take(), None),
                _ => (None, rx.lock().unwrap().take()),
            };
            async move {
                if let Some(tx) = tx {
                    for i in 0..count as u64 {
                        tx.send(i).await.unwrap();
                    }
                    return None;
                }
                let mut rx = rx.unwrap();
                let started = Instant::now();
                let mut got = 0;
                while rx.recv().await.is_some() {
                    got += 1;
                }
                assert_eq!(got, count);
                Some(count as f64 / started.elapsed().as_secs_f64())
            }
        })
        .unwrap();
    outputs[1].unwrap()
}

fn tokio_one_way(count: usize) -> f64 {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(1024);
    let producer = std::thread::spawn(move || {
        pin(0);
        tokio_runtime().block_on(async move {
            for i in 0..count as u64 {
                tx.send(i).await.unwrap();
            }
        })
    });
    let rate = on_cpu(Some(1), || {
        tokio_runtime().block_on(async move {
            let started = Instant::now();
            let mut got = 0;
            while rx.recv().await.is_some() {
                got += 1;
            }
            assert_eq!(got, count);
            count as f64 / started.elapsed().as_secs_f64()
        })
    });
    producer.join().unwrap();
    rate
}

fn glommio_one_way(count: usize) -> f64 {
    use glommio::channels::shared_channel;
    let (tx, rx) = shared_channel::new_bounded::<u64>(1024);
    let producer = glommio_executor(0)
        .spawn(move || async move {
            let tx = tx.connect().await;
            for i in 0..count as u64 {
                tx.send(i).await.unwrap();
            }
        })
        .unwrap();
    let rate = glommio_executor(1)
        .spawn(move || async move {
            let rx = rx.connect().await;
            let started = Instant::now();
            let mut got = 0;
            while rx.recv().await.is_some() {
                got += 1;
            }
            assert_eq!(got, count);
            count as f64 / started.elapsed().as_secs_f64()
        })
        .unwrap()
        .join()
        .unwrap();
    producer.join().unwrap();
    rate
}

/// ns per `spawn_on` round trip to the other core.
fn corering_spawn_on(count: usize) -> f64 {
    let (done_tx, done_rx) = corering::sync::oneshot::channel::<()>();
    let ends = Mutex::new((Some(done_tx), Some(done_rx)));
    let outputs = corering::Runtime::builder()
        .cores(2)
        .pin_cores(true)
        .run_on_cores(|core| {
            let mut ends = ends.lock().unwrap();
            let (done_tx, done_rx) = match core.index() {
                0 => (ends.0.take(), None),
                _ => (None, ends.1.take()),
            };
            async move {
                let Some(done_tx) = done_tx else {
                    let _ = done_rx.unwrap().await;
                    return 0.0;
                };
                let other = corering::CoreId::new(1);
                let started = Instant::now();
                for _ in 0..count {
                    corering::spawn_on(other, || async {}).await.unwrap();
                }
                let ns = started.elapsed().as_nanos() as f64 / count as f64;
                done_tx.send(()).unwrap();
                ns
            }
        })
        .unwrap();
    outputs[0]
}

/// ns per `spawn_pinned_by_idx` round trip from a current-thread runtime
/// on CPU 0 to a one-thread `LocalPoolHandle` whose worker is on CPU 1.
fn tokio_spawn_pinned(count: usize) -> f64 {
    on_cpu(Some(0), || {
        let pool = tokio_util::task::LocalPoolHandle::new(1);
        tokio_runtime().block_on(async move {
            // The pool's worker pins itself, before the clock starts.
            pool.spawn_pinned_by_idx(|| async { pin(1) }, 0)
                .await
                .unwrap();
            let started = Instant::now();
            for _ in 0..count {
                pool.spawn_pinned_by_idx(|| async {}, 0).await.unwrap();
            }
            started.elapsed().as_nanos() as f64 / count as f64
        })
    })
}

fn corering_spawn_blocking(count: usize, cpu: Option<usize>) -> f64 {
    on_cpu(cpu, || {
        corering::start(async move {
            let started = Instant::now();
            for _ in 0..count {
                corering::spawn_blocking(|| ()).await.unwrap();
            }
            started.elapsed().as_nanos() as f64 / count as f64
        })
    })
}

fn tokio_spawn_blocking(count: usize, cpu: Option<usize>) -> f64 {
    on_cpu(cpu, || {
        tokio_runtime().block_on(async move {
            let started = Instant::now();
            for _ in 0..count {
                tokio::task::spawn_blocking(|| ()).await.unwrap();
            }
            started.elapsed().as_nanos() as f64 / count as f64
        })
    })
}

fn percentile(samples: &mut [f64], fraction: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    let index = ((samples.len() as f64 - 1.0) * fraction).round() as usize;
    samples[index]
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    if std::env::args().any(|arg| arg == "--blocking-only") {
        for _ in 0..5 {
            for cpu in [None, Some(1)] {
                println!(
                    "caller on {cpu:?}: corering {:.0} ns, tokio {:.0} ns",
                    corering_spawn_blocking(5_000, cpu),
                    tokio_spawn_blocking(5_000, cpu)
                );
            }
        }
        return;
    }
    if std::env::args().any(|arg| arg == "--one-way-only") {
        for _ in 0..5 {
            println!(
                "corering {:.2} M/s, glommio {:.2} M/s",
                corering_one_way(1_000_000, true) / 1e6,
                glommio_one_way(1_000_000) / 1e6
            );
        }
        return;
    }
    let quick = std::env::args().any(|arg| arg == "--quick");
    let sizes = if quick {
        Sizes {
            rounds: 3,
            ping_pong: 5_000,
            one_way: 200_000,
            spawns: 5_000,
        }
    } else {
        Sizes {
            rounds: 5,
            ping_pong: 20_000,
            one_way: 1_000_000,
            spawns: 20_000,
        }
    };
    // Warm-up, so the first round does not pay for page faults and the
    // blocking pool's first threads.
    corering_ping_pong(500, true);
    tokio_ping_pong(500);
    glommio_ping_pong(500);
    corering_spawn_blocking(100, None);
    tokio_spawn_blocking(100, None);

    let names = [
        "corering MSG_RING",
        "corering eventfd",
        "tokio mpsc",
        "glommio shared_channel",
    ];
    let mut latency: [Vec<f64>; 4] = Default::default();
    let mut rates: [Vec<f64>; 4] = Default::default();
    let mut spawn_on: [Vec<f64>; 2] = Default::default();
    // Caller free, then caller pinned to CPU 1; corering, then tokio.
    let mut blocking: [[Vec<f64>; 2]; 2] = Default::default();
    for _ in 0..sizes.rounds {
        latency[0].extend(corering_ping_pong(sizes.ping_pong, true));
        latency[1].extend(corering_ping_pong(sizes.ping_pong, false));
        latency[2].extend(tokio_ping_pong(sizes.ping_pong));
        latency[3].extend(glommio_ping_pong(sizes.ping_pong));
        rates[0].push(corering_one_way(sizes.one_way, true));
        rates[1].push(corering_one_way(sizes.one_way, false));
        rates[2].push(tokio_one_way(sizes.one_way));
        rates[3].push(glommio_one_way(sizes.one_way));
        spawn_on[0].push(corering_spawn_on(sizes.spawns));
        spawn_on[1].push(tokio_spawn_pinned(sizes.spawns));
        for (placement, cpu) in [None, Some(1)].into_iter().enumerate() {
            blocking[placement][0].push(corering_spawn_blocking(sizes.spawns, cpu));
            blocking[placement][1].push(tokio_spawn_blocking(sizes.spawns, cpu));
        }
    }

    let mut table = String::from(
        "### Cross-core (`benches/src/cross.rs`)\n\n\
         | contender | ping-pong p50 (µs) | p99 (µs) | one-way (M msg/s) |\n\
         | --- | ---: | ---: | ---: |\n",
    );
    let mut p50s = Vec::new();
    for (index, name) in names.iter().enumerate() {
        let p50 = percentile(&mut latency[index], 0.50) / 1000.0;
        let p99 = percentile(&mut latency[index], 0.99) / 1000.0;
        let rate = median(rates[index].clone()) / 1e6;
        p50s.push(p50);
        let key = name.replace([' ', '_'], "-");
        println!("cross-ping-pong {key} p50-us {p50:.2} p99-us {p99:.2}");
        println!("cross-one-way {key} mmsg-per-s {rate:.2}");
        table += &format!("| {name} | {p50:.2} | {p99:.2} | {rate:.2} |\n");
    }
    let [spawn_on, pinned] = spawn_on.map(median);
    let [[ours, theirs], [ours_pinned, theirs_pinned]] = blocking.map(|pair| pair.map(median));
    println!("cross-spawn-on corering-ns {spawn_on:.0} tokio-util-ns {pinned:.0}");
    println!("cross-spawn-blocking corering-ns {ours:.0} tokio-ns {theirs:.0}");
    println!(
        "cross-spawn-blocking-pinned-caller corering-ns {ours_pinned:.0} tokio-ns {theirs_pinned:.0}"
    );
    let best_peer = p50s[2].min(p50s[3]);
    println!(
        "cross-ping-pong-ratio msg-ring-over-best-peer {:.2} msg-ring-over-eventfd {:.2}",
        p50s[0] / best_peer,
        p50s[0] / p50s[1]
    );
    table += &format!(
        "\nspawn_on round trip: corering {spawn_on:.0} ns, tokio-util `spawn_pinned_by_idx` \
         {pinned:.0} ns. spawn_blocking round trip, the caller free to run on either \
         CPU: corering {ours:.0} ns, tokio {theirs:.0} ns; the caller pinned to CPU 1 (tokio's \
         pool threads inherit the pin, corering's do not): corering {ours_pinned:.0} ns, tokio \
         {theirs_pinned:.0} ns. Medians of {} rounds; the latencies are percentiles of every \
         round's samples.\n",
        sizes.rounds
    );
    print!("\n{table}");
    std::fs::create_dir_all("target/bench").unwrap();
    std::fs::write("target/bench/cross.md", table).unwrap();
}
