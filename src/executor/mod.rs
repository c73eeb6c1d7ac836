//! The executor: tasks, their wakers, the run queue and `JoinHandle`.
//!
//! Tasks are `!Send` futures owned by the core that spawned them. Each is
//! one allocation ([`task`]): a header, then the future, whose bytes later
//! hold its output for the [`JoinHandle`]. Its whole state is two words,
//! specified in [`state`].
//!
//! The executor is self-contained: it reaches no thread-local core. A task
//! is built with its core's `Scheduler` and is
//! scheduled through it alone, and the runtime above drives the
//! [`Executor`] it owns: it spawns, hands over the keys the driver reports
//! ready, and runs the ready tasks once per tick.
//!
//! Wakers are `Send + Sync`: a wake on the owning thread pushes the task's
//! key onto the local run queue, with no atomic operation; a wake from any
//! other thread goes through the core's [`Remote`] inbox and rings its
//! doorbell so a parked core wakes up. Every task keeps its scheduler
//! alive (see [`scheduler`]'s lifetime rules), so a handle or a waker may
//! outlive its runtime. A task block freed on its core's thread waits in
//! the core's [`cache`] for the next spawn of its size.
//!
//! ```text
//!   runtime (Core, run loop, spawn)
//!      │ owns
//!   Executor ── TaskList (key → Task)
//!      │ Arc
//!   Scheduler ── Local (run queue, yielded, block cache; owner thread only)
//!      ▲         Remote (inbox, doorbell; any thread)
//!      │ header.scheduler
//!   task allocation (Header + Stage) ◄── Waker, JoinHandle, Task
//! ```

mod cache;
mod id;
mod join;
mod remote;
mod run_queue;
mod scheduler;
mod state;
mod task;
mod task_list;
mod waker;

use std::future::Future;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

pub(crate) use id::{RuntimeId, ThreadSerial};
pub use join::{JoinError, JoinHandle};
use remote::Remote;
pub(crate) use remote::{set_ring_hook, Job};
use scheduler::{Local, Scheduler};
use task_list::TaskList;

use crate::sys::eventfd::EventFd;

/// The cross-thread face of a core: other threads send it jobs.
#[derive(Clone)]
pub(crate) struct Handle(Arc<Scheduler>);

impl Handle {
    /// Sends `job` to run on the core's thread; hands it back when the
    /// core has shut down.
    pub(crate) fn send_job(&self, job: Job) -> Result<(), Job> {
        self.0.remote.send_job(job)
    }
}

/// The tasks of one core, driven by its runtime on the core's thread.
///
/// `!Send` (the task list is): it is made on the thread that owns the core
/// and stays there, which is what lets it touch the scheduler's owner-only
/// part without checking the thread.
pub(crate) struct Executor {
    /// The executor's strong count; given back by `Drop`, or left to the
    /// tasks still held (see `scheduler#lifetime`).
    scheduler: ManuallyDrop<Arc<Scheduler>>,
    tasks: TaskList,
}

impl Executor {
    /// The executor of a new core owned by the calling thread; other
    /// threads ring `doorbell` to end its park, and up to `cache_bytes` of
    /// freed task blocks are kept for later spawns.
    pub(crate) fn new(doorbell: EventFd, cache_bytes: usize) -> Executor {
        Executor {
            scheduler: ManuallyDrop::new(Arc::new(Scheduler::new(
                Remote::new(doorbell),
                cache_bytes,
            ))),
            tasks: TaskList::default(),
        }
    }

    /// The core's identity, unique in the process.
    #[inline]
    pub(crate) fn id(&self) -> RuntimeId {
        self.scheduler.id()
    }

    /// The eventfd other threads ring, for the driver to keep a read on.
    pub(crate) fn doorbell_fd(&self) -> RawFd {
        self.scheduler.remote.doorbell.as_raw_fd()
    }

    #[inline]
    fn local(&self) -> &Local {
        // SAFETY: the executor is `!Send` and was made on the owner thread
        // (see `new`), so this is the owner thread.
        unsafe { self.scheduler.local_unchecked() }
    }

    /// Spawns `future` as a task of this core: it is polled from the next
    /// run of ready tasks on.
    #[inline]
    pub(crate) fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        // The part that depends on `F` is the future's move into its
        // block, kept small so that it inlines where the future is made;
        // the rest is shared by every spawn.
        let (block, key) = self.reserve(task::layout::<F>());
        // SAFETY: `reserve` gave the block for a task of this layout.
        let (task, handle) = unsafe { task::init(block, future, key, &self.scheduler) };
        self.enlist(task);
        handle
    }

    /// A block for a task of `layout` and the key it will have; the task is
    /// counted as held from here on (see `scheduler#lifetime`).
    #[inline(never)]
    fn reserve(&self, layout: std::alloc::Layout) -> (std::ptr::NonNull<u8>, usize) {
        let local = self.local();
        local.hold_task();
        (local.cache.allocate(layout), self.tasks.next_key())
    }

    /// Lists the new `task` under the key `reserve` gave and queues its
    /// first poll.
    #[inline(never)]
    fn enlist(&self, task: task::Task) {
        let made_for = task.key();
        let key = self.tasks.insert(task);
        // Nothing ran between `reserve` and here to take the key.
        debug_assert_eq!(key, made_for);
        self.local().schedule(key);
    }

    /// The key of the task `waker` wakes, when it is one of this core's:
    /// the wake token an operation's slot stores instead of the waker.
    #[inline]
    pub(crate) fn key_of(&self, waker: &Waker) -> Option<usize> {
        waker::key_on(waker, Arc::as_ptr(&self.scheduler))
    }

    /// Queues the task with `key` (a wake token the driver reported).
    #[inline]
    pub(crate) fn schedule(&self, key: usize) {
        self.local().schedule(key);
    }

    /// Wakes `waker` on this core's thread; a waker of one of this core's
    /// tasks queues the task directly, any other is user code, contained.
    pub(crate) fn wake(&self, waker: Waker) {
        match self.key_of(&waker) {
            // Dropping a task's waker runs no user code: a task is freed
            // with no join waker left and neither future nor output live.
            Some(key) => {
                self.local().schedule(key);
                drop(waker);
            }
            None => self.local().contain(|| waker.wake()),
        }
    }

    /// Moves the keys woken from other threads to the run queue, and the
    /// jobs sent to this core to `jobs`, for the runtime to run.
    pub(crate) fn drain_inbox(&self, jobs: &mut Vec<Job>) {
        let local = self.local();
        self.scheduler
            .remote
            .drain(|key| local.run_queue.push(key), jobs);
    }

    /// Polls up to `polls_max` ready tasks in wake order; returns how many
    /// it polled.
    pub(crate) fn run(&self, polls_max: usize) -> usize {
        let local = self.local();
        let mut polled = 0;
        for _ in 0..polls_max {
            let Some(key) = local.run_queue.pop() else {
                break;
            };
            // SAFETY: the list's reference outlives the copy: only this
            // loop removes tasks from the list, after `run` returns
            // (shutdown drains it outside any run).
            let Some(task) = (unsafe { self.tasks.get(key) }) else {
                continue; // the task finished after this wake
            };
            polled += 1;
            // SAFETY: this loop is the owner's and not re-entered (the
            // runtime runs it from its tick only, never from inside a
            // task), and the task stays listed for the call (see above).
            if unsafe { task.run() } {
                drop(self.tasks.remove(key));
            }
        }
        polled
    }

    /// Whether a task is ready to run (queued here, yielded, or woken from
    /// another thread).
    pub(crate) fn is_ready(&self) -> bool {
        let local = self.local();
        !local.run_queue.is_empty()
            || !local.yielded.is_empty()
            || self.scheduler.remote.is_notified()
    }

    /// Before a park: publishes that the core is parked unless a wake or a
    /// job arrived meanwhile; returns whether it may park (see `remote`).
    pub(crate) fn park(&self) -> bool {
        self.scheduler.remote.park()
    }

    /// After a park.
    pub(crate) fn unpark(&self) {
        self.scheduler.remote.unpark();
    }

    /// A handle other threads use to send this core jobs.
    pub(crate) fn handle(&self) -> Handle {
        Handle(Arc::clone(&self.scheduler))
    }

    /// Names the core's ring for other cores' `MSG_RING`.
    pub(crate) fn set_ring_fd(&self, fd: RawFd) {
        self.scheduler.remote.set_ring_fd(fd);
    }

    /// Before the ring is entered: forgets the run queue's popped part.
    pub(crate) fn compact(&self) {
        self.local().run_queue.compact();
    }

    /// After the ring was entered: the tasks that yielded become ready.
    pub(crate) fn release_yielded(&self) {
        let local = self.local();
        local.run_queue.append(&local.yielded);
    }

    /// The waker of the core's `block_on` future.
    pub(crate) fn main_waker(&self) -> Waker {
        scheduler::main_waker(&self.scheduler)
    }

    /// Marks the `block_on` future woken, from the owner thread.
    pub(crate) fn wake_main(&self) {
        self.scheduler.remote.wake_main(false);
    }

    /// Takes the `block_on` future's woken flag.
    pub(crate) fn take_main_woken(&self) -> bool {
        self.scheduler.remote.take_main_woken()
    }

    /// Whether the `block_on` future is woken.
    pub(crate) fn is_main_woken(&self) -> bool {
        self.scheduler.remote.is_main_woken()
    }

    /// Runs `callback`, user code outside a task poll, with a panic caught
    /// and counted (see `scheduler::Local::contain`).
    pub(crate) fn contain(&self, callback: impl FnOnce()) {
        self.local().contain(callback);
    }

    /// Panics caught in user callbacks outside task polls.
    pub(crate) fn callback_panics(&self) -> u64 {
        self.local().callback_panics()
    }

    /// Drops every task's future on this thread, so their operations are
    /// cancelled (repeating while dropping spawns more), then closes the
    /// queues: later wakes, local or foreign, queue nothing.
    pub(crate) fn shutdown(&self) {
        loop {
            let tasks = self.tasks.drain();
            if tasks.is_empty() {
                break;
            }
            for task in tasks {
                // SAFETY: on the owner thread, outside any run of the loop,
                // with the core alive.
                unsafe { task.cancel() };
            }
        }
        self.local().close();
        self.scheduler.remote.close();
    }
}

impl Drop for Executor {
    /// The runtime shuts the executor down before dropping it; this drops
    /// any task spawned after that, by the drops of the shutdown itself,
    /// then gives back the executor's strong count on the scheduler, or
    /// leaves it to the tasks that `JoinHandle`s still hold.
    fn drop(&mut self) {
        self.shutdown();
        if self.local().orphan() {
            // SAFETY: dropped once, here; nothing uses the field after.
            unsafe { ManuallyDrop::drop(&mut self.scheduler) };
        }
        // Otherwise the count stays, and the last held task's free gives
        // it back (`task::dealloc`).
    }
}

/// Lets the other ready tasks and the ring run before this task continues:
/// a spawned task resumes after the core's next visit to the ring.
///
/// # Examples
///
/// ```
/// corering::start(async {
///     corering::yield_now().await;
/// });
/// ```
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// The future of [`yield_now`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        // A task resumes after its core's next visit to the ring, not
        // within this tick's run of the queue; any other waker is woken.
        if !waker::defer(cx.waker()) {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests;
