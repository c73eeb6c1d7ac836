//! What the hyper examples share (hyper_hello, axum_hello, tls_hello): a
//! launch on every core, each with its own `SO_REUSEPORT` listener, the
//! accept loop and graceful shutdown of the other examples
//! (`accept.rs`), and one connection served by hyper-util's auto builder,
//! which speaks HTTP/1.1 and HTTP/2 (prior knowledge, or ALPN under TLS)
//! on the same port, with `HyperExecutor` and `HyperTimer`.

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use corering::compat::{HyperExecutor, HyperTimer};
use corering::net::{TcpListener, TcpStream};
use corering::shutdown::{Conn, Tracker};
use hyper::body::{Body, Incoming};
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::server::conn::auto;

#[path = "accept.rs"]
mod accept;

/// How long a connection may take to send a request's head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// The command line of a hyper example: `[port] [cores] [--drain SECONDS]`
/// and whatever else the example takes out first.
pub struct Args {
    pub port: u16,
    pub cores: usize,
    pub drain: Duration,
}

impl Args {
    /// Parses what `args` has left (the port defaults to `port`); exits
    /// with the usage (`args` after the program's name) when an argument
    /// does not parse.
    pub fn parse(
        program: &'static str,
        mut args: Vec<String>,
        usage: &'static str,
        port: u16,
    ) -> Args {
        let drain = accept::take_drain_flag(&mut args, program);
        let usage = accept::Usage {
            program,
            args: usage,
        };
        let mut args = args.into_iter();
        let port = usage.arg(args.next(), "port", port);
        let cores = usage.arg(args.next(), "cores", accept::all_cores());
        Args { port, cores, drain }
    }
}

/// Serves on every core until `SIGINT` or `SIGTERM`, then drains: each
/// accepted connection goes to `serve` (on the core that accepted it) with
/// its tracker's [`Conn`]. Prints one line per core at the end; exits 1
/// when a core could not start.
pub fn run<F, Fut>(program: &'static str, scheme: &str, args: &Args, serve: F)
where
    F: Fn(TcpStream, Conn) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let (port, cores, drain) = (args.port, args.cores, args.drain);
    let scheme = scheme.to_owned();
    let launched = corering::Runtime::builder()
        .cores(cores)
        .pin_cores(true)
        .shutdown_on_signals(true)
        .run_on_cores(move |core| {
            let listener = TcpListener::bind_reuse_port(("0.0.0.0", port));
            let serve = serve.clone();
            let scheme = scheme.clone();
            async move {
                let listener = listener
                    .map_err(|error| format!("{core}: cannot listen on port {port}: {error}"))?;
                let _ = listener.set_nodelay(true);
                if core.index() == 0 {
                    let backend = corering::backend();
                    println!(
                        "{program}: serving {scheme}://127.0.0.1:{port}/ on {cores} cores ({backend})"
                    );
                }
                let shutdown = corering::shutdown::token();
                let tracker = Tracker::new(&shutdown);
                let accepted = |stream| {
                    let serve = serve.clone();
                    tracker.spawn(move |conn| serve(stream, conn));
                };
                let label = format!("{program}: {core}");
                accept::accept_loop(label, &shutdown, || listener.accept(), accepted).await;
                drop(listener);
                let drained = tracker.drain(drain).await;
                Ok::<_, String>(accept::report(
                    program,
                    core,
                    "HTTP/1.1 and HTTP/2",
                    &drained,
                ))
            }
        });
    accept::finish(program, launched);
}

/// Serves one connection with hyper-util's auto builder (HTTP/1.1 with
/// keep-alive, or HTTP/2 when the client starts with its preface) until
/// the client goes or the tracker says to close: then hyper finishes the
/// requests in flight (HTTP/1.1 answers with `Connection: close`, HTTP/2
/// sends `GOAWAY`) and the connection ends.
pub async fn serve_http<I, S, B>(io: I, service: S, conn: &Conn)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
    S: Service<Request<Incoming>, Response = Response<B>> + 'static,
    S::Future: 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = auto::Builder::new(HyperExecutor::new());
    builder
        .http1()
        .timer(HyperTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    builder.http2().timer(HyperTimer::new());
    let mut connection = pin!(builder.serve_connection(io, service));
    // An error is the client's (a malformed request, a reset): hyper has
    // answered what it could, and the connection is over either way.
    if conn.until(connection.as_mut()).await.is_none() {
        connection.as_mut().graceful_shutdown();
        let _ = connection.await;
    }
}
