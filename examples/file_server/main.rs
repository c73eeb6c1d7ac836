//! A static HTTP/1.1 file server on every core: GET and HEAD of the files
//! under a directory, with Content-Type by extension, byte ranges,
//! keep-alive and pipelining; bodies are sent with `splice` (file to pipe
//! to socket, no copy through user space). Files are opened beneath the
//! directory (`openat2` with `RESOLVE_BENEATH`): `..` or a symbolic link
//! leading outside gets 403, a missing file 404. A connection closes when
//! it stays silent for 30 s, or when the client takes no piece of a
//! response (the head, or the next 256 KiB of a body) for 10 s.
//!
//! `GET /metrics` answers with every core's counters in the Prometheus
//! text format (busy and parked time, task polls, ring enters and
//! completions, wakes, the operations' counters) instead of a file.
//!
//! On `SIGINT` or `SIGTERM` it stops accepting, finishes the responses in
//! progress (the last of each connection says `Connection: close`),
//! closes idle connections and exits 0 within the drain deadline
//! (`--drain SECONDS`, default 5; a transfer still going then is cut),
//! printing a line per core.
//!
//! ```sh
//! cargo run --release --example file_server -- [dir] [port] [cores]
//! cargo run --release --example file_server -- . 8000
//! curl -i http://127.0.0.1:8000/README.md
//! curl http://127.0.0.1:8000/metrics
//! ```

#[path = "../common/accept.rs"]
mod accept;
mod http;

use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use corering::net::TcpListener;
use corering::shutdown::Tracker;

/// How long a connection may stay silent.
const IDLE: Duration = Duration::from_secs(30);

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let drain = accept::take_drain_flag(&mut args, "file_server");
    let usage = accept::Usage {
        program: "file_server",
        args: "[dir] [port] [cores] [--drain seconds]",
    };
    let mut args = args.into_iter();
    let root = args.next().unwrap_or_else(|| ".".into());
    let port: u16 = usage.arg(args.next(), "port", 8000);
    let cores: usize = usage.arg(args.next(), "cores", accept::all_cores());
    if !Path::new(&root).is_dir() {
        eprintln!("file_server: {root} is not a directory");
        std::process::exit(2);
    }
    let launched = corering::Runtime::builder()
        .cores(cores)
        .pin_cores(true)
        .shutdown_on_signals(true)
        .run_on_cores(|core| {
            let listener = TcpListener::bind_reuse_port(("0.0.0.0", port));
            let root_path = root.clone();
            async move {
                let listener = listener.map_err(|error| format!("{core}: port {port}: {error}"))?;
                let root = http::open_root(Path::new(&root_path))
                    .await
                    .map(Rc::new)
                    .map_err(|error| format!("{core}: {root_path}: {error}"))?;
                let _ = listener.set_nodelay(true);
                if core.index() == 0 {
                    let backend = corering::backend();
                    println!(
                        "file_server: serving {root_path} on http://127.0.0.1:{port}/ on {cores} cores ({backend})"
                    );
                }
                let shutdown = corering::shutdown::token();
                let tracker = Tracker::new(&shutdown);
                let serve = |stream| {
                    let root = root.clone();
                    tracker.spawn(move |conn| {
                        http::serve_tracked(stream, root, IDLE, http::SEND_TIMEOUT, Some(conn))
                    });
                };
                let label = format!("file_server: {core}");
                accept::accept_loop(label, &shutdown, || listener.accept(), serve).await;
                drop(listener);
                let drained = tracker.drain(drain).await;
                let served = format!("{} responses", http::answered());
                Ok::<_, String>(accept::report("file_server", core, &served, &drained))
            }
        });
    accept::finish("file_server", launched);
}
