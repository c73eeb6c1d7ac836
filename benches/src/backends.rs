//! The epoll backend measured: corering's hello and echo examples on
//! epoll (`CORERING_BACKEND=epoll`, as where io_uring is refused) beside
//! tokio (current-thread, the same servers `net` runs) and a hand-written
//! epoll loop (`epoll_loop`, the floor, as `raw_loop` is the ring's), and
//! corering on io_uring for scale; hello under wrk (64 connections), echo
//! under echo_client (64 connections x 1 KiB).
//!
//! Method as `net`'s: each server on one core pinned to CPU 0, the load
//! pinned to CPU 1, servers alternating within each round, the server's
//! CPU time from `/proc/<pid>/stat` around the load. The ratios are the
//! median over the rounds of corering-on-epoll's requests per server
//! CPU-second over each peer's in the same round. Prints
//! `backends-hello` and `backends-echo` lines and writes
//! `target/bench/backends.md`.
//!
//! Usage: `backends [--quick]` (from the repository root, after the
//! release build of the examples and of this crate).

mod harness;
mod process;

use std::fmt::Write as _;

use harness::{echo_load, measure, median_round, wrk, Load, Round, Server};

const PORT: u16 = 18_383;

fn main() {
    let quick = std::env::args().any(|arg| arg == "--quick");
    let (rounds, seconds) = if quick { (3, 2) } else { (5, 10) };
    let url = format!("http://127.0.0.1:{PORT}/");
    let addr = format!("127.0.0.1:{PORT}");
    let hello_load = || wrk(&url, seconds);
    let echo = || echo_load(&addr, 64, 1024, seconds);
    println!("backends: server on CPU 0, load on CPU 1, median of {rounds} rounds of {seconds} s");
    let mut table = String::from(
        "## The epoll backend\n\n\
         | Workload | Server | req/s | req per server CPU-s | p50 (µs) | corering-epoll per CPU-s over it |\n\
         |---|---|---:|---:|---:|---:|\n",
    );
    for (workload, title, load) in [
        ("hello", "hello, wrk -c64", &hello_load as &dyn Fn() -> Load),
        ("echo", "echo, 64 connections x 1 KiB", &echo),
    ] {
        let servers = servers(workload);
        let mut results: Vec<Vec<Round>> = vec![Vec::new(); servers.len()];
        for _ in 0..rounds {
            for (index, server) in servers.iter().enumerate() {
                results[index].push(measure(server, PORT, load));
            }
        }
        // corering on epoll is first: each peer's ratio is the median of
        // the rounds' ratios (the servers of a round ran back to back).
        let ratio_over = |peer: usize| {
            let mut ratios: Vec<f64> = results[0]
                .iter()
                .zip(&results[peer])
                .map(|(ours, theirs)| ours.per_cpu_second / theirs.per_cpu_second)
                .collect();
            ratios.sort_by(f64::total_cmp);
            ratios[ratios.len() / 2]
        };
        println!("{title}:");
        let mut line = format!("backends-{workload} per-cpu-ratio");
        for (index, server) in servers.iter().enumerate() {
            let round = median_round(&results[index]);
            let ratio = ratio_over(index);
            println!(
                "  {:<22} {:>10.0} req/s  {:>10.0} req/CPU-s  p50 {:.0} us  epoll-ratio {ratio:.3}",
                server.name, round.per_second, round.per_cpu_second, round.p50_us
            );
            let _ = writeln!(
                table,
                "| {title} | {} | {:.0} | {:.0} | {:.0} | {ratio:.2} |",
                server.name, round.per_second, round.per_cpu_second, round.p50_us
            );
            if index > 0 {
                let _ = write!(line, " {} {ratio:.3}", key(server.name));
            }
        }
        println!("{line}");
    }
    let _ = writeln!(
        table,
        "\nMedians of {rounds} rounds of {seconds} s; the last column is the median over \
         the rounds of corering-on-epoll's requests per server CPU-second over that \
         server's, run back to back in the same round."
    );
    std::fs::create_dir_all("target/bench").expect("create target/bench");
    std::fs::write("target/bench/backends.md", table).expect("write target/bench/backends.md");
}

/// A one-word name for the `backends-...` line.
fn key(name: &str) -> &'static str {
    match name {
        "tokio-current-thread" => "tokio",
        "epoll loop" => "epoll-loop",
        _ => "io_uring",
    }
}

fn servers(workload: &str) -> Vec<Server> {
    let port = PORT.to_string();
    let example = format!("target/release/examples/{workload}");
    // hello's idle timeout, as `net` gives it.
    let mut corering_args = vec![port.clone(), "1".to_string()];
    let mut tokio_args = vec![port.clone()];
    if workload == "hello" {
        corering_args.push("60".into());
        tokio_args.push("60".into());
    }
    let with_env = |backend: &str| {
        let mut args = vec![format!("CORERING_BACKEND={backend}"), example.clone()];
        args.extend(corering_args.iter().cloned());
        args
    };
    vec![
        Server {
            name: "corering on epoll",
            program: "env".into(),
            args: with_env("epoll"),
        },
        Server {
            name: "tokio-current-thread",
            program: format!("target/release/tokio_{workload}"),
            args: tokio_args,
        },
        Server {
            name: "epoll loop",
            program: "target/release/epoll_loop".into(),
            args: vec![workload.into(), port.clone()],
        },
        Server {
            name: "corering on io_uring",
            program: "env".into(),
            args: with_env("io_uring"),
        },
    ]
}
