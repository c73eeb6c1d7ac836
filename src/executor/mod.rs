//! The executor: tasks, their wakers, the run queue and `JoinHandle`.
//!
//! Tasks are `!Send` futures owned by the core that spawned them. Their
//! wakers are `Send + Sync`: a wake on the owning thread pushes the task onto
//! the local run queue; a wake from any other thread goes through the core's
//! [`Remote`](remote::Remote) inbox and rings its doorbell so a parked core
//! wakes up.

mod join;
pub(crate) mod remote;
pub(crate) mod run_queue;
pub(crate) mod task;
pub(crate) mod task_list;

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

pub use join::{JoinError, JoinHandle};

use crate::runtime::context;

/// Runs `callback`, user code that runs outside a task poll (a waker's
/// `wake`, the drop of a future, a buffer or a waker), with the containment
/// a task poll has: a panic in it is caught and counted on the current
/// core (`Stats::callback_panics`), never unwound through the run loop or
/// a shutdown, so the rest of the batch still runs. The panic hook has
/// already reported it where it happened.
pub(crate) fn contain(callback: impl FnOnce()) {
    let Err(payload) = catch_unwind(AssertUnwindSafe(callback)) else {
        return;
    };
    context::try_with_core(|core| core.callback_panics.set(core.callback_panics.get() + 1));
    // A payload's own drop may panic too; that one is forgotten.
    if let Err(again) = catch_unwind(AssertUnwindSafe(|| drop(payload))) {
        std::mem::forget(again);
    }
}

/// Spawns a task on the current core.
///
/// The task starts on the core's next turn and runs until it completes,
/// panics or is aborted; its output is delivered through the returned
/// [`JoinHandle`]. Dropping the handle detaches the task.
///
/// # Panics
///
/// When called outside a corering runtime.
///
/// # Examples
///
/// ```
/// corering::start(async {
///     let handle = corering::spawn(async { "done" });
///     assert_eq!(handle.await.unwrap(), "done");
/// });
/// ```
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let (spawned, handle) = join::spawned(future);
    let task = context::spawn_task(spawned);
    handle(task)
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
        // A task of this core resumes after the next visit to the ring, not
        // within this tick's run of the queue; any other waker is woken.
        let deferred = context::try_with_core(|core| {
            let key = core.task_key(cx.waker());
            key.map(|key| core.yielded.push(key)).is_some()
        });
        if deferred != Some(true) {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}
