//! The thread-local accessor of the running core: the one way code reaches
//! the driver, the executor and the timers.
//!
//! `block_on` installs its core for the duration of the call (and the
//! runtime's shutdown does the same), so operations, timers and `spawn`
//! find their core without carrying a handle. The driver, the timers and the
//! close list sit in `RefCell`s, so a re-entrant use (a bug) panics instead
//! of aliasing. The executor needs no borrow flag: its methods finish
//! before returning and hand out no references. Tasks never come here:
//! they are scheduled through the handle they were built with (see
//! `executor`).

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::task::Waker;

use super::backend::Backend;
use super::config::Config;
use super::counters::Accounting;
use super::launcher::{CoreId, Launch};
use super::stall::Progress;
use crate::driver::epoll::Reactor;
use crate::driver::{Driver, Stats, Target, Tokens, Wake};
use crate::executor::{Executor, RuntimeId};
use crate::runtime::wheel::Wheel;

/// A core's backend: its ring, or its epoll driver (see `backend.rs`).
///
/// One per core, inside the boxed `Core`: the ring's larger variant is not
/// boxed again, which would add a pointer to every operation's path.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Io {
    Ring(RefCell<Driver>),
    Epoll(RefCell<Reactor>),
}

/// One core: everything its thread owns.
pub(crate) struct Core {
    pub(crate) config: Config,
    /// The ring, or the epoll driver.
    pub(crate) io: Io,
    pub(crate) timers: RefCell<Wheel>,
    /// The tasks, their run queue and the inbox other threads wake into.
    pub(crate) executor: Executor,
    /// Descriptors whose last handle was dropped, to be closed through the
    /// ring. One entry per such descriptor; each tick moves as many into
    /// the ring as there are free slots, so it holds only what the slot
    /// table cannot take yet.
    pub(crate) closes: RefCell<Vec<Target>>,
    /// The launch this core belongs to and its index there (a lone
    /// runtime: a launch of one).
    pub(crate) place: RefCell<(Arc<Launch>, CoreId)>,
    /// The progress word the stall watchdog reads, when reports are on.
    pub(crate) progress: Option<Arc<Progress>>,
    /// The counters other cores read (see `counters`).
    pub(crate) accounting: Accounting,
}

impl Core {
    /// Makes this core `core` of `launch`.
    pub(crate) fn place_in(&self, launch: Arc<Launch>, core: CoreId) {
        if let Some(progress) = &self.progress {
            progress.place(core);
        }
        *self.place.borrow_mut() = (launch, core);
    }

    /// The runtime's id, unique in the process.
    #[inline]
    pub(crate) fn id(&self) -> RuntimeId {
        self.executor.id()
    }

    /// The driver's counters and the timer count.
    pub(crate) fn stats(&self) -> Stats {
        let driver = match &self.io {
            Io::Ring(driver) => driver.borrow().stats(),
            Io::Epoll(reactor) => reactor.borrow().stats(),
        };
        Stats {
            timers: self.timers.borrow().len() as u64,
            callback_panics: self.executor.callback_panics(),
            ..driver
        }
    }

    /// The backend this core runs on.
    pub(crate) fn backend(&self) -> Backend {
        match &self.io {
            Io::Ring(_) => Backend::IoUring,
            Io::Epoll(_) => Backend::Epoll,
        }
    }

    /// The ring, on the io_uring backend.
    #[inline]
    pub(crate) fn ring(&self) -> Option<&RefCell<Driver>> {
        match &self.io {
            Io::Ring(driver) => Some(driver),
            Io::Epoll(_) => None,
        }
    }

    /// `waker`, to store as the waiter of an operation on this core: with
    /// its task's key as the token when it wakes one of this core's tasks.
    #[inline]
    pub(crate) fn wake_by<'a>(&'a self, waker: &'a Waker) -> Wake<'a, Core> {
        Wake {
            waker,
            tokens: self,
        }
    }
}

impl Tokens for Core {
    /// The key of the task `waker` wakes, when it is one of this core's.
    #[inline]
    fn token_of(&self, waker: &Waker) -> Option<u32> {
        self.executor
            .key_of(waker)
            .and_then(|key| u32::try_from(key).ok())
    }
}

thread_local! {
    static CURRENT: Cell<*const Core> = const { Cell::new(std::ptr::null()) };
    /// Every runtime alive on this thread, running or not, so that an
    /// operation or pool dropped away from its own core (inside another
    /// runtime, or outside any) is still handed back to it. A runtime is
    /// listed from `build` to the end of its `Drop`; one entry per live
    /// runtime of the thread, so it grows only with them.
    static LIVE: RefCell<Vec<*const Core>> = const { RefCell::new(Vec::new()) };
    /// Ids of this thread's runtimes that shut down past their deadline,
    /// leaking what the kernel might still write into: a future of theirs
    /// dropped later must leak its state too. One entry per such runtime
    /// (a rare event that already printed nothing but counted `abandoned`).
    static LEAKY: RefCell<Vec<RuntimeId>> = const { RefCell::new(Vec::new()) };
}

/// Lists `core` among the live runtimes of this thread.
///
/// The caller keeps `core` alive and in place until [`unregister`].
pub(crate) fn register(core: &Core) {
    LIVE.with(|live| live.borrow_mut().push(core));
}

/// Removes `core` from the live runtimes; `leaked` when its shutdown left
/// states to the kernel.
pub(crate) fn unregister(core: &Core, leaked: bool) {
    LIVE.with(|live| {
        live.borrow_mut()
            .retain(|&listed| !std::ptr::eq(listed, core))
    });
    if leaked {
        LEAKY.with(|leaky| leaky.borrow_mut().push(core.id()));
    }
}

/// What became of a runtime that is no longer alive on this thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Gone {
    /// It shut down with every operation reaped: the kernel touches
    /// nothing of its operations any more.
    Drained,
    /// It shut down past its deadline and leaked its in-flight states; the
    /// kernel may still write into them.
    Leaked,
}

/// Runs `f` with the runtime whose id is `owner` installed as the current
/// core, wherever the caller is: on that core, inside another runtime of
/// this thread, or outside any. Callbacks `f` triggers (closes, drops)
/// then reach that runtime, not the one running.
///
/// # Errors
///
/// What became of the owner when it is not alive on this thread.
pub(crate) fn with_owner<R>(owner: RuntimeId, f: impl FnOnce(&Core) -> R) -> Result<R, Gone> {
    let mut f = Some(f);
    let here =
        try_with_core(|core| (core.id() == owner).then(|| f.take().expect("called once")(core)));
    if let Some(Some(result)) = here {
        return Ok(result);
    }
    let f = f.expect("not called yet");
    let found = LIVE.with(|live| {
        live.borrow()
            .iter()
            .copied()
            // SAFETY: listed cores are alive and in place (see `register`).
            .find(|&core| unsafe { &*core }.id() == owner)
    });
    match found {
        Some(core) => {
            // SAFETY: as above; the core is not running (only one runtime
            // runs on a thread at a time, and it is not `owner`), so
            // installing it for the call aliases nothing in use.
            let core = unsafe { &*core };
            let _enter = Enter::new(core);
            Ok(f(core))
        }
        None if LEAKY.with(|leaky| leaky.borrow().contains(&owner)) => Err(Gone::Leaked),
        None => Err(Gone::Drained),
    }
}

/// Makes `core` the current core until the guard drops.
pub(crate) struct Enter {
    previous: *const Core,
}

impl Enter {
    /// Installs `core`. The caller keeps `core` alive and in place until the
    /// guard drops.
    pub(crate) fn new(core: &Core) -> Enter {
        let previous = CURRENT.with(|current| current.replace(core));
        Enter { previous }
    }
}

impl Drop for Enter {
    fn drop(&mut self) {
        CURRENT.with(|current| current.set(self.previous));
    }
}

/// Whether a core is running on this thread.
pub(crate) fn is_inside() -> bool {
    CURRENT.with(|current| !current.get().is_null())
}

/// Runs `f` with the current core, if any.
#[inline]
fn with_current<R>(f: impl FnOnce(Option<&Core>) -> R) -> R {
    let core = CURRENT.with(Cell::get);
    // SAFETY: a non-null CURRENT was installed by an `Enter` guard whose
    // owner keeps the core alive and in place until the guard drops, and
    // guards drop in reverse order on this same thread.
    f(unsafe { core.as_ref() })
}

/// Runs `f` with the current core, or returns `None` outside a runtime.
#[inline]
pub(crate) fn try_with_core<R>(f: impl FnOnce(&Core) -> R) -> Option<R> {
    with_current(|core| core.map(f))
}

/// Runs `f` with the current core.
///
/// # Panics
///
/// Outside a corering runtime.
#[inline]
pub(crate) fn with_core<R>(f: impl FnOnce(&Core) -> R) -> R {
    try_with_core(f).expect("must be called from inside a corering runtime (start or block_on)")
}

/// Closes `target` through a ring once it gets a turn: a direct descriptor
/// through its own runtime's (`owner`), wherever it is dropped; a plain one
/// (whose `owner` is `None`, since any ring can close it) through the
/// current core's, or right away with `close(2)` outside a runtime. A
/// direct descriptor whose runtime is gone went with its ring's table.
pub(crate) fn defer_close(target: Target, owner: Option<RuntimeId>) {
    let queued = match (target, owner) {
        (Target::Fixed(_), Some(owner)) => {
            with_owner(owner, |core| core.closes.borrow_mut().push(target))
        }
        (Target::Fixed(_), None) => unreachable!("a direct descriptor names its runtime"),
        (Target::Fd(_), _) => {
            try_with_core(|core| core.closes.borrow_mut().push(target)).ok_or(Gone::Drained)
        }
    };
    if let (Err(_), Target::Fd(fd)) = (queued, target) {
        // SAFETY: the caller owned `fd` and gives it up; nothing uses it
        // after.
        unsafe { crate::sys::file::close(fd) };
    }
}
