//! Nop round trips per second: corering (spawned tasks awaiting
//! `corering::op::nop()`) against a hand-written io_uring loop that keeps
//! the same number of nops in flight with the same ring flags.
//!
//! Rounds alternate between the two (A B A B ...). The medians of both
//! rates are reported, and the median over the rounds of corering's rate
//! divided by the loop's in the same round.
//!
//! Usage: `nop [--quick] [--runtime-only | --loop-only]`

use std::time::{Duration, Instant};

use io_uring::{opcode, squeue, IoUring};

/// Nops in flight at once (tasks for corering, SQEs for the loop).
const DEPTH: usize = 128;

fn main() {
    let quick = std::env::args().any(|arg| arg == "--quick");
    let (rounds, ops) = if quick {
        (5, 1_000_000)
    } else {
        (11, 4_000_000)
    };
    // For profilers: one side alone.
    if std::env::args().any(|arg| arg == "--runtime-only") {
        for _ in 0..rounds {
            runtime(ops);
        }
        return;
    }
    if std::env::args().any(|arg| arg == "--loop-only") {
        for _ in 0..rounds {
            hand_written(ops);
        }
        return;
    }
    // Warm both up once before measuring.
    hand_written(ops / 10);
    runtime(ops / 10);
    let mut raw = Vec::new();
    let mut ours = Vec::new();
    let mut ratios = Vec::new();
    for _ in 0..rounds {
        let loop_rate = rate(ops, hand_written(ops));
        let runtime_rate = rate(ops, runtime(ops));
        raw.push(loop_rate);
        ours.push(runtime_rate);
        // Each round's pair ran back to back, so its ratio is what drifts
        // in the machine's speed over the run disturb least.
        ratios.push(runtime_rate / loop_rate);
    }
    println!("nop round trips, {DEPTH} in flight, median of {rounds} rounds of {ops}:");
    println!(
        "  hand-written io_uring loop: {:>6.2} M ops/s",
        median(raw) / 1e6
    );
    println!(
        "  corering tasks:             {:>6.2} M ops/s",
        median(ours) / 1e6
    );
    println!("nop-ratio {:.3}", median(ratios));
}

fn rate(ops: usize, elapsed: Duration) -> f64 {
    ops as f64 / elapsed.as_secs_f64()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// `ops` nops through corering: `DEPTH` tasks, each awaiting nops in turn.
fn runtime(ops: usize) -> Duration {
    let runtime = corering::Runtime::new().expect("corering runtime");
    runtime.block_on(async {
        let started = Instant::now();
        let handles: Vec<_> = (0..DEPTH)
            .map(|_| {
                corering::spawn(async move {
                    for _ in 0..ops / DEPTH {
                        corering::op::nop().await.expect("nop");
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.await.expect("task");
        }
        started.elapsed()
    })
}

/// `ops` nops through a bare ring with corering's flags: `DEPTH` flows, each
/// issuing its share of nops one after another (what the tasks do), with one
/// enter per batch. A CQE's `user_data` names its flow, as in any
/// hand-written loop that keeps per-connection state.
fn hand_written(ops: usize) -> Duration {
    let mut ring: IoUring = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_coop_taskrun()
        .setup_submit_all()
        .setup_cqsize(512)
        .build(256)
        .expect("io_uring");
    let nop = |flow: usize| -> squeue::Entry { opcode::Nop::new().build().user_data(flow as u64) };
    let started = Instant::now();
    let mut remaining = vec![ops / DEPTH; DEPTH];
    let mut flows_left = DEPTH;
    for flow in 0..DEPTH {
        // SAFETY: a nop refers to no memory.
        unsafe { ring.submission().push(&nop(flow)) }.expect("SQ has room");
    }
    let mut ready = Vec::with_capacity(DEPTH);
    while flows_left > 0 {
        ring.submit_and_wait(1).expect("enter");
        ready.extend(ring.completion().map(|cqe| {
            assert!(cqe.result() >= 0);
            cqe.user_data() as usize
        }));
        for flow in ready.drain(..) {
            remaining[flow] -= 1;
            if remaining[flow] == 0 {
                flows_left -= 1;
                continue;
            }
            // SAFETY: a nop refers to no memory.
            unsafe { ring.submission().push(&nop(flow)) }.expect("SQ has room");
        }
    }
    started.elapsed()
}
