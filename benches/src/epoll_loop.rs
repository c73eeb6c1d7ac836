//! A hand-written epoll server with no async runtime: the floor the epoll
//! backend is measured against, as `raw_loop` is the ring's. One thread,
//! one epoll instance, one `epoll_wait` per loop iteration.
//!
//! What a careful hand-written loop does (nginx's way):
//! - every socket non-blocking, in the set once, edge-triggered, for reads
//!   and writes (`EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET`);
//! - accept until `EAGAIN` on each listener event;
//! - read until the socket is drained: a read that returns less than the
//!   buffer means drained (no further read to hear `EAGAIN`), a full one
//!   reads again; write what is pending until it is all sent or `EAGAIN`
//!   (then the next `EPOLLOUT` edge resumes it);
//! - close on the end of the stream, an error, or a hang-up.
//!
//! Modes: `echo` sends every received byte back; `hello` serves HTTP/1.1
//! with the parser and responses of the other hello servers
//! (`examples/hello/http.rs`). No idle timeout, no backpressure (as
//! `raw_loop`).
//!
//! Usage: `epoll_loop echo|hello <port>`

#[allow(dead_code)] // the corering `serve` in the same file is not used here
#[path = "../../examples/hello/http.rs"]
mod http;

use std::net::TcpListener;
use std::os::fd::{IntoRawFd, RawFd};

/// The listener's data in its events (connections carry their descriptor).
const LISTENER: u64 = u64::MAX;
/// Bytes read per call.
const READ_SIZE: usize = 16 * 1024;

struct Conn {
    fd: RawFd,
    /// Received and not yet answered (hello).
    input: Vec<u8>,
    /// To send, from `sent` on.
    pending: Vec<u8>,
    sent: usize,
    /// Close once `pending` is sent (hello: the request asked).
    closing: bool,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: epoll_loop echo|hello <port>";
    let hello = match args.get(1).map(String::as_str) {
        Some("hello") => true,
        Some("echo") => false,
        _ => panic!("{usage}"),
    };
    let port: u16 = args.get(2).and_then(|p| p.parse().ok()).expect(usage);
    let listener = TcpListener::bind(("0.0.0.0", port)).expect("bind");
    listener.set_nonblocking(true).unwrap();
    let listener = listener.into_raw_fd();
    // SAFETY: plain flag.
    let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    assert!(epoll >= 0, "epoll_create1");
    add(epoll, listener, libc::EPOLLIN as u32, LISTENER);
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    let mut buf = vec![0u8; READ_SIZE];
    loop {
        // SAFETY: `events` has room for its length.
        let count =
            unsafe { libc::epoll_wait(epoll, events.as_mut_ptr(), events.len() as i32, -1) };
        if count < 0 {
            continue; // EINTR
        }
        for event in &events[..count as usize] {
            let (data, bits) = (event.u64, event.events);
            if data == LISTENER {
                accept_all(epoll, listener, hello, &mut conns);
                continue;
            }
            let fd = data as usize;
            let Some(conn) = conns.get_mut(fd).and_then(Option::as_mut) else {
                continue;
            };
            let hung_up = bits & (libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0;
            let alive = !hung_up
                && (bits & (libc::EPOLLIN | libc::EPOLLRDHUP) as u32 == 0
                    || read_all(conn, hello, &mut buf))
                && flush(conn);
            if !alive {
                // SAFETY: the connection's own descriptor; closing takes it
                // out of the set.
                unsafe { libc::close(conn.fd) };
                conns[fd] = None;
            }
        }
    }
}

fn add(epoll: RawFd, fd: RawFd, events: u32, data: u64) {
    let mut event = libc::epoll_event { events, u64: data };
    // SAFETY: `event` is live for the call.
    let added = unsafe { libc::epoll_ctl(epoll, libc::EPOLL_CTL_ADD, fd, &mut event) };
    assert_eq!(added, 0, "epoll_ctl");
}

fn accept_all(epoll: RawFd, listener: RawFd, hello: bool, conns: &mut Vec<Option<Conn>>) {
    loop {
        // SAFETY: no address asked for.
        let fd = unsafe {
            libc::accept4(
                listener,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            )
        };
        if fd < 0 {
            return; // EAGAIN (or a transient error: the next event retries)
        }
        let one: libc::c_int = 1;
        // SAFETY: `one` is a live c_int of the size given.
        unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&one as *const libc::c_int).cast(),
                4,
            )
        };
        let events = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
        add(epoll, fd, events, fd as u64);
        let index = fd as usize;
        if conns.len() <= index {
            conns.resize_with(index + 1, || None);
        }
        conns[index] = Some(Conn {
            fd,
            input: Vec::with_capacity(if hello { http::READ_SIZE } else { 0 }),
            pending: Vec::new(),
            sent: 0,
            closing: false,
        });
    }
}

/// Reads until drained (a short read, or `EAGAIN`); answers or queues the
/// echo. False when the connection is to close.
fn read_all(conn: &mut Conn, hello: bool, buf: &mut [u8]) -> bool {
    loop {
        // SAFETY: `buf` is writable for its length.
        let n = unsafe { libc::recv(conn.fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n == 0 {
            return false;
        }
        if n < 0 {
            return std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock;
        }
        let n = n as usize;
        if hello {
            conn.input.extend_from_slice(&buf[..n]);
            conn.closing |= http::answer(&mut conn.input, &mut conn.pending);
        } else {
            conn.pending.extend_from_slice(&buf[..n]);
        }
        if n < buf.len() || conn.closing {
            return true;
        }
    }
}

/// Sends what is pending until all is sent or the socket is full. False
/// when the connection is to close.
fn flush(conn: &mut Conn) -> bool {
    while conn.sent < conn.pending.len() {
        let rest = &conn.pending[conn.sent..];
        // SAFETY: `rest` is readable for its length.
        let n = unsafe {
            libc::send(
                conn.fd,
                rest.as_ptr().cast(),
                rest.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            return std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock;
        }
        conn.sent += n as usize;
    }
    conn.pending.clear();
    conn.sent = 0;
    !conn.closing
}
