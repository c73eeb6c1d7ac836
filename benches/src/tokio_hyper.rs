//! hyper_hello's service on tokio, the peer of corering's `hyper_hello`:
//! one current-thread runtime per core, each accepting on its own
//! `SO_REUSEPORT` listener of the same port, every connection served by
//! hyper-util's auto builder (HTTP/1.1 and HTTP/2 prior knowledge) with
//! `TokioExecutor` and `TokioTimer`, as a tokio user writes it.
//!
//! Usage: `tokio_hyper <port> [cores]` (cores default to the CPUs this
//! process may run on, so `taskset -c 0` gives one).

#[allow(dead_code)] // the hello and echo connections are not used here
mod tokio_conn;

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;

async fn hello(_: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(
        b"Hello World!",
    ))))
}

fn main() {
    let usage = "usage: tokio_hyper <port> [cores]";
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|a| a.parse().ok()).expect(usage);
    let cores = args.next().map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        |cores| cores.parse().expect(usage),
    );
    let sockets: Vec<_> = (0..cores).map(|_| tokio_conn::bind(port)).collect();
    let threads: Vec<_> = sockets
        .into_iter()
        .map(|socket| {
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("tokio runtime");
                runtime.block_on(async move {
                    let listener = socket.listen(1024).expect("listen");
                    loop {
                        let Ok((stream, _)) = listener.accept().await else {
                            continue;
                        };
                        let _ = stream.set_nodelay(true);
                        tokio::spawn(async move {
                            let mut builder = auto::Builder::new(TokioExecutor::new());
                            builder
                                .http1()
                                .timer(TokioTimer::new())
                                .header_read_timeout(Duration::from_secs(30));
                            builder.http2().timer(TokioTimer::new());
                            let service = hyper::service::service_fn(hello);
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                })
            })
        })
        .collect();
    for thread in threads {
        if thread.join().is_err() {
            std::process::exit(1);
        }
    }
}
