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
//! on the port, and owns the shard of the keyspace ([`store::Shard`]) that
//! holds the keys [`store::shard_of`] gives it. A task on each core, its
//! shard server ([`serve_shard`]), runs the batches other cores send it
//! over a `corering::sync::mpsc` channel and answers each with a
//! `oneshot`. A connection's pipeline is split by the core that owns each
//! key ([`route::Plan`]): this core's commands run here, each other
//! core's go to it as one batch, and the replies are put back in request
//! order; see [`serve`].
//!
//! Input that breaks the protocol, or the limits of [`resp::Limits`], gets
//! `-ERR Protocol error: ...` after the replies to the commands before it,
//! and the connection closes, as redis does.
//!
//! On `SIGINT` or `SIGTERM` it stops accepting, answers the commands it
//! has read, closes each connection when it next waits for input, keeps
//! every shard server up until no core can send it a batch, and exits 0
//! within the drain deadline (`--drain SECONDS`, default 5), printing a
//! line per core.

#[path = "../common/accept.rs"]
mod accept;
mod resp;
mod route;
mod store;

use std::cell::RefCell;
use std::os::fd::{AsFd, OwnedFd};
use std::rc::Rc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use corering::buf::IoBuf;
use corering::net::{TcpListener, TcpStream};
use corering::shutdown::{Conn, Tracker};
use corering::sync::{mpsc, oneshot};

use resp::{Command, Limits, Parser, Replies, Stop};
use route::Plan;
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

/// The batches that may wait for a core's shard server; a connection
/// sending one more waits for room.
const SHARD_QUEUE_MAX: usize = 256;

/// A part of a connection's batch for the core that owns its keys, and
/// where that core sends the replies.
struct Batch {
    commands: Vec<Command>,
    replies: oneshot::Sender<Replies>,
}

/// What a core's connections reach the keyspace through: this core's
/// shard, and every core's shard server.
struct Keyspace {
    /// This core's index.
    here: usize,
    shard: Rc<RefCell<Shard>>,
    /// Each core's shard server, by index (this core's unused).
    servers: Vec<mpsc::Sender<Batch>>,
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let drain = accept::take_drain_flag(&mut args, "kv");
    let usage = accept::Usage {
        program: "kv",
        args: "[port] [cores] [--drain seconds]",
    };
    let mut args = args.into_iter();
    let port: u16 = usage.arg(args.next(), "port", 6379);
    let cores: usize = usage.arg(args.next(), "cores", accept::all_cores());
    let listeners = match bind(port, cores) {
        Ok(listeners) => listeners,
        Err(error) => {
            eprintln!("kv: cannot listen on port {port}: {error}");
            std::process::exit(1);
        }
    };
    // Every channel is made before the cores start, so that each core
    // has every shard server's sender from its first connection on.
    let (servers, inboxes): (Vec<_>, Vec<_>) = (0..cores)
        .map(|_| mpsc::channel::<Batch>(SHARD_QUEUE_MAX))
        .unzip();
    let inboxes: Vec<_> = inboxes
        .into_iter()
        .map(|inbox| Mutex::new(Some(inbox)))
        .collect();
    // Each core's own copy of the senders, taken once: a shard server ends
    // when every core has dropped its copy, none being kept here.
    let copies: Vec<_> = (0..cores)
        .map(|_| Mutex::new(Some(servers.clone())))
        .collect();
    drop(servers);
    let servers = copies;
    let launched = corering::Runtime::builder()
        .cores(cores)
        .pin_cores(true)
        .shutdown_on_signals(true)
        .run_on_cores(|core| {
            let take = |what: &str| format!("core {core} takes its {what} once");
            let listener = listeners[core.index()].lock().unwrap().take();
            let listener =
                TcpListener::from(listener.unwrap_or_else(|| panic!("{}", take("listener"))));
            let inbox = inboxes[core.index()].lock().unwrap().take();
            let inbox = inbox.unwrap_or_else(|| panic!("{}", take("inbox")));
            let servers = servers[core.index()].lock().unwrap().take();
            let servers = servers.unwrap_or_else(|| panic!("{}", take("senders")));
            async move {
                let _ = listener.set_nodelay(true);
                if core.index() == 0 {
                    let port = listener.local_addr().map_or(port, |addr| addr.port());
                    let backend = corering::backend();
                    println!("kv: listening on port {port} on {cores} cores ({backend})");
                }
                let shard = Rc::new(RefCell::new(Shard::for_core(core.index())));
                let sweeping = corering::spawn(sweep(shard.clone()));
                let shard_server = corering::spawn(serve_shard(shard.clone(), inbox));
                let keyspace = Rc::new(Keyspace {
                    here: core.index(),
                    shard,
                    servers,
                });
                // Direct descriptors while the ring's table has room;
                // TCP_NODELAY comes from the listener.
                let shutdown = corering::shutdown::token();
                let tracker = Tracker::new(&shutdown);
                let serve = |stream| {
                    let keyspace = keyspace.clone();
                    tracker.spawn(move |conn| serve(stream, keyspace, conn));
                };
                let label = format!("kv: {core}");
                accept::accept_loop(label, &shutdown, || listener.accept_direct(), serve).await;
                drop(listener);
                let drained = tracker.drain(drain).await;
                // Other cores' connections may still send batches here:
                // the shard server runs until every core has let go of
                // its senders (each core's keyspace, and the connections
                // it aborted, dropped at its next tick).
                drop(keyspace);
                let _ = shard_server.await;
                sweeping.abort();
                let served = format!("{} commands", COMMANDS.get());
                accept::report("kv", core, &served, &drained)
            }
        });
    let launched = launched.map(|lines| lines.into_iter().map(Ok).collect());
    accept::finish("kv", launched);
}

/// One `SO_REUSEPORT` listener per core on `port`, each to be taken once
/// by its core. With port 0 the first gets a free port from the kernel and
/// the others bind that one, so that every core listens on the same port.
fn bind(port: u16, cores: usize) -> std::io::Result<Vec<Mutex<Option<OwnedFd>>>> {
    let mut port = port;
    let mut listeners = Vec::with_capacity(cores);
    for _ in 0..cores {
        let listener = TcpListener::bind_reuse_port(("0.0.0.0", port))?;
        port = listener.local_addr()?.port();
        // A descriptor crosses to the core's thread; the listener made
        // here does not.
        listeners.push(Mutex::new(Some(listener.as_fd().try_clone_to_owned()?)));
    }
    Ok(listeners)
}

/// Runs the batches other cores send for this core's `shard`, each
/// answered as a whole, until every sender is gone.
async fn serve_shard(shard: Rc<RefCell<Shard>>, mut inbox: mpsc::Receiver<Batch>) {
    while let Some(Batch { commands, replies }) = inbox.recv().await {
        let mut answered = Replies::default();
        shard
            .borrow_mut()
            .execute(commands, Instant::now(), &mut answered);
        // The connection that sent it may have gone.
        let _ = replies.send(answered);
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
async fn serve(stream: TcpStream, keyspace: Rc<Keyspace>, conn: Conn) {
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
        if !commands.is_empty()
            && execute(&keyspace, &mut commands, &mut replies)
                .await
                .is_err()
        {
            // A shard server is gone: the server is going down.
            return;
        }
        let output = std::mem::take(&mut replies.bytes);
        replies.ends.clear();
        match stop {
            Stop::NeedInput => {
                // Shutting down: the replies go out, then the connection
                // closes; one waiting for input closes (its turn's send
                // went out before its receive began, unless the client
                // had stopped reading).
                if conn.is_closing() {
                    if !output.is_empty() {
                        let _ = stream.write_all(output).await;
                    }
                    return;
                }
                let Some((received, output)) =
                    conn.until(receive(&stream, output, &mut input)).await
                else {
                    return;
                };
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

thread_local! {
    /// Commands this core's connections ran, for the line it prints at exit.
    static COMMANDS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Runs `commands` (and empties it), each on the core that owns its keys,
/// and appends their replies to `replies` in request order; an error when
/// a core's shard server is gone.
///
/// This core's part runs while the other cores run theirs: the batches
/// for them are sent first, and their replies awaited after.
async fn execute(
    keyspace: &Keyspace,
    commands: &mut Vec<Command>,
    replies: &mut Replies,
) -> Result<(), ShardGone> {
    COMMANDS.set(COMMANDS.get() + commands.len() as u64);
    let cores = keyspace.servers.len();
    if cores == 1 {
        let now = Instant::now();
        keyspace
            .shard
            .borrow_mut()
            .execute(commands.drain(..), now, replies);
        return Ok(());
    }
    let here = keyspace.here;
    let mut plan = Plan::new(commands.drain(..), cores, here);
    if plan.is_local(here) {
        let local = std::mem::take(&mut plan.parts[here]);
        keyspace
            .shard
            .borrow_mut()
            .execute(local, Instant::now(), replies);
        return Ok(());
    }
    let mut pending = Vec::new();
    for (core, part) in plan.parts.iter_mut().enumerate() {
        if core == here || part.is_empty() {
            continue;
        }
        let (sender, receiver) = oneshot::channel();
        let batch = Batch {
            commands: std::mem::take(part),
            replies: sender,
        };
        if keyspace.servers[core].send(batch).await.is_err() {
            return Err(ShardGone);
        }
        pending.push((core, receiver));
    }
    let mut answered: Vec<Replies> = (0..cores).map(|_| Replies::default()).collect();
    let local = std::mem::take(&mut plan.parts[here]);
    keyspace
        .shard
        .borrow_mut()
        .execute(local, Instant::now(), &mut answered[here]);
    for (core, receiver) in pending {
        answered[core] = receiver.await.map_err(|_| ShardGone)?;
    }
    plan.assemble(&answered, replies);
    Ok(())
}

/// A core's shard server stopped: its runtime is going down.
#[derive(Debug)]
struct ShardGone;

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
