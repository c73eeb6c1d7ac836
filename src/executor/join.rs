//! `JoinHandle` and `JoinError`: how a spawned task's output (or its panic,
//! or its cancellation) reaches whoever awaits it.
//!
//! The output waits in the task allocation itself (see
//! `task`); the handle holds the owner side's reference to
//! the task (the `HANDLE` flag) and a pointer to the output's place.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::ptr::NonNull;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::state::{ABORTED, COMPLETE, HANDLE, OUTPUT};
use super::task::{self, Header};
use super::waker;

/// Why a task produced no output.
pub struct JoinError {
    repr: Repr,
}

enum Repr {
    Cancelled,
    Panic(Box<dyn Any + Send + 'static>),
}

impl JoinError {
    pub(crate) fn cancelled() -> JoinError {
        JoinError {
            repr: Repr::Cancelled,
        }
    }

    pub(crate) fn panicked(payload: Box<dyn Any + Send + 'static>) -> JoinError {
        JoinError {
            repr: Repr::Panic(payload),
        }
    }

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

/// An owned permission to await a spawned task's output.
///
/// Awaiting it gives `Ok(output)`, or a [`JoinError`] if the task panicked
/// or was cancelled. Dropping it detaches the task, which keeps running;
/// an output it never took is dropped with it.
pub struct JoinHandle<T> {
    /// The task; one pointer, so a handle (and a future holding one) moves
    /// in a register.
    header: NonNull<Header>,
    /// The handle may own an output (`T`), and stays on the thread of the
    /// task's core, which alone touches the task's flags.
    _owns: PhantomData<(T, Rc<()>)>,
}

// The handle never pins the output: it moves it out.
impl<T> Unpin for JoinHandle<T> {}

impl<T> JoinHandle<T> {
    /// The handle of a new task.
    ///
    /// # Safety
    ///
    /// `header` starts a task allocation whose `HANDLE` flag this handle
    /// stands for, made on this thread, whose future's output is `T`.
    pub(super) unsafe fn new(header: NonNull<Header>) -> JoinHandle<T> {
        JoinHandle {
            header,
            _owns: PhantomData,
        }
    }

    /// Moves the output out; `OUTPUT` is cleared first.
    ///
    /// # Safety
    ///
    /// `OUTPUT` is set.
    unsafe fn take_output(&self) -> Result<T, JoinError> {
        self.task().flags.remove(OUTPUT);
        // SAFETY: `OUTPUT` said the output member is live, and clearing it
        // hands it to this read alone; the task's output is `T` (see `new`).
        unsafe { Header::output::<T>(self.header).read() }
    }

    pub(super) fn task(&self) -> &Header {
        // SAFETY: `HANDLE` is set while the handle exists, so the owner
        // side's unit of the count keeps the allocation alive.
        unsafe { self.header.as_ref() }
    }

    /// Cancels the task: its future is dropped on its core's next turn
    /// (cancelling its in-flight operations), and awaiting the handle gives a
    /// cancelled [`JoinError`]. A task that already finished is unaffected.
    pub fn abort(&self) {
        let task = self.task();
        if task.flags.has(COMPLETE) || task.flags.has(ABORTED) {
            return;
        }
        task.flags.insert(ABORTED);
        // SAFETY: the handle's reference, and a task that is not complete,
        // so its core is alive.
        unsafe { waker::schedule(self.header) };
    }

    /// Whether the task has finished (with output, panic or cancellation).
    pub fn is_finished(&self) -> bool {
        self.task().flags.has(COMPLETE)
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let task = self.task();
        if task.flags.has(OUTPUT) {
            // SAFETY: just checked.
            return Poll::Ready(unsafe { self.take_output() });
        }
        assert!(
            !task.flags.has(COMPLETE),
            "JoinHandle polled after completion"
        );
        // SAFETY: the handle is `!Send`, made on the owner thread, so this
        // is the owner thread.
        if !unsafe { task.join_waker_wakes(cx.waker()) } {
            // Cloned and the old one dropped outside the slot's borrow:
            // both are user code.
            let waker = cx.waker().clone();
            // SAFETY: as above.
            drop(unsafe { task.replace_join_waker(Some(waker)) });
        }
        Poll::Pending
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        let task = self.task();
        // SAFETY: checked first.
        let output = task
            .flags
            .has(OUTPUT)
            .then(|| unsafe { self.take_output() });
        // SAFETY: as in `poll`, the owner thread.
        let waiter = unsafe { task.replace_join_waker(None) };
        // SAFETY: the handle's reference, given up here on the owner
        // thread; `task` is not used after.
        unsafe { task::release(self.header, HANDLE) };
        // User code, once the task is settled.
        drop(waiter);
        drop(output);
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}
