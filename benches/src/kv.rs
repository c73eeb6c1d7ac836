//! The kv example against redis-server, both driven by redis-benchmark.
//!
//! Each server runs on one core pinned to CPU 0 (`taskset`); the load,
//! `redis-benchmark -t set,get -c 50` with `-P 1` and with `-P 16`, runs on
//! CPU 1. The figure is requests per server CPU-second: the requests of
//! both tests over the server's user and system time around the load
//! (`/proc/<pid>/stat`). Rounds alternate the servers; medians of the
//! rounds, and the ratio is the median of the per-round ratios.
//!
//! Prints `kv-redis pipeline P corering-per-cpu X redis-per-cpu Y ratio Z`
//! per pipeline depth and writes the table to `target/bench/kv.md`.
//!
//! Usage: `kv [--quick]` (run from the repository root, after
//! `cargo build --release --example kv`).

mod process;

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use process::{cpu_ticks, ticks_per_second};

const PORT: u16 = 16379;

/// The two servers, each as `taskset -c 0 <command>`.
fn start(corering: bool) -> Child {
    let port = PORT.to_string();
    let mut command = Command::new("taskset");
    command.args(["-c", "0"]);
    if corering {
        command.args(["target/release/examples/kv", &port, "1"]);
    } else {
        command.args([
            "redis-server",
            "--port",
            &port,
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
        ]);
    }
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start the server: {error}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", PORT)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the server did not start listening"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// One round against a running server: requests per server CPU-second.
fn round(child: &Child, requests: usize, pipeline: usize) -> f64 {
    let before = cpu_ticks(child.id());
    let output = Command::new("taskset")
        .args(["-c", "1", "redis-benchmark", "-p", &PORT.to_string()])
        .args(["-t", "set,get", "-c", "50", "-q"])
        .args(["-n", &requests.to_string(), "-P", &pipeline.to_string()])
        .output()
        .expect("cannot run redis-benchmark");
    assert!(
        output.status.success(),
        "redis-benchmark failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let after = cpu_ticks(child.id());
    let ticks = (after.0 + after.1) - (before.0 + before.1);
    let seconds = ticks as f64 / ticks_per_second();
    // Two tests of `requests` each.
    (2 * requests) as f64 / seconds.max(1e-3)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let quick = std::env::args().any(|arg| arg == "--quick");
    let (rounds, requests) = if quick { (3, 200_000) } else { (5, 1_000_000) };
    let mut table = String::from(
        "### kv against redis-server (`benches/src/kv.rs`)\n\n\
         redis-benchmark `-t set,get -c 50`, each server on one core (CPU 0), the \
         load on CPU 1; requests per server CPU-second.\n\n\
         | pipeline | corering kv | redis-server | ratio |\n| ---: | ---: | ---: | ---: |\n",
    );
    for pipeline in [1, 16] {
        let (mut ours, mut theirs, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            let mut pair = [0.0; 2];
            for (index, corering) in [true, false].into_iter().enumerate() {
                let mut child = start(corering);
                pair[index] = round(&child, requests, pipeline);
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(200));
            }
            ours.push(pair[0]);
            theirs.push(pair[1]);
            ratios.push(pair[0] / pair[1]);
        }
        let (ours, theirs, ratio) = (median(ours), median(theirs), median(ratios));
        println!(
            "kv-redis pipeline {pipeline} corering-per-cpu {ours:.0} redis-per-cpu {theirs:.0} ratio {ratio:.3}"
        );
        table += &format!("| {pipeline} | {ours:.0} | {theirs:.0} | {ratio:.2} |\n");
    }
    print!("\n{table}");
    std::fs::create_dir_all("target/bench").unwrap();
    std::fs::write("target/bench/kv.md", table).unwrap();
}
