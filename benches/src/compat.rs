//! The ecosystem bridge measured: the same hyper service on corering
//! (`examples/hyper_hello`, over `compat::PollIo`) and on tokio
//! (`tokio_hyper`: current-thread runtimes, one per core, `SO_REUSEPORT`),
//! under wrk (HTTP/1.1, 64 connections) and h2load (HTTP/2, 16
//! connections of 100 streams); and the echo server over `PollIo` and
//! tokio's I/O traits (`echo --poll-io`) against the native echo (64
//! connections x 1 KiB), to show what the bridge costs.
//!
//! Method as `net`'s: each server on one core pinned to CPU 0, the load
//! pinned to CPU 1, servers alternating per round, the server's CPU time
//! from `/proc/<pid>/stat` around the load; medians of the rounds.
//! Prints one `compat-...` line per comparison and writes
//! `target/bench/compat.md`.
//!
//! Usage: `compat [--quick]` (run from the repository root after
//! `cargo build --release -p corering --examples --features tokio-io,hyper`
//! and building this crate).

mod harness;
mod process;

use std::fmt::Write as _;

use harness::{echo_load, field_before, measure, median_round, run_load, wrk, Load, Round, Server};

const PORT: u16 = 18_282;

fn main() {
    let quick = std::env::args().any(|arg| arg == "--quick");
    let (rounds, seconds) = if quick { (3, 2) } else { (5, 10) };
    let port = PORT.to_string();
    let url = format!("http://127.0.0.1:{PORT}/");
    let wrk = || wrk(&url, seconds);
    let h2load = || {
        let output = run_load(&[
            "h2load",
            "-t1",
            "-c16",
            "-m100",
            "-D",
            &seconds.to_string(),
            &url,
        ]);
        assert!(
            output.contains(" 0 failed, 0 errored, 0 timeout"),
            "h2load saw failures: {output}"
        );
        // h2load gives the mean request time, not percentiles.
        let mean_us = h2load_mean_us(&output).unwrap_or(f64::NAN);
        Load {
            per_second: field_before(&output, "req/s").expect("h2load printed req/s"),
            p50_us: mean_us,
            p99_us: f64::NAN,
        }
    };
    let addr = format!("127.0.0.1:{PORT}");
    let echo = || echo_load(&addr, 64, 1024, seconds);
    let server = |name, program: &str, args: &[&str]| Server {
        name,
        program: program.into(),
        args: args.iter().map(|arg| arg.to_string()).collect(),
    };
    let hypers = || {
        [
            server(
                "corering hyper_hello",
                "target/release/examples/hyper_hello",
                &[&port, "1"],
            ),
            server("tokio + hyper", "target/release/tokio_hyper", &[&port, "1"]),
        ]
    };
    let echoes = [
        server(
            "corering echo --poll-io",
            "target/release/examples/echo",
            &[&port, "1", "--poll-io"],
        ),
        server(
            "corering echo",
            "target/release/examples/echo",
            &[&port, "1"],
        ),
    ];
    println!("compat: server on CPU 0, load on CPU 1, median of {rounds} rounds of {seconds} s");
    let comparisons = [
        (
            "hyper-http1",
            "HTTP/1.1, wrk -c64",
            hypers(),
            &wrk as &dyn Fn() -> Load,
        ),
        (
            "hyper-http2",
            "HTTP/2, h2load -c16 -m100",
            hypers(),
            &h2load,
        ),
        (
            "poll-io-echo",
            "echo, 64 connections x 1 KiB",
            echoes,
            &echo,
        ),
    ];
    let mut table = String::from(
        "## The ecosystem bridge\n\n\
         | Workload | Server | req/s | req per server CPU-s | p50 (µs) | ratio per CPU-s |\n\
         |---|---|---:|---:|---:|---:|\n",
    );
    for (key, title, servers, load) in comparisons {
        let mut results: [Vec<Round>; 2] = [Vec::new(), Vec::new()];
        for _ in 0..rounds {
            for (index, server) in servers.iter().enumerate() {
                results[index].push(measure(server, PORT, load));
            }
        }
        let medians = [median_round(&results[0]), median_round(&results[1])];
        println!("{title}:");
        for (server, round) in servers.iter().zip(&medians) {
            println!(
                "  {:<24} {:>10.0} req/s  {:>10.0} req/CPU-s  p50 {:.0} us",
                server.name, round.per_second, round.per_cpu_second, round.p50_us
            );
        }
        // The median of the rounds' ratios: the two servers of a round
        // ran back to back, so the machine's drift falls on both alike.
        let round_ratios = |figure: fn(&Round) -> f64| {
            let mut ratios: Vec<f64> = results[0]
                .iter()
                .zip(&results[1])
                .map(|(first, second)| figure(first) / figure(second))
                .collect();
            ratios.sort_by(f64::total_cmp);
            ratios[ratios.len() / 2]
        };
        let ratio = round_ratios(|round| round.per_cpu_second);
        println!(
            "compat-{key} per-cpu-ratio {ratio:.3} per-second-ratio {:.3} ratio-of-medians {:.3}",
            round_ratios(|round| round.per_second),
            medians[0].per_cpu_second / medians[1].per_cpu_second
        );
        for (index, (server, round)) in servers.iter().zip(&medians).enumerate() {
            let ratio = if index == 0 {
                format!("{ratio:.2}")
            } else {
                "1".into()
            };
            let _ = writeln!(
                table,
                "| {title} | {} | {:.0} | {:.0} | {:.0} | {ratio} |",
                server.name, round.per_second, round.per_cpu_second, round.p50_us
            );
        }
    }
    let _ = writeln!(
        table,
        "\nMedians of {rounds} rounds of {seconds} s; the ratio is the median over the \
         rounds of the first server's requests per server CPU-second over the second's \
         (run back to back). h2load reports the mean \
         request time, shown as p50."
    );
    std::fs::create_dir_all("target/bench").expect("create target/bench");
    std::fs::write("target/bench/compat.md", table).expect("write target/bench/compat.md");
}

/// h2load's mean request time (`time for request:  min  max  mean ...`),
/// in µs.
fn h2load_mean_us(text: &str) -> Option<f64> {
    let line = text
        .lines()
        .find(|line| line.starts_with("time for request:"))?;
    harness::micros(line.split_whitespace().nth(5)?)
}
