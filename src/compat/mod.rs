//! The ecosystem's I/O and runtime traits on corering.
//!
//! - [`PollIo`] puts a [`TcpStream`](crate::net::TcpStream) or
//!   [`UnixStream`](crate::net::UnixStream) behind the readiness traits:
//!   tokio's `AsyncRead`/`AsyncWrite` (feature `tokio-io`), `futures-io`'s
//!   (feature `futures-io`) and hyper 1.x's `rt::Read`/`rt::Write`
//!   (feature `hyper`), with exact semantics: a write that returns
//!   `Ready(Ok(n))` handed exactly `n` bytes to the kernel, and `Pending`
//!   means none (no hidden buffer), so tokio-util codecs, tokio-rustls and
//!   h2 run on it unchanged.
//! - [`HyperExecutor`] and [`HyperTimer`] (feature `hyper`) are hyper's
//!   `rt::Executor` and `rt::Timer`: spawn on the current core, sleep on
//!   its timer wheel.
//!
//! Readiness comes from the ring: a non-blocking system call first, and
//! only when it would block a readiness event for that direction, from a
//! multishot `IORING_OP_POLL_ADD` armed at the first `EAGAIN` and kept
//! armed (`poll_io.rs`). None of these features is on by default.
//!
//! # Example
//!
//! hyper's HTTP/2 server and client on one core, over `PollIo`:
//!
//! ```
//! # #[cfg(all(feature = "hyper", feature = "tokio-io"))]
//! # fn main() {
//! use corering::compat::{HyperExecutor, HyperTimer, PollIo};
//! use corering::net::{TcpListener, TcpStream};
//!
//! corering::start(async {
//!     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
//!     let addr = listener.local_addr().unwrap();
//!     corering::spawn(async move {
//!         let (stream, _) = listener.accept().await.unwrap();
//!         let service = hyper::service::service_fn(|_request| async {
//!             Ok::<_, std::convert::Infallible>(hyper::Response::new(String::from("hello")))
//!         });
//!         hyper::server::conn::http2::Builder::new(HyperExecutor::new())
//!             .timer(HyperTimer::new())
//!             .serve_connection(PollIo::new(stream).unwrap(), service)
//!             .await
//!             .unwrap();
//!     });
//!     let io = PollIo::new(TcpStream::connect(addr).await.unwrap()).unwrap();
//!     let (mut sender, conn) = hyper::client::conn::http2::handshake(HyperExecutor::new(), io)
//!         .await
//!         .unwrap();
//!     corering::spawn(conn);
//!     let request = hyper::Request::get("http://localhost/").body(String::new()).unwrap();
//!     let response = sender.send_request(request).await.unwrap();
//!     assert_eq!(response.status(), 200);
//! });
//! # }
//! # #[cfg(not(all(feature = "hyper", feature = "tokio-io")))]
//! # fn main() {}
//! ```

#[cfg(feature = "futures-io")]
mod futures_io;
#[cfg(feature = "hyper")]
mod hyper_io;
#[cfg(feature = "hyper")]
mod hyper_rt;
mod poll_io;
#[cfg(feature = "tokio-io")]
mod tokio_io;

#[cfg(feature = "hyper")]
pub use hyper_rt::{HyperExecutor, HyperTimer};
pub use poll_io::{PollIo, PollSource};
