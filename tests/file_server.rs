//! The file server example's HTTP handling, on a corering core, driven by
//! curl and raw sockets: whole files byte-exact, ranges, HEAD, 404, 403 for
//! `..`, keep-alive and pipelining, ambiguous framing refused, clients that
//! stop reading dropped with every descriptor back, names too long for the
//! file system; and the examples' accept loop out of descriptors, in a
//! child process.

#[path = "../examples/common/accept.rs"]
// The accept loop only: the drain helpers are the examples' own.
#[allow(dead_code)]
mod accept;
mod common;
#[path = "../examples/file_server/http.rs"]
mod http;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use corering::net::TcpListener;
use http::{byte_range, parse, Parse};

/// A file server over `root` on its own thread and core; stops when
/// dropped.
struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(root: &Path) -> Server {
        Server::start_with(root, http::SEND_TIMEOUT)
    }

    /// A server whose send timeout is `send`.
    fn start_with(root: &Path, send: Duration) -> Server {
        let stop = Arc::new(AtomicBool::new(false));
        let (addr_tx, addr_rx) = mpsc::channel();
        let stopping = stop.clone();
        let root = root.to_path_buf();
        let thread = std::thread::spawn(move || {
            corering::start(async move {
                let root = Rc::new(http::open_root(&root).await.unwrap());
                let listener = TcpListener::bind("127.0.0.1:0").unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                while !stopping.load(Ordering::SeqCst) {
                    if let Ok((stream, _)) =
                        listener.accept_timeout(Duration::from_millis(20)).await
                    {
                        corering::spawn(http::serve(
                            stream,
                            root.clone(),
                            Duration::from_secs(5),
                            send,
                        ));
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

    /// curl's output (the body, or with `-i` the head and body) and exit
    /// status for `args` then the URL of `path`.
    fn curl(&self, args: &[&str], path: &str) -> (Vec<u8>, bool) {
        let output = Command::new("curl")
            .args(["-s", "--max-time", "10", "--path-as-is"])
            .args(args)
            .arg(format!("http://{}{path}", self.addr))
            .output()
            .expect("curl is installed (ci/setup installs it)");
        (output.stdout, output.status.success())
    }

    /// The status code curl saw.
    fn status(&self, args: &[&str], path: &str) -> String {
        let mut all = vec!["-o", "/dev/null", "-w", "%{http_code}"];
        all.extend_from_slice(args);
        String::from_utf8(self.curl(&all, path).0).unwrap()
    }

    /// Sends `request` on a new connection and reads until the server
    /// closes it.
    fn exchange(&self, request: &[u8]) -> Vec<u8> {
        let mut stream = TcpStream::connect(self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(request).unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        response
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

/// A directory of test files, removed when dropped.
struct Site(PathBuf);

impl Site {
    fn new(name: &str) -> Site {
        let root =
            std::env::temp_dir().join(format!("corering-site-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("docs")).unwrap();
        std::fs::write(root.join("index.html"), b"<h1>home</h1>\n").unwrap();
        std::fs::write(root.join("docs/big.bin"), big()).unwrap();
        std::fs::write(root.join("docs/notes.txt"), b"0123456789abcdef").unwrap();
        std::fs::write(root.join("with space.css"), b"body{}").unwrap();
        // A link inside the root to a file outside it.
        std::os::unix::fs::symlink(std::env::temp_dir(), root.join("docs/escape")).unwrap();
        Site(root)
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// 2.5 MiB of varying bytes: more than one pipe's worth per splice.
fn big() -> Vec<u8> {
    (0..(5u32 << 19))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect()
}

#[test]
fn curl_fetches_files_byte_exact_with_types_ranges_and_errors() {
    let _serial = common::serial();
    let site = Site::new("curl");
    let server = Server::start(&site.0);

    let (body, ok) = server.curl(&[], "/docs/big.bin");
    assert!(ok);
    assert!(body == big(), "big.bin byte-exact ({} bytes)", body.len());
    assert_eq!(server.curl(&[], "/").0, b"<h1>home</h1>\n", "the index");
    assert_eq!(server.curl(&[], "/with%20space.css").0, b"body{}");

    let (head, _) = server.curl(&["-i"], "/docs/notes.txt");
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Content-Length: 16\r\n"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; charset=utf-8\r\n"),
        "{head}"
    );
    assert!(head.ends_with("\r\n\r\n0123456789abcdef"), "{head}");

    // Ranges: a middle, an open end, a suffix, and one past the end.
    assert_eq!(server.curl(&["-r", "2-5"], "/docs/notes.txt").0, b"2345");
    assert_eq!(server.curl(&["-r", "10-"], "/docs/notes.txt").0, b"abcdef");
    assert_eq!(server.curl(&["-r", "-3"], "/docs/notes.txt").0, b"def");
    let (ranged, _) = server.curl(&["-i", "-r", "1000000-1000009"], "/docs/big.bin");
    let ranged_head = String::from_utf8_lossy(&ranged[..ranged.len() - 10]).into_owned();
    assert!(
        ranged_head.starts_with("HTTP/1.1 206 Partial Content\r\n"),
        "{ranged_head}"
    );
    assert!(
        ranged_head.contains(&format!(
            "Content-Range: bytes 1000000-1000009/{}\r\n",
            5 << 19
        )),
        "{ranged_head}"
    );
    assert_eq!(&ranged[ranged.len() - 10..], &big()[1_000_000..1_000_010]);
    assert_eq!(server.status(&["-r", "99-"], "/docs/notes.txt"), "416");

    // HEAD: the head only.
    let (head, _) = server.curl(&["-I"], "/docs/big.bin");
    let head = String::from_utf8(head).unwrap();
    assert!(
        head.contains(&format!("Content-Length: {}\r\n", 5 << 19)),
        "{head}"
    );
    assert!(head.ends_with("\r\n\r\n"), "{head}");

    assert_eq!(server.status(&[], "/missing.txt"), "404");
    assert_eq!(server.status(&[], "/docs/notes.txt/more"), "404");
    // Leaving the root: refused, however it is spelled.
    assert_eq!(server.status(&[], "/../etc/passwd"), "403");
    assert_eq!(server.status(&[], "/docs/../../etc/passwd"), "403");
    assert_eq!(server.status(&[], "/%2e%2e/etc/passwd"), "403");
    assert_eq!(
        server.status(&[], "/docs/escape"),
        "403",
        "a link leading out"
    );
    assert_eq!(server.status(&["-X", "DELETE"], "/index.html"), "405");
}

#[test]
fn keep_alive_and_pipelined_requests_share_a_connection() {
    let _serial = common::serial();
    let site = Site::new("pipeline");
    let server = Server::start(&site.0);
    let response = server.exchange(
        b"GET /docs/notes.txt HTTP/1.1\r\nHost: a\r\n\r\n\
          HEAD /index.html HTTP/1.1\r\nHost: a\r\n\r\n\
          GET /nothing HTTP/1.1\r\nHost: a\r\n\r\n\
          GET /docs/notes.txt HTTP/1.1\r\nRange: bytes=0-1\r\nConnection: close\r\n\r\n",
    );
    let response = String::from_utf8(response).unwrap();
    let expected = "HTTP/1.1 200 OK\r\nContent-Length: 16\r\nContent-Type: text/plain; charset=utf-8\r\nAccept-Ranges: bytes\r\n\r\n0123456789abcdef\
        HTTP/1.1 200 OK\r\nContent-Length: 14\r\nContent-Type: text/html; charset=utf-8\r\nAccept-Ranges: bytes\r\n\r\n\
        HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n\
        HTTP/1.1 206 Partial Content\r\nContent-Length: 2\r\nContent-Type: text/plain; charset=utf-8\r\nAccept-Ranges: bytes\r\nContent-Range: bytes 0-1/16\r\nConnection: close\r\n\r\n01";
    assert_eq!(response, expected);
    // A malformed request: 400 and close.
    assert_eq!(
        server.exchange(b"NOT A REQUEST\r\n\r\n"),
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
}

#[test]
fn request_parsing_and_ranges() {
    match parse(b"GET /a/b%2Fc?x=1 HTTP/1.1\r\nRange: bytes=1-2\r\n\r\nrest") {
        Parse::Request(request) => {
            assert_eq!(request.path, Path::new("a/b/c"));
            assert_eq!(request.range.as_deref(), Some("bytes=1-2"));
            assert_eq!(
                (request.head, request.close, request.len),
                (false, false, 47)
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Parse::Partial);
    assert_eq!(
        parse(b"GET /a/../b HTTP/1.1\r\n\r\n"),
        Parse::Refuse("403 Forbidden")
    );
    assert_eq!(
        parse(b"GET /a%00b HTTP/1.1\r\n\r\n"),
        Parse::Refuse("400 Bad Request")
    );
    assert_eq!(
        parse(b"GET /%zz HTTP/1.1\r\n\r\n"),
        Parse::Refuse("400 Bad Request")
    );
    assert_eq!(
        parse(b"GET relative HTTP/1.1\r\n\r\n"),
        Parse::Refuse("400 Bad Request")
    );
    assert_eq!(
        parse(b"POST / HTTP/1.1\r\n\r\n"),
        Parse::Refuse("405 Method Not Allowed")
    );
    assert_eq!(
        parse(&vec![b'a'; http::HEAD_MAX]),
        Parse::Refuse("431 Request Header Fields Too Large")
    );
    assert_eq!(byte_range("bytes=0-0", 10), Some(Ok((0, 1))));
    assert_eq!(byte_range("bytes=5-100", 10), Some(Ok((5, 10))));
    assert_eq!(byte_range("bytes=-4", 10), Some(Ok((6, 10))));
    assert_eq!(byte_range("bytes=-40", 10), Some(Ok((0, 10))));
    assert_eq!(byte_range("bytes=10-", 10), Some(Err(())));
    assert_eq!(byte_range("bytes=-0", 10), Some(Err(())));
    assert_eq!(byte_range("bytes=0-1,3-4", 10), None);
    assert_eq!(byte_range("lines=1-2", 10), None);
    assert_eq!(byte_range("bytes=5-2", 10), None);
}

#[test]
fn ambiguous_framing_and_malformed_headers_are_refused_with_400() {
    // Each of these a proxy in front could frame differently from this
    // server (request smuggling, RFC 9112 sections 5 and 6.3): refused,
    // and the connection closes.
    let _serial = common::serial();
    let site = Site::new("smuggling");
    let server = Server::start(&site.0);
    let bad: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let cases: [&[u8]; 14] = [
        b"GET /index.html HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
        b"GET /index.html HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\nhello",
        b"GET /index.html HTTP/1.1\r\nContent-Length: +0\r\n\r\n",
        b"GET /index.html HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
        b"GET /index.html HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n",
        // Whitespace between the name and the colon.
        b"GET /index.html HTTP/1.1\r\nContent-Length : 5\r\n\r\nhello",
        // A header folded onto the next line (obs-fold).
        b"GET /index.html HTTP/1.1\r\nX-A: a\r\n Content-Length: 5\r\n\r\nhello",
        // A bare LF or CR inside a line, where other parsers end it.
        b"GET /index.html HTTP/1.1\r\nX-A: a\nContent-Length: 5\r\n\r\nhello",
        b"GET /index.html HTTP/1.1\r\nX-A: a\rContent-Length: 5\r\n\r\nhello",
        b"GET /index.html HTTP/1.1\nHost: a\r\n\r\n",
        b"GET /index.html HTTP/1.1\r\nX-A: a\0b\r\n\r\n",
        b"GET /index.html HTTP/1.1\r\n: empty name\r\n\r\n",
        // Control bytes in the target, and a percent sign without two hex
        // digits after it.
        b"GET /index\x01.html HTTP/1.1\r\n\r\n",
        b"GET /%+1index.html HTTP/1.1\r\n\r\n",
    ];
    for case in cases {
        assert_eq!(
            String::from_utf8_lossy(&server.exchange(case)),
            String::from_utf8_lossy(bad),
            "{:?}",
            String::from_utf8_lossy(case)
        );
    }
    // A single `Content-Length: 0` is no body: served.
    let served = server.exchange(
        b"GET /docs/notes.txt HTTP/1.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert!(
        served.ends_with(b"\r\n\r\n0123456789abcdef"),
        "{}",
        String::from_utf8_lossy(&served)
    );
}

/// Waits (up to 10 s) for this process's descriptors to number `count`,
/// and returns how many there are then.
fn settle_fds(count: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    while common::open_fds() != count && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    common::open_fds()
}

#[test]
fn clients_that_stop_reading_are_dropped_and_every_descriptor_released() {
    let _serial = common::serial();
    let site = Site::new("stalled");
    // Far more than the socket buffers of both ends hold.
    let huge_len = 32usize << 20;
    std::fs::write(site.0.join("huge.bin"), vec![7u8; huge_len]).unwrap();
    let server = Server::start_with(&site.0, Duration::from_millis(300));
    // A first request and response, so that whatever the server sets up
    // on first use is in the baseline.
    assert_eq!(server.status(&[], "/docs/notes.txt"), "200");
    // The server closes curl's connection on its own time after curl has
    // gone: the baseline is the count once it has held still.
    let baseline = common::steady_fds();

    const CLIENTS: usize = 20;
    let mut clients: Vec<TcpStream> = (0..CLIENTS)
        .map(|_| {
            let mut stream = TcpStream::connect(server.addr).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            stream
                .write_all(b"GET /huge.bin HTTP/1.1\r\nHost: a\r\n\r\n")
                .unwrap();
            // The head has come: the server has the file open and is
            // sending its body. From here on this client reads nothing.
            let mut head = [0u8; 17];
            stream.read_exact(&mut head).unwrap();
            assert_eq!(&head, b"HTTP/1.1 200 OK\r\n");
            stream
        })
        .collect();
    // The server gives up on each client, closing its socket, file and
    // pipe; what is left open is the clients' own sockets.
    assert_eq!(
        settle_fds(baseline + CLIENTS),
        baseline + CLIENTS,
        "descriptors once the stalled clients are dropped"
    );
    for client in &mut clients {
        // What was in flight, then the end: the body was cut short.
        let mut received = Vec::new();
        let end = client.read_to_end(&mut received);
        assert!(
            end.is_ok()
                || matches!(&end, Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset),
            "{end:?}"
        );
        assert!(received.len() < huge_len, "{} bytes", received.len());
    }
    drop(clients);
    assert_eq!(settle_fds(baseline), baseline);
    // And the server goes on.
    assert_eq!(server.status(&[], "/docs/notes.txt"), "200");
}

#[test]
fn names_too_long_for_the_file_system_are_not_found() {
    let _serial = common::serial();
    let site = Site::new("long-names");
    let server = Server::start(&site.0);
    // One component over NAME_MAX (255 bytes), and a path over PATH_MAX
    // (4096 bytes) of short components: no such file can exist, and the
    // connection goes on to the next request.
    let long_name = format!("/{}", "a".repeat(256));
    let long_path = "/abcdefgh".repeat(500);
    for path in [&long_name, &long_path] {
        let response = server.exchange(
            format!(
                "GET {path} HTTP/1.1\r\nHost: a\r\n\r\nGET /docs/notes.txt HTTP/1.1\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        );
        assert_eq!(
            String::from_utf8(response).unwrap(),
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n\
             HTTP/1.1 200 OK\r\nContent-Length: 16\r\nContent-Type: text/plain; charset=utf-8\r\nAccept-Ranges: bytes\r\nConnection: close\r\n\r\n0123456789abcdef",
            "{} bytes",
            path.len()
        );
    }
    // 255 bytes is a name like any other.
    assert_eq!(server.status(&[], &format!("/{}", "a".repeat(255))), "404");
}

/// Set in the environment of the child process that
/// [`out_of_descriptors_the_accept_loop_backs_off_and_logs_once`] starts:
/// the open-file limit is the whole process's, so it is lowered in a child
/// of its own.
const ACCEPT_CHILD: &str = "CORERING_TEST_ACCEPT_CHILD";

#[test]
fn out_of_descriptors_the_accept_loop_backs_off_and_logs_once() {
    // Its pipes to the child are descriptors of this process.
    let _serial = common::serial();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "accept_loop_out_of_descriptors_child",
        ])
        .env(ACCEPT_CHILD, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The child prints its port once it has no descriptor left.
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let port: u16 = loop {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut stdout, &mut line).unwrap() == 0 {
            let output = child.wait_with_output().unwrap();
            panic!(
                "the child ended without a port: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        // After libtest's `test name ... ` on the same line.
        if let Some((_, port)) = line.trim().split_once("accept-child-port ") {
            break port.parse().unwrap();
        }
    };
    // Queued, these connections make every accept fail (EMFILE) until the
    // child frees its descriptors, about 1.5 s later.
    let clients: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    let output = child.wait_with_output().unwrap();
    drop(clients);
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "child failed: {stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("file_server: test:"))
        .collect();
    // One line as the refusals start, one as accepts succeed again.
    assert_eq!(
        lines.len(),
        2,
        "lines logged; the first ones:\n{}",
        lines[..lines.len().min(4)].join("\n")
    );
    assert!(
        lines[0].starts_with("file_server: test: accept: Too many open files (os error 24); "),
        "{stderr}"
    );
    let refused: u32 = lines[1]
        .strip_prefix("file_server: test: accepting again after ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|count| count.parse().ok())
        .unwrap_or_else(|| panic!("{stderr}"));
    // Doubling from 1 ms, about 1.5 s of refusals take about eleven
    // attempts; retrying every 10 ms took 150.
    assert!((1..=20).contains(&refused), "{refused} refused attempts");
}

/// The child of [`out_of_descriptors_the_accept_loop_backs_off_and_logs_once`]:
/// runs file_server's accept loop with every descriptor of the process
/// taken, then frees them. Does nothing as a test of its own.
#[test]
fn accept_loop_out_of_descriptors_child() {
    if std::env::var_os(ACCEPT_CHILD).is_none() {
        return;
    }
    corering::start(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        // A limit just above what is open, then taken up to it.
        let limit = common::open_fds() as u64 + 8;
        let lowered = libc::rlimit {
            rlim_cur: limit,
            rlim_max: limit,
        };
        // SAFETY: setrlimit reads the struct we pass and nothing else.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lowered) }, 0);
        let mut fillers = Vec::new();
        loop {
            match std::fs::File::open("/dev/null") {
                Ok(file) => fillers.push(file),
                Err(error) => {
                    assert_eq!(error.raw_os_error(), Some(libc::EMFILE));
                    break;
                }
            }
        }
        println!("accept-child-port {port}");
        let accepting = corering::spawn(async move {
            let serve = drop::<corering::net::TcpStream>;
            let shutdown = corering::shutdown::Shutdown::new();
            accept::accept_loop("file_server: test", &shutdown, || listener.accept(), serve).await;
        });
        corering::time::sleep(Duration::from_millis(1500)).await;
        drop(fillers);
        // The next attempt comes at most 1 s later (the longest backoff),
        // and succeeds.
        corering::time::sleep(Duration::from_millis(1500)).await;
        accepting.abort();
    });
}
