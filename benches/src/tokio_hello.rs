//! The hello server's logic on tokio's current-thread runtime, for
//! comparison: the same parser and responses (`examples/hello/http.rs`),
//! the same idle timeout around every turn (send the responses, receive the
//! next request), one thread. The connection's code is `tokio_conn.rs`,
//! shared with `tokio_per_core`.
//!
//! Usage: `tokio_hello [port] [idle seconds]`

#[allow(dead_code)] // the echo server's connection is not used here
mod tokio_conn;

use std::time::Duration;

use tokio::net::TcpListener;

fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .map_or(8080, |p| p.parse().expect("port"));
    let idle = Duration::from_secs(
        std::env::args()
            .nth(2)
            .map_or(60, |s| s.parse().expect("idle seconds")),
    );
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
                    tokio::task::spawn_local(tokio_conn::serve(stream, idle));
                }
            })
            .await;
    });
}
