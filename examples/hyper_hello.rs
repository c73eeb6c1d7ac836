//! "Hello World!" with hyper 1.x on every core: HTTP/1.1 and HTTP/2 (prior
//! knowledge, h2c) on one port, through hyper-util's auto builder, over
//! `corering::compat::PollIo`, with `HyperExecutor` and `HyperTimer`.
//!
//! On `SIGINT` or `SIGTERM` it drains as the other example servers do:
//! the listeners close, hyper finishes the requests in flight (HTTP/1.1
//! with `Connection: close`, HTTP/2 with `GOAWAY`), and after at most the
//! drain deadline (`--drain SECONDS`, default 5) it exits 0.
//!
//! ```sh
//! cargo run --release --features hyper --example hyper_hello            # port 8080, every core
//! cargo run --release --features hyper --example hyper_hello -- 9000 2  # port, cores
//! curl --http1.1 http://127.0.0.1:8080/
//! curl --http2-prior-knowledge http://127.0.0.1:8080/
//! h2load -n 10000 -c 10 -m 100 http://127.0.0.1:8080/
//! ```

#[path = "common/hyper_server.rs"]
mod hyper_server;

use std::convert::Infallible;

use bytes::Bytes;
use corering::compat::PollIo;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};

async fn hello(_: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(
        b"Hello World!",
    ))))
}

fn main() {
    let args = std::env::args().skip(1).collect();
    let args = hyper_server::Args::parse(
        "hyper_hello",
        args,
        "[port] [cores] [--drain SECONDS]",
        8080,
    );
    hyper_server::run("hyper_hello", "http", &args, |stream, conn| async move {
        match PollIo::new(stream) {
            Ok(io) => {
                let service = hyper::service::service_fn(hello);
                hyper_server::serve_http(io, service, &conn).await;
            }
            Err(error) => eprintln!("hyper_hello: {error}"),
        }
    });
}
