//! The echo and hello servers' logic on glommio's io_uring runtime, for
//! comparison: one `LocalExecutor` on one thread, not pinned by the program
//! (the benchmark pins the process with taskset). `echo` is `tokio_echo`'s
//! loop; `hello` is `tokio_hello`'s (the same parser and responses,
//! `examples/hello/http.rs`, and the same idle timeout around every turn).
//!
//! glommio's sockets are futures-io streams over borrowed buffers: it tries
//! each receive and send straight away (non-blocking) and polls through its
//! ring only when that would block. Its listener binds with SO_REUSEPORT
//! (no SO_REUSEADDR) and a backlog of 1024.
//!
//! Usage: `glommio_server echo|hello <port> [idle seconds]`

#[allow(dead_code)] // the corering `serve` in the same file is not used here
#[path = "../../examples/hello/http.rs"]
mod http;
mod server_args;

use std::net::Shutdown;
use std::time::Duration;

use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use glommio::{GlommioError, LocalExecutorBuilder, Placement};

fn main() {
    let server_args::Args { hello, port, idle } = server_args::parse("glommio_server");
    // Unbound: no pinning here; the executor runs on this thread.
    let executor = LocalExecutorBuilder::new(Placement::Unbound)
        .name("glommio_server")
        .make()
        .expect("glommio executor");
    executor.run(async move {
        let listener = TcpListener::bind(("0.0.0.0", port)).expect("bind");
        loop {
            let Ok(stream) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            if hello {
                glommio::spawn_local(serve(stream, idle)).detach();
            } else {
                glommio::spawn_local(echo(stream)).detach();
            }
        }
    });
}

async fn echo(mut stream: TcpStream) {
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

async fn serve(mut stream: TcpStream, idle: Duration) {
    let mut input = Vec::with_capacity(http::READ_SIZE);
    let mut output = Vec::with_capacity(4096);
    loop {
        if http::answer(&mut input, &mut output) {
            let _ = stream.write_all(&output).await;
            let _ = stream.shutdown(Shutdown::Write).await;
            return;
        }
        // Send the responses, then receive straight after the bytes still
        // waiting (no copy); the idle timeout bounds the whole turn.
        input.reserve(http::READ_SIZE);
        let turn = async {
            stream.write_all(&output).await?;
            // futures-io reads into initialized bytes only: zero the spare
            // capacity, receive into it, keep what came.
            let len = input.len();
            input.resize(input.capacity(), 0);
            let read = stream.read(&mut input[len..]).await;
            input.truncate(len + read.as_ref().map_or(0, |&n| n));
            Ok::<_, GlommioError<()>>(read?)
        };
        match glommio::timer::timeout(idle, turn).await {
            Ok(0) | Err(_) => return, // EOF, error or idle too long
            Ok(_) => output.clear(),
        }
    }
}
