//! A bounded multi-producer, single-consumer channel whose receiver lives
//! on one core.
//!
//! Senders are `Clone + Send + Sync` and may send from any task of any core
//! or from a plain thread ([`Sender::blocking_send`]); the receiver is
//! `Send`, and is bound to the thread that first receives from it (its
//! core). A full channel makes `send` wait (backpressure) and `try_send`
//! fail with the value handed back.
//!
//! # Two sides
//!
//! A send on the receiver's own thread goes to the *local* queue, a
//! `VecDeque` only that thread touches: no lock and no atomic
//! read-modify-write, so two tasks of one core talk at the cost of a push
//! and, when the receiver waits, a same-core wake. A send from anywhere
//! else goes to the *ring*: `capacity` slots allocated with the channel, in
//! the manner of Vyukov's bounded queue. A sender claims the next position
//! with one compare-and-swap on `tail`, writes its message into the slot
//! and publishes it by storing the slot's stamp; the receiver, the ring's
//! only consumer, takes the slot at `head` once its stamp says so and
//! hands the slot to the next lap. No lock is taken on either side while
//! the receiver keeps up, and the receiver is woken only when it went
//! pending, once per park, not once per message. The receiver takes from
//! the local queue first, then from the ring. Until the receiver has
//! received once, every send goes to the ring.
//!
//! # Order and delivery
//!
//! Messages of one sender arrive in the order sent. A sender that has sent
//! from a thread other than the receiver's once keeps to the ring from
//! then on, so a sender moved between threads cannot overtake itself; and
//! the receiver's first receive moves what the ring holds into the local
//! queue, so that a sender of that thread whose first messages went to the
//! ring cannot overtake them with its next ones. Every message is received
//! once, or dropped once: by the receiver's drop or close (what is
//! queued), by the channel's drop (what a receiver dropped away from its
//! thread left), or handed back to its sender (a send to a closed channel).
//!
//! # The bound
//!
//! `capacity` counts both sides. The ring alone never holds more than its
//! slots. A remote send checks the local queue's length too, and a local
//! send the ring's occupancy, without a lock between them, so a local and
//! a remote send racing for the last place may both take it: the channel
//! then holds `capacity + 1` messages. That is the one exception; remote
//! senders among themselves never exceed the bound.
//!
//! # Memory ordering
//!
//! - A claim is a `SeqCst` compare-and-swap on `tail`; the slot's value is
//!   published by a `Release` store of its stamp and taken after an
//!   `Acquire` load of it; the receiver frees the slot for the next lap
//!   with a `Release` store of the stamp that the next claim reads
//!   (`Acquire`).
//! - `head` is written only by the receiver. Senders read it only for the
//!   local-plus-ring bound, when the local queue holds something.
//! - `local_len` (the local queue's length) is written only by the
//!   receiver's thread (`Release`) and read by remote senders (`Acquire`)
//!   for the bound.
//! - Parking is a Dekker pair in `SeqCst`: the receiver stores `parked`,
//!   then reads `tail`; a sender claims (`tail`), then reads `parked` and,
//!   if it wins the flag back with a swap, wakes the receiver. One of the
//!   two sees the other, so no wake is lost, and one park costs at most one
//!   wake. Until the first remote claim the receiver parks without the
//!   flag and the first remote send wakes it whatever the flag says, which
//!   keeps a channel between tasks of one core free of atomic
//!   read-modify-writes. A message claimed but not yet published when the
//!   receiver looks makes it yield once rather than park: its sender is
//!   between two stores.
//! - The receiver's waker for remote senders is stored under a small mutex
//!   only when it changes, and read under it only by a sender that wakes.
//! - `owner` is set once, by the receiver's first receive (`SeqCst`),
//!   before it reads `tail` (`SeqCst`) to move what was claimed; a sender
//!   reads `owner` after its claim (`SeqCst`), so either its message moves
//!   or it sees the owner and keeps to the ring.
//! - `senders` counts the live senders (an atomic read-modify-write on
//!   clone and drop, never on a send); the last drop then takes the mutex
//!   and wakes the receiver, who stored its waker under the same mutex
//!   before re-reading the count, so the end of the channel is never
//!   missed.
//! - `closed` is set by the receiver (`Release`) and read by senders
//!   (`Acquire`).
//! - Every field one side writes per message sits on its own cache line.
//!
//! # Waiters
//!
//! Senders waiting for room wait in one list under the mutex, one waker
//! per task (a second poll of the same task replaces nothing), so that a
//! close from any thread reaches them. A receive that makes room wakes
//! every waiter (a flag read after a `SeqCst` fence, which pairs with one
//! in the waiting sender, says whether there is one): they race for the
//! room and the losers wait again; waking one would strand the others if
//! it were dropped without sending. The list holds at most one entry per
//! waiting task.

use std::fmt;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use crate::executor::ThreadSerial;

mod chan;
mod error;

use chan::Chan;
pub use error::{SendError, TryRecvError, TrySendError};

/// Makes a channel that holds at most `capacity` messages (see the module
/// docs for the one exception).
///
/// The ring that other threads send into is allocated here, `capacity`
/// slots of a `T` and a word each; the local queue grows as it fills.
///
/// # Panics
///
/// When `capacity` is 0 or above 2^32.
///
/// # Examples
///
/// ```
/// corering::start(async {
///     let (tx, mut rx) = corering::sync::mpsc::channel(16);
///     let producer = std::thread::spawn(move || {
///         for i in 0..100 {
///             tx.blocking_send(i).unwrap();
///         }
///     });
///     let mut sum = 0;
///     while let Some(i) = rx.recv().await {
///         sum += i;
///     }
///     producer.join().unwrap();
///     assert_eq!(sum, 4950);
/// });
/// ```
pub fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    assert!(capacity > 0, "an mpsc channel needs room for one message");
    assert!(
        capacity <= chan::MAX_CAPACITY,
        "an mpsc channel holds at most 2^32 messages"
    );
    let chan = Arc::new(Chan::new(capacity));
    (
        Sender {
            chan: chan.clone(),
            remote_only: AtomicBool::new(false),
        },
        Receiver { chan },
    )
}

/// Sends messages; made by [`channel`], cloned for more producers.
pub struct Sender<T> {
    chan: Arc<Chan<T>>,
    /// This sender has sent from a thread other than the receiver's.
    remote_only: AtomicBool,
}

impl<T> Sender<T> {
    /// Sends `value`, waiting for room while the channel is full. Fails,
    /// handing the value back, once the receiver is closed or dropped.
    pub async fn send(&self, value: T) -> Result<(), SendError<T>> {
        let mut value = Some(value);
        poll_fn(|cx| self.poll_send(cx, &mut value)).await
    }

    fn poll_send(
        &self,
        cx: &mut Context<'_>,
        value: &mut Option<T>,
    ) -> Poll<Result<(), SendError<T>>> {
        let taken = value.take().expect("polled after completion");
        match self.chan.try_push(taken, &self.remote_only) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(TrySendError::Closed(taken)) => Poll::Ready(Err(SendError(taken))),
            Err(TrySendError::Full(taken)) => {
                self.chan.wait_for_room(cx.waker());
                if self
                    .chan
                    .still_full(self.chan.sends_local(&self.remote_only))
                {
                    *value = Some(taken);
                    return Poll::Pending;
                }
                // Room was made (or the channel closed) while registering:
                // try again now rather than wait for a wake.
                match self.chan.try_push(taken, &self.remote_only) {
                    Ok(()) => Poll::Ready(Ok(())),
                    Err(TrySendError::Closed(taken)) => Poll::Ready(Err(SendError(taken))),
                    Err(TrySendError::Full(taken)) => {
                        *value = Some(taken);
                        cx.waker().wake_by_ref();
                        Poll::Pending
                    }
                }
            }
        }
    }

    /// Sends `value` if there is room now.
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        self.chan.try_push(value, &self.remote_only)
    }

    /// Sends `value` from a plain thread, blocking it while the channel is
    /// full.
    ///
    /// # Panics
    ///
    /// On a corering core's thread, where blocking would stall the core
    /// (use [`send`](Self::send) there).
    pub fn blocking_send(&self, value: T) -> Result<(), SendError<T>> {
        assert!(
            !crate::runtime::on_core(),
            "Sender::blocking_send would block a corering core; use `send(..).await` there"
        );
        let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut value = Some(value);
        loop {
            match self.poll_send(&mut cx, &mut value) {
                Poll::Ready(result) => return result,
                Poll::Pending => std::thread::park(),
            }
        }
    }

    /// Whether the receiver was closed or dropped.
    pub fn is_closed(&self) -> bool {
        self.chan.is_closed()
    }
}

/// Wakes a thread parked in [`Sender::blocking_send`].
struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Sender<T> {
        self.chan.add_sender();
        Sender {
            chan: self.chan.clone(),
            remote_only: AtomicBool::new(self.remote_only.load(Ordering::Relaxed)),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.chan.drop_sender();
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("mpsc::Sender").finish_non_exhaustive()
    }
}

/// Receives messages; made by [`channel`]. Bound to the thread (the core)
/// that first receives from it.
pub struct Receiver<T> {
    chan: Arc<Chan<T>>,
}

impl<T> Receiver<T> {
    /// Binds the channel to this thread on the first call; panics on a
    /// later call from another thread.
    #[inline]
    fn bind(&self) {
        let here = ThreadSerial::current().get();
        match self.chan.owner() {
            owner if owner == here => {}
            0 => self.chan.bind(here),
            _ => panic!(
                "an mpsc Receiver is bound to the core that first received from it; \
                 it was used on another thread"
            ),
        }
    }

    /// The next message; `None` once every sender is gone and the queues
    /// are empty (or the receiver was closed and is drained).
    pub async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next message (see [`recv`](Self::recv)).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.bind();
        if let Some(value) = self.take() {
            return Poll::Ready(Some(value));
        }
        // Parked: whatever is sent from now on wakes this task; what came
        // in while parking is taken now, or yielded for while its sender
        // is between claiming a place and filling it.
        if self.chan.park(cx.waker()) {
            if let Some(value) = self.take() {
                return Poll::Ready(Some(value));
            }
            if self.chan.on_the_way() {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
        if self.chan.is_finished() {
            // Sent before the last sender went (or before the close).
            return Poll::Ready(self.chan.pop());
        }
        Poll::Pending
    }

    /// Pops a message, then wakes the senders waiting for the room it
    /// made.
    fn take(&self) -> Option<T> {
        let value = self.chan.pop()?;
        self.chan.made_room();
        Some(value)
    }

    /// The next message if one is queued now.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        self.bind();
        if let Some(value) = self.take() {
            return Ok(value);
        }
        if self.chan.is_finished() {
            return self.chan.pop().ok_or(TryRecvError::Disconnected);
        }
        Err(TryRecvError::Empty)
    }

    /// Refuses every later send (each hands its value back); what is
    /// queued can still be received.
    pub fn close(&mut self) {
        self.chan.close();
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.close();
        // Dropped here, outside the locks and borrows: a message's `Drop`
        // may send on this very channel, which is closed.
        let queued = self.chan.take_queued(ThreadSerial::current().get());
        drop(queued);
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("mpsc::Receiver").finish_non_exhaustive()
    }
}
