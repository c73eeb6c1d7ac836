//! The hello server's logic on tokio's current-thread runtime, for
//! comparison: the same parser and responses (`examples/hello/http.rs`),
//! the same idle timeout around every turn (send the responses, receive the
//! next request), one thread.
//!
//! Usage: `tokio_hello [port] [idle seconds]`

#[allow(dead_code)] // the corering `serve` in the same file is not used here
#[path = "../../examples/hello/http.rs"]
mod http;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

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
                    tokio::task::spawn_local(serve(stream, idle));
                }
            })
            .await;
    });
}

async fn serve(mut stream: TcpStream, idle: Duration) {
    let mut input = Vec::with_capacity(http::READ_SIZE);
    let mut output = Vec::with_capacity(4096);
    loop {
        if http::answer(&mut input, &mut output) {
            let _ = stream.write_all(&output).await;
            let _ = stream.shutdown().await;
            return;
        }
        // Send the responses, then receive straight after the bytes still
        // waiting (no copy); the idle timeout bounds the whole turn.
        input.reserve(http::READ_SIZE);
        let turn = async {
            stream.write_all(&output).await?;
            stream.read_buf(&mut input).await
        };
        match tokio::time::timeout(idle, turn).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
            Ok(Ok(_)) => output.clear(),
        }
    }
}
