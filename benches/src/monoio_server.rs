//! The echo and hello servers' logic on monoio's io_uring runtime, for
//! comparison: one thread, owned buffers. `echo` is `tokio_echo`'s loop;
//! `hello` is `tokio_hello`'s (the same parser and responses,
//! `examples/hello/http.rs`, and the same idle timeout around every turn).
//!
//! Usage: `monoio_server echo|hello <port> [idle seconds]`

#[allow(dead_code)] // the corering `serve` in the same file is not used here
#[path = "../../examples/hello/http.rs"]
mod http;
mod server_args;

use std::io;
use std::time::Duration;

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};

fn main() {
    let server_args::Args { hello, port, idle } = server_args::parse("monoio_server");
    let mut runtime = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .enable_timer()
        .build()
        .expect("monoio runtime");
    runtime.block_on(async move {
        let listener = TcpListener::bind(("0.0.0.0", port)).expect("bind");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            if hello {
                monoio::spawn(serve(stream, idle));
            } else {
                monoio::spawn(echo(stream));
            }
        }
    });
}

async fn echo(mut stream: TcpStream) {
    let mut buf = Vec::with_capacity(16 * 1024);
    loop {
        buf.clear();
        let (read, received) = stream.read(buf).await;
        buf = received;
        if !matches!(read, Ok(n) if n > 0) {
            return;
        }
        let (written, sent) = stream.write_all(buf).await;
        buf = sent;
        if written.is_err() {
            return;
        }
    }
}

async fn serve(mut stream: TcpStream, idle: Duration) {
    let mut input = Vec::with_capacity(http::READ_SIZE);
    let mut output = Vec::with_capacity(4096);
    loop {
        if http::answer(&mut input, &mut output) {
            if !output.is_empty() {
                let _ = stream.write_all(output).await;
            }
            let _ = stream.shutdown().await;
            return;
        }
        // Send the responses, then receive straight after the bytes still
        // waiting (no copy); the idle timeout bounds the whole turn.
        input.reserve(http::READ_SIZE);
        let turn = turn(&mut stream, output, input);
        let Ok((read, sent, received)) = monoio::time::timeout(idle, turn).await else {
            // Idle too long. Dropping the read cancels it (and so closes the
            // socket) only with monoio's `async-cancel` feature.
            return;
        };
        if !matches!(read, Ok(n) if n > 0) {
            return;
        }
        (output, input) = (sent, received);
        output.clear();
    }
}

/// Writes all of `output` (if any), then reads into `input`'s spare
/// capacity; gives both buffers back.
async fn turn(
    stream: &mut TcpStream,
    mut output: Vec<u8>,
    input: Vec<u8>,
) -> (io::Result<usize>, Vec<u8>, Vec<u8>) {
    if !output.is_empty() {
        let (written, sent) = stream.write_all(output).await;
        output = sent;
        if let Err(error) = written {
            return (Err(error), output, input);
        }
    }
    let len = input.len();
    let (read, received) = stream.read(input.slice_mut(len..)).await;
    (read, output, received.into_inner())
}
