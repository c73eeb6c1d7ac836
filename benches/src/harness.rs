//! What the server benchmarks share (`net`, `compat`): a server started
//! pinned to CPU 0, a load generator run pinned to CPU 1, the server's CPU
//! time read around the load, and the parsers of the generators' output.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::{cpu_ticks, ticks_per_second};

/// What one run of a load generator reports.
pub struct Load {
    pub per_second: f64,
    pub p50_us: f64,
    pub p99_us: f64,
}

/// A server under test.
pub struct Server {
    pub name: &'static str,
    pub program: String,
    pub args: Vec<String>,
}

/// One round's figures.
#[derive(Clone, Copy, Debug)]
pub struct Round {
    pub per_second: f64,
    /// Median and 99th-percentile latency in µs, as the load generator
    /// (wrk, echo_client) reports them.
    pub p50_us: f64,
    pub p99_us: f64,
    pub per_cpu_second: f64,
    pub user_us_per_request: f64,
}

/// wrk on one thread and 64 connections for `seconds` against `url`.
pub fn wrk(url: &str, seconds: u32) -> Load {
    let output = run_load(&[
        "wrk",
        "-t1",
        "-c64",
        "--latency",
        &format!("-d{seconds}s"),
        url,
    ]);
    Load {
        per_second: field_after(&output, "Requests/sec:").expect("wrk printed Requests/sec"),
        p50_us: wrk_percentile(&output, "50%").expect("wrk printed the median latency"),
        p99_us: wrk_percentile(&output, "99%").expect("wrk printed the 99th percentile"),
    }
}

/// The echo load generator (`examples/echo_client`): `connections`
/// connections each sending `bytes` and checking the echo, for `seconds`.
pub fn echo_load(addr: &str, connections: usize, bytes: usize, seconds: u32) -> Load {
    let output = run_load(&[
        "target/release/examples/echo_client",
        addr,
        &connections.to_string(),
        &bytes.to_string(),
        &seconds.to_string(),
    ]);
    Load {
        per_second: field_before(&output, "round trips/s")
            .expect("echo_client printed round trips/s"),
        p50_us: echo_percentile(&output, "p50 ").expect("echo_client printed p50"),
        p99_us: echo_percentile(&output, "p99 ").expect("echo_client printed p99"),
    }
}

/// One round: start the server on CPU 0, run the load on CPU 1, read the
/// server's CPU time around it.
pub fn measure(server: &Server, port: u16, load: &dyn Fn() -> Load) -> Round {
    let mut child = start_server(server, port);
    let before = cpu_ticks(child.id());
    let started = Instant::now();
    let Load {
        per_second,
        p50_us,
        p99_us,
    } = load();
    let elapsed = started.elapsed().as_secs_f64();
    let after = cpu_ticks(child.id());
    stop(&mut child, server);
    let ticks = ticks_per_second();
    let user = (after.0 - before.0) as f64 / ticks;
    let cpu = user + (after.1 - before.1) as f64 / ticks;
    // The load generators report a rate over their own run; the CPU time
    // spans the same run (plus process start-up of the generator).
    let requests = per_second * elapsed.max(1e-9);
    Round {
        per_second,
        p50_us,
        p99_us,
        per_cpu_second: requests / cpu.max(1e-9),
        user_us_per_request: user * 1e6 / requests.max(1.0),
    }
}

pub fn start_server(server: &Server, port: u16) -> Child {
    let child = Command::new("taskset")
        .args(["-c", "0", &server.program])
        .args(&server.args)
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

pub fn stop(child: &mut Child, server: &Server) {
    // A server that exited on its own during the load failed.
    if let Ok(Some(status)) = child.try_wait() {
        panic!("{} exited during the round: {status}", server.name);
    }
    let _ = child.kill();
    let _ = child.wait();
    // Let the port's connections drain before the next server binds it.
    std::thread::sleep(Duration::from_millis(200));
}

pub fn run_load(command: &[&str]) -> String {
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

/// The number right after `label` in `text`.
pub fn field_after(text: &str, label: &str) -> Option<f64> {
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

/// A latency percentile of wrk's `--latency` distribution (`  99%  1.23ms`),
/// in µs.
pub fn wrk_percentile(text: &str, label: &str) -> Option<f64> {
    let line = text
        .lines()
        .find(|line| line.trim_start().starts_with(label))?;
    micros(line.split_whitespace().nth(1)?)
}

/// A duration as wrk and h2load print it (`85.20us`, `1.23ms`, `2s`), in
/// µs.
pub fn micros(value: &str) -> Option<f64> {
    let split = value.find(|c: char| c.is_ascii_alphabetic())?;
    let number: f64 = value[..split].parse().ok()?;
    let scale = match &value[split..] {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        _ => return None,
    };
    Some(number * scale)
}

/// A latency percentile of echo_client's summary (`p50 85.2µs, p99 1.3ms`),
/// in µs.
pub fn echo_percentile(text: &str, label: &str) -> Option<f64> {
    let rest = &text[text.find(label)? + label.len()..];
    let value = rest.split([',', '\n']).next()?.trim();
    let split = value.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let number: f64 = value[..split].parse().ok()?;
    let scale = match &value[split..] {
        "ns" => 1e-3,
        "µs" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        _ => return None,
    };
    Some(number * scale)
}

/// The number right before `label` in `text`.
pub fn field_before(text: &str, label: &str) -> Option<f64> {
    let before = &text[..text.find(label)?];
    before.split_whitespace().last()?.parse().ok()
}

pub fn median_round(rounds: &[Round]) -> Round {
    let median = |f: fn(&Round) -> f64| {
        let mut values: Vec<f64> = rounds.iter().map(f).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    Round {
        per_second: median(|r| r.per_second),
        p50_us: median(|r| r.p50_us),
        p99_us: median(|r| r.p99_us),
        per_cpu_second: median(|r| r.per_cpu_second),
        user_us_per_request: median(|r| r.user_us_per_request),
    }
}
