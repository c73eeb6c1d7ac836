//! A TCP echo server on every core: each core binds its own `SO_REUSEPORT`
//! listener on the same port and echoes every byte back until the client
//! closes. On `SIGINT` or `SIGTERM` it stops accepting, echoes what it
//! has read, closes each connection when it next waits for input, and
//! exits 0 within the drain deadline (`--drain SECONDS`, default 5),
//! printing a line per core.
//!
//! With `--poll-io` (built with the `tokio-io` feature) each connection
//! echoes through `compat::PollIo` and tokio's `AsyncReadExt` and
//! `AsyncWriteExt` instead of the native calls: the benchmarks measure
//! what the readiness bridge costs.
//!
//! ```sh
//! cargo run --release --example echo               # port 7878, every core
//! cargo run --release --example echo -- 9000 2     # port, cores
//! cargo run --release --example echo -- 9000 2 --stall-ms 100   # report stalls
//! cargo run --release --features tokio-io --example echo -- 9000 2 --poll-io
//! cargo run --release --example echo_client -- 127.0.0.1:7878 64 1024 5
//! ```

#[path = "common/accept.rs"]
mod accept;

use std::cell::Cell;
use std::time::Duration;

use corering::net::{TcpListener, TcpStream};
use corering::shutdown::{Conn, Tracker};

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let drain = accept::take_drain_flag(&mut args, "echo");
    let stall = take_stall_flag(&mut args);
    let poll_io = take_poll_io_flag(&mut args);
    let usage = accept::Usage {
        program: "echo",
        args: "[port] [cores] [--drain seconds] [--stall-ms ms] [--poll-io]",
    };
    let mut args = args.into_iter();
    let port: u16 = usage.arg(args.next(), "port", 7878);
    let cores: usize = usage.arg(args.next(), "cores", accept::all_cores());
    let mut builder = corering::Runtime::builder();
    if let Some(threshold) = stall {
        builder = builder.on_stall(threshold, |stall| {
            eprintln!("echo: {} held for {:?}", stall.core(), stall.duration());
        });
    }
    let launched = builder
        .cores(cores)
        .pin_cores(true)
        .shutdown_on_signals(true)
        .run_on_cores(|core| {
            let listener = TcpListener::bind_reuse_port(("0.0.0.0", port));
            async move {
                let listener = match listener {
                    Ok(listener) => listener,
                    Err(error) => return Err(format!("{core}: port {port}: {error}")),
                };
                let _ = listener.set_nodelay(true);
                if core.index() == 0 {
                    let backend = corering::backend();
                    println!("echo: listening on port {port} on {cores} cores ({backend})");
                }
                let shutdown = corering::shutdown::token();
                let tracker = Tracker::new(&shutdown);
                // Direct descriptors while the ring's table has room;
                // TCP_NODELAY comes from the listener.
                let label = format!("echo: {core}");
                if poll_io {
                    // The readiness bridge needs a file descriptor: a
                    // plain accept.
                    let serve = |stream| tracker.spawn(|conn| bridged::echo(stream, conn));
                    accept::accept_loop(label, &shutdown, || listener.accept(), serve).await;
                } else {
                    let serve = |stream| tracker.spawn(|conn| echo(stream, conn));
                    accept::accept_loop(label, &shutdown, || listener.accept_direct(), serve).await;
                }
                drop(listener);
                let drained = tracker.drain(drain).await;
                let served = format!("{} bytes echoed", ECHOED.get());
                Ok(accept::report("echo", core, &served, &drained))
            }
        });
    accept::finish("echo", launched);
}

thread_local! {
    /// Bytes this core has echoed, for the line it prints at exit.
    static ECHOED: Cell<u64> = const { Cell::new(0) };
}

/// Echoes until the peer closes, the connection fails, or the shutdown
/// finds it waiting for input (what it has read is echoed first).
async fn echo(stream: TcpStream, conn: Conn) {
    let mut buf = Vec::with_capacity(16 * 1024);
    loop {
        buf.clear();
        let Some((read, returned)) = conn.until(stream.read(buf)).await else {
            return;
        };
        match read {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let (written, returned) = stream.write_all(returned).await;
                if written.is_err() {
                    return;
                }
                ECHOED.set(ECHOED.get() + n as u64);
                buf = returned;
            }
        }
    }
}

/// The echo over `compat::PollIo` and tokio's I/O traits (`--poll-io`).
#[cfg(feature = "tokio-io")]
mod bridged {
    use corering::compat::PollIo;
    use corering::net::TcpStream;
    use corering::shutdown::Conn;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// As the native `echo`, through the bridge.
    pub async fn echo(stream: TcpStream, conn: Conn) {
        let Ok(mut stream) = PollIo::new(stream) else {
            return;
        };
        let mut buf = vec![0; 16 * 1024];
        loop {
            let Some(read) = conn.until(stream.read(&mut buf)).await else {
                return;
            };
            match read {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if stream.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                    super::ECHOED.set(super::ECHOED.get() + n as u64);
                }
            }
        }
    }
}

/// Without the `tokio-io` feature there is no bridge to echo through.
#[cfg(not(feature = "tokio-io"))]
mod bridged {
    pub async fn echo(_: corering::net::TcpStream, _: corering::shutdown::Conn) {
        unreachable!("--poll-io is refused without the tokio-io feature")
    }
}

/// Takes `--poll-io` out of the arguments; exits when the build has no
/// bridge (the `tokio-io` feature).
fn take_poll_io_flag(args: &mut Vec<String>) -> bool {
    let Some(at) = args.iter().position(|arg| arg == "--poll-io") else {
        return false;
    };
    args.remove(at);
    if cfg!(not(feature = "tokio-io")) {
        eprintln!("echo: --poll-io needs a build with the tokio-io feature");
        std::process::exit(2);
    }
    true
}

/// Takes `--stall-ms MS` out of the arguments: report a core held that
/// long (the benchmarks measure what the reports cost).
fn take_stall_flag(args: &mut Vec<String>) -> Option<Duration> {
    let at = args.iter().position(|arg| arg == "--stall-ms")?;
    args.remove(at);
    let value = (at < args.len()).then(|| args.remove(at));
    match value.as_deref().map(str::parse::<u64>) {
        Some(Ok(ms)) => Some(Duration::from_millis(ms)),
        _ => {
            eprintln!("echo: --stall-ms needs a number of milliseconds");
            std::process::exit(2);
        }
    }
}
