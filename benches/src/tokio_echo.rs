//! The echo server's logic on tokio's current-thread runtime, for
//! comparison: one thread, echo every byte back until the client closes.
//! The connection's code is `tokio_conn.rs`, shared with `tokio_per_core`.
//!
//! Usage: `tokio_echo [port]`

#[allow(dead_code)] // the hello server's connection is not used here
mod tokio_conn;

use tokio::net::TcpListener;

fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .map_or(7878, |p| p.parse().expect("port"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        let listener = TcpListener::bind(("0.0.0.0", port)).await.expect("bind");
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    tokio::task::spawn_local(tokio_conn::echo(stream));
                }
            })
            .await;
    });
}
