//! The hello server's HTTP/1.1 connection handling: keep-alive, pipelining,
//! size limits on request heads and bodies, an idle timeout, and a clear
//! status for requests it cannot serve.
//!
//! A request whose body length could be read two ways (two
//! `Content-Length` headers, a value that is not a plain decimal number,
//! `Transfer-Encoding` with `Content-Length`, a CR or NUL inside a header)
//! gets 400 and the connection closes: a proxy in front that framed it the
//! other way would have its next request smuggled in (RFC 9112 section
//! 6.3).
//!
//! Kept apart from `main.rs` so the integration tests run the same code.

use std::cell::RefCell;
use std::time::Duration;

use corering::buf::BufRing;
use corering::net::TcpStream;
use corering::shutdown::Conn;
use corering::time::timeout;

/// The room made for each receive: the size of each buffer of the ring the
/// requests arrive in.
pub const READ_SIZE: usize = 4096;

/// The buffers in each core's ring. Each is held only from its arrival to
/// the parse of what it holds, so a few hundred serve any number of
/// connections; a connection that finds the ring empty waits for one.
pub const RING_BUFFERS: u16 = 256;

/// The most bytes a request head (request line and headers) may take.
pub const HEAD_MAX: usize = 8 * 1024;

/// The most bytes a request body may take; a longer one is refused with
/// 413 on its head alone, before any of it is waited for. Hello ignores
/// bodies, but a body must arrive whole before the next request starts,
/// and until then it is kept: so this bounds what one connection can make
/// the server hold to `HEAD_MAX + BODY_MAX` (and one receive buffer).
pub const BODY_MAX: usize = 64 * 1024;

/// What the start of a buffer holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Parse {
    /// A whole request of `len` bytes (head and body); `close` when the
    /// client asked to close after it.
    Request { len: usize, close: bool },
    /// Not a whole request yet.
    Partial,
    /// A request this server refuses, with the status line to send before
    /// closing.
    Refuse(&'static str),
}

/// Parses the request at the start of `buf`, in one pass over its head.
pub fn parse(buf: &[u8]) -> Parse {
    // A head that has not ended within `HEAD_MAX` bytes is too large.
    let mut lines = Lines {
        head: &buf[..buf.len().min(HEAD_MAX)],
        end: 0,
    };
    let incomplete = || {
        if buf.len() >= HEAD_MAX {
            Parse::Refuse("431 Request Header Fields Too Large")
        } else {
            Parse::Partial
        }
    };
    let (version, mut close) = match lines.next() {
        Line::Whole(line) => match request_line(line) {
            Some(parsed) => parsed,
            None => return Parse::Refuse("400 Bad Request"),
        },
        Line::Incomplete => return incomplete(),
        Line::BareLf => return Parse::Refuse("400 Bad Request"),
    };
    let mut body_len: Option<usize> = None;
    let mut chunked = false;
    loop {
        let line = match lines.next() {
            Line::Whole([]) => break, // the empty line ending the head
            Line::Whole(line) => line,
            Line::Incomplete => return incomplete(),
            Line::BareLf => return Parse::Refuse("400 Bad Request"),
        };
        let Some(colon) = line.iter().position(|&byte| byte == b':') else {
            return Parse::Refuse("400 Bad Request");
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        // A token (so no space before the colon, no obs-fold), and a value
        // without the CR or NUL that other parsers might end the line at.
        if name.is_empty()
            || !name.iter().all(|&byte| TOKEN[usize::from(byte)])
            || memchr::memchr2(b'\r', 0, value).is_some()
        {
            return Parse::Refuse("400 Bad Request");
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            // Even an equal second value is refused: simpler than being
            // sure every proxy in front agrees which one counts.
            match (body_len, content_length(value)) {
                (None, Some(len)) => body_len = Some(len),
                _ => return Parse::Refuse("400 Bad Request"),
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            chunked = true;
        } else if name.eq_ignore_ascii_case(b"connection") {
            if value.eq_ignore_ascii_case(b"close") {
                close = true;
            } else if value.eq_ignore_ascii_case(b"keep-alive") && version == 0 {
                close = false;
            }
        }
    }
    let body_len = match (chunked, body_len) {
        (true, Some(_)) => return Parse::Refuse("400 Bad Request"),
        (true, None) => return Parse::Refuse("501 Not Implemented"),
        (false, Some(len)) if len > BODY_MAX => {
            return Parse::Refuse("413 Content Too Large");
        }
        (false, len) => len.unwrap_or(0),
    };
    // At most HEAD_MAX + BODY_MAX: no overflow.
    let len = lines.end + body_len;
    if buf.len() < len {
        return Parse::Partial;
    }
    Parse::Request { len, close }
}

/// The bytes a token (a header name) may hold, RFC 9110 section 5.6.2:
/// letters, digits and ``!#$%&'*+-.^_`|~``.
const TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        byte += 1;
    }
    table
};

/// A `Content-Length` value: a plain decimal number (digits only: no sign,
/// no list, no spaces inside) that fits a `usize`.
fn content_length(value: &[u8]) -> Option<usize> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // Digits only, so this is ASCII; a value too large to fit is refused.
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// The lines of a request head, each ended by CRLF.
struct Lines<'a> {
    head: &'a [u8],
    /// Where the next line starts: the length of the lines taken so far.
    end: usize,
}

/// What [`Lines::next`] found.
enum Line<'a> {
    /// A line, without its CRLF.
    Whole(&'a [u8]),
    /// No whole line left (yet).
    Incomplete,
    /// A line ended by a bare LF, which this server refuses.
    BareLf,
}

impl<'a> Lines<'a> {
    fn next(&mut self) -> Line<'a> {
        let rest = &self.head[self.end..];
        let Some(lf) = memchr::memchr(b'\n', rest) else {
            return Line::Incomplete;
        };
        self.end += lf + 1;
        match rest[..lf].strip_suffix(b"\r") {
            Some(line) => Line::Whole(line),
            None => Line::BareLf,
        }
    }
}

/// The minor version of a well-formed request line (`METHOD target
/// HTTP/1.x`) and whether that version closes by default.
fn request_line(line: &[u8]) -> Option<(u8, bool)> {
    let mut parts = line.split(|&byte| byte == b' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || method.is_empty()
        || !method.iter().all(u8::is_ascii_uppercase)
        || target.is_empty()
        || !target.iter().all(u8::is_ascii_graphic)
    {
        return None;
    }
    match version {
        b"HTTP/1.1" => Some((1, false)),
        b"HTTP/1.0" => Some((0, true)),
        _ => None,
    }
}

/// The response to a request after which the connection stays open.
const OK: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nHello World!";
/// The response to a request after which the connection closes.
const OK_CLOSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nConnection: close\r\n\r\nHello World!";

thread_local! {
    /// Requests answered on this thread (a core), for the report at exit.
    static ANSWERED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Requests this core has answered (with 200 or a refusal).
#[allow(dead_code)] // read by main.rs, not by the tests and benches that share this file
pub fn answered() -> u64 {
    ANSWERED.get()
}

/// Appends the response to a served request.
fn respond_ok(out: &mut Vec<u8>, close: bool) {
    ANSWERED.set(ANSWERED.get() + 1);
    out.extend_from_slice(if close { OK_CLOSE } else { OK });
}

/// Appends a refusal, which always closes the connection.
fn respond_refused(out: &mut Vec<u8>, status: &str) {
    ANSWERED.set(ANSWERED.get() + 1);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_bytes());
    out.extend_from_slice(b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
}

/// Answers every whole request at the start of `input`, in order
/// (pipelining): appends the responses to `output` and returns how many
/// bytes of `input` they took, and whether the connection must close after
/// the responses (the client asked, or a request was refused).
pub fn respond(input: &[u8], output: &mut Vec<u8>) -> (usize, bool) {
    let mut consumed = 0;
    loop {
        match parse(&input[consumed..]) {
            Parse::Request { len, close } => {
                respond_ok(output, close);
                consumed += len;
                if close {
                    return (consumed, true);
                }
            }
            Parse::Partial => return (consumed, false),
            Parse::Refuse(status) => {
                respond_refused(output, status);
                return (consumed, true);
            }
        }
    }
}

/// [`respond`], then removes the requests answered from `input`: the peer
/// servers' form, which keep their input in one buffer.
#[allow(dead_code)] // used by the peer servers in benches/
pub fn answer(input: &mut Vec<u8>, output: &mut Vec<u8>) -> bool {
    let (consumed, closing) = respond(input, output);
    input.drain(..consumed);
    closing
}

/// Serves one connection until the client closes it, asks to close, sends
/// something refused, errs, or leaves a turn (sending the responses, then
/// waiting for the next request) unfinished for `idle`.
///
/// Each turn is one linked submission: the send of the responses, then a
/// receive into a buffer of `ring` that the kernel picks when the data
/// arrives. The buffer goes back as soon as its requests are parsed, so a
/// connection waiting for its next request holds no receive buffer: only
/// the small response buffer of its last turn (back to this core's pool
/// when the turn ends), and the start of a request that has not fully
/// arrived, copied.
#[allow(dead_code)] // the tests serve untracked connections
pub async fn serve(stream: TcpStream, ring: BufRing, idle: Duration) {
    serve_tracked(stream, ring, idle, None).await;
}

/// [`serve`] for a connection of a graceful shutdown's tracker: once
/// `conn` says closing, a connection waiting for its next request closes
/// (the turn is cancelled: its send went out before the receive began,
/// unless the client had stopped reading), and one whose requests arrive
/// answers the whole ones, the last with `Connection: close`, then closes.
pub async fn serve_tracked(stream: TcpStream, ring: BufRing, idle: Duration, conn: Option<Conn>) {
    // The start of a request still arriving; unallocated between requests.
    let mut partial: Vec<u8> = Vec::new();
    // The responses to send; from this core's pool while there are any.
    let mut output: Vec<u8> = Vec::new();
    loop {
        let turn = timeout(idle, stream.write_all_then_recv_buf(output, &ring));
        let waited = match &conn {
            Some(conn) => conn.until(turn).await,
            None => Some(turn.await),
        };
        let Some(waited) = waited else {
            // Shutting down, and no request came: close.
            return;
        };
        let buf = match waited {
            Ok((Ok(Some(buf)), sent)) => {
                recycle(sent);
                buf
            }
            // Idle too long, closed by the client, or failed.
            Err(_) | Ok((Ok(None) | Err(_), _)) => return,
        };
        output = pooled();
        let closing = if partial.is_empty() {
            let (consumed, closing) = respond(&buf, &mut output);
            partial.extend_from_slice(&buf[consumed..]);
            closing
        } else {
            partial.extend_from_slice(&buf);
            let (consumed, closing) = respond(&partial, &mut output);
            partial.drain(..consumed);
            if partial.is_empty() {
                partial = Vec::new();
            }
            closing
        };
        drop(buf); // back to the ring before the send
        let closing = closing
            || conn
                .as_ref()
                .is_some_and(|conn| close_after(conn, &mut output));
        if closing {
            if !output.is_empty() && stream.write_all(output).await.0.is_err() {
                return;
            }
            linger_close(&stream, &ring).await;
            return;
        }
        if output.is_empty() {
            recycle(std::mem::take(&mut output));
        }
    }
}

/// When `conn` is closing: makes the last response of `output` say
/// `Connection: close` and says to close after sending it (with none, the
/// connection closes at once).
fn close_after(conn: &Conn, output: &mut Vec<u8>) -> bool {
    if !conn.is_closing() {
        return false;
    }
    if output.ends_with(OK) {
        output.truncate(output.len() - OK.len());
        output.extend_from_slice(OK_CLOSE);
    }
    true
}

thread_local! {
    /// Response buffers between sends, shared by this core's connections:
    /// as many as responses were ever in flight at once, at most 256.
    static OUTPUTS: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// The room of a pooled response buffer: one response fits. A linked turn
/// holds its sent buffer until the next request arrives, so this is what
/// a waiting connection keeps.
const OUTPUT_SIZE: usize = 128;

/// A response buffer from this core's pool, or a new one.
fn pooled() -> Vec<u8> {
    OUTPUTS
        .with_borrow_mut(Vec::pop)
        .unwrap_or_else(|| Vec::with_capacity(OUTPUT_SIZE))
}

/// Returns a response buffer to this core's pool; one that grew (for
/// pipelined responses) is freed instead, and an empty `Vec` owns nothing.
fn recycle(mut buf: Vec<u8>) {
    if buf.capacity() != OUTPUT_SIZE {
        return;
    }
    buf.clear();
    OUTPUTS.with_borrow_mut(|pool| {
        if pool.len() < 256 {
            pool.push(buf);
        }
    });
}

/// Closes our side, then discards what the client still sends, for at
/// most a second: closing with unread input would make the kernel reset
/// the connection, and the client could lose the response just sent.
async fn linger_close(stream: &TcpStream, ring: &BufRing) {
    if stream.shutdown(std::net::Shutdown::Write).await.is_err() {
        return;
    }
    let _ = timeout(Duration::from_secs(1), async {
        while let Ok(Some(_)) = stream.recv_buf(ring).await {}
    })
    .await;
}
