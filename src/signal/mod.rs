//! Process signals that any task on any core can await.
//!
//! ```no_run
//! corering::start(async {
//!     let mut term = corering::signal::signal(corering::signal::SignalKind::terminate())?;
//!     term.recv().await;
//!     println!("SIGTERM: draining");
//!     Ok::<(), std::io::Error>(())
//! })
//! .unwrap();
//! ```
//!
//! # How a signal travels
//!
//! The first [`signal`] for a signal number installs one process-wide
//! handler for it (through `signal-hook-registry`, which chains it with any
//! handler installed before: that one still runs, first). The handler does
//! only what is async-signal-safe: it adds one to the signal's delivery
//! count and writes the signal doorbell, an eventfd. One thread of the
//! process, started with the first handler, waits on that doorbell and
//! wakes every [`Signal`] whose count moved, on whatever core it waits: a
//! cross-thread wake, so a parked core is rung as for any other.
//!
//! No `signalfd`: it only works while every thread of the process blocks
//! the signal, which no library can promise for threads it did not start
//! (compio removed its `signalfd` for that). A handler works on whichever
//! thread the kernel picks, started before the runtime or not.
//!
//! # Delivery and coalescing
//!
//! Every listener sees every run of the handler once, however late it
//! polls: [`Signal::recv`] returns once per delivery counted since the
//! listener was made (deliveries before it are not its). The kernel itself
//! merges a standard signal sent while the same one is still pending (not
//! yet handled): two `kill`s in quick succession may run the handler once.
//!
//! Once a signal has a listener, its default action (for `SIGTERM` and
//! `SIGINT`, ending the process) no longer happens, even after every
//! listener is dropped, as with tokio's signals.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll};

use crate::sync::waker_slots::WakerSlots;
use crate::sys::eventfd::EventFd;

/// The largest signal number (`SIGRTMAX` on Linux).
const MAX_SIGNAL: usize = 64;

/// A kind of signal, as a number: the named ones, or any other by
/// [`from_raw`](Self::from_raw).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SignalKind(libc::c_int);

impl SignalKind {
    /// `SIGINT`, sent by Ctrl-C.
    pub const fn interrupt() -> SignalKind {
        SignalKind(libc::SIGINT)
    }

    /// `SIGTERM`, the polite request to stop (`kill`, systemd, Docker).
    pub const fn terminate() -> SignalKind {
        SignalKind(libc::SIGTERM)
    }

    /// `SIGHUP`, often a request to reload configuration.
    pub const fn hangup() -> SignalKind {
        SignalKind(libc::SIGHUP)
    }

    /// `SIGQUIT`, sent by Ctrl-\.
    pub const fn quit() -> SignalKind {
        SignalKind(libc::SIGQUIT)
    }

    /// `SIGUSR1`.
    pub const fn user_defined1() -> SignalKind {
        SignalKind(libc::SIGUSR1)
    }

    /// `SIGUSR2`.
    pub const fn user_defined2() -> SignalKind {
        SignalKind(libc::SIGUSR2)
    }

    /// Any signal by its number; [`signal`] refuses the ones a handler
    /// cannot or must not take.
    pub const fn from_raw(signum: i32) -> SignalKind {
        SignalKind(signum)
    }

    /// The signal's number.
    pub const fn as_raw_value(&self) -> i32 {
        self.0
    }
}

impl fmt::Debug for SignalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignalKind({})", self.0)
    }
}

/// Listens for one kind of signal; made by [`signal`].
pub struct Signal {
    slot: &'static Slot,
    /// Deliveries this listener has returned (or that came before it).
    seen: u64,
    /// Its place in the slot's waiters, once it has waited.
    key: Option<usize>,
}

/// Waits for a signal of `kind`, installing the process's handler for it
/// on the first call.
///
/// # Errors
///
/// `InvalidInput` for a number that is not a signal, or for one a handler
/// must not take (`SIGKILL`, `SIGSTOP`, `SIGILL`, `SIGFPE`, `SIGSEGV`,
/// `SIGBUS`); the error `sigaction` or the signal thread's start gave.
pub fn signal(kind: SignalKind) -> io::Result<Signal> {
    let signum = kind.0;
    let forbidden = [
        libc::SIGKILL,
        libc::SIGSTOP,
        libc::SIGILL,
        libc::SIGFPE,
        libc::SIGSEGV,
        libc::SIGBUS,
    ];
    if signum < 1 || signum as usize > MAX_SIGNAL || forbidden.contains(&signum) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("signal {signum} cannot be listened to"),
        ));
    }
    let registry = registry()?;
    let slot = &registry.slots[signum as usize];
    slot.install(signum, &registry.doorbell)?;
    Ok(Signal {
        slot,
        seen: slot.count.load(Ordering::SeqCst),
        key: None,
    })
}

/// Waits for the next `SIGINT` (Ctrl-C).
///
/// # Errors
///
/// As [`signal`].
pub async fn ctrl_c() -> io::Result<()> {
    signal(SignalKind::interrupt())?.recv().await;
    Ok(())
}

impl Signal {
    /// The next delivery of the signal. Never `None`: the `Option` is
    /// tokio's shape, kept so that code moves over unchanged.
    pub async fn recv(&mut self) -> Option<()> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next delivery (see [`recv`](Self::recv)).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<()>> {
        if self.take_delivery() {
            return Poll::Ready(Some(()));
        }
        self.slot.waiters().store(&mut self.key, cx.waker());
        // Stored before this look, under the lock the signal thread takes
        // after it read the doorbell, which the handler wrote after
        // counting: either this sees the count, or the thread sees the
        // waker.
        if self.take_delivery() {
            return Poll::Ready(Some(()));
        }
        Poll::Pending
    }

    fn take_delivery(&mut self) -> bool {
        if self.slot.count.load(Ordering::SeqCst) == self.seen {
            return false;
        }
        self.seen += 1;
        true
    }
}

impl Drop for Signal {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            let waker = self.slot.waiters().remove(key);
            drop(waker);
        }
    }
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signal").field("seen", &self.seen).finish()
    }
}

/// The handler's state for one signal number.
struct Slot {
    /// Runs of the handler since it was installed.
    count: AtomicU64,
    /// Whether the handler is installed; held while installing it.
    installed: Mutex<bool>,
    /// The listeners that wait: one place per listener that has waited.
    waiters: Mutex<WakerSlots>,
}

impl Slot {
    const fn new() -> Slot {
        Slot {
            count: AtomicU64::new(0),
            installed: Mutex::new(false),
            waiters: Mutex::new(WakerSlots::new()),
        }
    }

    fn waiters(&self) -> MutexGuard<'_, WakerSlots> {
        // No user code runs under the lock (wakers are woken after it).
        self.waiters
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Installs the handler for `signum` unless it is already.
    fn install(&'static self, signum: libc::c_int, doorbell: &'static EventFd) -> io::Result<()> {
        let mut installed = self
            .installed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if *installed {
            return Ok(());
        }
        let count = &self.count;
        // SAFETY: the action is async-signal-safe: an atomic add and one
        // `write(2)` to an eventfd that lives as long as the process (the
        // registry is never dropped); it allocates nothing and takes no
        // lock. The signal is not one of the forbidden ones (checked by
        // `signal`).
        unsafe {
            signal_hook_registry::register(signum, move || {
                count.fetch_add(1, Ordering::SeqCst);
                doorbell.notify();
            })
        }?;
        *installed = true;
        Ok(())
    }
}

/// Every signal's slot, the doorbell and the thread that fans out.
struct Registry {
    slots: [Slot; MAX_SIGNAL + 1],
    doorbell: EventFd,
}

/// The process's registry, made (and its thread started) on first use; a
/// failed start is tried again by the next call.
fn registry() -> io::Result<&'static Registry> {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    static STARTED: AtomicBool = AtomicBool::new(false);
    static START: Mutex<()> = Mutex::new(());
    if STARTED.load(Ordering::Acquire) {
        return Ok(REGISTRY.get().expect("made before the thread started"));
    }
    let _starting = START
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let (true, Some(registry)) = (STARTED.load(Ordering::Acquire), REGISTRY.get()) {
        return Ok(registry);
    }
    let registry = match REGISTRY.get() {
        Some(registry) => registry,
        None => {
            let doorbell = EventFd::blocking()?;
            REGISTRY.get_or_init(|| Registry {
                slots: [const { Slot::new() }; MAX_SIGNAL + 1],
                doorbell,
            })
        }
    };
    std::thread::Builder::new()
        .name("corering-signal".into())
        .spawn(move || fan_out(registry))?;
    STARTED.store(true, Ordering::Release);
    Ok(registry)
}

/// The signal thread: after each ring of the doorbell, wakes every
/// listener of every signal whose count moved.
fn fan_out(registry: &'static Registry) {
    let mut fanned = [0u64; MAX_SIGNAL + 1];
    // A failed wait (it cannot fail on an eventfd this process owns) ends
    // the fan-out; listeners then wait for good, which is what a signal
    // that never comes looks like too.
    while registry.doorbell.wait().is_ok() {
        for (slot, fanned) in registry.slots.iter().zip(fanned.iter_mut()) {
            let count = slot.count.load(Ordering::SeqCst);
            if count == *fanned {
                continue;
            }
            *fanned = count;
            let wakers = slot.waiters().take_all();
            for waker in wakers {
                waker.wake();
            }
        }
    }
}
