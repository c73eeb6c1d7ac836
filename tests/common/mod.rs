//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::cell::Cell;
use std::future::{poll_fn, Future};
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;

use corering::buf::{IoBuf, IoBufMut};
use corering::fd::Fd;

/// Serializes the tests of one binary that count this process's open
/// descriptors, since tests run on parallel threads.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Open descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// A pipe as two ring-driven descriptors.
pub fn pipe() -> (Fd, Fd) {
    let (reader, writer) = std::io::pipe().unwrap();
    (
        Fd::from(OwnedFd::from(reader)),
        Fd::from(OwnedFd::from(writer)),
    )
}

/// Polls `future` exactly once inside the runtime.
pub async fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    poll_fn(|cx| Poll::Ready(Pin::new(&mut *future).poll(cx))).await
}

/// The driver's counters when a [`DropBuf`] was dropped.
pub type StatsAtDrop = Rc<Cell<Option<corering::Stats>>>;

/// A buffer that records when it is dropped and what the driver's counters
/// said at that moment.
pub struct DropBuf {
    data: Vec<u8>,
    drops: Rc<Cell<usize>>,
    stats_at_drop: StatsAtDrop,
}

impl DropBuf {
    pub fn new(capacity: usize) -> (DropBuf, Rc<Cell<usize>>, StatsAtDrop) {
        let drops = Rc::new(Cell::new(0));
        let stats = Rc::new(Cell::new(None));
        let buf = DropBuf {
            data: Vec::with_capacity(capacity),
            drops: drops.clone(),
            stats_at_drop: stats.clone(),
        };
        (buf, drops, stats)
    }
}

impl Drop for DropBuf {
    fn drop(&mut self) {
        self.drops.set(self.drops.get() + 1);
        self.stats_at_drop.set(Some(corering::stats()));
    }
}

// SAFETY: delegates to the Vec, whose heap memory does not move with it.
unsafe impl IoBuf for DropBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.data.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.data.len()
    }
    fn bytes_total(&self) -> usize {
        self.data.capacity()
    }
}

// SAFETY: delegates to the Vec.
unsafe impl IoBufMut for DropBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.data.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, pos: usize) {
        // SAFETY: forwarded from the caller.
        unsafe { self.data.set_init(pos) }
    }
}

/// Runs ticks until `done` holds, at most `ticks_max` times.
pub async fn settle(mut done: impl FnMut() -> bool, ticks_max: usize) {
    for _ in 0..ticks_max {
        if done() {
            return;
        }
        corering::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

/// A buffer that counts its drops and needs no runtime to be dropped (a
/// [`DropBuf`] reads the current runtime's counters).
pub struct CountBuf {
    data: Vec<u8>,
    drops: Rc<Cell<usize>>,
}

impl CountBuf {
    pub fn new(capacity: usize) -> (CountBuf, Rc<Cell<usize>>) {
        let drops = Rc::new(Cell::new(0));
        let buf = CountBuf {
            data: Vec::with_capacity(capacity),
            drops: drops.clone(),
        };
        (buf, drops)
    }
}

impl Drop for CountBuf {
    fn drop(&mut self) {
        self.drops.set(self.drops.get() + 1);
    }
}

// SAFETY: delegates to the Vec, whose heap memory does not move with it.
unsafe impl IoBuf for CountBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.data.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.data.len()
    }
    fn bytes_total(&self) -> usize {
        self.data.capacity()
    }
}

// SAFETY: delegates to the Vec.
unsafe impl IoBufMut for CountBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.data.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, pos: usize) {
        // SAFETY: forwarded from the caller.
        unsafe { self.data.set_init(pos) }
    }
}

/// A read-only buffer of `len` zero bytes that costs no memory: an
/// anonymous mapping never written, whose pages all read as the kernel's
/// one zero page. For sends of gibibytes.
pub struct ZeroPages {
    ptr: *mut u8,
    len: usize,
}

impl ZeroPages {
    pub fn new(len: usize) -> ZeroPages {
        // SAFETY: a fresh private anonymous mapping, owned by the value.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        assert_ne!(ptr, libc::MAP_FAILED, "mmap of {len} bytes");
        ZeroPages {
            ptr: ptr.cast(),
            len,
        }
    }
}

impl Drop for ZeroPages {
    fn drop(&mut self) {
        // SAFETY: the mapping is this value's, and nothing points into it
        // once the value is gone.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

// SAFETY: the mapping stays at its address until the value drops, and
// its `len` bytes are readable (and zero).
unsafe impl IoBuf for ZeroPages {
    fn stable_ptr(&self) -> *const u8 {
        self.ptr
    }
    fn bytes_init(&self) -> usize {
        self.len
    }
    fn bytes_total(&self) -> usize {
        self.len
    }
}

/// Bytes past `i32::MAX`, which one socket call used to refuse.
pub const PAST_I32_MAX: usize = 2_684_354_560; // 2.5 GiB

/// The most the kernel moves in one read or write (`MAX_RW_COUNT`).
pub const MAX_RW_COUNT: usize = i32::MAX as usize & !4095;
