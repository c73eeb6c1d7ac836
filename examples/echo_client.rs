//! An echo load generator: connections that each send a message, wait for
//! all of it to come back, check it, and repeat, for a fixed time. Prints
//! round trips per second and latency percentiles.
//!
//! ```sh
//! cargo run --release --example echo_client -- [addr] [connections] [bytes] [seconds]
//! cargo run --release --example echo_client -- 127.0.0.1:7878 64 1024 5
//! ```

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use corering::net::TcpStream;

fn main() {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = arg(args.next(), "addr", ([127, 0, 0, 1], 7878).into());
    let connections: usize = arg(args.next(), "connections", 64);
    let bytes: usize = arg(args.next(), "bytes", 1024);
    let seconds: f64 = arg(args.next(), "seconds", 5.0);
    let duration = Duration::from_secs_f64(seconds);

    let mut latencies = corering::start(async move {
        let deadline = Instant::now() + duration;
        let workers: Vec<_> = (0..connections)
            .map(|id| corering::spawn(pingpong(addr, id, bytes, deadline)))
            .collect();
        let mut latencies = Vec::new();
        for worker in workers {
            match worker.await.expect("worker") {
                Ok(mut own) => latencies.append(&mut own),
                Err(error) => {
                    eprintln!("echo_client: {error}");
                    std::process::exit(1);
                }
            }
        }
        latencies
    });
    latencies.sort_unstable();
    let round_trips = latencies.len();
    let percentile = |p: f64| {
        latencies.get(((round_trips as f64 * p) as usize).min(round_trips.saturating_sub(1)))
    };
    println!(
        "echo_client: {connections} connections x {bytes} B for {seconds} s: {} round trips/s, p50 {:?}, p99 {:?}",
        (round_trips as f64 / seconds) as u64,
        percentile(0.50).copied().unwrap_or_default(),
        percentile(0.99).copied().unwrap_or_default(),
    );
}

/// One connection's round trips until `deadline`, with their latencies.
async fn pingpong(
    addr: SocketAddr,
    id: usize,
    bytes: usize,
    deadline: Instant,
) -> Result<Vec<Duration>, String> {
    let stream = Rc::new(
        TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?,
    );
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let message: Vec<u8> = (0..bytes).map(|i| (i ^ id) as u8).collect();
    let mut latencies = Vec::new();
    let mut send = message.clone();
    let mut receive = Vec::with_capacity(bytes);
    while Instant::now() < deadline {
        let started = Instant::now();
        let (written, returned) = stream.write_all(send).await;
        written.map_err(|e| format!("send: {e}"))?;
        send = returned;
        receive.clear();
        while receive.len() < bytes {
            let (read, chunk) = stream.read(Vec::with_capacity(bytes - receive.len())).await;
            match read.map_err(|e| format!("receive: {e}"))? {
                0 => return Err("the server closed the connection".into()),
                _ => receive.extend_from_slice(&chunk),
            }
        }
        if receive != message {
            return Err(format!(
                "connection {id}: the echo differs from what was sent"
            ));
        }
        latencies.push(started.elapsed());
    }
    Ok(latencies)
}

fn arg<T: std::str::FromStr>(arg: Option<String>, what: &str, default: T) -> T {
    match arg {
        None => default,
        Some(text) => text.parse().unwrap_or_else(|_| {
            eprintln!("echo_client: bad {what}: {text:?}\nusage: echo_client [addr] [connections] [bytes] [seconds]");
            std::process::exit(2);
        }),
    }
}
