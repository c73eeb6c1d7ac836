//! Networking benchmarks: the hello HTTP server under wrk and the echo
//! server under the echo load generator, corering against tokio's
//! current-thread runtime running the same logic.
//!
//! Method: the server runs pinned to CPU 0, the load generator pinned to
//! CPU 1; rounds alternate between the runtimes; each round reads the
//! server's CPU time (user and system, from `/proc/<pid>/stat`) around the
//! load. Reported per runtime, as medians over the rounds: requests (round
//! trips) per second, requests per server-CPU-second, and server
//! user-space microseconds per request.
//!
//! Usage: `net [--quick]` (run from the repository root after
//! `cargo build --release --examples` and building this crate).

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server under test.
struct Server {
    name: &'static str,
    program: &'static str,
    args: &'static [&'static str],
}

/// One round's figures.
#[derive(Clone, Copy, Debug)]
struct Round {
    per_second: f64,
    per_cpu_second: f64,
    user_us_per_request: f64,
}

fn main() {
    let quick = std::env::args().any(|arg| arg == "--quick");
    // The kernel charges CPU time to user or system a whole clock tick at a
    // time, by sampling: a server that spends ~10% of its time in user
    // space gets only tens of user ticks per second, so user time needs
    // long rounds to be precise. Quick rounds report it roughly.
    let (rounds, seconds) = if quick { (3, 2) } else { (5, 10) };
    let port = 18_181;
    let port_arg: &'static str = Box::leak(port.to_string().into_boxed_str());
    let hello = [
        Server {
            name: "corering",
            program: "target/release/examples/hello",
            args: Box::leak(vec![port_arg, "1", "60"].into_boxed_slice()),
        },
        Server {
            name: "tokio-current-thread",
            program: "target/release/tokio_hello",
            args: Box::leak(vec![port_arg, "60"].into_boxed_slice()),
        },
    ];
    let echo = [
        Server {
            name: "corering",
            program: "target/release/examples/echo",
            args: Box::leak(vec![port_arg, "1"].into_boxed_slice()),
        },
        Server {
            name: "tokio-current-thread",
            program: "target/release/tokio_echo",
            args: Box::leak(vec![port_arg].into_boxed_slice()),
        },
    ];
    println!(
        "networking, server on CPU 0, load on CPU 1, median of {rounds} rounds of {seconds} s"
    );
    let url = format!("http://127.0.0.1:{port}/");
    let secs = seconds.to_string();
    let wrk = |_: &Server| -> f64 {
        let output = run_load(&["wrk", "-t1", "-c64", &format!("-d{secs}s"), &url]);
        field_after(&output, "Requests/sec:").expect("wrk printed Requests/sec")
    };
    report("hello (wrk -c64)", &hello, rounds, port, &wrk);
    let addr = format!("127.0.0.1:{port}");
    let echo_load = |_: &Server| -> f64 {
        let output = run_load(&[
            "target/release/examples/echo_client",
            &addr,
            "64",
            "1024",
            &secs,
        ]);
        field_before(&output, "round trips/s").expect("echo_client printed round trips/s")
    };
    report(
        "echo (64 connections x 1 KiB)",
        &echo,
        rounds,
        port,
        &echo_load,
    );
}

/// Runs `rounds` rounds of `load` against each server, alternating, and
/// prints the medians and the ratios corering / peer.
fn report(
    title: &str,
    servers: &[Server; 2],
    rounds: usize,
    port: u16,
    load: &dyn Fn(&Server) -> f64,
) {
    let mut results: [Vec<Round>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..rounds {
        for (index, server) in servers.iter().enumerate() {
            results[index].push(measure(server, port, load));
        }
    }
    println!("{title}:");
    let medians: Vec<Round> = results.iter().map(|rounds| median_round(rounds)).collect();
    for (server, round) in servers.iter().zip(&medians) {
        println!(
            "  {:<22} {:>10.0} req/s  {:>10.0} req/CPU-s  {:>6.2} us user/req",
            server.name, round.per_second, round.per_cpu_second, round.user_us_per_request
        );
    }
    let (ours, peer) = (medians[0], medians[1]);
    println!(
        "  ratio corering/tokio: throughput {:.2}, req per CPU-s {:.2}, user time per req {:.2}",
        ours.per_second / peer.per_second,
        ours.per_cpu_second / peer.per_cpu_second,
        ours.user_us_per_request / peer.user_us_per_request
    );
    let key = title.split_whitespace().next().unwrap_or(title);
    println!(
        "net-{key} per-cpu-ratio {:.3} user-ratio {:.3}",
        ours.per_cpu_second / peer.per_cpu_second,
        ours.user_us_per_request / peer.user_us_per_request
    );
}

/// One round: start the server on CPU 0, run the load on CPU 1, read the
/// server's CPU time around it.
fn measure(server: &Server, port: u16, load: &dyn Fn(&Server) -> f64) -> Round {
    let mut child = start_server(server, port);
    let before = cpu_ticks(child.id());
    let started = Instant::now();
    let per_second = load(server);
    let elapsed = started.elapsed().as_secs_f64();
    let after = cpu_ticks(child.id());
    stop(&mut child);
    let ticks = ticks_per_second();
    let user = (after.0 - before.0) as f64 / ticks;
    let cpu = user + (after.1 - before.1) as f64 / ticks;
    // The load generators report a rate over their own run; the CPU time
    // spans the same run (plus process start-up of the generator).
    let requests = per_second * elapsed.max(1e-9);
    Round {
        per_second,
        per_cpu_second: requests / cpu.max(1e-9),
        user_us_per_request: user * 1e6 / requests.max(1.0),
    }
}

fn start_server(server: &Server, port: u16) -> Child {
    let child = Command::new("taskset")
        .args(["-c", "0", server.program])
        .args(server.args)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {}: {error}", server.program));
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{} did not start listening",
            server.name
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
    // Let the port's connections drain before the next server binds it.
    std::thread::sleep(Duration::from_millis(200));
}

fn run_load(command: &[&str]) -> String {
    let output = Command::new("taskset")
        .args(["-c", "1"])
        .args(command)
        .output()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", command[0]));
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{} failed: {text}{}",
        command[0],
        String::from_utf8_lossy(&output.stderr)
    );
    text
}

/// (user, system) CPU ticks of process `pid`.
fn cpu_ticks(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/<pid>/stat");
    // Fields after the command name, which ends with the last ')'.
    let rest = &stat[stat.rfind(')').expect("stat has a command name") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the full line, 12 and 13 here.
    (fields[11].parse().unwrap(), fields[12].parse().unwrap())
}

fn ticks_per_second() -> f64 {
    let output = Command::new("getconf").arg("CLK_TCK").output().ok();
    output
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The number right after `label` in `text`.
fn field_after(text: &str, label: &str) -> Option<f64> {
    let line = BufReader::new(text.as_bytes())
        .lines()
        .map_while(Result::ok)
        .find(|line| line.contains(label))?;
    line[line.find(label)? + label.len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The number right before `label` in `text`.
fn field_before(text: &str, label: &str) -> Option<f64> {
    let before = &text[..text.find(label)?];
    before.split_whitespace().last()?.parse().ok()
}

fn median_round(rounds: &[Round]) -> Round {
    let median = |f: fn(&Round) -> f64| {
        let mut values: Vec<f64> = rounds.iter().map(f).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    Round {
        per_second: median(|r| r.per_second),
        per_cpu_second: median(|r| r.per_cpu_second),
        user_us_per_request: median(|r| r.user_us_per_request),
    }
}
