//! The echo and hello servers' logic on tokio, one current-thread runtime
//! (and `LocalSet`) per core: `cores` threads, each accepting on its own
//! listener of the same port (SO_REUSEPORT, so the kernel spreads the
//! connections), none pinned by the program (the benchmark pins the process
//! with taskset). The connections are `tokio_echo`'s and `tokio_hello`'s
//! (`tokio_conn.rs`).
//!
//! Usage: `tokio_per_core echo|hello <port> [idle seconds] [cores]`

mod server_args;
mod tokio_conn;

use std::time::Duration;

use tokio::net::TcpSocket;

fn main() {
    let (server_args::Args { hello, port, idle }, cores) =
        server_args::parse_with_cores("tokio_per_core");
    // Bind every listener here, so a port in use fails the program at once;
    // each thread starts listening on its own inside its runtime.
    let sockets: Vec<TcpSocket> = (0..cores).map(|_| tokio_conn::bind(port)).collect();
    let threads: Vec<_> = sockets
        .into_iter()
        .enumerate()
        .map(|(core, socket)| {
            std::thread::Builder::new()
                .name(format!("tokio-core-{core}"))
                .spawn(move || run(socket, hello, idle))
                .expect("spawn a thread")
        })
        .collect();
    for thread in threads {
        if thread.join().is_err() {
            std::process::exit(1);
        }
    }
}

/// One thread's server: listens on `socket` and serves what it accepts,
/// on a current-thread runtime of its own.
fn run(socket: TcpSocket, hello: bool, idle: Duration) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        // Failing here would leave the other threads serving: end them all.
        let listener = socket.listen(1024).unwrap_or_else(|error| {
            eprintln!("tokio_per_core: listen: {error}");
            std::process::exit(1)
        });
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    if hello {
                        tokio::task::spawn_local(tokio_conn::serve(stream, idle));
                    } else {
                        tokio::task::spawn_local(tokio_conn::echo(stream));
                    }
                }
            })
            .await;
    });
}
