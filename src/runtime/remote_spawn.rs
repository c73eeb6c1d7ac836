//! Work on another core or off the cores: `spawn_on`, `spawn_blocking` and
//! the [`RemoteHandle`] both return.
//!
//! `spawn_on(core, make)` sends `make` to the target core as a job in its
//! inbox (waking it, see `executor::remote`); there the job builds the
//! future, which need not be `Send`, and spawns it as a task of that core.
//! The task's output, or its panic, crosses back through a oneshot to the
//! handle; a wake from the target reaches the caller's core through its
//! inbox. A target that has shut down refuses the job, or drops it with
//! its inbox: the oneshot's sender goes with it and the handle resolves to
//! a cancelled [`JoinError`]. Nothing waits for a core that is gone.
//!
//! `spawn_blocking(f)` runs `f` on the process's blocking pool (see
//! `blocking`); its result comes back the same way.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use super::blocking::POOL;
use super::context;
use super::launcher::CoreId;
use crate::executor::{Job, JoinError};
use crate::sync::oneshot;

/// The index of the core this code runs on within its launch; a lone
/// runtime is core 0 of 1.
///
/// # Panics
///
/// Outside a corering runtime.
pub fn current_core() -> CoreId {
    context::with_core(|core| core.place.borrow().1)
}

/// The number of cores in the current launch (1 for a lone runtime).
///
/// # Panics
///
/// Outside a corering runtime.
pub fn cores() -> usize {
    context::with_core(|core| core.place.borrow().0.len())
}

/// Runs the future `make` builds on core `core` of the current launch, and
/// returns a handle to its output.
///
/// `make` crosses to the target, which calls it and spawns the future it
/// returns: the future may be `!Send` (it never leaves that core), only
/// `make` and the output cross. A panic in `make` or in the future comes
/// back as a [`JoinError`]; so does a target that has shut down (a
/// cancelled one), and [`RemoteHandle::abort`] (cancelled, unless the task
/// finished first). Dropping the handle detaches the task.
///
/// # Panics
///
/// Outside a corering runtime, or when the launch has no core `core`.
///
/// # Examples
///
/// ```
/// use corering::sync::oneshot;
/// use corering::CoreId;
///
/// // Core 1 serves until core 0 says it is done.
/// let (done_tx, done_rx) = oneshot::channel::<()>();
/// let ends = std::sync::Mutex::new((Some(done_tx), Some(done_rx)));
/// let found = corering::Runtime::builder()
///     .cores(2)
///     .run_on_cores(|core| {
///         let mut ends = ends.lock().unwrap();
///         let (done_tx, done_rx) = match core.index() {
///             0 => (ends.0.take(), None),
///             _ => (None, ends.1.take()),
///         };
///         async move {
///             let Some(done_tx) = done_tx else {
///                 let _ = done_rx.unwrap().await;
///                 return None;
///             };
///             let there = corering::spawn_on(CoreId::new(1), || async {
///                 corering::current_core().index()
///             });
///             let index = there.await.unwrap();
///             done_tx.send(()).unwrap();
///             Some(index)
///         }
///     })
///     .unwrap();
/// assert_eq!(found[0], Some(1));
/// ```
pub fn spawn_on<F, Fut, T>(core: CoreId, make: F) -> RemoteHandle<T>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    let (handle, completer) = RemoteHandle::pair();
    let run = move || {
        let task = completer.run(make);
        drop(super::spawn(task));
    };
    let target = context::with_core(|here| {
        let (launch, id) = &*here.place.borrow();
        (*id != core).then(|| launch.core(core).clone())
    });
    match target {
        // The closure runs here, as a task of this core, like any other.
        None => run(),
        Some(target) => {
            // Refused by a core that has shut down: dropped, and with it
            // the completer, so the handle resolves to a cancelled error.
            let refused: Result<(), Job> = target.send_job(Box::new(run));
            drop(refused);
        }
    }
    handle
}

/// Runs `f` on the process's blocking pool, off every core, and returns a
/// handle to its result. For blocking system calls and long computations
/// that would otherwise stall a core.
///
/// A panic in `f` comes back as a [`JoinError`]. [`RemoteHandle::abort`]
/// stops `f` from starting if it has not; a running `f` runs to its end.
/// The pool starts threads on demand up to a cap, and a thread idle for a
/// keep-alive leaves (`Builder::blocking_threads`,
/// `Builder::blocking_keep_alive`).
///
/// # Examples
///
/// ```
/// corering::start(async {
///     let sum = corering::spawn_blocking(|| (1..=10u64).sum::<u64>());
///     assert_eq!(sum.await.unwrap(), 55);
/// });
/// ```
pub fn spawn_blocking<F, T>(f: F) -> RemoteHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (handle, completer) = RemoteHandle::pair();
    POOL.execute(Box::new(move || {
        if completer.abort.is_aborted() {
            return; // dropped: the handle resolves to cancelled
        }
        let result = catch_unwind(AssertUnwindSafe(f)).map_err(JoinError::panicked);
        let _ = completer.result.send(result);
    }));
    handle
}

/// The output of a task on another core or on the blocking pool: a future
/// of `Result<T, JoinError>`. `Send`, so it can itself be passed on.
/// Dropping it detaches the task.
pub struct RemoteHandle<T> {
    result: oneshot::Receiver<Result<T, JoinError>>,
    abort: Arc<Abort>,
}

/// The sending half: where the task's result goes.
struct Completer<T> {
    result: oneshot::Sender<Result<T, JoinError>>,
    abort: Arc<Abort>,
}

impl<T> RemoteHandle<T> {
    fn pair() -> (RemoteHandle<T>, Completer<T>) {
        let (tx, rx) = oneshot::channel();
        let abort = Arc::new(Abort::default());
        (
            RemoteHandle {
                result: rx,
                abort: abort.clone(),
            },
            Completer { result: tx, abort },
        )
    }

    /// Cancels the task: it is dropped at its next poll (a blocking job
    /// that has not started never starts), and the handle resolves to a
    /// cancelled [`JoinError`], unless the task finished first.
    pub fn abort(&self) {
        self.abort.abort();
    }
}

impl<T> Future for RemoteHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.result).poll(cx).map(|result| {
            // No result and the sender gone: the task was dropped unrun.
            result.unwrap_or_else(|_| Err(JoinError::cancelled()))
        })
    }
}

impl<T> std::fmt::Debug for RemoteHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteHandle")
            .field("aborted", &self.abort.is_aborted())
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> Completer<T> {
    /// The task that runs on the target: builds the future, runs it until
    /// it ends or is aborted, and sends the result.
    async fn run<F, Fut>(self, make: F)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let result = match catch_unwind(AssertUnwindSafe(make)) {
            Ok(future) => {
                Guarded {
                    future,
                    abort: &self.abort,
                }
                .await
            }
            Err(payload) => Err(JoinError::panicked(payload)),
        };
        let _ = self.result.send(result);
    }
}

/// A future run until it ends, panics or is aborted.
struct Guarded<'a, F> {
    future: F,
    abort: &'a Abort,
}

impl<F: Future> Future for Guarded<'_, F> {
    type Output = Result<F::Output, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `future` is structurally pinned: it is never moved out
        // of `self` and `Guarded` has no `Drop` of its own.
        let this = unsafe { self.get_unchecked_mut() };
        if this.abort.is_aborted() || !this.abort.watch(cx.waker()) {
            return Poll::Ready(Err(JoinError::cancelled()));
        }
        // SAFETY: as above.
        let future = unsafe { Pin::new_unchecked(&mut this.future) };
        match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(JoinError::panicked(payload))),
        }
    }
}

/// The abort flag a handle and its task share.
#[derive(Default)]
struct Abort {
    aborted: AtomicBool,
    /// The task to wake on abort.
    waker: Mutex<Option<Waker>>,
}

impl Abort {
    fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::Acquire)
    }

    fn abort(&self) {
        self.aborted.store(true, Ordering::Release);
        let waker = self
            .waker
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Stores the task's waker for an abort to wake; false when the abort
    /// came first. Stored once per task: a poll by the same task again
    /// takes the lock but clones nothing.
    fn watch(&self, waker: &Waker) -> bool {
        let mut stored = self
            .waker
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if self.is_aborted() {
            return false;
        }
        match &*stored {
            Some(old) if old.will_wake(waker) => {}
            _ => *stored = Some(waker.clone()),
        }
        true
    }
}
