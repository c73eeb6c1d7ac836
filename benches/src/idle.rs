//! Idle-connection memory: how much resident memory a server holds per
//! open, silent connection, corering against tokio (current-thread, and
//! one runtime per core), monoio, glommio, compio and a hand-written
//! io_uring loop.
//!
//! Method: each server runs pinned to CPU 0 (`taskset -c 0`). After it
//! listens, one warm-up connection makes a request and closes, so that
//! first-use set-up is not charged to the connections; then the server's
//! `VmRSS` (from `/proc/<pid>/status`) is read. This process then opens N
//! connections, spread over the destination addresses 127.0.0.1..127.0.0.8
//! (the servers listen on 0.0.0.0; each destination has its own range of
//! ephemeral ports), and on each sends one complete request and reads the
//! full response, so the server holds its per-connection state with a
//! receive in flight. About 1 s after the last connection, `VmRSS` is read
//! again: (after - before) / N is the memory per idle connection. The
//! open-file limit of this process (and so of the servers it starts) is
//! raised with `prlimit` first: to 65536, or to the hard limit where that
//! is not permitted (a container without CAP_SYS_RESOURCE). Prints a table and one
//! machine-readable line, and writes the table to `target/bench/idle.md`.
//! The target: corering at most 1/4 of tokio's bytes per connection.
//!
//! Usage: `idle [--quick]` (N = 10,000, or 2,000 with `--quick`), run from
//! the repository root after `cargo build --release --examples` and
//! building this crate.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PORT: u16 = 18_182;
/// Destination addresses 127.0.0.1..127.0.0.DESTINATIONS.
const DESTINATIONS: u8 = 8;
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";

/// A server under test: its name, program and arguments (`PORT` stands
/// for the port; hello takes the port, corering a core count, and all but
/// the raw loop an idle timeout in seconds).
struct Server {
    name: &'static str,
    program: &'static str,
    args: &'static str,
}

impl Server {
    const fn new(name: &'static str, program: &'static str, args: &'static str) -> Self {
        Server {
            name,
            program,
            args,
        }
    }
}

#[rustfmt::skip]
const SERVERS: [Server; 7] = [
    Server::new("corering", "target/release/examples/hello", "PORT 1 600"),
    Server::new("tokio-current-thread", "target/release/tokio_hello", "PORT 600"),
    Server::new("tokio-per-core", "target/release/tokio_per_core", "hello PORT 600"),
    Server::new("monoio", "target/release/monoio_server", "hello PORT 600"),
    Server::new("glommio", "target/release/glommio_server", "hello PORT 600"),
    Server::new("compio", "target/release/compio_server", "hello PORT 600"),
    Server::new("raw io_uring loop", "target/release/raw_loop", "hello PORT"),
];

/// One server's figures.
struct Measurement {
    name: &'static str,
    connections: usize,
    before_kib: u64,
    after_kib: u64,
}

impl Measurement {
    fn bytes_per_connection(&self) -> f64 {
        (self.after_kib as f64 - self.before_kib as f64) * 1024.0 / self.connections as f64
    }
}

/// A started server, killed and reaped when dropped (also on a panic).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    let quick = std::env::args().any(|arg| arg == "--quick");
    let connections = if quick { 2_000 } else { 10_000 };
    raise_open_files(connections);
    println!("idle connections: {connections} per server, server pinned to CPU 0");
    let results: Vec<Measurement> = SERVERS
        .iter()
        .map(|server| {
            let measurement = measure(server, connections);
            println!(
                "  {:<22} before {:>8} KiB  after {:>8} KiB  {:>8.0} bytes/connection",
                measurement.name,
                measurement.before_kib,
                measurement.after_kib,
                measurement.bytes_per_connection()
            );
            std::thread::sleep(Duration::from_millis(300));
            measurement
        })
        .collect();
    let bytes: Vec<f64> = results
        .iter()
        .map(Measurement::bytes_per_connection)
        .collect();
    let ratio = bytes[0] / bytes[1];
    let verdict = if ratio <= 0.25 { "met" } else { "not met" };
    println!("ratio corering/tokio: {ratio:.3} (target at most 0.25: {verdict})");
    // `idle-memory corering-bytes N tokio-current-thread-bytes N ...`
    let fields: Vec<String> = results
        .iter()
        .zip(&bytes)
        .map(|(measurement, bytes)| {
            let key = measurement.name.split_whitespace().next().unwrap_or("");
            format!("{key}-bytes {bytes:.0}")
        })
        .collect();
    println!("idle-memory {}", fields.join(" "));
    write_markdown(&results, ratio, verdict);
    println!("report: target/bench/idle.md");
}

/// Starts `server`, opens `connections` idle connections, and reads the
/// server's resident memory around them.
fn measure(server: &Server, connections: usize) -> Measurement {
    let mut running = start_server(server);
    let pid = running.0.id();
    // Warm-up: one request on a connection that then closes.
    drop(open_idle(server, 1));
    std::thread::sleep(Duration::from_millis(200));
    let before_kib = vm_rss_kib(pid, server);
    let streams: Vec<TcpStream> = (0..connections)
        .map(|index| open_idle(server, index % usize::from(DESTINATIONS) + 1))
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    if let Ok(Some(status)) = running.0.try_wait() {
        panic!(
            "{} exited while holding idle connections: {status}",
            server.name
        );
    }
    let after_kib = vm_rss_kib(pid, server);
    drop(streams);
    drop(running);
    Measurement {
        name: server.name,
        connections,
        before_kib,
        after_kib,
    }
}

fn start_server(server: &Server) -> Running {
    let child = Command::new("taskset")
        .args(["-c", "0", server.program])
        .args(server.args.replace("PORT", &PORT.to_string()).split(' '))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {}: {error}", server.program));
    let mut running = Running(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", PORT)).is_err() {
        if let Ok(Some(status)) = running.0.try_wait() {
            panic!(
                "{} ({}) exited at start: {status}",
                server.name, server.program
            );
        }
        assert!(
            Instant::now() < deadline,
            "{} did not start listening",
            server.name
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    running
}

/// Connects to 127.0.0.`destination`, makes one request, reads the whole
/// response, and returns the connection, open and silent.
fn open_idle(server: &Server, destination: usize) -> TcpStream {
    let address = format!("127.0.0.{destination}:{PORT}");
    let fail = |what: &str, error: std::io::Error| -> ! {
        panic!("{}: {what} on {address}: {error}", server.name)
    };
    let mut stream = TcpStream::connect(&address).unwrap_or_else(|e| fail("connect", e));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap_or_else(|e| fail("timeout", e));
    stream
        .write_all(REQUEST)
        .unwrap_or_else(|e| fail("send", e));
    let mut response = Vec::with_capacity(256);
    let mut buf = [0u8; 512];
    loop {
        if let Some(total) = response_length(&response) {
            if response.len() >= total {
                return stream;
            }
        }
        match stream.read(&mut buf) {
            Ok(0) => panic!("{}: connection closed before a full response", server.name),
            Ok(n) => response.extend_from_slice(&buf[..n]),
            Err(error) => fail("receive", error),
        }
    }
}

/// The length of the HTTP response at the start of `data` (headers and
/// body), once its headers are complete.
fn response_length(data: &[u8]) -> Option<usize> {
    let end = data.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let headers = std::str::from_utf8(&data[..end]).ok()?;
    let body = headers
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse::<usize>().ok())
        .unwrap_or(0);
    Some(end + body)
}

fn vm_rss_kib(pid: u32, server: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|error| panic!("{}: cannot read /proc/{pid}/status: {error}", server.name));
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("{}: no VmRSS in /proc/{pid}/status", server.name))
}

/// Raises this process's open-file limit (the servers, started later,
/// inherit it) to 65536, or where that is not permitted to the hard limit,
/// and checks that it covers `connections`.
fn raise_open_files(connections: usize) {
    let pid = std::process::id().to_string();
    let prlimit = |value: &str| {
        Command::new("prlimit")
            .args([&format!("--nofile={value}:{value}"), "--pid", &pid])
            .stderr(Stdio::null())
            .status()
            .unwrap_or_else(|error| panic!("cannot run prlimit: {error}"))
            .success()
    };
    if !prlimit("65536") {
        prlimit(&open_files_limit().1.to_string());
    }
    let (soft, _) = open_files_limit();
    assert!(
        soft >= connections as u64 + 100,
        "open-file limit {soft} is too low for {connections} connections"
    );
}

/// The (soft, hard) open-file limits of this process.
fn open_files_limit() -> (u64, u64) {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("read /proc/self/limits");
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .expect("/proc/self/limits has Max open files");
    let mut numbers = line
        .split_whitespace()
        .skip(3)
        .map(|n| n.parse().unwrap_or(u64::MAX));
    (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0))
}

fn write_markdown(results: &[Measurement], ratio: f64, verdict: &str) {
    let mut text = String::from(
        "# Idle-connection memory\n\n\
         Server pinned to CPU 0; RSS from /proc/<pid>/status before and ~1 s after opening \
         the connections, each of which made one request and stayed open.\n\n\
         | server | connections | RSS before (KiB) | RSS after (KiB) | bytes/connection |\n\
         |---|---:|---:|---:|---:|\n",
    );
    for m in results {
        text += &format!(
            "| {} | {} | {} | {} | {:.0} |\n",
            m.name,
            m.connections,
            m.before_kib,
            m.after_kib,
            m.bytes_per_connection()
        );
    }
    text += &format!("\nRatio corering/tokio: {ratio:.3} (target at most 0.25: {verdict}).\n");
    let dir = std::path::Path::new("target/bench");
    std::fs::create_dir_all(dir).expect("create target/bench");
    std::fs::write(dir.join("idle.md"), text).expect("write target/bench/idle.md");
}
