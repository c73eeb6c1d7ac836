//! `JoinHandle` and `JoinError`: how a spawned task's output (or its panic,
//! or its cancellation) reaches whoever awaits it.

use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use super::task::Task;

/// Why a task produced no output.
pub struct JoinError {
    repr: Repr,
}

enum Repr {
    Cancelled,
    Panic(Box<dyn Any + Send + 'static>),
}

impl JoinError {
    /// Whether the task was cancelled (aborted, or dropped at shutdown).
    pub fn is_cancelled(&self) -> bool {
        matches!(self.repr, Repr::Cancelled)
    }

    /// Whether the task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.repr, Repr::Panic(_))
    }

    /// The panic payload, to resume the panic with
    /// [`std::panic::resume_unwind`].
    ///
    /// # Panics
    ///
    /// When the task was cancelled rather than panicked.
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        match self.repr {
            Repr::Panic(payload) => payload,
            Repr::Cancelled => panic!("JoinError::into_panic on a cancelled task"),
        }
    }

    fn panic_message(&self) -> Option<&str> {
        match &self.repr {
            Repr::Panic(payload) => payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str)),
            Repr::Cancelled => None,
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.repr, self.panic_message()) {
            (Repr::Cancelled, _) => f.write_str("task was cancelled"),
            (Repr::Panic(_), Some(message)) => write!(f, "task panicked: {message}"),
            (Repr::Panic(_), None) => f.write_str("task panicked"),
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JoinError({self})")
    }
}

impl std::error::Error for JoinError {}

/// Where the output waits for the handle.
struct JoinState<T> {
    output: Option<Result<T, JoinError>>,
    waker: Option<Waker>,
    /// The output was taken by the handle.
    taken: bool,
}

type Shared<T> = Rc<RefCell<JoinState<T>>>;

fn finish<T>(state: &Shared<T>, output: Result<T, JoinError>) {
    let mut state = state.borrow_mut();
    debug_assert!(state.output.is_none() && !state.taken);
    state.output = Some(output);
    if let Some(waker) = state.waker.take() {
        drop(state);
        // The awaiting side's waker may be anyone's.
        super::contain(|| waker.wake());
    }
}

fn panicked(payload: Box<dyn Any + Send + 'static>) -> JoinError {
    JoinError {
        repr: Repr::Panic(payload),
    }
}

/// An owned permission to await a spawned task's output.
///
/// Awaiting it gives `Ok(output)`, or a [`JoinError`] if the task panicked
/// or was cancelled. Dropping it detaches the task, which keeps running.
pub struct JoinHandle<T> {
    state: Shared<T>,
    task: Task,
}

impl<T> JoinHandle<T> {
    /// Cancels the task: its future is dropped on its core's next turn
    /// (cancelling its in-flight operations), and awaiting the handle gives a
    /// cancelled [`JoinError`]. A task that already finished is unaffected.
    pub fn abort(&self) {
        if !self.is_finished() {
            self.task.abort();
        }
    }

    /// Whether the task has finished (with output, panic or cancellation).
    pub fn is_finished(&self) -> bool {
        let state = self.state.borrow();
        state.output.is_some() || state.taken
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.state.borrow_mut();
        if let Some(output) = state.output.take() {
            state.taken = true;
            return Poll::Ready(output);
        }
        assert!(!state.taken, "JoinHandle polled after completion");
        match &state.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => state.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// The future a task runs: the user's future, with its panics caught and its
/// output (or cancellation, when dropped unfinished) sent to the handle.
///
/// The user's future is dropped inside the same containment as its polls,
/// on completion as on abort or shutdown: a panic in its `Drop` is reported
/// through the handle, like a panic in `poll`.
pub(crate) struct Spawned<F: Future> {
    /// `Some` until it completes or is dropped; pinned in place.
    future: Option<F>,
    state: Option<Shared<F::Output>>,
}

/// Wraps `future` for spawning; returns the wrapper and its handle's state.
pub(crate) fn spawned<F: Future + 'static>(
    future: F,
) -> (Spawned<F>, impl FnOnce(Task) -> JoinHandle<F::Output>) {
    let state = Rc::new(RefCell::new(JoinState {
        output: None,
        waker: None,
        taken: false,
    }));
    let handle_state = state.clone();
    let spawned = Spawned {
        future: Some(future),
        state: Some(state),
    };
    (spawned, move |task| JoinHandle {
        state: handle_state,
        task,
    })
}

impl<F: Future> Spawned<F> {
    /// Drops the user's future in place; `Err` with the payload when its
    /// `Drop` panicked. A panic while dropping what the first panic left
    /// is contained and counted, not reported twice.
    fn drop_future(&mut self) -> Result<(), Box<dyn Any + Send + 'static>> {
        // Assigning drops the old value in place, which keeps the pin
        // promise.
        catch_unwind(AssertUnwindSafe(|| self.future = None)).inspect_err(|_| {
            super::contain(|| self.future = None);
        })
    }
}

impl<F: Future> Future for Spawned<F> {
    type Output = ();

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // SAFETY: `future` is structurally pinned: it is never moved out of
        // `Spawned`, only dropped in place, and `Spawned` has no Unpin impl
        // of its own. `state` is not pinned and only taken by value here.
        let this = unsafe { self.get_unchecked_mut() };
        let Some(future) = this.future.as_mut() else {
            return Poll::Ready(());
        };
        // SAFETY: see above; the future is never moved.
        let future = unsafe { Pin::new_unchecked(future) };
        let output = match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(output)) => this.drop_future().map(|()| output).map_err(panicked),
            Err(payload) => {
                // Dropped now, so its resources go with the panic; a second
                // panic from its `Drop` is contained.
                super::contain(|| this.future = None);
                Err(panicked(payload))
            }
        };
        let state = this.state.take().expect("Spawned polled after completion");
        finish(&state, output);
        Poll::Ready(())
    }
}

impl<F: Future> Drop for Spawned<F> {
    fn drop(&mut self) {
        let dropped = self.drop_future();
        if let Some(state) = self.state.take() {
            let output = match dropped {
                Ok(()) => Err(JoinError {
                    repr: Repr::Cancelled,
                }),
                Err(payload) => Err(panicked(payload)),
            };
            finish(&state, output);
        }
    }
}
