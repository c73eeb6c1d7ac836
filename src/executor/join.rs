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
        waker.wake();
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
pub(crate) struct Spawned<F: Future> {
    future: F,
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
        future,
        state: Some(state),
    };
    (spawned, move |task| JoinHandle {
        state: handle_state,
        task,
    })
}

impl<F: Future> Future for Spawned<F> {
    type Output = ();

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // SAFETY: `future` is structurally pinned: it is never moved out of
        // `Spawned`, and `Spawned` has no Unpin impl of its own or Drop that
        // moves it. `state` is not pinned and only taken by value here.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: see above; `this.future` is never moved.
        let future = unsafe { Pin::new_unchecked(&mut this.future) };
        let output = match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(output)) => Ok(output),
            Err(payload) => Err(JoinError {
                repr: Repr::Panic(payload),
            }),
        };
        let state = this.state.take().expect("Spawned polled after completion");
        finish(&state, output);
        Poll::Ready(())
    }
}

impl<F: Future> Drop for Spawned<F> {
    fn drop(&mut self) {
        if let Some(state) = self.state.take() {
            finish(
                &state,
                Err(JoinError {
                    repr: Repr::Cancelled,
                }),
            );
        }
    }
}
