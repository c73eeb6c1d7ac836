//! The tokio peers' per-connection logic, one copy shared by `tokio_hello`,
//! `tokio_echo` and `tokio_per_core`: they differ only in how many threads
//! accept.

#[allow(dead_code)] // the corering `serve` in the same file is not used here
#[path = "../../examples/hello/http.rs"]
mod http;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// The echo server's connection: every byte back until the client closes.
pub async fn echo(mut stream: TcpStream) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The hello server's connection: the same parser and responses as
/// corering's (`examples/hello/http.rs`), and the same idle timeout around
/// every turn (send the responses, receive the next request).
pub async fn serve(mut stream: TcpStream, idle: Duration) {
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

/// A socket bound to `port` on all interfaces, with SO_REUSEADDR (as
/// tokio's own `TcpListener::bind` sets it) and SO_REUSEPORT.
#[allow(dead_code)] // the one-thread servers bind with tokio's own listener
pub fn bind(port: u16) -> TcpSocket {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_reuseaddr(true).expect("SO_REUSEADDR");
    socket.set_reuseport(true).expect("SO_REUSEPORT");
    socket
        .bind(SocketAddr::from(([0, 0, 0, 0], port)))
        .expect("bind");
    socket
}
