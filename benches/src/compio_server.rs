//! The echo and hello servers' logic on compio's io_uring runtime, for
//! comparison: one thread, owned buffers. `echo` is `tokio_echo`'s loop;
//! `hello` is `tokio_hello`'s (the same parser and responses,
//! `examples/hello/http.rs`, and the same idle timeout around every turn).
//!
//! Usage: `compio_server echo|hello <port> [idle seconds]`

#[allow(dead_code)] // the corering `serve` in the same file is not used here
#[path = "../../examples/hello/http.rs"]
mod http;
mod server_args;

use std::io;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::time::Duration;

use compio::buf::{BufResult, IntoInner, IoBuf};
use compio::driver::ToSharedFd;
use compio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use compio::net::{TcpListener, TcpStream};

fn main() {
    let server_args::Args { hello, port, idle } = server_args::parse("compio_server");
    let runtime = compio::runtime::Runtime::new().expect("compio runtime");
    runtime.block_on(async move {
        let listener = listen(port);
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            // compio's stream has no `set_nodelay`; its socket2 socket has.
            let _ = stream.to_shared_fd().set_nodelay(true);
            if hello {
                compio::runtime::spawn(serve(stream, idle)).detach();
            } else {
                compio::runtime::spawn(echo(stream)).detach();
            }
        }
    });
}

/// Binds with SO_REUSEADDR, like the other servers (compio's own `bind`
/// leaves it off, which fails while the port has connections in
/// TIME_WAIT), and hands the socket to compio.
fn listen(port: u16) -> TcpListener {
    let listener = std::net::TcpListener::bind(("0.0.0.0", port)).expect("bind");
    // SAFETY: the fd is an open listening TCP socket, which `into_raw_fd`
    // gives up, so the compio listener becomes its only owner; compio
    // attaches nothing on Linux (its `bind` makes the same blocking socket).
    unsafe { TcpListener::from_raw_fd(listener.into_raw_fd()) }
}

async fn echo(mut stream: TcpStream) {
    let mut buf = Vec::with_capacity(16 * 1024);
    loop {
        // compio's reads only ever grow a `Vec`'s length: start it empty.
        buf.clear();
        let BufResult(read, received) = stream.read(buf).await;
        buf = received;
        if !matches!(read, Ok(n) if n > 0) {
            return;
        }
        let BufResult(written, sent) = stream.write_all(buf).await;
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
        let Ok((read, sent, received)) = compio::time::timeout(idle, turn).await else {
            return; // idle too long
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
        let BufResult(written, sent) = stream.write_all(output).await;
        output = sent;
        if let Err(error) = written {
            return (Err(error), output, input);
        }
    }
    let len = input.len();
    let BufResult(read, received) = stream.read(input.slice(len..)).await;
    (read, output, received.into_inner())
}
