//! The hello example's HTTP handling, served by a corering core and driven
//! by real clients: curl, and raw sockets for pipelining, malformed input,
//! ambiguous body lengths, oversized heads and bodies, and idle
//! connections.

#[path = "../examples/hello/http.rs"]
mod http;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use corering::buf::{BufRing, IoBuf};
use corering::net::TcpListener;
use http::{parse, Parse};

const OK: &str =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nHello World!";
const OK_CLOSE: &str =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nConnection: close\r\n\r\nHello World!";

/// A hello server on its own thread and core; stops when dropped.
struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(idle: Duration) -> Server {
        let stop = Arc::new(AtomicBool::new(false));
        let (addr_tx, addr_rx) = mpsc::channel();
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            corering::start(async move {
                let listener = TcpListener::bind("127.0.0.1:0").unwrap();
                let ring = BufRing::new(http::RING_BUFFERS, http::READ_SIZE).unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                while !stopping.load(Ordering::SeqCst) {
                    if let Ok((stream, _)) =
                        listener.accept_timeout(Duration::from_millis(20)).await
                    {
                        corering::spawn(http::serve(stream, ring.clone(), idle));
                    }
                }
            })
        });
        Server {
            addr: addr_rx.recv().unwrap(),
            stop,
            thread: Some(thread),
        }
    }

    /// Sends `request` on a new connection and reads until the server
    /// closes it.
    fn exchange(&self, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(request).unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        String::from_utf8(response).unwrap()
    }

    fn curl(&self, path: &str) -> String {
        let output = Command::new("curl")
            .args(["-s", "-i", "--max-time", "10"])
            .arg(format!("http://{}{path}", self.addr))
            .output()
            .expect("curl is installed (ci/setup installs it)");
        assert!(output.status.success(), "curl failed: {output:?}");
        String::from_utf8(output.stdout).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn curl_gets_exactly_hello_world() {
    let server = Server::start(Duration::from_secs(5));
    assert_eq!(server.curl("/"), OK);
    assert_eq!(server.curl("/any/path?query=1"), OK);
}

#[test]
fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let server = Server::start(Duration::from_secs(5));
    let request = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n\
                    POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello\
                    GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    assert_eq!(server.exchange(request), format!("{OK}{OK}{OK_CLOSE}"));
}

#[test]
fn malformed_and_oversized_requests_are_refused_and_the_server_goes_on() {
    let server = Server::start(Duration::from_secs(5));
    let bad = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    assert_eq!(server.exchange(b"GARBAGE\r\n\r\n"), bad);
    assert_eq!(server.exchange(b"GET / HTTP/9.9\r\n\r\n"), bad);
    assert_eq!(
        server.exchange(b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n"),
        bad
    );
    // A good request before a bad one is still answered.
    assert_eq!(
        server.exchange(b"GET / HTTP/1.1\r\n\r\nget lowercase HTTP/1.1\r\n\r\n"),
        format!("{OK}{bad}")
    );
    let mut huge = b"GET / HTTP/1.1\r\nX-Filler: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', http::HEAD_MAX));
    huge.extend_from_slice(b"\r\n\r\n");
    assert_eq!(
        server.exchange(&huge),
        "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(server.curl("/"), OK, "the server keeps serving");
}

#[test]
fn http_1_0_closes_unless_kept_alive() {
    let server = Server::start(Duration::from_secs(5));
    assert_eq!(server.exchange(b"GET / HTTP/1.0\r\n\r\n"), OK_CLOSE);
    // Kept alive, the connection stays open after the response: the idle
    // timeout of this server (5 s) has not passed when the client closes.
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .write_all(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .unwrap();
    let mut response = vec![0u8; OK.len()];
    stream.read_exact(&mut response).unwrap();
    assert_eq!(String::from_utf8(response).unwrap(), OK);
}

#[test]
fn idle_connections_are_closed() {
    let server = Server::start(Duration::from_millis(100));
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert_eq!(stream.read(&mut byte).unwrap(), 0, "closed by the server");
}

#[test]
fn a_waiting_connection_holds_no_buffer_and_split_requests_are_joined() {
    corering::start(async {
        // Two buffers of 16 bytes: every request below spans several, and
        // more requests pass than the ring has buffers.
        let ring = BufRing::new(2, 16).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = corering::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let server = corering::spawn(http::serve(stream, ring.clone(), Duration::from_secs(5)));
        let request = b"GET / HTTP/1.1\r\nHost: a\r\nX-Pad: 0123456789\r\n\r\n";
        for round in 0..10 {
            // The request in two sends, the second after the server has
            // received (and kept) the first part.
            let (first, rest) = request.split_at(20 + round);
            client.write_all(first.to_vec()).await.0.unwrap();
            corering::time::sleep(Duration::from_millis(2)).await;
            client.write_all(rest.to_vec()).await.0.unwrap();
            let response = read_len(&client, OK.len()).await;
            assert_eq!(String::from_utf8(response).unwrap(), OK, "round {round}");
            // Answered and waiting for the next request: every buffer is
            // back in the ring.
            assert_eq!(ring.available(), 2, "round {round}");
        }
        client
            .write_all(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n".to_vec())
            .await
            .0
            .unwrap();
        let response = read_len(&client, OK_CLOSE.len()).await;
        assert_eq!(String::from_utf8(response).unwrap(), OK_CLOSE);
        let (read, _) = client.read(Vec::with_capacity(16)).await;
        assert_eq!(read.unwrap(), 0, "closed by the server");
        server.await.unwrap();
        assert_eq!(ring.available(), 2);
    });
}

/// Reads exactly `len` bytes from `stream`.
async fn read_len(stream: &corering::net::TcpStream, len: usize) -> Vec<u8> {
    let mut buf = Vec::with_capacity(len);
    while buf.len() < len {
        let filled = buf.len();
        let (read, returned) = stream.read(buf.slice(filled..)).await;
        buf = returned.into_inner();
        assert!(
            read.unwrap() > 0,
            "closed after {} of {len} bytes",
            buf.len()
        );
    }
    buf
}

#[test]
fn parser_outcomes() {
    assert_eq!(parse(b""), Parse::Partial);
    assert_eq!(parse(b"GET / HTTP/1.1\r\nHost: a\r\n"), Parse::Partial);
    assert_eq!(
        parse(b"GET / HTTP/1.1\r\n\r\nrest"),
        Parse::Request {
            len: 18,
            close: false
        }
    );
    assert_eq!(
        parse(b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nab"),
        Parse::Partial
    );
    assert_eq!(
        parse(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n"),
        Parse::Request {
            len: 37,
            close: true
        }
    );
    assert_eq!(
        parse(b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n"),
        Parse::Refuse("400 Bad Request")
    );
    assert_eq!(
        parse(b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
        Parse::Refuse("501 Not Implemented")
    );
    assert_eq!(
        parse(&vec![b'a'; http::HEAD_MAX + 1]),
        Parse::Refuse("431 Request Header Fields Too Large")
    );
    // Bare LF line ends, and a bad header before the head is complete.
    assert_eq!(
        parse(b"GET / HTTP/1.1\n\n"),
        Parse::Refuse("400 Bad Request")
    );
    assert_eq!(
        parse(b"GET / HTTP/1.1\r\nHost: a\n"),
        Parse::Refuse("400 Bad Request")
    );
    assert_eq!(
        parse(b"GET / HTTP/1.1\r\nno colon\r\n"),
        Parse::Refuse("400 Bad Request")
    );
    // A head of exactly `HEAD_MAX` bytes is served; one byte more is not.
    let head_of = |len: usize| {
        let mut head = b"GET / HTTP/1.1\r\nX: ".to_vec();
        head.resize(len - 4, b'x');
        head.extend_from_slice(b"\r\n\r\n");
        head
    };
    assert_eq!(
        parse(&head_of(http::HEAD_MAX)),
        Parse::Request {
            len: http::HEAD_MAX,
            close: false
        }
    );
    assert_eq!(
        parse(&head_of(http::HEAD_MAX + 1)),
        Parse::Refuse("431 Request Header Fields Too Large")
    );
    assert_eq!(
        parse(&head_of(http::HEAD_MAX)[..http::HEAD_MAX - 1]),
        Parse::Partial
    );
}

/// The refusal hello sends for `status`.
fn refusal(status: &str) -> String {
    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
}

#[test]
fn ambiguous_body_lengths_are_refused_with_400() {
    // Each of these could be framed two ways by a proxy in front (request
    // smuggling, RFC 9112 section 6.3): refused, and the connection closes.
    let server = Server::start(Duration::from_secs(5));
    let bad = refusal("400 Bad Request");
    let cases: [&[u8]; 13] = [
        b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        b"POST / HTTP/1.1\r\ncontent-length: 0\r\nCONTENT-LENGTH: 0\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nContent-Length: 5,5\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nContent-Length: 5 5\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nContent-Length: \r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 0x5\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nhello",
        // A bare CR inside a value: a proxy that ends lines there sees a
        // Content-Length this server would not.
        b"POST / HTTP/1.1\r\nX-A: a\rContent-Length: 5\r\n\r\nhello",
    ];
    for case in cases {
        assert_eq!(
            server.exchange(case),
            bad,
            "{:?}",
            String::from_utf8_lossy(case)
        );
    }
    // Transfer-Encoding alone is a framing hello does not implement.
    assert_eq!(
        server.exchange(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        refusal("501 Not Implemented")
    );
    // Leading zeros are still a plain decimal number.
    assert_eq!(
        server
            .exchange(b"POST / HTTP/1.1\r\nContent-Length: 005\r\nConnection: close\r\n\r\nhello"),
        OK_CLOSE
    );
    assert_eq!(server.curl("/"), OK, "the server keeps serving");
}

#[test]
fn a_body_past_the_limit_gets_413_before_it_is_sent() {
    let server = Server::start(Duration::from_secs(5));
    let too_large = refusal("413 Content Too Large");
    // A terabyte announced: the refusal comes on the head alone, so
    // nothing of the body was waited for, let alone buffered.
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1099511627776\r\n\r\n")
        .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    assert_eq!(
        String::from_utf8(response).unwrap(),
        too_large,
        "refused, then closed by the server"
    );
    // The parser says so on the head alone too.
    assert_eq!(
        parse(b"POST / HTTP/1.1\r\nContent-Length: 1099511627776\r\n\r\n"),
        Parse::Refuse("413 Content Too Large")
    );
    // The limit itself is served; one byte more is not.
    let post = |len: usize| {
        let mut request =
            format!("POST / HTTP/1.1\r\nConnection: close\r\nContent-Length: {len}\r\n\r\n")
                .into_bytes();
        request.resize(request.len() + len, b'b');
        request
    };
    assert_eq!(server.exchange(&post(http::BODY_MAX)), OK_CLOSE);
    assert_eq!(server.exchange(&post(http::BODY_MAX + 1)), too_large);
    // A new connection is served as before.
    assert_eq!(server.curl("/"), OK);
}
