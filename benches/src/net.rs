//! Networking benchmarks: the hello HTTP server under wrk and the echo
//! server under the echo load generator, corering against peers running
//! the same per-connection logic: tokio's current-thread runtime, monoio,
//! compio, and a hand-written io_uring loop with no runtime (the floor).
//!
//! Method: the server runs pinned to CPU 0, the load generator pinned to
//! CPU 1; rounds alternate between the servers; each round reads the
//! server's CPU time (user and system, from `/proc/<pid>/stat`) around the
//! load. Reported per server, as medians over the rounds: requests (round
//! trips) per second, requests per server-CPU-second, and server
//! user-space microseconds per request. Writes `target/bench/report.md`
//! and SVG charts next to it.
//!
//! Usage: `net [--quick]` (run from the repository root after
//! `cargo build --release --examples` and building this crate).
//!
//! `net --ab DIR [--quick]` instead measures this build's hello and echo
//! servers against those in `DIR` (the `target/release` of an earlier
//! commit, built by `ci/ab`), alternating rounds, and prints the ratios
//! of requests per server-CPU-second, new over old.
//!
//! Every run first measures echo with stall reports on (`--stall-ms 100`)
//! against off, alternating rounds (`net-stall ...`); `net --stall-only`
//! stops after that.

mod harness;
mod process;
mod report;

use harness::{echo_load, measure, median_round, wrk, Load, Round, Server};
use report::Workload;

/// The servers of one workload (`hello` or `echo`): corering first, tokio
/// (the reference of the ratios) second, then the other peers and the raw
/// loop.
fn servers(workload: &str, port: u16) -> Vec<Server> {
    let port = port.to_string();
    let tokio = match workload {
        "hello" => "target/release/tokio_hello",
        _ => "target/release/tokio_echo",
    };
    let with_idle = |args: Vec<String>| with_idle(workload, args);
    vec![
        corering(workload, "corering", "target/release", port.clone()),
        Server {
            name: "tokio-current-thread",
            program: tokio.into(),
            args: with_idle(vec![port.clone()]),
        },
        Server {
            // One runtime per core with SO_REUSEPORT listeners; pinned to
            // one CPU it runs one.
            name: "tokio-per-core",
            program: "target/release/tokio_per_core".into(),
            args: with_idle(vec![workload.into(), port.clone()]),
        },
        Server {
            name: "monoio",
            program: "target/release/monoio_server".into(),
            args: with_idle(vec![workload.into(), port.clone()]),
        },
        Server {
            name: "glommio",
            program: "target/release/glommio_server".into(),
            args: with_idle(vec![workload.into(), port.clone()]),
        },
        Server {
            name: "compio",
            program: "target/release/compio_server".into(),
            args: with_idle(vec![workload.into(), port.clone()]),
        },
        Server {
            name: "raw io_uring loop",
            program: "target/release/raw_loop".into(),
            args: vec![workload.into(), port],
        },
    ]
}

/// Hello takes an idle timeout of 60 s after its other arguments.
fn with_idle(workload: &str, mut args: Vec<String>) -> Vec<String> {
    if workload == "hello" {
        args.push("60".into());
    }
    args
}

/// corering's example server for `workload`, from the build in `dir`, on
/// one core.
fn corering(workload: &str, name: &'static str, dir: &str, port: String) -> Server {
    let example = if workload == "hello" { "hello" } else { "echo" };
    Server {
        name,
        program: format!("{dir}/examples/{example}"),
        args: with_idle(workload, vec![port, "1".into()]),
    }
}

/// The echo grid: connections by message size. Full runs measure every
/// cell; quick runs the corners and the middle.
const GRID_CONNECTIONS: [usize; 5] = [1, 16, 64, 256, 1000];
const GRID_BYTES: [usize; 3] = [64, 1024, 16 * 1024];
const QUICK_GRID_CONNECTIONS: [usize; 3] = [1, 64, 1000];
const QUICK_GRID_BYTES: [usize; 2] = [64, 16 * 1024];

fn main() {
    let quick = std::env::args().any(|arg| arg == "--quick");
    // The kernel charges CPU time to user or system a whole clock tick at a
    // time, by sampling: a server that spends ~10% of its time in user
    // space gets only tens of user ticks per second, so user time needs
    // long rounds to be precise. Quick rounds report it roughly. The grid's
    // rounds are shorter: it compares throughput and CPU per round trip
    // across many cells, not user time.
    let (rounds, seconds) = if quick { (3, 2) } else { (5, 10) };
    let (grid_rounds, grid_seconds) = if quick { (1, 1) } else { (5, 2) };
    let port = 18_181;
    println!(
        "networking, server on CPU 0, load on CPU 1, median of {rounds} rounds of {seconds} s"
    );
    let url = format!("http://127.0.0.1:{port}/");
    let wrk = |seconds: u32| wrk(&url, seconds);
    let addr = format!("127.0.0.1:{port}");
    let echo_load = |connections: usize, bytes: usize, seconds: u32| {
        echo_load(&addr, connections, bytes, seconds)
    };
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|arg| arg == "--ab") {
        let before = args
            .get(at + 1)
            .expect("--ab takes the directory of the earlier build");
        ab(
            before,
            rounds.max(5),
            seconds,
            port,
            &|| wrk(seconds),
            &|| echo_load(64, 1024, seconds),
        );
        return;
    }
    let stall_only = args.iter().any(|arg| arg == "--stall-only");
    stall_cost(rounds, seconds, port, &|| echo_load(64, 1024, seconds));
    if stall_only {
        return;
    }
    let workloads = [
        measure_workload("hello", "hello (wrk -c64)".into(), rounds, port, &|| {
            wrk(seconds)
        }),
        measure_workload(
            "echo",
            "echo (64 connections x 1 KiB)".into(),
            rounds,
            port,
            &|| echo_load(64, 1024, seconds),
        ),
    ];
    let (grid_connections, grid_bytes): (&[usize], &[usize]) = if quick {
        (&QUICK_GRID_CONNECTIONS, &QUICK_GRID_BYTES)
    } else {
        (&GRID_CONNECTIONS, &GRID_BYTES)
    };
    let mut grid = Vec::new();
    for &bytes in grid_bytes {
        for &connections in grid_connections {
            let workload = measure_workload(
                "grid",
                format!("echo {connections} x {bytes} B"),
                grid_rounds,
                port,
                &|| echo_load(connections, bytes, grid_seconds),
            );
            let ours = workload.results[0].1;
            println!(
                "net-grid connections {connections} bytes {bytes} per-cpu-ratio {:.3} best-peer-per-cpu-ratio {:.3} raw-per-cpu-ratio {:.3}",
                ours.per_cpu_second / workload.results[1].1.per_cpu_second,
                ours.per_cpu_second / workload.best_peer().1.per_cpu_second,
                ours.per_cpu_second / workload.raw_loop().per_cpu_second,
            );
            grid.push(report::Cell {
                connections,
                bytes,
                workload,
            });
        }
    }
    let method = format!(
        "Server pinned to CPU 0, load generator to CPU 1; servers alternate per round; \
         medians of {rounds} rounds of {seconds} s (the echo grid: {grid_rounds} of {grid_seconds} s); \
         CPU time from /proc/<pid>/stat."
    );
    let dir = std::path::Path::new("target/bench");
    report::write(dir, &method, &workloads, &grid)
        .expect("write target/bench/report.md and charts");
    println!("report: target/bench/report.md");
}

/// Runs `rounds` rounds of `load` against each server of `key` (`hello`,
/// or an echo for `echo` and `grid`), alternating, prints the medians and
/// ratios, and returns them.
fn measure_workload(
    key: &'static str,
    title: String,
    rounds: usize,
    port: u16,
    load: &dyn Fn() -> Load,
) -> Workload {
    let servers = servers(if key == "hello" { "hello" } else { "echo" }, port);
    let workload = alternate(key, title, &servers, rounds, port, load);
    print_ratios(&workload);
    workload
}

/// Runs `rounds` rounds of `load` against each of `servers`, alternating,
/// and prints and returns the medians.
fn alternate(
    key: &'static str,
    title: String,
    servers: &[Server],
    rounds: usize,
    port: u16,
    load: &dyn Fn() -> Load,
) -> Workload {
    let mut results: Vec<Vec<Round>> = vec![Vec::new(); servers.len()];
    for _ in 0..rounds {
        for (index, server) in servers.iter().enumerate() {
            results[index].push(measure(server, port, load));
        }
    }
    let workload = Workload {
        key,
        title,
        results: servers
            .iter()
            .zip(&results)
            .map(|(server, rounds)| (server.name, median_round(rounds)))
            .collect(),
    };
    println!("{}:", workload.title);
    for (name, round) in &workload.results {
        println!(
            "  {:<22} {:>10.0} req/s  {:>10.0} req/CPU-s  {:>6.2} us user/req  p50 {:.0} us  p99 {:.0} us",
            name,
            round.per_second,
            round.per_cpu_second,
            round.user_us_per_request,
            round.p50_us,
            round.p99_us
        );
    }
    workload
}

/// corering's ratios to tokio, the best peer and the raw loop.
fn print_ratios(workload: &Workload) {
    let key = workload.key;
    let ours = workload.results[0].1;
    let tokio = workload.results[1].1;
    let (best_name, best) = workload.best_peer();
    let raw = workload.raw_loop();
    println!(
        "  corering per CPU-s: {:.2}x tokio, {:.2}x best peer ({best_name}), {:.2}x raw loop; \
         user time per req: {:.2}x tokio, {:.2}x raw loop",
        ours.per_cpu_second / tokio.per_cpu_second,
        ours.per_cpu_second / best.per_cpu_second,
        ours.per_cpu_second / raw.per_cpu_second,
        ours.user_us_per_request / tokio.user_us_per_request,
        ours.user_us_per_request / raw.user_us_per_request,
    );
    if key != "grid" {
        println!(
            "net-{key} per-cpu-ratio {:.3} user-ratio {:.3} best-peer-per-cpu-ratio {:.3} raw-per-cpu-ratio {:.3} raw-user-ratio {:.3}",
            ours.per_cpu_second / tokio.per_cpu_second,
            ours.user_us_per_request / tokio.user_us_per_request,
            ours.per_cpu_second / best.per_cpu_second,
            ours.per_cpu_second / raw.per_cpu_second,
            ours.user_us_per_request / raw.user_us_per_request,
        );
    }
}

/// This build's hello and echo against the build in `before`: requests
/// per server-CPU-second and per second, new over old, medians of the
/// rounds.
fn ab(
    before: &str,
    rounds: usize,
    seconds: u32,
    port: u16,
    hello: &dyn Fn() -> Load,
    echo: &dyn Fn() -> Load,
) {
    println!("A/B against {before}");
    for (workload, title, load) in [
        ("hello", "hello (wrk -c64)", hello),
        ("echo", "echo (64 connections x 1 KiB)", echo),
    ] {
        let servers = [
            corering(workload, "corering", "target/release", port.to_string()),
            corering(workload, "corering-before", before, port.to_string()),
        ];
        let result = alternate(
            "ab",
            format!("{title}, {rounds} rounds of {seconds} s"),
            &servers,
            rounds,
            port,
            load,
        );
        let (new, old) = (result.results[0].1, result.results[1].1);
        println!(
            "ab-{workload} per-cpu-ratio {:.3} per-second-ratio {:.3}",
            new.per_cpu_second / old.per_cpu_second,
            new.per_second / old.per_second,
        );
    }
}

/// Echo with stall reports on (a 100 ms threshold) against off, rounds
/// alternated: what the reports cost per request.
fn stall_cost(rounds: usize, seconds: u32, port: u16, echo: &dyn Fn() -> Load) {
    let off = corering("echo", "corering", "target/release", port.to_string());
    let mut on = corering(
        "echo",
        "corering-stall-reports",
        "target/release",
        port.to_string(),
    );
    on.args.extend(["--stall-ms".into(), "100".into()]);
    let result = alternate(
        "stall",
        format!("echo (64 connections x 1 KiB), stall reports on and off, {rounds} rounds of {seconds} s"),
        &[off, on],
        rounds,
        port,
        echo,
    );
    let (off, on) = (result.results[0].1, result.results[1].1);
    println!(
        "net-stall cpu-per-request-on-over-off {:.4} per-second-ratio {:.3}",
        off.per_cpu_second / on.per_cpu_second,
        on.per_second / off.per_second,
    );
}
