//! The runtime under fault injection (the `fault-injection` feature; `ci/test`
//! runs this file with it): for many seeds, operations fail with plausible
//! errors, transfers come up short, completions arrive late, the SQ reads
//! full and `io_uring_enter` answers busy.
//!
//! With transient faults only, every byte must arrive exactly; with hard
//! errors too, every exchange either completes exactly or ends in a clear
//! `io::Error`, never with wrong bytes or a hang. The logic of the hello and
//! file_server examples runs under them too, driven by plain sockets. In both, the counters
//! balance at shutdown (`submitted == completed + cancelled`, nothing in
//! flight or abandoned) and the descriptors come back to the baseline.

mod common;

#[path = "../examples/file_server/http.rs"]
mod file_server;
#[path = "../examples/hello/http.rs"]
mod hello;

use std::io::{Read, Write};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{open_fds, poll_once};
use corering::buf::BufRing;
use corering::net::{TcpListener, TcpStream};
use corering::time::timeout;
use corering::{Faults, Runtime, Stats};

/// Seeds per test: many in release, fewer in the slower debug and ASan
/// builds; `CORERING_FAULT_SEEDS` overrides.
fn seeds() -> u64 {
    std::env::var("CORERING_FAULT_SEEDS")
        .ok()
        .and_then(|seeds| seeds.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) { 12 } else { 48 })
}

/// What a test saw over its seeds, printed for the record.
#[derive(Default)]
struct Tally {
    seeds: u64,
    injected: u64,
    bytes_checked: u64,
    errors: u64,
}

impl Tally {
    fn add(&mut self, stats: Stats, bytes_checked: u64, errors: u64) {
        self.seeds += 1;
        self.injected += stats.faults_injected;
        self.bytes_checked += bytes_checked;
        self.errors += errors;
    }

    fn print(&self, test: &str) {
        println!(
            "faults {test}: {} seeds, {} faults injected, {} bytes checked, {} clear errors",
            self.seeds, self.injected, self.bytes_checked, self.errors
        );
    }
}

fn runtime(faults: Faults) -> Runtime {
    Runtime::builder()
        .entries(8)
        .fault_injection(faults)
        .build()
        .unwrap()
}

/// Shuts `runtime` down and checks that its counters balance.
fn shut_down(runtime: Runtime, seed: u64) -> Stats {
    let stats = runtime.shutdown();
    assert_eq!(
        (stats.in_flight, stats.slots_in_use, stats.abandoned),
        (0, 0, 0),
        "seed {seed}: {stats:?}"
    );
    assert_eq!(
        stats.submitted,
        stats.completed + stats.cancelled,
        "seed {seed}: {stats:?}"
    );
    assert!(stats.faults_injected > 0, "seed {seed}: nothing injected");
    stats
}

/// Byte `offset` of connection `id`'s stream.
fn pattern(id: usize, offset: usize) -> u8 {
    (offset.wrapping_mul(31) ^ id.wrapping_mul(131) ^ (offset >> 9)) as u8
}

/// Echoes what it reads until the peer closes or an error ends it.
async fn echo(stream: TcpStream) {
    loop {
        let (read, buf) = stream.read(Vec::with_capacity(8192)).await;
        match read {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if stream.write_all(buf).await.0.is_err() {
                    return;
                }
            }
        }
    }
}

/// How a client turn sends a message and takes its echo.
#[derive(Clone, Copy, Debug)]
enum Turn {
    /// `write_all`, then `read`s.
    Plain,
    /// `write_all_then_read`, then `read`s for the rest.
    Linked,
    /// `write_all_then_recv_buf` from a buffer ring, then `recv_buf`s.
    LinkedRing,
}

/// Sends `messages` messages on one connection and checks each echo byte
/// for byte. Returns the bytes checked, or the error that ended it.
async fn client(addr: std::net::SocketAddr, id: usize, turn: Turn) -> Result<u64, std::io::Error> {
    let stream = TcpStream::connect(addr).await?;
    let ring = BufRing::new(4, 1024)?;
    let mut offset = 0;
    for message in 0..6 {
        let len = [1, 700, 4096, 10_000, 33, 2048][message];
        let out: Vec<u8> = (offset..offset + len).map(|at| pattern(id, at)).collect();
        let mut back = Vec::with_capacity(len);
        match turn {
            Turn::Plain => stream.write_all(out).await.0?,
            Turn::Linked => {
                let (read, _, first) = stream
                    .write_all_then_read(out, Vec::with_capacity(len))
                    .await;
                read?;
                back.extend_from_slice(&first);
            }
            Turn::LinkedRing => {
                let first = stream.write_all_then_recv_buf(out, &ring).await.0?;
                back.extend_from_slice(&first.ok_or(std::io::ErrorKind::UnexpectedEof)?);
            }
        }
        while back.len() < len {
            let more = match turn {
                Turn::LinkedRing => match stream.recv_buf(&ring).await? {
                    Some(buf) => buf.to_vec(),
                    None => Vec::new(),
                },
                _ => {
                    let (read, buf) = stream.read(Vec::with_capacity(len - back.len())).await;
                    read?;
                    buf
                }
            };
            if more.is_empty() {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            back.extend_from_slice(&more);
        }
        assert_eq!(back.len(), len, "connection {id}: more bytes than sent");
        for (at, &byte) in back.iter().enumerate() {
            assert_eq!(
                byte,
                pattern(id, offset + at),
                "connection {id}, byte {}",
                offset + at
            );
        }
        offset += len;
    }
    stream.close().await?;
    Ok(offset as u64)
}

/// One seed of the echo: four connections per kind of turn, served and
/// driven on the same faulty core.
fn echo_seed(faults: Faults) -> (Stats, u64, u64) {
    let fds_before = common::steady_fds_for(Duration::from_millis(30));
    let runtime = runtime(faults);
    let (bytes, errors) = runtime.block_on(async {
        let listener = Rc::new(TcpListener::bind("127.0.0.1:0").unwrap());
        let addr = listener.local_addr().unwrap();
        let acceptor = listener.clone();
        corering::spawn(async move {
            loop {
                // A failed accept leaves the connection queued for the next.
                if let Ok((stream, _)) = acceptor.accept().await {
                    corering::spawn(echo(stream));
                }
            }
        });
        let clients: Vec<_> = [Turn::Plain, Turn::Linked, Turn::LinkedRing]
            .into_iter()
            .flat_map(|turn| (0..4).map(move |id| (turn, id)))
            .map(|(turn, id)| corering::spawn(client(addr, id, turn)))
            .collect();
        let (mut bytes, mut errors) = (0, 0);
        for client in clients {
            let outcome = timeout(Duration::from_secs(30), client)
                .await
                .expect("no exchange hangs")
                .expect("no client panics");
            match outcome {
                Ok(checked) => bytes += checked,
                Err(error) => {
                    assert!(faults.hard_errors, "seed {}: {error}", faults.seed);
                    errors += 1;
                }
            }
        }
        (bytes, errors)
    });
    let stats = shut_down(runtime, faults.seed);
    assert_eq!(open_fds(), fds_before, "seed {}: descriptors", faults.seed);
    (stats, bytes, errors)
}

#[test]
fn echo_and_linked_turns_deliver_every_byte_under_transient_faults() {
    let _serial = common::serial();
    let mut tally = Tally::default();
    for seed in 0..seeds() {
        let (stats, bytes, errors) = echo_seed(Faults::new(seed));
        assert_eq!(errors, 0);
        assert_eq!(
            bytes,
            12 * 16_878,
            "seed {seed}: every byte of every connection"
        );
        tally.add(stats, bytes, errors);
    }
    tally.print("echo, transient");
}

#[test]
fn echo_and_linked_turns_end_exactly_or_with_an_error_under_hard_faults() {
    let _serial = common::serial();
    let mut tally = Tally::default();
    for seed in 0..seeds() {
        let (stats, bytes, errors) = echo_seed(Faults::new(1000 + seed).with_hard_errors());
        tally.add(stats, bytes, errors);
    }
    assert!(tally.errors > 0, "hard errors reached no caller");
    tally.print("echo, hard errors");
}

#[test]
fn files_read_back_exactly_under_transient_faults() {
    let _serial = common::serial();
    let dir = std::env::temp_dir().join(format!("corering-faults-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut tally = Tally::default();
    for seed in 0..seeds() {
        let fds_before = common::steady_fds_for(Duration::from_millis(30));
        let runtime = runtime(Faults::new(2000 + seed));
        let path = dir.join(format!("seed-{seed}"));
        let expected: Vec<u8> = (0..256 * 1024)
            .map(|at| pattern(seed as usize, at))
            .collect();
        let checked = runtime.block_on(async {
            let file = corering::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .open(&path)
                .await
                .unwrap();
            // Written in 16 KiB chunks, in a shuffled order.
            let mut order: Vec<usize> = (0..16).collect();
            order.rotate_left(seed as usize % 16);
            order.swap(1, 7);
            for chunk in order {
                let range = chunk * 16_384..(chunk + 1) * 16_384;
                let (written, _) = file
                    .write_all_at(expected[range.clone()].to_vec(), range.start as u64)
                    .await;
                written.unwrap();
            }
            file.sync_all().await.unwrap();
            let (read, back) = file
                .read_exact_at(Vec::with_capacity(expected.len()), 0)
                .await;
            read.unwrap();
            assert!(
                back == expected,
                "seed {seed}: the file reads back as written"
            );
            file.close().await.unwrap();
            let whole = corering::fs::read(&path).await.unwrap();
            assert!(whole == expected, "seed {seed}: fs::read");
            2 * expected.len() as u64
        });
        tally.add(shut_down(runtime, seed), checked, 0);
        assert_eq!(open_fds(), fds_before, "seed {seed}: descriptors");
        std::fs::remove_file(&path).unwrap();
    }
    std::fs::remove_dir(&dir).unwrap();
    tally.print("files, transient");
}

/// How often a server checks its stop flag. It waits on `Incoming`, which
/// keeps a connection accepted while no call waits (`accept_timeout` would
/// close one accepted as it times out, and late completions make that
/// likely here).
const POLL_STOP: Duration = Duration::from_millis(5);

/// Runs `serve` (given the listener and a stop flag to poll) on a faulty
/// core of its own thread while `client` drives it from this one with
/// plain sockets; returns the server core's counters, checked, and what
/// `client` returns (bytes checked).
fn serve_under_faults<S, F>(
    faults: Faults,
    serve: S,
    client: impl FnOnce(std::net::SocketAddr) -> u64,
) -> (Stats, u64)
where
    S: FnOnce(TcpListener, Arc<AtomicBool>) -> F + Send + 'static,
    F: std::future::Future<Output = ()>,
{
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let server = std::thread::spawn(move || {
        let fds_before = common::steady_fds_for(Duration::from_millis(30));
        let runtime = runtime(faults);
        runtime.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            serve(listener, stopping).await;
        });
        let stats = shut_down(runtime, faults.seed);
        assert_eq!(open_fds(), fds_before, "seed {}: descriptors", faults.seed);
        stats
    });
    let checked = client(addr_rx.recv().unwrap());
    stop.store(true, Ordering::SeqCst);
    (server.join().unwrap(), checked)
}

/// Sends `request` and reads one response with a `Content-Length` body.
fn exchange(stream: &mut std::net::TcpStream, request: &[u8]) -> (String, Vec<u8>) {
    stream.write_all(request).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let len: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("Content-Length: "))
        .expect("a Content-Length header")
        .parse()
        .unwrap();
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).unwrap();
    (head, body)
}

#[test]
fn hello_answers_every_request_under_transient_faults() {
    let _serial = common::serial();
    let mut tally = Tally::default();
    for seed in 0..seeds() {
        let serve = |listener: TcpListener, stop: Arc<AtomicBool>| async move {
            let ring = BufRing::new(hello::RING_BUFFERS, hello::READ_SIZE).unwrap();
            let mut incoming = listener.incoming();
            while !stop.load(Ordering::SeqCst) {
                if let Ok(Some(Ok(stream))) = timeout(POLL_STOP, incoming.next()).await {
                    corering::spawn(hello::serve(stream, ring.clone(), Duration::from_secs(10)));
                }
            }
        };
        // Four keep-alive connections, each with single and pipelined
        // requests, read back byte for byte.
        let client = |addr| {
            let mut checked = 0;
            for connection in 0..4 {
                let mut stream = std::net::TcpStream::connect(addr).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(20)))
                    .unwrap();
                for batch in 1..=4 {
                    let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".repeat(batch);
                    stream.write_all(&request).unwrap();
                    let expected = OK.repeat(batch);
                    let mut response = vec![0u8; expected.len()];
                    stream.read_exact(&mut response).unwrap_or_else(|error| {
                        panic!("seed {seed}, connection {connection}: {error}")
                    });
                    assert_eq!(String::from_utf8_lossy(&response), expected, "seed {seed}");
                    checked += response.len() as u64;
                }
            }
            checked
        };
        let (stats, checked) = serve_under_faults(Faults::new(3000 + seed), serve, client);
        tally.add(stats, checked, 0);
    }
    tally.print("hello, transient");
}

#[test]
fn file_server_sends_every_byte_under_transient_faults() {
    let _serial = common::serial();
    let root = std::env::temp_dir().join(format!("corering-faults-site-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    let content: Vec<u8> = (0..600_000).map(|at| pattern(7, at)).collect();
    std::fs::write(root.join("big.bin"), &content).unwrap();
    std::fs::write(root.join("small.txt"), b"small file\n").unwrap();
    let mut tally = Tally::default();
    for seed in 0..seeds() {
        let site = root.clone();
        let serve = move |listener: TcpListener, stop: Arc<AtomicBool>| async move {
            let root = Rc::new(file_server::open_root(&site).await.unwrap());
            let mut incoming = listener.incoming();
            while !stop.load(Ordering::SeqCst) {
                if let Ok(Some(Ok(stream))) = timeout(POLL_STOP, incoming.next()).await {
                    let (idle, send) = (Duration::from_secs(10), file_server::SEND_TIMEOUT);
                    corering::spawn(file_server::serve(stream, root.clone(), idle, send));
                }
            }
        };
        let client = |addr| {
            let mut checked = 0;
            for _ in 0..2 {
                let mut stream = std::net::TcpStream::connect(addr).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(20)))
                    .unwrap();
                for (path, expected) in
                    [("/big.bin", &content[..]), ("/small.txt", b"small file\n")]
                {
                    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
                    let (head, body) = exchange(&mut stream, request.as_bytes());
                    assert!(
                        head.starts_with("HTTP/1.1 200 OK\r\n"),
                        "seed {seed}: {head}"
                    );
                    assert!(body == expected, "seed {seed}: {path} byte for byte");
                    checked += body.len() as u64;
                }
                let (head, body) = exchange(
                    &mut stream,
                    b"GET /big.bin HTTP/1.1\r\nRange: bytes=1000-1999\r\n\r\n",
                );
                assert!(head.starts_with("HTTP/1.1 206"), "seed {seed}: {head}");
                assert!(body == content[1000..2000], "seed {seed}: the range");
                checked += body.len() as u64;
            }
            checked
        };
        let (stats, checked) = serve_under_faults(Faults::new(5000 + seed), serve, client);
        tally.add(stats, checked, 0);
    }
    std::fs::remove_dir_all(&root).unwrap();
    tally.print("file_server, transient");
}

const OK: &str =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nHello World!";

/// A close queued while the SQ reads full and the ring answers busy: the
/// reap made inside the push delivers late completions of dropped accepts,
/// which queue closes of their own. Nothing re-borrows the close list, every
/// accepted descriptor is closed, and nothing leaks.
#[test]
fn closes_deferred_while_closes_are_pushed_are_all_made() {
    let _serial = common::serial();
    let mut tally = Tally::default();
    for seed in 0..seeds() {
        let fds_before = common::steady_fds_for(Duration::from_millis(30));
        let faults = Faults {
            sq_full_one_in: 2,
            enter_busy_one_in: 2,
            hold_one_in: 2,
            fail_one_in: 0,
            shorten_one_in: 0,
            ..Faults::new(4000 + seed)
        };
        let runtime = runtime(faults);
        let mut clients = Vec::new();
        runtime.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            for _ in 0..32 {
                // An accept dropped in flight whose connection arrives: its
                // late success closes what it accepted.
                let mut accept = Box::pin(listener.accept());
                assert!(poll_once(&mut accept).await.is_pending());
                clients.push(std::net::TcpStream::connect(addr).unwrap());
                corering::yield_now().await;
                drop(accept);
                // Descriptors dropped, for the closes to push.
                let (reader, writer) = common::pipe();
                drop((reader, writer));
                corering::yield_now().await;
            }
        });
        tally.add(shut_down(runtime, seed), 0, 0);
        drop(clients);
        assert_eq!(open_fds(), fds_before, "seed {seed}: descriptors");
    }
    tally.print("closes under a full SQ and a busy ring");
}
