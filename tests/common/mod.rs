//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::ptr::NonNull;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use corering::buf::{IoBuf, IoBufMut};
use corering::fd::Fd;

pub mod seccomp;
pub mod server;

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

/// This process's descriptor count once it has not changed for 200 ms
/// (at most 10 s).
pub fn steady_fds() -> usize {
    steady_fds_for(Duration::from_millis(200))
}

/// This process's descriptor count once it has not changed for `still`
/// (at most 10 s): a baseline that a descriptor closed a moment late
/// elsewhere in the process does not inflate.
pub fn steady_fds_for(still: Duration) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut count, mut since) = (open_fds(), Instant::now());
    while since.elapsed() < still && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        let now = open_fds();
        if now != count {
            (count, since) = (now, Instant::now());
        }
    }
    count
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

/// The byte a [`PoisonBuf`] is filled with when dropped.
pub const POISON: u8 = 0xd7;

thread_local! {
    /// Drop counts of this thread's [`PoisonBuf`]s, by id, since the last
    /// [`check_and_free_quarantine`].
    static LEDGER: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
    /// The allocations of dropped [`PoisonBuf`]s, poisoned and kept.
    static QUARANTINE: RefCell<Vec<(NonNull<u8>, usize, usize)>> = const { RefCell::new(Vec::new()) };
}

/// A buffer whose memory outlives it: dropping it fills its whole capacity
/// with [`POISON`], counts the drop, and moves the allocation into a
/// thread-local quarantine instead of freeing it. A write into it after its
/// drop (the kernel writing into memory the runtime already gave up) leaves
/// bytes that are not poison, which [`check_and_free_quarantine`] finds; a
/// send from it after its drop sends poison.
pub struct PoisonBuf {
    ptr: NonNull<u8>,
    len: usize,
    cap: usize,
    id: usize,
}

impl PoisonBuf {
    /// An empty buffer of at least `capacity` bytes (at least 1).
    pub fn with_capacity(capacity: usize) -> PoisonBuf {
        let mut vec = std::mem::ManuallyDrop::new(Vec::<u8>::with_capacity(capacity.max(1)));
        let id = LEDGER.with(|ledger| {
            let mut ledger = ledger.borrow_mut();
            ledger.push(0);
            ledger.len() - 1
        });
        PoisonBuf {
            ptr: NonNull::new(vec.as_mut_ptr()).expect("a Vec with capacity is not null"),
            len: 0,
            cap: vec.capacity(),
            id,
        }
    }

    /// A buffer holding `data`, with at least `capacity` bytes.
    pub fn from_slice(data: &[u8], capacity: usize) -> PoisonBuf {
        let mut buf = PoisonBuf::with_capacity(capacity.max(data.len()));
        // SAFETY: the allocation holds at least `data.len()` bytes and does
        // not overlap `data`.
        unsafe {
            buf.ptr
                .as_ptr()
                .copy_from_nonoverlapping(data.as_ptr(), data.len())
        };
        buf.len = data.len();
        buf
    }

    /// The initialized bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the first `len` bytes are initialized and ours.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for PoisonBuf {
    fn drop(&mut self) {
        // SAFETY: the allocation is ours, `cap` bytes long.
        unsafe { self.ptr.as_ptr().write_bytes(POISON, self.cap) };
        let _ = LEDGER.try_with(|ledger| {
            if let Some(count) = ledger.borrow_mut().get_mut(self.id) {
                *count = count.saturating_add(1);
            }
        });
        let _ = QUARANTINE
            .try_with(|quarantine| quarantine.borrow_mut().push((self.ptr, self.cap, self.id)));
    }
}

// SAFETY: the heap allocation does not move with the value, `len` bytes of
// it are initialized and `cap` bytes belong to it; len <= cap.
unsafe impl IoBuf for PoisonBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len
    }
    fn bytes_total(&self) -> usize {
        self.cap
    }
}

// SAFETY: the same pointer, valid for writes of `cap` bytes; `set_init` only
// raises the length, never past the capacity.
unsafe impl IoBufMut for PoisonBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }
    unsafe fn set_init(&mut self, pos: usize) {
        assert!(
            pos <= self.cap,
            "set_init({pos}) past the capacity {}",
            self.cap
        );
        self.len = self.len.max(pos);
    }
}

/// What [`check_and_free_quarantine`] looked at.
#[derive(Clone, Copy, Debug, Default)]
pub struct QuarantineReport {
    /// Buffers made since the last check.
    pub buffers: usize,
    /// Bytes of quarantined memory checked for poison.
    pub bytes: usize,
}

/// Checks every [`PoisonBuf`] made on this thread since the last call: each
/// was dropped exactly once, and the memory of each is still all poison
/// (nothing wrote into it after its drop). Then frees the quarantine. Call it
/// when nothing may touch those buffers any more (their runtimes dropped).
///
/// # Panics
///
/// When a buffer is still alive or was dropped twice, or when its memory
/// was written after its drop; the quarantine is then not freed.
pub fn check_and_free_quarantine() -> QuarantineReport {
    let ledger = LEDGER.with(|ledger| ledger.take());
    let alive = ledger.iter().filter(|&&count| count == 0).count();
    if let Some((id, count)) = ledger.iter().enumerate().find(|(_, &count)| count != 1) {
        panic!(
            "PoisonBuf {id} was dropped {count} times (exactly once expected; {alive} of {} \
             buffers never dropped)",
            ledger.len()
        );
    }
    let quarantine = QUARANTINE.with(|quarantine| quarantine.take());
    let mut bytes = 0;
    for &(ptr, cap, id) in &quarantine {
        // SAFETY: the allocation is kept alive by the quarantine, `cap` bytes
        // long, and was fully written (poisoned) at the drop.
        let memory = unsafe { std::slice::from_raw_parts(ptr.as_ptr(), cap) };
        if let Some(at) = memory.iter().position(|&byte| byte != POISON) {
            let end = memory[at..]
                .iter()
                .position(|&byte| byte == POISON)
                .map_or(cap, |len| at + len);
            panic!(
                "PoisonBuf {id} ({cap} bytes) was written after its drop: bytes {at}..{end} \
                 are not poison (first: {:#04x})",
                memory[at]
            );
        }
        bytes += cap;
    }
    for (ptr, cap, _) in quarantine {
        // SAFETY: the allocation came from a `Vec<u8>` of capacity `cap`
        // (see `with_capacity`) and is freed once, here.
        drop(unsafe { Vec::from_raw_parts(ptr.as_ptr(), 0, cap) });
    }
    QuarantineReport {
        buffers: ledger.len(),
        bytes,
    }
}

/// The example `name`'s binary, built by the cargo that runs this test,
/// with this test's profile and target (`cargo test` builds the examples
/// before it runs any test, but `cargo test --test NAME` does not).
pub fn example_binary(name: &str) -> std::path::PathBuf {
    use std::process::Command;
    // This test is <target dir>/[<target>/]<profile>/deps/<test>-<hash>.
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["build", "--quiet", "-p", "corering", "--example", name]);
    // The features this test was built with, so the example links the
    // same build of the library (and the hyper examples have theirs).
    let features: Vec<&str> = [
        ("tokio-io", cfg!(feature = "tokio-io")),
        ("futures-io", cfg!(feature = "futures-io")),
        ("hyper", cfg!(feature = "hyper")),
    ]
    .into_iter()
    .filter_map(|(name, on)| on.then_some(name))
    .collect();
    if !features.is_empty() {
        build.arg("--features").arg(features.join(","));
    }
    match profile_dir.file_name().unwrap().to_str().unwrap() {
        "debug" => {}
        "release" => {
            build.arg("--release");
        }
        profile => {
            build.args(["--profile", profile]);
        }
    }
    // Cargo tags its target directory (and, with `--target`, the
    // directory of that target inside it): a tagged directory above the
    // one above the profile's means this test was built for a target
    // named with `--target`.
    let above = profile_dir.parent().unwrap();
    let target_dir = above.parent().unwrap();
    if !target_dir.join("CACHEDIR.TAG").exists() {
        build.arg("--target-dir").arg(above);
    } else {
        build
            .arg("--target")
            .arg(above.file_name().unwrap())
            .arg("--target-dir")
            .arg(target_dir);
    }
    let status = build.status().expect("cargo runs");
    assert!(status.success(), "building the {name} example: {status}");
    profile_dir.join("examples").join(name)
}

/// Whether this run's runtimes are on epoll: `CORERING_BACKEND=epoll`, as
/// `ci/test`'s second run of the suite sets.
pub fn on_epoll() -> bool {
    std::env::var_os("CORERING_BACKEND").is_some_and(|backend| backend == "epoll")
}

/// A runtime on io_uring whatever the environment says, for tests of the
/// ring's own mechanics (slots, CQEs, the SQ, cancellations), which have
/// no counterpart on epoll (tests/epoll.rs checks that backend's own).
pub fn ring() -> corering::Runtime {
    ring_builder().build().unwrap()
}

/// A builder on io_uring whatever the environment says (see [`ring`]).
pub fn ring_builder() -> corering::Builder {
    corering::Runtime::builder().backend(corering::Backend::IoUring)
}

/// `corering::start` on io_uring whatever the environment says (see
/// [`ring`]).
pub fn ring_start<F: Future>(future: F) -> F::Output {
    ring().block_on(future)
}
