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
//! The channel keeps two queues. A send on the receiver's own thread goes
//! to the *local* queue, which only that thread touches: no lock and no
//! atomic read-modify-write, so two tasks of one core talk at the cost of a
//! `VecDeque` push and a same-core wake. A send from anywhere else goes to
//! the *remote* queue, under a mutex, and wakes the receiver through its
//! waker (for a corering task, through its core's inbox). The receiver
//! takes from the local queue first. Until the receiver has received once,
//! every send goes to the remote queue.
//!
//! # Order and delivery
//!
//! Messages of one sender arrive in the order sent. A sender that has sent
//! from a thread other than the receiver's once keeps to the remote queue
//! from then on, so a sender moved between threads cannot overtake itself.
//! Every message is received once, or dropped once: by the receiver's
//! drop or close (what is queued), or handed back to its sender (a send to
//! a closed channel).
//!
//! # The bound
//!
//! `capacity` counts both queues. A local send reads the remote count and a
//! remote send the local count without a lock shared between them, so a
//! local and a remote send racing for the last place may both take it:
//! the channel then holds `capacity + 1` messages, never more.
//!
//! # Memory ordering
//!
//! - `local_len` is written only by the receiver's thread (plain `Release`
//!   stores after each change of the local queue) and read by remote
//!   senders (`Acquire`) for the bound.
//! - `remote_len` is written only under the mutex (`Release`) and read by
//!   the receiver's thread without it (`Acquire`): a zero there lets the
//!   receiver skip the lock; a message pushed just after the read is not
//!   lost, since its sender wakes the receiver, whose waker sits in the
//!   remote side (registered under the mutex before the receiver's last
//!   look at the queue).
//! - `owner` is set once, by the receiver's first receive (`Release`), and
//!   read by senders (`Acquire`); only that thread touches the local side.
//! - `senders` counts the live senders (an atomic read-modify-write on
//!   clone and drop, never on a send); the last drop then takes the mutex
//!   and wakes the receiver, who re-reads the count after registering its
//!   waker under the same mutex, so the end of the channel is never missed.
//! - `closed` is set by the receiver (`Release`) and read by senders
//!   (`Acquire`).
//!
//! # Waiters
//!
//! Senders waiting for room wait in one list under the mutex, one waker
//! per task (a second poll of the same task replaces nothing), so that a
//! close from any thread reaches them. A receive that makes room wakes
//! every waiter (a flag read without the lock says whether there is one):
//! they race for the room and the losers wait again; waking one would
//! strand the others if it were dropped without sending. The list holds
//! at most one entry per waiting task.

use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};

use crate::executor::ThreadSerial;

mod error;

pub use error::{SendError, TryRecvError, TrySendError};

/// Makes a channel that holds at most `capacity` messages (see the module
/// docs for the one exception).
///
/// # Panics
///
/// When `capacity` is 0.
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
    let chan = Arc::new(Chan {
        capacity,
        owner: AtomicU64::new(0),
        local: UnsafeCell::new(Local {
            queue: VecDeque::new(),
            receiver: None,
            registered: None,
        }),
        local_len: AtomicUsize::new(0),
        remote: Mutex::new(Remote {
            queue: VecDeque::new(),
            receiver: None,
            waiters: Vec::new(),
        }),
        remote_len: AtomicUsize::new(0),
        remote_waiting: AtomicBool::new(false),
        senders: AtomicUsize::new(1),
        closed: AtomicBool::new(false),
    });
    (
        Sender {
            chan: chan.clone(),
            remote_only: AtomicBool::new(false),
        },
        Receiver { chan },
    )
}

struct Chan<T> {
    capacity: usize,
    /// The receiver's thread serial; 0 until its first receive.
    owner: AtomicU64,
    /// Touched only on the thread named by `owner` (see `local`).
    local: UnsafeCell<Local<T>>,
    local_len: AtomicUsize,
    remote: Mutex<Remote<T>>,
    remote_len: AtomicUsize,
    /// Some sender waits in the remote side's list of waiters.
    remote_waiting: AtomicBool,
    senders: AtomicUsize,
    closed: AtomicBool,
}

// SAFETY: the local side is touched only by the owner thread (checked
// against `owner` before every access, see `Chan::local`) or with the
// channel exclusively held (its drop); everything else is atomic or under
// the mutex. Messages cross threads, hence `T: Send`.
unsafe impl<T: Send> Send for Chan<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Chan<T> {}

struct Local<T> {
    queue: VecDeque<T>,
    /// The receiver's waker, for sends on its own thread.
    receiver: Option<Waker>,
    /// The waker last registered in the remote side, so an unchanged one
    /// is not registered again (no lock when the receiver parks again).
    registered: Option<Waker>,
}

struct Remote<T> {
    queue: VecDeque<T>,
    /// The receiver's waker, for sends from other threads and the last
    /// sender's drop; kept (woken by reference) until replaced.
    receiver: Option<Waker>,
    /// Senders waiting for room (from any thread: waiting is the slow
    /// path, and a close from any thread must reach them).
    waiters: Vec<Waker>,
}

impl<T> Chan<T> {
    /// Whether the calling thread is the receiver's.
    #[inline]
    fn on_owner(&self, here: ThreadSerial) -> bool {
        self.owner.load(Ordering::Acquire) == here.get()
    }

    /// The local side.
    ///
    /// # Safety
    ///
    /// The caller runs on the owner thread ([`on_owner`](Self::on_owner)
    /// said so) and holds no other reference from this call: every use
    /// finishes before it returns and runs no user code meanwhile (wakers
    /// are woken and values dropped after).
    #[allow(clippy::mut_from_ref)]
    #[inline]
    unsafe fn local(&self) -> &mut Local<T> {
        // SAFETY: forwarded from the caller: one thread, one reference.
        unsafe { &mut *self.local.get() }
    }

    fn lock(&self) -> MutexGuard<'_, Remote<T>> {
        // No user code runs under the lock, so it is never poisoned in a
        // way that leaves the state inconsistent.
        self.remote
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Tries to queue `value` from this thread; gives it back when the
    /// channel is full or closed.
    fn try_push(&self, value: T, remote_only: &AtomicBool) -> Result<(), TrySendError<T>> {
        if self.closed.load(Ordering::Acquire) {
            return Err(TrySendError::Closed(value));
        }
        let here = ThreadSerial::current();
        if !remote_only.load(Ordering::Relaxed) && self.on_owner(here) {
            // SAFETY: on the owner thread; the borrow ends before any wake.
            let local = unsafe { self.local() };
            let remote = self.remote_len.load(Ordering::Acquire);
            if local.queue.len() + remote >= self.capacity {
                return Err(TrySendError::Full(value));
            }
            local.queue.push_back(value);
            self.local_len.store(local.queue.len(), Ordering::Release);
            let receiver = local.receiver.clone();
            if let Some(receiver) = receiver {
                receiver.wake();
            }
            return Ok(());
        }
        let receiver = {
            let mut remote = self.lock();
            let local = self.local_len.load(Ordering::Acquire);
            if local + remote.queue.len() >= self.capacity {
                return Err(TrySendError::Full(value));
            }
            // Read under the lock, which orders it with the binding: sent
            // here after the receiver was bound elsewhere, this sender
            // keeps to the remote queue from now on (see "Order").
            if self.owner.load(Ordering::Acquire) != 0 {
                remote_only.store(true, Ordering::Relaxed);
            }
            remote.queue.push_back(value);
            self.remote_len.store(remote.queue.len(), Ordering::Release);
            remote.receiver.clone()
        };
        if let Some(receiver) = receiver {
            receiver.wake();
        }
        Ok(())
    }

    /// Registers `waker` to be woken when room is made or the channel
    /// closes.
    fn wait_for_room(&self, waker: &Waker) {
        let mut remote = self.lock();
        add_waiter(&mut remote.waiters, waker);
        self.remote_waiting.store(true, Ordering::Relaxed);
    }

    /// Whether the channel is still full and open, read after registering
    /// a waiter, so that a receive in between is not missed. The fence
    /// pairs with the one in `made_room`: either the receiver
    /// sees the waiter's flag, or this read sees the room it made.
    fn still_full(&self) -> bool {
        fence(Ordering::SeqCst);
        let local = self.local_len.load(Ordering::Acquire);
        let remote = self.remote_len.load(Ordering::Acquire);
        local + remote >= self.capacity && !self.closed.load(Ordering::Acquire)
    }

    /// On the owner thread: takes the next message, local first.
    fn pop(&self) -> Option<T> {
        // SAFETY: called on the owner thread only (the receiver checks).
        let local = unsafe { self.local() };
        if let Some(value) = local.queue.pop_front() {
            self.local_len.store(local.queue.len(), Ordering::Release);
            return Some(value);
        }
        if self.remote_len.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut remote = self.lock();
        let value = remote.queue.pop_front();
        self.remote_len.store(remote.queue.len(), Ordering::Release);
        value
    }

    /// After a message was taken or the channel closed: wakes every
    /// sender waiting for room.
    fn made_room(&self) {
        // Pairs with the fence in `still_full` (see there).
        fence(Ordering::SeqCst);
        if !self.remote_waiting.load(Ordering::Relaxed) {
            return;
        }
        let waiters = {
            let mut remote = self.lock();
            self.remote_waiting.store(false, Ordering::Relaxed);
            std::mem::take(&mut remote.waiters)
        };
        for waiter in waiters {
            waiter.wake();
        }
    }
}

impl<T> Drop for Chan<T> {
    fn drop(&mut self) {
        // The last handle is gone: both queues are this thread's now (a
        // receiver dropped away from its thread left the local one).
        let local = self.local.get_mut();
        drop(std::mem::take(&mut local.queue));
        let remote = self
            .remote
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        drop(std::mem::take(&mut remote.queue));
    }
}

/// Adds `waker` unless the same task already waits. O(waiters): the list
/// holds one entry per task waiting for room, and is emptied on every
/// receive (see "Waiters").
fn add_waiter(waiters: &mut Vec<Waker>, waker: &Waker) {
    if !waiters.iter().any(|stored| stored.will_wake(waker)) {
        waiters.push(waker.clone());
    }
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
                if self.chan.still_full() {
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
        self.chan.closed.load(Ordering::Acquire)
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
        self.chan.senders.fetch_add(1, Ordering::Relaxed);
        Sender {
            chan: self.chan.clone(),
            remote_only: AtomicBool::new(self.remote_only.load(Ordering::Relaxed)),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if self.chan.senders.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        // The last sender: the receiver sees the end once the queues are
        // empty. Woken through the side it can be reached from here.
        let here = ThreadSerial::current();
        let receiver = if self.chan.on_owner(here) {
            // SAFETY: on the owner thread; the clone ends the borrow.
            unsafe { self.chan.local() }.receiver.clone()
        } else {
            self.chan.lock().receiver.clone()
        };
        if let Some(receiver) = receiver {
            receiver.wake();
        }
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
        match self.chan.owner.load(Ordering::Acquire) {
            owner if owner == here => {}
            0 => self.bind_here(here),
            _ => panic!(
                "an mpsc Receiver is bound to the core that first received from it; \
                 it was used on another thread"
            ),
        }
    }

    /// The first receive: this thread becomes the owner, and what was sent
    /// before moves to the local queue first, so that a sender of this
    /// thread, whose earlier messages went to the remote queue, cannot
    /// overtake them with its next ones.
    #[cold]
    fn bind_here(&self, here: u64) {
        let mut remote = self.chan.lock();
        self.chan.owner.store(here, Ordering::Release);
        let early = std::mem::take(&mut remote.queue);
        self.chan.remote_len.store(0, Ordering::Release);
        // SAFETY: this thread is the owner from now on; nothing else runs.
        let local = unsafe { self.chan.local() };
        local.queue = early;
        self.chan
            .local_len
            .store(local.queue.len(), Ordering::Release);
    }

    /// The next message; `None` once every sender is gone and the queues
    /// are empty (or the receiver was closed and is drained).
    pub async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next message (see [`recv`](Self::recv)).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.bind();
        if let Some(value) = self.chan.pop() {
            self.chan.made_room();
            return Poll::Ready(Some(value));
        }
        self.register(cx.waker());
        // Registered: whatever is sent from now on wakes this task. Look
        // again for what came in between.
        if let Some(value) = self.chan.pop() {
            self.chan.made_room();
            return Poll::Ready(Some(value));
        }
        if self.chan.senders.load(Ordering::Acquire) == 0
            || self.chan.closed.load(Ordering::Acquire)
        {
            // Sent before the last sender went (or before the close).
            return match self.chan.pop() {
                Some(value) => Poll::Ready(Some(value)),
                None => Poll::Ready(None),
            };
        }
        Poll::Pending
    }

    /// Stores the receiver's waker on both sides; the remote side's only
    /// when it changed, so parking again takes no lock.
    fn register(&self, waker: &Waker) {
        // SAFETY: bound to this thread (`bind`); no wake runs meanwhile.
        let local = unsafe { self.chan.local() };
        match &local.receiver {
            Some(stored) if stored.will_wake(waker) => {}
            _ => local.receiver = Some(waker.clone()),
        }
        if local
            .registered
            .as_ref()
            .is_some_and(|stored| stored.will_wake(waker))
        {
            return;
        }
        local.registered = Some(waker.clone());
        let old = self.chan.lock().receiver.replace(waker.clone());
        drop(old);
    }

    /// The next message if one is queued now.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        self.bind();
        if let Some(value) = self.chan.pop() {
            self.chan.made_room();
            return Ok(value);
        }
        if self.chan.senders.load(Ordering::Acquire) == 0
            || self.chan.closed.load(Ordering::Acquire)
        {
            return self.chan.pop().ok_or(TryRecvError::Disconnected);
        }
        Err(TryRecvError::Empty)
    }

    /// Refuses every later send (each hands its value back); what is
    /// queued can still be received.
    pub fn close(&mut self) {
        self.chan.closed.store(true, Ordering::Release);
        // The senders waiting for room see the close.
        self.chan.made_room();
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.close();
        // Drop what is queued now, outside the locks and borrows (a
        // message's `Drop` may send on this very channel, which is closed).
        // Away from its thread the local queue is left to the channel's
        // own drop, since senders of that thread may still touch it.
        let here = ThreadSerial::current().get();
        let owner = self.chan.owner.load(Ordering::Acquire);
        if owner == here {
            // SAFETY: on the owner thread; the queue is moved out.
            let local = std::mem::take(&mut unsafe { self.chan.local() }.queue);
            self.chan.local_len.store(0, Ordering::Release);
            drop(local);
        }
        let remote = {
            let mut remote = self.chan.lock();
            self.chan.remote_len.store(0, Ordering::Release);
            remote.receiver = None;
            std::mem::take(&mut remote.queue)
        };
        drop(remote);
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("mpsc::Receiver").finish_non_exhaustive()
    }
}
