//! Soak: churns connections through the hello and file_server examples for
//! a minute and checks that the server gives back what it took. A leak
//! per connection (a descriptor, a buffer, a task) that no short test
//! notices adds up over tens of thousands of them.
//!
//! Method: each server runs pinned to CPU 0 (`taskset -c 0`, one core);
//! this process's client threads run on CPU 1. `CLIENTS` threads each open
//! a connection, make one exchange, read the whole response and close,
//! over and over, paced to at most `--rate` connections a second in all
//! (the client's closed connections wait in TIME_WAIT; the pace keeps
//! them well within the ephemeral ports of the eight destination
//! addresses 127.0.0.1..127.0.0.8 used in turn). The exchanges rotate
//! through the server's paths: a request on a connection the client
//! closes, one the server closes (`Connection: close`), pipelined
//! requests, a refused one (400, and 413 for hello's body limit), a 404
//! and a HEAD and a 256 KiB body for file_server, a request cut off by the
//! client's close, and a connection closed without a byte. Every response
//! is checked: its status line, and its length.
//!
//! After a warm-up of the same churn (so that what the server sets up once
//! and keeps, allocator arenas and buffer pools, is in the baseline) and a
//! short settle, the server's `VmRSS` (`/proc/<pid>/status`), open
//! descriptors (`/proc/<pid>/fd`) and CPU time (user and system, from
//! `/proc/<pid>/stat`) are read; again once the churn has stopped and the
//! server's connections have closed. The baseline is met when the
//! descriptors are exactly as many as at the start, RSS grew by at most
//! `RSS_TOLERANCE_KIB` or `RSS_TOLERANCE_PERCENT`, whichever is larger,
//! and every exchange got the response it should.
//!
//! Prints a line per server (`soak-hello connections N errors N
//! rss-start-kb N rss-end-kb N fds-start N fds-end N cpu-s N baseline
//! met`), writes `target/bench/soak.md`, and exits non-zero when a
//! baseline is not met.
//!
//! Usage: `soak [--quick] [--seconds S] [--connections N] [--rate R]
//! [--server hello|file_server]`:
//! churns for S seconds (60; quick 3) and at least N connections (10,000;
//! quick 1,000), R connections a second at most (2,000). Run from the
//! repository root after `cargo build --release --examples`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The first server's port; each server has its own, since a killed
/// server's io_uring can hold its `SO_REUSEPORT` listener open for a
/// moment after the process is gone, and the kernel would hand some of the
/// next server's connections to it.
const PORT: u16 = 18_183;
/// Destination addresses 127.0.0.1..127.0.0.DESTINATIONS.
const DESTINATIONS: u8 = 8;
/// Client threads, so connections at once.
const CLIENTS: usize = 16;
/// How much a server's RSS may grow over the churn: this many KiB, or
/// this percentage of the start, whichever is larger. Allocators keep
/// some freed memory and move some about; a leak of even 100 bytes a
/// connection is 1 MiB over 10,000 of them and about 10 MiB over a
/// minute at the default pace.
const RSS_TOLERANCE_KIB: u64 = 4096;
const RSS_TOLERANCE_PERCENT: u64 = 10;

/// What one server is fed and how it is started.
struct Server {
    name: &'static str,
    port: u16,
    program: &'static str,
    /// `PORT` stands for the port, `SITE` for the file server's directory.
    args: &'static [&'static str],
    exchanges: &'static [Exchange],
}

/// One connection's exchange: what the client sends, and what it expects
/// back before the connection ends.
struct Exchange {
    request: &'static [u8],
    expect: Expect,
}

enum Expect {
    /// These responses, each read to its length; then the client closes.
    Responses(&'static [Reply]),
    /// These responses, then the server's close.
    ThenClosed(&'static [Reply]),
    /// Nothing: the client closes right after sending.
    Nothing,
}

/// A response expected: its status line, and whether a body of its
/// Content-Length follows (not after a HEAD).
struct Reply {
    status: &'static str,
    body: bool,
}

const fn reply(status: &'static str) -> Reply {
    Reply { status, body: true }
}

/// The response to a HEAD request.
const fn head_reply(status: &'static str) -> Reply {
    Reply {
        status,
        body: false,
    }
}

const HELLO_EXCHANGES: &[Exchange] = &[
    Exchange {
        request: b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        expect: Expect::Responses(&[reply("HTTP/1.1 200 OK")]),
    },
    Exchange {
        request: b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        expect: Expect::ThenClosed(&[reply("HTTP/1.1 200 OK")]),
    },
    Exchange {
        request: b"GET / HTTP/1.1\r\n\r\n\
                   POST /f HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello\
                   GET / HTTP/1.1\r\n\r\n",
        expect: Expect::Responses(&[
            reply("HTTP/1.1 200 OK"),
            reply("HTTP/1.1 200 OK"),
            reply("HTTP/1.1 200 OK"),
        ]),
    },
    Exchange {
        request: b"POST / HTTP/1.1\r\nContent-Length: 1099511627776\r\n\r\n",
        expect: Expect::ThenClosed(&[reply("HTTP/1.1 413 Content Too Large")]),
    },
    Exchange {
        request: b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        expect: Expect::ThenClosed(&[reply("HTTP/1.1 400 Bad Request")]),
    },
    Exchange {
        request: b"GET / HTTP/1.1\r\nHost: a\r\nX-Cut: off",
        expect: Expect::Nothing,
    },
    Exchange {
        request: b"",
        expect: Expect::Nothing,
    },
];

const FILE_EXCHANGES: &[Exchange] = &[
    Exchange {
        request: b"GET /small.txt HTTP/1.1\r\nHost: a\r\n\r\n",
        expect: Expect::Responses(&[reply("HTTP/1.1 200 OK")]),
    },
    Exchange {
        request: b"GET /medium.bin HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        expect: Expect::ThenClosed(&[reply("HTTP/1.1 200 OK")]),
    },
    Exchange {
        request: b"GET /small.txt HTTP/1.1\r\nRange: bytes=2-5\r\n\r\n\
                   HEAD /medium.bin HTTP/1.1\r\n\r\n\
                   GET /missing HTTP/1.1\r\n\r\n",
        expect: Expect::Responses(&[
            reply("HTTP/1.1 206 Partial Content"),
            head_reply("HTTP/1.1 200 OK"),
            reply("HTTP/1.1 404 Not Found"),
        ]),
    },
    Exchange {
        request: b"GET /../etc/passwd HTTP/1.1\r\n\r\n",
        expect: Expect::ThenClosed(&[reply("HTTP/1.1 403 Forbidden")]),
    },
    Exchange {
        request: b"GET /small.txt HTTP/1.1\r\nContent-Length : 5\r\n\r\nhello",
        expect: Expect::ThenClosed(&[reply("HTTP/1.1 400 Bad Request")]),
    },
    Exchange {
        request: b"GET /medium.bin HTTP/1.1\r\nHost:",
        expect: Expect::Nothing,
    },
    Exchange {
        request: b"",
        expect: Expect::Nothing,
    },
];

const SERVERS: [Server; 2] = [
    Server {
        name: "hello",
        port: PORT,
        program: "target/release/examples/hello",
        args: &["PORT", "1", "60"],
        exchanges: HELLO_EXCHANGES,
    },
    Server {
        name: "file_server",
        port: PORT + 1,
        program: "target/release/examples/file_server",
        args: &["SITE", "PORT", "1"],
        exchanges: FILE_EXCHANGES,
    },
];

const SITE: &str = "target/bench/soak-site";

/// The run's lengths.
struct Plan {
    warm_up: Duration,
    seconds: Duration,
    connections: u64,
    rate: u64,
}

/// A server's resources at one moment.
#[derive(Clone, Copy)]
struct Sample {
    rss_kib: u64,
    fds: usize,
    /// User plus system CPU ticks.
    cpu_ticks: u64,
}

/// One server's figures.
struct Outcome {
    name: &'static str,
    connections: u64,
    errors: u64,
    start: Sample,
    end: Sample,
    cpu_seconds: f64,
    churn_seconds: f64,
}

impl Outcome {
    fn rss_allowed_kib(&self) -> u64 {
        RSS_TOLERANCE_KIB.max(self.start.rss_kib * RSS_TOLERANCE_PERCENT / 100)
    }

    fn met(&self) -> bool {
        self.errors == 0
            && self.end.fds == self.start.fds
            && self.end.rss_kib <= self.start.rss_kib + self.rss_allowed_kib()
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
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|arg| arg == "--quick");
    let value = |flag: &str| -> Option<u64> {
        let at = args.iter().position(|arg| arg == flag)?;
        let text = args.get(at + 1).unwrap_or_else(|| usage(flag));
        Some(text.parse().unwrap_or_else(|_| usage(flag)))
    };
    let plan = Plan {
        warm_up: Duration::from_millis(if quick { 500 } else { 2000 }),
        seconds: Duration::from_secs(value("--seconds").unwrap_or(if quick { 3 } else { 60 })),
        connections: value("--connections").unwrap_or(if quick { 1_000 } else { 10_000 }),
        rate: value("--rate").unwrap_or(2_000).max(1),
    };
    prepare_site();
    pin_to_cpu(1);
    println!(
        "soak: {} s and at least {} connections per server, {CLIENTS} at once, at most {}/s; \
         server on CPU 0, clients on CPU 1",
        plan.seconds.as_secs(),
        plan.connections,
        plan.rate
    );
    // `--server NAME` soaks that one only.
    let only = args
        .iter()
        .position(|arg| arg == "--server")
        .map(|at| args.get(at + 1).map_or("", String::as_str));
    let outcomes: Vec<Outcome> = SERVERS
        .iter()
        .filter(|server| only.is_none_or(|name| name == server.name))
        .map(|server| soak(server, &plan))
        .collect();
    if outcomes.is_empty() {
        usage("--server");
    }
    for outcome in &outcomes {
        println!(
            "soak-{} connections {} errors {} rss-start-kb {} rss-end-kb {} fds-start {} fds-end {} cpu-s {:.2} churn-s {:.1} baseline {}",
            outcome.name,
            outcome.connections,
            outcome.errors,
            outcome.start.rss_kib,
            outcome.end.rss_kib,
            outcome.start.fds,
            outcome.end.fds,
            outcome.cpu_seconds,
            outcome.churn_seconds,
            if outcome.met() { "met" } else { "NOT MET" },
        );
    }
    write_markdown(&outcomes);
    println!("report: target/bench/soak.md");
    if !outcomes.iter().all(Outcome::met) {
        eprintln!("soak: a server did not come back to its baseline");
        std::process::exit(1);
    }
}

fn usage(flag: &str) -> ! {
    eprintln!(
        "soak: {flag} needs a value\n\
         usage: soak [--quick] [--seconds S] [--connections N] [--rate R] [--server hello|file_server]"
    );
    std::process::exit(2);
}

/// The file server's directory: a small file and one of 256 KiB (a body
/// sent in one splice chunk).
fn prepare_site() {
    let site = Path::new(SITE);
    std::fs::create_dir_all(site).expect("create the soak site");
    std::fs::write(site.join("small.txt"), b"0123456789abcdef").expect("write small.txt");
    let medium: Vec<u8> = (0..256 * 1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(site.join("medium.bin"), medium).expect("write medium.bin");
}

/// Pins this process (and the threads it starts) to `cpu`; where there is
/// no such CPU, says so and goes on unpinned.
fn pin_to_cpu(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET writes inside it.
    let pinned = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if pinned != 0 {
        eprintln!(
            "soak: cannot pin the clients to CPU {cpu}: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// Starts `server`, warms it up, samples it, churns, lets it settle, and
/// samples it again.
fn soak(server: &Server, plan: &Plan) -> Outcome {
    let mut running = start_server(server);
    let pid = running.0.id();
    let warm = churn(server, plan.warm_up, 0, plan.rate);
    settle(pid, None);
    let start = sample(pid);
    let started = Instant::now();
    let load = churn(server, plan.seconds, plan.connections, plan.rate);
    let churn_seconds = started.elapsed().as_secs_f64();
    // The server closes its side of the last connections (a refusal lingers
    // up to a second for the client's close): wait for the descriptors to
    // come back, for a while.
    settle(pid, Some(start.fds));
    let end = sample(pid);
    if let Ok(Some(status)) = running.0.try_wait() {
        panic!("{} exited during the soak: {status}", server.name);
    }
    Outcome {
        name: server.name,
        connections: load.connections,
        errors: warm.errors + load.errors,
        start,
        end,
        cpu_seconds: (end.cpu_ticks - start.cpu_ticks) as f64 / ticks_per_second(),
        churn_seconds,
    }
}

fn start_server(server: &Server) -> Running {
    let args: Vec<String> = server
        .args
        .iter()
        .map(|arg| match *arg {
            "PORT" => server.port.to_string(),
            "SITE" => SITE.to_string(),
            other => other.to_string(),
        })
        .collect();
    let child = Command::new("taskset")
        .args(["-c", "0", server.program])
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {}: {error}", server.program));
    let mut running = Running(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", server.port)).is_err() {
        if let Ok(Some(status)) = running.0.try_wait() {
            panic!("{} exited at start: {status}", server.program);
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

/// Waits half a second; with `fds`, first up to 5 s more for the server's
/// descriptors to number that.
fn settle(pid: u32, fds: Option<usize>) {
    if let Some(fds) = fds {
        let deadline = Instant::now() + Duration::from_secs(5);
        while open_fds(pid) != fds && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    std::thread::sleep(Duration::from_millis(500));
}

fn sample(pid: u32) -> Sample {
    Sample {
        rss_kib: vm_rss_kib(pid),
        fds: open_fds(pid),
        cpu_ticks: cpu_ticks(pid),
    }
}

/// What a churn did (errors: exchanges that did not go as expected, in
/// the warm-up too).
struct Load {
    connections: u64,
    errors: u64,
}

/// Churns connections through `server` from `CLIENTS` threads until
/// `seconds` have passed and at least `connections` were made, at most
/// `rate` a second.
fn churn(server: &Server, seconds: Duration, connections: u64, rate: u64) -> Load {
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (exchanges, name, port) = (server.exchanges, server.name, server.port);
    // Each thread's share of the pace.
    let interval = Duration::from_secs_f64(CLIENTS as f64 / rate as f64);
    let threads: Vec<_> = (0..CLIENTS)
        .map(|thread| {
            let (done, errors, stop) = (done.clone(), errors.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut next = Instant::now();
                let mut turn = thread;
                while !stop.load(Ordering::Relaxed) {
                    let exchange = &exchanges[turn % exchanges.len()];
                    let destination = turn % usize::from(DESTINATIONS) + 1;
                    if let Err(error) = run_exchange(exchange, destination, port) {
                        // The first few say what went wrong.
                        if errors.fetch_add(1, Ordering::Relaxed) < 5 {
                            eprintln!(
                                "soak: {name}: {:?}: {error}",
                                String::from_utf8_lossy(exchange.request)
                            );
                        }
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                    turn += CLIENTS + 1;
                    next += interval;
                    if let Some(wait) = next.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                }
            })
        })
        .collect();
    let started = Instant::now();
    while started.elapsed() < seconds || done.load(Ordering::Relaxed) < connections {
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().expect("a client thread panicked");
    }
    Load {
        connections: done.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
    }
}

/// One connection: connect, send, read what is expected, close.
fn run_exchange(exchange: &Exchange, destination: usize, port: u16) -> Result<(), String> {
    let address = format!("127.0.0.{destination}:{port}");
    let mut stream = connect(&address)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|error| error.to_string())?;
    if !exchange.request.is_empty() {
        stream
            .write_all(exchange.request)
            .map_err(|error| format!("send: {error}"))?;
    }
    let (replies, closed) = match exchange.expect {
        Expect::Responses(replies) => (replies, false),
        Expect::ThenClosed(replies) => (replies, true),
        Expect::Nothing => return Ok(()),
    };
    let mut data = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut at = 0;
    for &Reply { status, body } in replies {
        // Read until this response is whole.
        let len = loop {
            if let Some(len) = response_length(&data[at..], body) {
                if data.len() - at >= len {
                    break len;
                }
            }
            match stream.read(&mut buf) {
                Ok(0) => return Err(format!("closed before {status:?}")),
                Ok(n) => data.extend_from_slice(&buf[..n]),
                Err(error) => return Err(format!("receive: {error}")),
            }
        };
        let response = &data[at..at + len];
        if !response.starts_with(status.as_bytes()) || response.get(status.len()) != Some(&b'\r') {
            let head = &response[..response.len().min(60)];
            return Err(format!(
                "expected {status:?}, got {:?}",
                String::from_utf8_lossy(head)
            ));
        }
        at += len;
    }
    if closed {
        // Nothing more, then the server's close.
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => data.extend_from_slice(&buf[..n]),
                Err(error) => return Err(format!("receive before the close: {error}")),
            }
        }
    }
    if data.len() != at {
        return Err(format!("{} bytes more than expected", data.len() - at));
    }
    Ok(())
}

/// Connects, retrying for a while when the local ports are all taken
/// (`EADDRNOTAVAIL`: a client-side limit, not the server's).
fn connect(address: &str) -> Result<TcpStream, String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match TcpStream::connect(address) {
            Ok(stream) => return Ok(stream),
            Err(error)
                if error.raw_os_error() == Some(libc::EADDRNOTAVAIL)
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(error) => return Err(format!("connect to {address}: {error}")),
        }
    }
}

/// The length of the HTTP response at the start of `data` (its head, and
/// with `body` the Content-Length after it), once its head is complete.
fn response_length(data: &[u8], body: bool) -> Option<usize> {
    let end = data.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    if !body {
        return Some(end);
    }
    let head = std::str::from_utf8(&data[..end]).ok()?;
    let length = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse::<usize>().ok())
        .unwrap_or(0);
    Some(end + length)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|error| panic!("cannot read /proc/{pid}/fd: {error}"))
        .count()
}

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|error| panic!("cannot read /proc/{pid}/status: {error}"));
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

/// User plus system CPU ticks of process `pid`.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/<pid>/stat");
    // Fields after the command name, which ends with the last ')'.
    let rest = &stat[stat.rfind(')').expect("stat has a command name") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the full line, 12 and 13 here.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf reads a configuration value and touches no memory.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

fn write_markdown(outcomes: &[Outcome]) {
    let mut text = format!(
        "# Soak\n\n\
         Connections churned through each server (pinned to CPU 0; {CLIENTS} client threads on \
         CPU 1), each one exchange: requests closed by either side, pipelined, refused, cut off, \
         and connections closed without a byte. Server figures from /proc/<pid> after a warm-up \
         and after the churn and a settle. Baseline: descriptors exactly as at the start, RSS \
         grown by at most {RSS_TOLERANCE_KIB} KiB or {RSS_TOLERANCE_PERCENT}%, no failed \
         exchange.\n\n\
         | server | connections | churn (s) | errors | RSS start (KiB) | RSS end (KiB) | fds start | fds end | server CPU (s) | baseline |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n"
    );
    for o in outcomes {
        text += &format!(
            "| {} | {} | {:.1} | {} | {} | {} | {} | {} | {:.2} | {} |\n",
            o.name,
            o.connections,
            o.churn_seconds,
            o.errors,
            o.start.rss_kib,
            o.end.rss_kib,
            o.start.fds,
            o.end.fds,
            o.cpu_seconds,
            if o.met() { "met" } else { "not met" },
        );
    }
    let dir = Path::new("target/bench");
    std::fs::create_dir_all(dir).expect("create target/bench");
    std::fs::write(dir.join("soak.md"), text).expect("write target/bench/soak.md");
}
