//! The thread-local accessor of the running core: the one way code reaches
//! the driver, the run queue and the timers.
//!
//! `block_on` installs its core for the duration of the call (and the
//! runtime's shutdown does the same), so operations, timers and `spawn`
//! find their core without carrying a handle. The driver, the timers and the
//! close list sit in `RefCell`s, so a re-entrant use (a bug) panics instead
//! of aliasing. The run queue and the task list, touched once or twice per
//! task poll, need no borrow flag: their methods finish before returning and
//! hand out no references (see `RunQueue` and `TaskList`).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::sync::Arc;
use std::task::Waker;

use super::config::Config;
use crate::driver::{Driver, Stats};
use crate::executor::remote::Remote;
use crate::executor::run_queue::RunQueue;
use crate::executor::task::{Task, WakeBy};
use crate::executor::task_list::TaskList;
use crate::fd::Target;
use crate::time::wheel::Wheel;

/// One core: everything its thread owns.
pub(crate) struct Core {
    pub(crate) config: Config,
    pub(crate) driver: RefCell<Driver>,
    pub(crate) timers: RefCell<Wheel>,
    /// Keys of the tasks ready to be polled, in wake order.
    pub(crate) run_queue: RunQueue,
    /// Every live task, so shutdown can drop them all on this thread.
    pub(crate) tasks: TaskList,
    /// Descriptors whose last handle was dropped, to be closed through the ring.
    pub(crate) closes: RefCell<Vec<Target>>,
    pub(crate) remote: Arc<Remote>,
}

impl Core {
    /// The driver's counters and the timer count.
    pub(crate) fn stats(&self) -> Stats {
        Stats {
            timers: self.timers.borrow().len() as u64,
            ..self.driver.borrow().stats()
        }
    }

    /// `waker`, to store as the waiter of an operation on this core.
    #[inline]
    pub(crate) fn wake_by<'a>(&'a self, waker: &'a Waker) -> WakeBy<'a> {
        WakeBy { waker, core: self }
    }
}

thread_local! {
    static CURRENT: Cell<*const Core> = const { Cell::new(std::ptr::null()) };
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

/// Runs `f` with the current core's driver, or returns `None` outside a runtime.
#[inline]
pub(crate) fn try_with_driver<R>(f: impl FnOnce(&mut Driver) -> R) -> Option<R> {
    try_with_core(|core| f(&mut core.driver.borrow_mut()))
}

/// Registers a new task on the current core and queues its first poll.
pub(crate) fn spawn_task<F: Future<Output = ()> + 'static>(future: F) -> Task {
    with_core(|core| {
        let key = core.tasks.next_key();
        let task = Task::new(core.remote.clone(), key, future);
        let inserted = core.tasks.insert(task.clone());
        debug_assert_eq!(inserted, key);
        core.run_queue.push(key);
        task
    })
}

/// Closes `target` through the current core's ring once it gets a turn,
/// or right away with `close(2)` outside a runtime. A direct descriptor
/// dropped outside its runtime stays in the ring's table until the ring
/// closes.
pub(crate) fn defer_close(target: Target) {
    if try_with_core(|core| core.closes.borrow_mut().push(target)).is_none() {
        if let Target::Fd(fd) = target {
            // SAFETY: the caller owned `fd` and gives it up; nothing uses it
            // after.
            unsafe { libc::close(fd) };
        }
    }
}
