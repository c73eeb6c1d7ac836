//! The static file server's HTTP/1.1 handling: GET and HEAD of the files
//! under a root directory, with Content-Length, Content-Type by extension,
//! single byte ranges, keep-alive and pipelining; file bodies go out with
//! `splice`, never through user space.
//!
//! Kept apart from `main.rs` so the integration tests run the same code.

use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use corering::buf::IoBuf;
use corering::fs::{File, OpenOptions};
use corering::net::TcpStream;
use corering::shutdown::Conn as Tracked;
use corering::time::timeout;

/// The most bytes a request head may take.
pub const HEAD_MAX: usize = 8 * 1024;

/// How long a client may take to accept each piece of a response: the
/// head, or the next [`SEND_CHUNK`] bytes of a body. A client that stops
/// reading (or reads slower than `SEND_CHUNK` per `SEND_TIMEOUT`, about
/// 25 KiB/s) would otherwise hold its socket, the file, the splice pipe
/// and a kernel io-wq thread blocked in the splice for as long as TCP
/// keeps the connection up; past this the connection is closed and all of
/// them are released.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// The bytes of a body sent under one [`SEND_TIMEOUT`]: a quarter of the
/// 1 MiB splice pipe, so that progress is measured in steps a slow client
/// can make.
pub const SEND_CHUNK: u64 = 256 * 1024;

/// A parsed request head.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub head: bool,
    /// The file asked for, relative to the root (already decoded and
    /// checked: no `..`, no NUL).
    pub path: PathBuf,
    pub range: Option<String>,
    pub close: bool,
    /// Bytes of the head, to remove from the input.
    pub len: usize,
}

/// What the start of the input holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Parse {
    Request(Request),
    Partial,
    /// A response status to send before closing.
    Refuse(&'static str),
}

/// Parses the request head at the start of `input`.
///
/// Strict where a lenient reading could differ from a proxy's in front
/// (request smuggling, RFC 9112 sections 5 and 6.3): lines end with CRLF
/// only, so a bare CR or LF (or a NUL, or another control byte) inside a
/// line is refused; so is whitespace between a header's name and its
/// colon, a folded header (obs-fold), any `Content-Length` but one `0`,
/// and any `Transfer-Encoding`: GET and HEAD carry no body here. Each
/// refusal is 400 and closes the connection.
pub fn parse(input: &[u8]) -> Parse {
    let Some(end) = find(input, b"\r\n\r\n") else {
        return if input.len() >= HEAD_MAX {
            Parse::Refuse("431 Request Header Fields Too Large")
        } else {
            Parse::Partial
        };
    };
    if end + 4 > HEAD_MAX {
        return Parse::Refuse("431 Request Header Fields Too Large");
    }
    let Ok(head) = std::str::from_utf8(&input[..end]) else {
        return Parse::Refuse("400 Bad Request");
    };
    let mut lines = head.split("\r\n");
    let mut parts = lines.next().unwrap_or("").split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Parse::Refuse("400 Bad Request");
    };
    if method.is_empty()
        || !method.bytes().all(is_token)
        || target.is_empty()
        || !target.bytes().all(|byte| byte.is_ascii_graphic())
    {
        return Parse::Refuse("400 Bad Request");
    }
    let mut close = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => return Parse::Refuse("400 Bad Request"),
    };
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Parse::Refuse("405 Method Not Allowed"),
    };
    let mut range = None;
    let mut length_seen = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Parse::Refuse("400 Bad Request");
        };
        // A folded line starts with whitespace, so its "name" is no token.
        if name.is_empty()
            || !name.bytes().all(is_token)
            || value
                .bytes()
                .any(|byte| byte.is_ascii_control() && byte != b'\t')
        {
            return Parse::Refuse("400 Bad Request");
        }
        let value = value.trim_matches([' ', '\t']);
        if name.eq_ignore_ascii_case("connection") {
            if value.eq_ignore_ascii_case("close") {
                close = true;
            } else if value.eq_ignore_ascii_case("keep-alive") {
                close = false;
            }
        } else if name.eq_ignore_ascii_case("range") {
            range = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("content-length") {
            // One `0` is no body; a body, or a second header (even an
            // equal one), is refused.
            if length_seen || value != "0" {
                return Parse::Refuse("400 Bad Request");
            }
            length_seen = true;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Parse::Refuse("400 Bad Request");
        }
    }
    match resolve(target) {
        Ok(path) => Parse::Request(Request {
            head: head_only,
            path,
            range,
            close,
            len: end + 4,
        }),
        Err(status) => Parse::Refuse(status),
    }
}

/// Whether `byte` may be part of a token (a method or a header name,
/// RFC 9110 section 5.6.2).
fn is_token(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// The relative path a request target names: percent-decoded, without the
/// query; `..` refused with 403 (the kernel would refuse it too, when the
/// file is opened beneath the root).
fn resolve(target: &str) -> Result<PathBuf, &'static str> {
    let path = target.split(['?', '#']).next().unwrap_or("");
    if !path.starts_with('/') {
        return Err("400 Bad Request");
    }
    let decoded = percent_decode(path).ok_or("400 Bad Request")?;
    let mut relative = PathBuf::new();
    for component in decoded.split(|&byte| byte == b'/') {
        match component {
            b"" | b"." => {}
            b".." => return Err("403 Forbidden"),
            _ if component.contains(&0) => return Err("400 Bad Request"),
            _ => relative.push(std::ffi::OsStr::new(
                std::str::from_utf8(component).map_err(|_| "400 Bad Request")?,
            )),
        }
    }
    Ok(relative)
}

fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            // Exactly two hex digits (`from_str_radix` alone would take a
            // sign: `%+1`).
            let (high, low) = (hex(*bytes.get(i + 1)?)?, hex(*bytes.get(i + 2)?)?);
            decoded.push((high << 4) | low);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    Some(decoded)
}

/// The value of one hex digit.
fn hex(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|value| u8::try_from(value).ok())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// The byte range `bytes=a-b`, `bytes=a-` or `bytes=-n` of a file of `len`
/// bytes: `Some(Ok(start..end))`; `Some(Err(()))` when unsatisfiable;
/// `None` to ignore the header (several ranges, another unit, bad syntax),
/// which serves the whole file.
pub fn byte_range(header: &str, len: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = header.strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    let range = if first.is_empty() {
        let suffix: u64 = last.parse().ok()?;
        if suffix == 0 {
            return Some(Err(()));
        }
        (len.saturating_sub(suffix), len)
    } else {
        let start: u64 = first.parse().ok()?;
        let end = if last.is_empty() {
            len
        } else {
            let last: u64 = last.parse().ok()?;
            if last < start {
                return None;
            }
            last.saturating_add(1).min(len)
        };
        (start, end)
    };
    if range.0 >= len {
        return Some(Err(()));
    }
    Some(Ok(range))
}

/// The Content-Type of a file, by its extension.
pub fn content_type(path: &Path) -> &'static str {
    let extension = path
        .extension()
        .and_then(|extension| extension.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match extension.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "txt" | "md" | "toml" | "rs" | "csv" | "log" => "text/plain; charset=utf-8",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "pdf" => "application/pdf",
        "wasm" => "application/wasm",
        "mp4" => "video/mp4",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

/// Opens the directory to serve; files are opened beneath it, so that no
/// path (`..`, an absolute path, a symbolic link pointing outside) can
/// leave it.
pub async fn open_root(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(path)
        .await
}

/// Serves one connection until the client closes it, asks to close, sends
/// something refused, stays silent for `idle`, or takes longer than `send`
/// to accept a piece of a response (see [`SEND_TIMEOUT`]).
#[allow(dead_code)] // the tests serve untracked connections
pub async fn serve(stream: TcpStream, root: Rc<File>, idle: Duration, send: Duration) {
    serve_tracked(stream, root, idle, send, None).await;
}

/// [`serve`] for a connection of a graceful shutdown's tracker: once
/// `tracked` says closing, the next request answered says
/// `Connection: close` and is the last (a transfer in progress finishes
/// first, or the drain deadline cuts it), and a connection waiting for a
/// request closes.
pub async fn serve_tracked(
    stream: TcpStream,
    root: Rc<File>,
    idle: Duration,
    send: Duration,
    tracked: Option<Tracked>,
) {
    let conn = Conn {
        stream: &stream,
        send,
    };
    let mut input: Vec<u8> = Vec::with_capacity(1024);
    loop {
        let mut request = match parse(&input) {
            Parse::Request(request) => request,
            Parse::Refuse(status) => {
                if conn.send(refusal(status)).await.is_ok() {
                    linger_close(&stream).await;
                }
                return;
            }
            Parse::Partial => {
                input.reserve(1024);
                let len = input.len();
                let read = timeout(idle, stream.read(input.slice(len..)));
                let read = match &tracked {
                    Some(tracked) => tracked.until(read).await,
                    None => Some(read.await),
                };
                let Some(Ok((read, returned))) = read else {
                    return; // shutting down, or idle too long
                };
                input = returned.into_inner();
                if !matches!(read, Ok(n) if n > 0) {
                    return;
                }
                continue;
            }
        };
        input.drain(..request.len);
        request.close |= tracked.as_ref().is_some_and(Tracked::is_closing);
        ANSWERED.set(ANSWERED.get() + 1);
        match respond(&conn, &root, &request).await {
            Ok(true) if !request.close => {}
            // Closing after the response, or the connection failed.
            _ => return,
        }
    }
}

thread_local! {
    /// Requests answered on this thread (a core), for the report at exit.
    static ANSWERED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Requests this core has answered.
#[allow(dead_code)] // read by main.rs, not by the tests that share this file
pub fn answered() -> u64 {
    ANSWERED.get()
}

/// A connection being answered: where responses go, and how long each
/// piece may wait for the client.
struct Conn<'a> {
    stream: &'a TcpStream,
    send: Duration,
}

impl Conn<'_> {
    /// Sends all of `bytes`; `TimedOut` when the client has not taken them
    /// within the send timeout.
    async fn send(&self, bytes: Vec<u8>) -> io::Result<()> {
        match timeout(self.send, self.stream.write_all(bytes)).await {
            Ok((sent, _)) => sent,
            Err(_) => Err(stalled()),
        }
    }

    /// Sends `len` bytes of `file` from `start`, [`SEND_CHUNK`] at a time,
    /// each under the send timeout; returns the bytes sent, fewer than
    /// `len` only when the file ends first.
    async fn send_file(&self, file: &File, start: u64, len: u64) -> io::Result<u64> {
        let mut sent = 0;
        while sent < len {
            let chunk = (len - sent).min(SEND_CHUNK);
            // Dropping the splice on the timeout cancels it: the kernel
            // interrupts the io-wq thread blocked in it, and the pipe goes
            // once that completion has come.
            let moved = timeout(self.send, file.splice_to(self.stream, start + sent, chunk))
                .await
                .map_err(|_| stalled())??;
            sent += moved;
            if moved < chunk {
                break; // the file ended
            }
        }
        Ok(sent)
    }
}

/// The error of a client that stopped taking a response.
fn stalled() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "the client took no part of the response within the send timeout",
    )
}

/// Closes our side, then discards what the client still sends, for at
/// most a second: closing with unread input would reset the connection,
/// and the client could lose the response just sent.
async fn linger_close(stream: &TcpStream) {
    if stream.shutdown(std::net::Shutdown::Write).await.is_err() {
        return;
    }
    let _ = timeout(Duration::from_secs(1), async {
        let mut buf = Vec::with_capacity(1024);
        loop {
            buf.clear();
            let (read, returned) = stream.read(buf).await;
            buf = returned;
            if !matches!(read, Ok(n) if n > 0) {
                return;
            }
        }
    })
    .await;
}

/// A response with no body, then close.
fn refusal(status: &str) -> Vec<u8> {
    let allow = if status.starts_with("405") {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    format!("HTTP/1.1 {status}\r\n{allow}Content-Length: 0\r\nConnection: close\r\n\r\n")
        .into_bytes()
}

/// Answers one request; `Ok(false)` when the connection must close.
async fn respond(conn: &Conn<'_>, root: &File, request: &Request) -> io::Result<bool> {
    if request.path == Path::new(METRICS) {
        return send_metrics(conn, request).await;
    }
    let mut read = OpenOptions::new();
    read.read(true);
    // The root itself is "." (an empty path names nothing).
    let mut path = if request.path.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        request.path.clone()
    };
    let mut file = match read.open_beneath(root, &path).await {
        Ok(file) => file,
        Err(error) => return send_error(conn, request, &error).await,
    };
    let mut metadata = file.metadata().await?;
    if metadata.is_dir() {
        // A directory's index, if it has one.
        file.close().await?;
        path.push("index.html");
        file = match read.open_beneath(root, &path).await {
            Ok(file) => file,
            Err(error) => return send_error(conn, request, &error).await,
        };
        metadata = file.metadata().await?;
    }
    if !metadata.is_file() {
        file.close().await?;
        return send_status(conn, request, "403 Forbidden").await;
    }
    let len = metadata.len();
    let connection = if request.close {
        "Connection: close\r\n"
    } else {
        ""
    };
    let (status, start, end, range) = match request
        .range
        .as_deref()
        .and_then(|h| byte_range(h, len))
    {
        None => ("200 OK", 0, len, String::new()),
        Some(Ok((start, end))) => (
            "206 Partial Content",
            start,
            end,
            format!("Content-Range: bytes {start}-{}/{len}\r\n", end - 1),
        ),
        Some(Err(())) => {
            file.close().await?;
            let head = format!(
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\n{connection}\r\n"
            );
            conn.send(head.into_bytes()).await?;
            return Ok(true);
        }
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: {}\r\nAccept-Ranges: bytes\r\n{range}{connection}\r\n",
        end - start,
        content_type(&path),
    );
    conn.send(head.into_bytes()).await?;
    if !request.head && end > start {
        let sent = conn.send_file(&file, start, end - start).await?;
        if sent < end - start {
            // The file shrank meanwhile: the length announced cannot be
            // kept, so the connection must end.
            file.close().await?;
            return Ok(false);
        }
    }
    file.close().await?;
    Ok(true)
}

/// The response for a failed open: 404, 403, or 500.
async fn send_error(conn: &Conn<'_>, request: &Request, error: &io::Error) -> io::Result<bool> {
    let status = match error.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => "404 Not Found",
        // A name over NAME_MAX bytes, or a path over PATH_MAX: no file
        // can have it, and the request was well-formed.
        _ if error.raw_os_error() == Some(libc::ENAMETOOLONG) => "404 Not Found",
        io::ErrorKind::PermissionDenied => "403 Forbidden",
        // A symbolic link pointing outside the root.
        _ if error.raw_os_error() == Some(libc::EXDEV) => "403 Forbidden",
        _ => "500 Internal Server Error",
    };
    send_status(conn, request, status).await
}

/// A response with no body; the connection stays open unless the client
/// asked to close.
/// The path (under the root) that serves every core's counters instead
/// of a file: `GET /metrics`, in the Prometheus text format.
pub const METRICS: &str = "metrics";

/// The counters of every core of the launch, as Prometheus scrapes them.
async fn send_metrics(conn: &Conn<'_>, request: &Request) -> io::Result<bool> {
    let body = corering::CoreStats::render_prometheus(&corering::core_stats());
    let connection = if request.close {
        "Connection: close\r\n"
    } else {
        ""
    };
    let mut response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n{connection}\r\n",
        body.len()
    )
    .into_bytes();
    if !request.head {
        response.extend_from_slice(body.as_bytes());
    }
    conn.send(response).await?;
    Ok(true)
}

async fn send_status(conn: &Conn<'_>, request: &Request, status: &str) -> io::Result<bool> {
    let connection = if request.close {
        "Connection: close\r\n"
    } else {
        ""
    };
    let head = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n{connection}\r\n");
    conn.send(head.into_bytes()).await?;
    Ok(true)
}
