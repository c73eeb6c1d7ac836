//! The example servers stopped by SIGTERM under load, as an operator stops
//! them: every response a client got is whole, the process exits 0 within
//! its drain deadline and prints a line per core, and the port refuses
//! connections afterwards. Each runs as its own binary on 2 cores.

mod common;

use common::server::{free_port, Server};

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

const OK: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nHello World!";
const OK_CLOSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nConnection: close\r\n\r\nHello World!";

/// Load on a server: `busy` client threads running `client` until it
/// returns, and `idle` connections that send nothing.
fn under_load<T: Send + 'static>(
    server: &Server,
    busy: usize,
    idle: usize,
    client: impl Fn(TcpStream, Arc<AtomicBool>) -> T + Send + Sync + 'static,
) -> (
    Vec<std::thread::JoinHandle<T>>,
    Vec<TcpStream>,
    Arc<AtomicBool>,
) {
    let idle: Vec<TcpStream> = (0..idle).map(|_| server.connect()).collect();
    let signalled = Arc::new(AtomicBool::new(false));
    let client = Arc::new(client);
    let started = Arc::new(Barrier::new(busy + 1));
    let threads = (0..busy)
        .map(|_| {
            let (stream, client, signalled, started) = (
                server.connect(),
                client.clone(),
                signalled.clone(),
                started.clone(),
            );
            std::thread::spawn(move || {
                started.wait();
                client(stream, signalled)
            })
        })
        .collect();
    started.wait();
    // Let the load run a while before the signal.
    std::thread::sleep(Duration::from_millis(300));
    (threads, idle, signalled)
}

/// What one hello client saw: responses before and after the signal,
/// whether the last said `Connection: close`.
#[derive(Debug, Default)]
struct Seen {
    before: u64,
    after: u64,
    last_closed: bool,
}

/// Sends requests back to back, each read whole; returns at the server's
/// close. Panics on a response cut short or wrong.
fn hello_client(mut stream: TcpStream, signalled: Arc<AtomicBool>) -> Seen {
    let mut seen = Seen::default();
    let request = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n";
    loop {
        if stream.write_all(request).is_err() {
            return seen; // closed between two responses
        }
        let mut response = Vec::with_capacity(OK_CLOSE.len());
        let mut byte = [0u8; 256];
        loop {
            let read = match stream.read(&mut byte) {
                Ok(read) => read,
                // A reset between responses: the request raced the close.
                Err(error) if response.is_empty() && error.kind() == ErrorKind::ConnectionReset => {
                    return seen
                }
                Err(error) => panic!("reading a response: {error}"),
            };
            if read == 0 {
                assert!(
                    response.is_empty(),
                    "a response cut short: {:?}",
                    String::from_utf8_lossy(&response)
                );
                return seen;
            }
            response.extend_from_slice(&byte[..read]);
            if response == OK || response == OK_CLOSE {
                break;
            }
            assert!(
                OK.starts_with(&response) || OK_CLOSE.starts_with(&response),
                "not a hello response: {:?}",
                String::from_utf8_lossy(&response)
            );
        }
        if signalled.load(Ordering::SeqCst) {
            seen.after += 1;
        } else {
            seen.before += 1;
        }
        seen.last_closed = response == OK_CLOSE;
        if seen.last_closed {
            let mut rest = Vec::new();
            let _ = stream.read_to_end(&mut rest);
            assert!(rest.is_empty(), "bytes after Connection: close");
            return seen;
        }
    }
}

#[test]
fn hello_drains_on_sigterm_under_load() {
    let port = free_port();
    let server = Server::start(
        "hello",
        &[&port.to_string(), "2", "60", "--drain", "5"],
        port,
    );
    let (clients, idle, signalled) = under_load(&server, 32, 16, hello_client);
    signalled.store(true, Ordering::SeqCst);
    let (took, lines) = server.terminate(Duration::from_secs(5));
    let seen: Vec<Seen> = clients
        .into_iter()
        .map(|client| client.join().unwrap())
        .collect();
    for mut stream in idle {
        let mut rest = Vec::new();
        assert_eq!(
            stream.read_to_end(&mut rest).unwrap(),
            0,
            "an idle connection closed clean"
        );
    }
    let before: u64 = seen.iter().map(|seen| seen.before).sum();
    let after: u64 = seen.iter().map(|seen| seen.after).sum();
    let closed = seen.iter().filter(|seen| seen.last_closed).count();
    eprintln!(
        "hello: exit {took:?} after SIGTERM; {before} responses before it, {after} after, \
         {closed} of 32 connections ended with Connection: close; {lines:?}"
    );
    assert!(before > 0, "the load ran");
    assert!(
        took < Duration::from_secs(5),
        "within the drain deadline: {took:?}"
    );
    assert_eq!(lines.len(), 2, "a line per core: {lines:?}");
    for (core, line) in lines.iter().enumerate() {
        assert!(line.starts_with(&format!("hello: core {core}: ")), "{line}");
        assert!(line.ends_with(", 0 cut at the deadline"), "{line}");
    }
}

/// Sends 1 KiB messages back to back, each echoed exactly; returns the
/// bytes echoed at the server's close.
fn echo_client(mut stream: TcpStream, _signalled: Arc<AtomicBool>) -> u64 {
    let mut echoed = 0u64;
    let mut message = [0u8; 1024];
    for round in 0u64.. {
        message.iter_mut().enumerate().for_each(|(at, byte)| {
            *byte = (round as usize + at) as u8;
        });
        if stream.write_all(&message).is_err() {
            return echoed;
        }
        let mut back = [0u8; 1024];
        let mut got = 0;
        while got < back.len() {
            match stream.read(&mut back[got..]) {
                Ok(0) => {
                    assert_eq!(got, 0, "an echo cut short");
                    return echoed;
                }
                Ok(read) => got += read,
                Err(error) if got == 0 && error.kind() == ErrorKind::ConnectionReset => {
                    return echoed
                }
                Err(error) => panic!("reading an echo: {error}"),
            }
        }
        assert_eq!(back, message, "echoed exactly");
        echoed += 1024;
    }
    unreachable!()
}

#[test]
fn echo_drains_on_sigterm_under_load() {
    let port = free_port();
    let server = Server::start("echo", &[&port.to_string(), "2", "--drain", "5"], port);
    let (clients, idle, _) = under_load(&server, 32, 16, echo_client);
    let (took, lines) = server.terminate(Duration::from_secs(5));
    let echoed: u64 = clients
        .into_iter()
        .map(|client| client.join().unwrap())
        .sum();
    for mut stream in idle {
        let mut rest = Vec::new();
        assert_eq!(stream.read_to_end(&mut rest).unwrap(), 0);
    }
    eprintln!("echo: exit {took:?} after SIGTERM; {echoed} bytes echoed; {lines:?}");
    assert!(echoed > 0);
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(lines.len(), 2, "{lines:?}");
    // "echo: core N: C connections, B bytes echoed; ..."
    let reported: u64 = lines
        .iter()
        .map(|line| {
            let counts = line.split("; ").next().unwrap();
            let bytes = counts.split(", ").nth(1).unwrap();
            bytes
                .strip_suffix(" bytes echoed")
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert_eq!(
        reported, echoed,
        "what the cores say they echoed: {lines:?}"
    );
}

#[test]
fn file_server_finishes_a_transfer_or_cuts_it_at_the_deadline() {
    let dir = std::env::temp_dir().join(format!("corering-drain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let body: Vec<u8> = (0..32u32 << 20).map(|at| (at % 251) as u8).collect();
    std::fs::write(dir.join("large.bin"), &body).unwrap();
    let body = Arc::new(body);
    for (drain, pace) in [("5", Duration::ZERO), ("0.3", Duration::from_millis(20))] {
        let port = free_port();
        let server = Server::start(
            "file_server",
            &[
                dir.to_str().unwrap(),
                &port.to_string(),
                "2",
                "--drain",
                drain,
            ],
            port,
        );
        let idle: Vec<TcpStream> = (0..4).map(|_| server.connect()).collect();
        let mut stream = server.connect();
        stream
            .write_all(b"GET /large.bin HTTP/1.1\r\nHost: test\r\n\r\n")
            .unwrap();
        let expected = body.clone();
        let download = std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(read) => got.extend_from_slice(&chunk[..read]),
                }
                std::thread::sleep(pace);
            }
            let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            let head = String::from_utf8_lossy(&got[..head_end]).to_string();
            let received = &got[head_end..];
            assert!(
                expected.starts_with(received),
                "the body, cut or whole, is the file's start"
            );
            (head, received.len())
        });
        std::thread::sleep(Duration::from_millis(100));
        let (took, lines) = server.terminate(Duration::from_secs_f64(drain.parse().unwrap()));
        let (head, received) = download.join().unwrap();
        for mut stream in idle {
            let mut rest = Vec::new();
            assert_eq!(stream.read_to_end(&mut rest).unwrap(), 0);
        }
        eprintln!(
            "file_server --drain {drain}: exit {took:?}; {received} of {} bytes; {lines:?}",
            body.len()
        );
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert_eq!(lines.len(), 2, "{lines:?}");
        if pace.is_zero() {
            assert_eq!(received, body.len(), "a fast client gets the whole file");
            assert!(took < Duration::from_secs(5), "{took:?}");
        } else {
            assert!(
                received < body.len(),
                "a slow client is cut at the deadline"
            );
            assert!(took < Duration::from_secs(3), "{took:?}");
            assert!(
                lines
                    .iter()
                    .any(|line| line.ends_with(", 1 cut at the deadline")),
                "{lines:?}"
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn file_server_serves_every_cores_counters_at_metrics() {
    let dir = std::env::temp_dir().join(format!("corering-metrics-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let server = Server::start(
        "file_server",
        &[dir.to_str().unwrap(), &port.to_string(), "2"],
        port,
    );
    let url = format!("http://127.0.0.1:{port}/metrics");
    let curl = |args: &[&str]| {
        let output = Command::new("curl")
            .args(["-s", "--max-time", "10"])
            .args(args)
            .arg(&url)
            .output()
            .unwrap();
        assert!(output.status.success(), "curl: {output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let head = curl(&["-I"]);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4\r\n"),
        "{head}"
    );
    let text = curl(&[]);
    for core in 0..2 {
        for family in [
            "busy_seconds_total",
            "parked_seconds_total",
            "ring_enters_total",
            "wakes_msg_ring_total",
        ] {
            let prefix = format!("corering_{family}{{core=\"{core}\"}} ");
            let line = text.lines().find(|line| line.starts_with(&prefix));
            let value: f64 = line.unwrap_or_else(|| panic!("{prefix} missing:\n{text}"))
                [prefix.len()..]
                .parse()
                .unwrap();
            assert!(value >= 0.0);
        }
    }
    let (_, lines) = server.terminate(Duration::from_secs(5));
    assert_eq!(lines.len(), 2, "{lines:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn kv_drains_on_sigterm_with_clients_on_both_cores() {
    let port = free_port();
    let server = Server::start("kv", &[&port.to_string(), "2", "--drain", "5"], port);
    // Idle clients, and one that writes keys of both cores back to back.
    let idle: Vec<TcpStream> = (0..8).map(|_| server.connect()).collect();
    let mut busy = server.connect();
    let writer = std::thread::spawn(move || {
        let mut acknowledged = 0u32;
        let mut reply = [0u8; 5];
        for key in 0u32.. {
            let command = format!("*3\r\n$3\r\nSET\r\n$6\r\nk{key:05}\r\n$1\r\nv\r\n");
            if busy.write_all(command.as_bytes()).is_err() {
                return acknowledged;
            }
            match busy.read_exact(&mut reply) {
                Ok(()) => {
                    assert_eq!(&reply, b"+OK\r\n", "each reply whole");
                    acknowledged += 1;
                }
                Err(_) => return acknowledged,
            }
        }
        unreachable!()
    });
    std::thread::sleep(Duration::from_millis(300));
    let (took, lines) = server.terminate(Duration::from_secs(5));
    let acknowledged = writer.join().unwrap();
    for mut stream in idle {
        let mut rest = Vec::new();
        assert_eq!(stream.read_to_end(&mut rest).unwrap(), 0);
    }
    eprintln!("kv: exit {took:?} after SIGTERM; {acknowledged} SETs acknowledged; {lines:?}");
    assert!(acknowledged > 0);
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines
            .iter()
            .all(|line| line.ends_with(", 0 cut at the deadline")),
        "{lines:?}"
    );
}
