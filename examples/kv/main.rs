//! A key-value server speaking the Redis protocol (RESP2), on every core:
//! `PING`, `GET`, `SET` (with `EX`, `PX`, `NX`, `XX`, `GET`, `KEEPTTL`),
//! `DEL`, `EXISTS`, `INCR`, `MGET`, `MSET`, `DBSIZE`, `FLUSHALL`, and the
//! `COMMAND`, `INFO` and `CONFIG GET` that redis-cli and redis-benchmark
//! ask as they start. Pipelined commands are parsed together, run as one
//! batch and answered with one send.
//!
//! ```sh
//! cargo run --release --example kv                # port 6379, every core
//! cargo run --release --example kv -- 6380 1      # port, cores
//! redis-cli -p 6380 set greeting hello
//! redis-benchmark -p 6380 -t set,get -P 16 -q
//! ```
//!
//! Each core runs its own runtime, binds its own `SO_REUSEPORT` listener
//! on the port, and owns a keyspace ([`store::Shard`]). Until requests can
//! cross cores, a connection runs its commands against the keyspace of the
//! core it landed on, so with more than one core two connections may see
//! different keyspaces; see [`serve`] for where the cross-core hop goes.
//!
//! Input that breaks the protocol, or the limits of [`resp::Limits`], gets
//! `-ERR Protocol error: ...` after the replies to the commands before it,
//! and the connection closes, as redis does.

#[path = "../common/accept.rs"]
mod accept;
mod resp;
mod store;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use corering::buf::IoBuf;
use corering::net::{TcpListener, TcpStream};

use resp::{Command, Limits, Parser, Replies, Stop};
use store::Shard;

/// The least room made for each receive.
const READ_SIZE: usize = 16 * 1024;

/// The most commands run as one batch: a pipeline longer than this is
/// answered a batch at a time, which bounds the replies one turn holds to
/// what this many commands answer.
const BATCH_MAX: usize = 1024;

/// A connection's input and reply buffers that grew past this (a large
/// value, a long pipeline) are freed once emptied rather than kept while
/// the connection waits.
const BUFFER_KEEP_MAX: usize = 64 * 1024;

/// How long a closing connection waits for the client to stop sending.
const LINGER: Duration = Duration::from_secs(1);

fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = parse_arg(args.next(), "port", 6379);
    let cores: usize = parse_arg(
        args.next(),
        "cores",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    if port == 0 && cores > 1 {
        // Each core would get a port of its own.
        eprintln!("kv: port 0 (any free port) needs one core");
        std::process::exit(2);
    }
    let launched = corering::Runtime::builder()
        .cores(cores)
        .pin_cores(true)
        .run_on_cores(|core| {
            let listener = TcpListener::bind_reuse_port(("0.0.0.0", port));
            async move {
                let listener = match listener {
                    Ok(listener) => listener,
                    Err(error) => {
                        return Err::<(), _>(format!(
                            "{core}: cannot listen on port {port}: {error}"
                        ))
                    }
                };
                let _ = listener.set_nodelay(true);
                if core.index() == 0 {
                    let port = listener.local_addr().map_or(port, |addr| addr.port());
                    println!("kv: listening on port {port} on {cores} cores");
                    if cores > 1 {
                        println!("kv: each core has its own keyspace until requests cross cores");
                    }
                }
                let shard = Rc::new(RefCell::new(Shard::new()));
                corering::spawn(sweep(shard.clone()));
                // Direct descriptors while the ring's table has room;
                // TCP_NODELAY comes from the listener.
                let serve = |stream| {
                    corering::spawn(serve(stream, shard.clone()));
                };
                let label = format!("kv: {core}");
                match accept::accept_loop(label, || listener.accept_direct(), serve).await {}
            }
        });
    let failed = match launched {
        Ok(results) => results.into_iter().filter_map(Result::err).collect(),
        Err(error) => vec![error.to_string()],
    };
    for error in &failed {
        eprintln!("kv: {error}");
    }
    if !failed.is_empty() {
        std::process::exit(1);
    }
}

/// Removes expired keys from `shard` every [`store::SWEEP_PERIOD`], a
/// bounded sample at a time, for as long as the core runs.
async fn sweep(shard: Rc<RefCell<Shard>>) {
    let mut ticks = corering::time::interval(store::SWEEP_PERIOD);
    loop {
        ticks.tick().await;
        shard.borrow_mut().sweep(Instant::now());
    }
}

/// Serves one connection until the client closes it, it fails, or its
/// input breaks the protocol.
///
/// Each turn parses every whole command the input holds (up to
/// [`BATCH_MAX`]), runs them as one batch, and sends all their replies
/// linked with the next receive: one submission and one wake per turn,
/// however many commands a pipeline brings.
async fn serve(stream: TcpStream, shard: Rc<RefCell<Shard>>) {
    let mut parser = Parser::new(Limits::DEFAULT);
    // What has arrived and the parser has not taken in yet: at most one
    // receive and the unfinished line of a header or inline command.
    let mut input: Vec<u8> = Vec::with_capacity(READ_SIZE);
    let mut commands: Vec<Command> = Vec::new();
    let mut replies = Replies::default();
    loop {
        let (consumed, stop) = parser.parse_all(&input, &mut commands, BATCH_MAX);
        input.drain(..consumed);
        if input.is_empty() && input.capacity() > BUFFER_KEEP_MAX {
            input = Vec::with_capacity(READ_SIZE);
        }
        if !commands.is_empty() {
            // The cross-core hop goes here. Each command is routed by its
            // key, `store::shard_of(key, corering::cores())`: this core's
            // run here as now; each other core's go to it as one batch
            // (a `Vec<Command>` over `corering::sync::mpsc` to a task
            // there that owns its shard), and its `Replies` come back
            // (a `oneshot`) to be put in request order by their `ends`.
            // Multi-key commands (DEL, EXISTS, MGET, MSET) split by key
            // and merge; DBSIZE and FLUSHALL go to every core.
            shard
                .borrow_mut()
                .execute(commands.drain(..), Instant::now(), &mut replies);
        }
        let output = std::mem::take(&mut replies.bytes);
        replies.ends.clear();
        match stop {
            Stop::NeedInput => {
                let (received, output) = receive(&stream, output, &mut input).await;
                replies.bytes = recycle(output);
                match received {
                    Ok(1..) => {}
                    // Closed by the client, or failed.
                    Ok(0) | Err(_) => return,
                }
            }
            // More whole commands may wait in `input`: they are the next
            // batch, before anything more is received.
            Stop::BatchFull => {
                let (sent, output) = stream.write_all(output).await;
                replies.bytes = recycle(output);
                if sent.is_err() {
                    return;
                }
            }
            Stop::Error(error) => return refuse(&stream, output, error).await,
        }
    }
}

/// Sends `output`, the replies to the commands before `error`, and then
/// the error, and closes the connection.
async fn refuse(stream: &TcpStream, output: Vec<u8>, error: resp::ProtocolError) {
    let mut replies = Replies {
        bytes: output,
        ends: Vec::new(),
    };
    replies.error(format!("ERR {error}").as_bytes());
    if stream.write_all(replies.bytes).await.0.is_ok() {
        linger_close(stream).await;
    }
}

/// Sends `output` (when it holds replies), then receives onto the end of
/// `input`: one linked submission. Returns the bytes received and `output`.
async fn receive(
    stream: &TcpStream,
    output: Vec<u8>,
    input: &mut Vec<u8>,
) -> (std::io::Result<usize>, Vec<u8>) {
    if input.capacity() - input.len() < READ_SIZE {
        input.reserve(READ_SIZE);
    }
    let filled = input.len();
    let tail = std::mem::take(input).slice(filled..);
    let (received, output, tail) = if output.is_empty() {
        let (received, tail) = stream.read(tail).await;
        (received, output, tail)
    } else {
        stream.write_all_then_read(output, tail).await
    };
    *input = tail.into_inner();
    (received, output)
}

/// A sent reply buffer, emptied for the next turn, or freed when it grew
/// past [`BUFFER_KEEP_MAX`].
fn recycle(mut output: Vec<u8>) -> Vec<u8> {
    if output.capacity() > BUFFER_KEEP_MAX {
        return Vec::new();
    }
    output.clear();
    output
}

/// Closes our side, then discards what the client still sends, for at
/// most [`LINGER`]: closing with unread input would make the kernel reset
/// the connection, and the client could lose the error just sent.
async fn linger_close(stream: &TcpStream) {
    if stream.shutdown(std::net::Shutdown::Write).await.is_err() {
        return;
    }
    let _ = corering::time::timeout(LINGER, async {
        let mut discard = Vec::with_capacity(READ_SIZE);
        loop {
            let (received, buf) = stream.read(discard).await;
            discard = buf;
            if !matches!(received, Ok(1..)) {
                return;
            }
            discard.clear();
        }
    })
    .await;
}

/// The argument, parsed, or `default` when absent; exits with a message
/// when it does not parse.
fn parse_arg<T: std::str::FromStr>(arg: Option<String>, what: &str, default: T) -> T {
    match arg {
        None => default,
        Some(text) => text.parse().unwrap_or_else(|_| {
            eprintln!("kv: bad {what}: {text:?}\nusage: kv [port] [cores]");
            std::process::exit(2);
        }),
    }
}
