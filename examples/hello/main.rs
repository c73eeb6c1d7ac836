//! The HTTP/1.1 "Hello World!" server, on every core.
//!
//! Each core runs its own runtime and binds its own `SO_REUSEPORT` listener
//! on the same port; the kernel spreads connections across them. Keep-alive
//! and pipelining are supported; a malformed or ambiguously framed request
//! gets 400 (an oversized head 431, a body over 64 KiB 413) and its
//! connection closes; an idle connection closes after the idle timeout.
//!
//! On `SIGINT` or `SIGTERM` it drains: the listeners close, requests
//! already received are answered (the last response of each connection
//! with `Connection: close`), idle connections close, and after at most
//! the drain deadline (`--drain SECONDS`, default 5) it exits 0, printing
//! a line per core with what it served. A second signal cuts the drain.
//!
//! ```sh
//! cargo run --release --example hello                 # port 8080, every core
//! cargo run --release --example hello -- 9000 2 10    # port, cores, idle seconds
//! cargo run --release --example hello -- 9000 --drain 2
//! curl -i http://127.0.0.1:8080/
//! ```

#[path = "../common/accept.rs"]
mod accept;
mod http;

use std::time::Duration;

use corering::buf::BufRing;
use corering::net::TcpListener;
use corering::shutdown::Tracker;

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let drain = accept::take_drain_flag(&mut args, "hello");
    let usage = accept::Usage {
        program: "hello",
        args: "[port] [cores] [idle seconds] [--drain seconds]",
    };
    let mut args = args.into_iter();
    let port: u16 = usage.arg(args.next(), "port", 8080);
    let cores: usize = usage.arg(args.next(), "cores", accept::all_cores());
    let idle = Duration::from_secs(usage.arg(args.next(), "idle seconds", 60));

    let launched = corering::Runtime::builder()
        .cores(cores)
        .pin_cores(true)
        .shutdown_on_signals(true)
        .run_on_cores(|core| {
            let listener = TcpListener::bind_reuse_port(("0.0.0.0", port));
            async move {
                let listener = match listener {
                    Ok(listener) => listener,
                    Err(error) => {
                        return Err(format!("{core}: cannot listen on port {port}: {error}"))
                    }
                };
                let _ = listener.set_nodelay(true);
                // The buffers every connection of this core receives into.
                let ring = match BufRing::new(http::RING_BUFFERS, http::READ_SIZE) {
                    Ok(ring) => ring,
                    Err(error) => {
                        return Err(format!("{core}: cannot register a buffer ring: {error}"))
                    }
                };
                if core.index() == 0 {
                    let backend = corering::backend();
                    println!(
                        "hello: serving http://127.0.0.1:{port}/ on {cores} cores ({backend})"
                    );
                }
                let shutdown = corering::shutdown::token();
                let tracker = Tracker::new(&shutdown);
                // Direct descriptors while the ring's table has room;
                // TCP_NODELAY comes from the listener.
                let serve = |stream| {
                    let ring = ring.clone();
                    tracker.spawn(move |conn| http::serve_tracked(stream, ring, idle, Some(conn)));
                };
                let label = format!("hello: {core}");
                accept::accept_loop(label, &shutdown, || listener.accept_direct(), serve).await;
                drop(listener);
                let drained = tracker.drain(drain).await;
                let served = format!("{} responses", http::answered());
                Ok(accept::report("hello", core, &served, &drained))
            }
        });
    accept::finish("hello", launched);
}
