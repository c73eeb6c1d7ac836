//! A hand-written io_uring server with no async runtime: the floor of
//! runtime overhead that the networking benchmarks compare runtimes against.
//! One thread, one ring, one `submit_and_wait(1)` per loop iteration.
//!
//! io_uring features used:
//! - `IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN` (falling back
//!   to a plain ring where the kernel refuses them);
//! - multishot accept, re-armed when a completion lacks `IORING_CQE_F_MORE`;
//! - multishot receive into a registered provided-buffer ring, each buffer
//!   copied out and given back straight away, re-armed when a completion
//!   lacks `IORING_CQE_F_MORE` (after `ENOBUFS`, for example);
//! - `Send` with one send in flight per connection (short sends resumed,
//!   further output queued behind it); `Shutdown`, `AsyncCancel` and `Close`
//!   to end a connection.
//!
//! Modes: `echo` sends every received byte back until the peer closes;
//! `hello` serves HTTP/1.1 with the same parser and responses as the other
//! hello servers (`examples/hello/http.rs`). The one difference from the
//! runtime servers: the raw loop has no idle timeout. Nor does it apply
//! backpressure: an echo client that sends without reading makes the
//! connection's queued output grow.
//!
//! Usage: `raw_loop echo|hello <port>`

#[allow(dead_code)] // the corering `serve` in the same file is not used here
#[path = "../../examples/hello/http.rs"]
mod http;

use std::alloc::{alloc_zeroed, Layout};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, RawFd};
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::{BufRingEntry, Fd};
use io_uring::{cqueue, opcode, squeue, IoUring};

const EINVAL: i32 = 22;
const EINTR: i32 = 4;
const ENOBUFS: i32 = 105;
const MSG_NOSIGNAL: i32 = 0x4000;
const SHUT_WR: i32 = 1;

/// Submission queue size.
const ENTRIES: u32 = 1024;
/// The provided buffers: how many (a power of two), how large, and group id.
const BUF_COUNT: u16 = 1024;
const BUF_SIZE: usize = 4096;
const BGID: u16 = 0;

/// Operation kinds, in the low 8 bits of user_data; the slot index takes
/// bits 8..32 and the slot generation bits 32..64.
const ACCEPT: u64 = 0;
const RECV: u64 = 1;
const SEND: u64 = 2;
/// Shutdown, cancel and close completions, which need no handling.
const IGNORE: u64 = 3;

fn user_data(idx: usize, gen: u32, kind: u64) -> u64 {
    (u64::from(gen) << 32) | ((idx as u64) << 8) | kind
}

/// The provided-buffer ring: the entries the kernel picks buffers from and
/// the buffers themselves. Both are allocated once and live until the
/// process exits (the server runs until killed), so the kernel never writes
/// into freed memory.
struct BufRing {
    entries: *mut BufRingEntry,
    bufs: *mut u8,
    /// Our tail, published to the kernel by [`BufRing::publish`].
    tail: u16,
}

impl BufRing {
    fn new(ring: &IoUring) -> std::io::Result<BufRing> {
        let entries_layout =
            Layout::from_size_align(usize::from(BUF_COUNT) * size_of::<BufRingEntry>(), 4096)
                .expect("layout");
        let bufs_layout =
            Layout::from_size_align(usize::from(BUF_COUNT) * BUF_SIZE, 4096).expect("layout");
        // SAFETY: both layouts have a non-zero size. The memory is never
        // freed (see the type's doc).
        let (entries, bufs) = unsafe { (alloc_zeroed(entries_layout), alloc_zeroed(bufs_layout)) };
        assert!(!entries.is_null() && !bufs.is_null(), "out of memory");
        let mut this = BufRing {
            entries: entries.cast(),
            bufs,
            tail: 0,
        };
        for bid in 0..BUF_COUNT {
            this.give_back(bid);
        }
        this.publish();
        // SAFETY: `entries` is page aligned, holds `BUF_COUNT` entries and
        // stays valid for the life of the process, hence of the ring.
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(entries as u64, BUF_COUNT, BGID, 0)?
        };
        Ok(this)
    }

    /// The first `len` bytes of buffer `bid`, which the kernel filled.
    fn data(&self, bid: u16, len: usize) -> &[u8] {
        assert!(bid < BUF_COUNT && len <= BUF_SIZE);
        // SAFETY: in bounds of the allocation (checked above); the kernel
        // handed this buffer to us in a completion and writes into it again
        // only after `give_back` and `publish`, which the borrow of `self`
        // rules out while the slice lives.
        unsafe { std::slice::from_raw_parts(self.bufs.add(usize::from(bid) * BUF_SIZE), len) }
    }

    /// Puts buffer `bid` back in the ring (visible once published).
    fn give_back(&mut self, bid: u16) {
        let slot = usize::from(self.tail & (BUF_COUNT - 1));
        // SAFETY: `slot` < `BUF_COUNT`, so the entry is in the allocation;
        // the kernel only reads entries between its head and our published
        // tail, and this one is past that tail. The setters leave the
        // `resv` field (the tail, in entry 0) untouched.
        unsafe {
            let entry = &mut *self.entries.add(slot);
            entry.set_addr(self.bufs.add(usize::from(bid) * BUF_SIZE) as u64);
            entry.set_len(BUF_SIZE as u32);
            entry.set_bid(bid);
        }
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes the buffers given back visible to the kernel.
    fn publish(&self) {
        // SAFETY: `BufRingEntry::tail` points at the u16 tail in entry 0,
        // which is 2-byte aligned and shared with the kernel; it is only
        // ever accessed atomically by us. The Release store orders the
        // entry writes before it.
        unsafe {
            let tail = BufRingEntry::tail(self.entries) as *mut u16;
            AtomicU16::from_ptr(tail).store(self.tail, Ordering::Release);
        }
    }
}

/// One connection.
struct Conn {
    fd: RawFd,
    /// The multishot receive is armed.
    recv_armed: bool,
    /// Bytes in flight: `out[sent..]` is being sent. Not touched while
    /// `sending`, so the kernel's view of it stays valid.
    out: Vec<u8>,
    sent: usize,
    sending: bool,
    /// Output queued behind the send in flight.
    pending: Vec<u8>,
    /// Request bytes not yet answered (hello).
    input: Vec<u8>,
    /// Close once the output is sent (no more input is handled).
    closing: bool,
    /// Shut down the write side before closing (hello's close).
    shut_write: bool,
}

struct Slot {
    gen: u32,
    conn: Option<Conn>,
}

struct Server {
    ring: IoUring,
    bufs: BufRing,
    listener: RawFd,
    hello: bool,
    slots: Vec<Slot>,
    free: Vec<usize>,
}

impl Server {
    fn push(&mut self, entry: squeue::Entry) {
        loop {
            // SAFETY: every entry built here points only at memory that
            // outlives the operation: the provided buffers (never freed) or
            // a connection's `out`, left untouched until the send completes.
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                return;
            }
            self.ring.submit().expect("submit");
        }
    }

    fn arm_accept(&mut self) {
        let entry = opcode::AcceptMulti::new(Fd(self.listener)).build();
        self.push(entry.user_data(ACCEPT));
    }

    fn arm_recv(&mut self, idx: usize) {
        let gen = self.slots[idx].gen;
        let conn = self.slots[idx].conn.as_mut().expect("live");
        conn.recv_armed = true;
        let entry = opcode::RecvMulti::new(Fd(conn.fd), BGID).build();
        self.push(entry.user_data(user_data(idx, gen, RECV)));
    }

    /// Starts sending `out[sent..]`, or the queued output when `out` is done.
    fn flush(&mut self, idx: usize) {
        let gen = self.slots[idx].gen;
        let conn = self.slots[idx].conn.as_mut().expect("live");
        if conn.sending {
            return;
        }
        if conn.sent == conn.out.len() {
            conn.out.clear();
            conn.sent = 0;
            std::mem::swap(&mut conn.out, &mut conn.pending);
            if conn.out.is_empty() {
                return;
            }
        }
        let rest = &conn.out[conn.sent..];
        let len = rest.len().min(u32::MAX as usize) as u32;
        let entry = opcode::Send::new(Fd(conn.fd), rest.as_ptr(), len)
            .flags(MSG_NOSIGNAL)
            .build();
        conn.sending = true;
        self.push(entry.user_data(user_data(idx, gen, SEND)));
    }

    /// Ends the connection once it is closing and all its output is sent.
    fn maybe_finish(&mut self, idx: usize) {
        let slot = &mut self.slots[idx];
        let done = match &slot.conn {
            Some(c) => c.closing && !c.sending && c.sent == c.out.len() && c.pending.is_empty(),
            None => false,
        };
        if !done {
            return;
        }
        let conn = slot.conn.take().expect("live");
        let recv = user_data(idx, slot.gen, RECV);
        // Later completions for this connection carry the old generation
        // and are ignored.
        slot.gen = slot.gen.wrapping_add(1);
        self.free.push(idx);
        if conn.recv_armed {
            self.push(opcode::AsyncCancel::new(recv).build().user_data(IGNORE));
        }
        if conn.shut_write {
            // Hard link: close even if the shutdown fails.
            let shutdown = opcode::Shutdown::new(Fd(conn.fd), SHUT_WR).build();
            self.push(shutdown.flags(squeue::Flags::IO_HARDLINK).user_data(IGNORE));
        }
        self.push(opcode::Close::new(Fd(conn.fd)).build().user_data(IGNORE));
    }

    fn on_accept(&mut self, res: i32, flags: u32) {
        if !cqueue::more(flags) {
            self.arm_accept();
        }
        if res < 0 {
            return;
        }
        // SAFETY: `res` is a new socket the kernel just accepted for us;
        // owning it only briefly, and handing it back with `into_raw_fd`.
        let stream = unsafe { TcpStream::from_raw_fd(res) };
        let _ = stream.set_nodelay(true);
        let conn = Conn {
            fd: stream.into_raw_fd(),
            recv_armed: false,
            out: Vec::with_capacity(4096),
            sent: 0,
            sending: false,
            pending: Vec::with_capacity(4096),
            input: Vec::with_capacity(if self.hello { http::READ_SIZE } else { 0 }),
            closing: false,
            shut_write: false,
        };
        let idx = match self.free.pop() {
            Some(idx) => idx,
            None => {
                self.slots.push(Slot { gen: 0, conn: None });
                self.slots.len() - 1
            }
        };
        self.slots[idx].conn = Some(conn);
        self.arm_recv(idx);
    }

    fn on_recv(&mut self, idx: usize, live: bool, res: i32, flags: u32) {
        let bid = cqueue::buffer_select(flags);
        let Some(conn) = self.slots[idx].conn.as_mut().filter(|_| live) else {
            // A stale completion: just return its buffer.
            if let Some(bid) = bid {
                self.bufs.give_back(bid);
            }
            return;
        };
        let more = cqueue::more(flags);
        if !more {
            conn.recv_armed = false;
        }
        if let Some(bid) = bid {
            if res > 0 && !conn.closing {
                let data = self.bufs.data(bid, res as usize);
                if self.hello {
                    conn.input.extend_from_slice(data);
                    if http::answer(&mut conn.input, &mut conn.pending) {
                        conn.closing = true;
                        conn.shut_write = true;
                    }
                } else {
                    conn.pending.extend_from_slice(data);
                }
            }
            self.bufs.give_back(bid);
        }
        if res == 0 || (res < 0 && res != -ENOBUFS) {
            conn.closing = true; // the peer closed, or an error
        } else if !more && !conn.closing {
            self.arm_recv(idx); // out of buffers, or the kernel ended it
        }
        self.flush(idx);
        self.maybe_finish(idx);
    }

    fn on_send(&mut self, idx: usize, res: i32) {
        let conn = self.slots[idx].conn.as_mut().expect("live");
        conn.sending = false;
        if res <= 0 {
            // The peer is gone: drop the output and close.
            conn.closing = true;
            conn.out.clear();
            conn.sent = 0;
            conn.pending.clear();
        } else {
            conn.sent += res as usize;
            self.flush(idx);
        }
        self.maybe_finish(idx);
    }

    fn run(&mut self) -> ! {
        self.arm_accept();
        let mut cqes = Vec::with_capacity(4 * ENTRIES as usize);
        loop {
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(EINTR) => {}
                Err(e) => panic!("submit_and_wait: {e}"),
            }
            cqes.extend(
                self.ring
                    .completion()
                    .map(|c| (c.user_data(), c.result(), c.flags())),
            );
            for (data, res, flags) in cqes.drain(..) {
                let idx = ((data >> 8) & 0xff_ffff) as usize;
                let live = self
                    .slots
                    .get(idx)
                    .is_some_and(|s| u64::from(s.gen) == data >> 32 && s.conn.is_some());
                match data & 0xff {
                    ACCEPT => self.on_accept(res, flags),
                    RECV => self.on_recv(idx, live, res, flags),
                    // A send holds its connection open, so it is never stale.
                    SEND if live => self.on_send(idx, res),
                    _ => {}
                }
            }
            self.bufs.publish();
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: raw_loop echo|hello <port>";
    let hello = match args.next().as_deref() {
        Some("echo") => false,
        Some("hello") => true,
        _ => panic!("{usage}"),
    };
    let port: u16 = args.next().and_then(|p| p.parse().ok()).expect(usage);
    // std sets SO_REUSEADDR on Unix listeners.
    let listener = TcpListener::bind(("0.0.0.0", port)).expect("bind");
    let ring = match IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(ENTRIES)
    {
        Ok(ring) => ring,
        Err(e) if e.raw_os_error() == Some(EINVAL) => IoUring::new(ENTRIES).expect("io_uring"),
        Err(e) => panic!("io_uring: {e}"),
    };
    let bufs = BufRing::new(&ring).expect("register buffer ring");
    let mut server = Server {
        ring,
        bufs,
        listener: listener.as_raw_fd(),
        hello,
        slots: Vec::new(),
        free: Vec::new(),
    };
    server.run();
}
