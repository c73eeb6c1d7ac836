//! The channel's shared state: the receiver's local queue, the ring that
//! other threads send into, and the flags that say who waits (see the
//! module docs of `mpsc` for the protocol and its memory ordering).

use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::mem::{self, MaybeUninit};
use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::task::Waker;

use super::TrySendError;
use crate::executor::ThreadSerial;

/// Keeps what one side writes off the other side's cache line.
#[repr(align(128))]
struct Line<T>(T);

impl<T> std::ops::Deref for Line<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// The largest capacity: ring positions keep a lap count above the index.
pub(super) const MAX_CAPACITY: usize = 1 << 32;

/// Each field on its own cache line where one side would otherwise write
/// what the other reads on every message.
pub(super) struct Chan<T> {
    /// Read by every send, written once or rarely.
    shared: Line<Shared>,
    /// Touched only on the thread named by `owner` (see `Chan::local`).
    local: Line<UnsafeCell<Local<T>>>,
    /// `local.queue.len()`, for remote senders' bound: written by the
    /// receiver's thread on local sends and receives only.
    local_len: Line<AtomicUsize>,
    /// The ring's next position to send into: claimed by remote senders.
    tail: Line<AtomicU64>,
    /// The ring's next position to receive from: written by the receiver,
    /// read by senders only when the receiver's thread also sends.
    head: Line<AtomicU64>,
    /// The receiver found nothing and went pending: the next remote send
    /// wakes it. Written by the receiver when it parks and by the sender
    /// that wakes it.
    parked: Line<AtomicBool>,
    /// Some sender waits in the list of waiters: read by the receiver on
    /// each receive, written by senders only when they wait.
    waiting: Line<AtomicBool>,
    /// Wakers, taken under the lock on the slow paths only.
    wakers: Mutex<Wakers>,
    ring: Ring<T>,
}

struct Shared {
    capacity: usize,
    /// The receiver's thread serial; 0 until its first receive.
    owner: AtomicU64,
    senders: AtomicUsize,
    closed: AtomicBool,
}

struct Local<T> {
    /// Sent on the receiver's own thread.
    queue: VecDeque<T>,
    /// The receiver's waker, for sends on its own thread.
    receiver: Option<Waker>,
    /// The receiver went pending: the next local send wakes it.
    parked: bool,
    /// The waker last stored in `Wakers`, so an unchanged one is not
    /// stored again.
    registered: Option<Waker>,
}

struct Wakers {
    /// The receiver's waker, for sends from other threads and the last
    /// sender's drop; kept (woken by reference) until replaced.
    receiver: Option<Waker>,
    /// Senders waiting for room (from any thread: waiting is the slow
    /// path, and a close from any thread must reach them).
    waiters: Vec<Waker>,
}

/// A bounded ring of `capacity` slots for sends from other threads, as in
/// Vyukov's bounded queue: a position is a lap count above a slot index,
/// and a slot's stamp says whether it waits for the position's message
/// (the stamp equals the position) or holds it (one more).
struct Ring<T> {
    slots: Box<[Slot<T>]>,
    /// The lap increment: a power of two above the capacity.
    lap: u64,
}

struct Slot<T> {
    stamp: AtomicU64,
    value: UnsafeCell<MaybeUninit<T>>,
}

impl<T> Ring<T> {
    fn new(capacity: usize) -> Ring<T> {
        let slots = (0..capacity as u64)
            .map(|index| Slot {
                stamp: AtomicU64::new(index),
                value: UnsafeCell::new(MaybeUninit::uninit()),
            })
            .collect();
        Ring {
            slots,
            lap: (capacity as u64 + 1).next_power_of_two(),
        }
    }

    fn slot(&self, position: u64) -> &Slot<T> {
        &self.slots[(position & (self.lap - 1)) as usize]
    }

    /// The position after `position`.
    fn next(&self, position: u64) -> u64 {
        let index = position & (self.lap - 1);
        if index + 1 < self.slots.len() as u64 {
            position + 1
        } else {
            (position & !(self.lap - 1)).wrapping_add(self.lap)
        }
    }

    /// Messages between `head` and `tail` (at most a lap apart); none when
    /// `head` has reached or passed `tail` (a tail read before the head
    /// may have been passed by then: positions only grow).
    fn distance(&self, head: u64, tail: u64) -> usize {
        if head >= tail {
            return 0;
        }
        let (head_index, tail_index) = (head & (self.lap - 1), tail & (self.lap - 1));
        if head & !(self.lap - 1) == tail & !(self.lap - 1) {
            (tail_index - head_index) as usize
        } else {
            (self.slots.len() as u64 - head_index + tail_index) as usize
        }
    }
}

// SAFETY: the local side is touched only by the owner thread (checked
// against `owner` before every access, see `Chan::local`) or with the
// channel exclusively held (its drop); a ring slot's value only by the
// sender that claimed its position until the stamp publishes it, then
// only by the receiver (one `Receiver`, used through `&mut`); everything
// else is atomic or under the mutex. Messages cross threads, hence
// `T: Send`.
unsafe impl<T: Send> Send for Chan<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Chan<T> {}

/// What a remote send found.
enum Claim {
    /// The position claimed: its slot is the sender's to fill.
    Got(u64),
    Full,
}

impl<T> Chan<T> {
    pub(super) fn new(capacity: usize) -> Chan<T> {
        Chan {
            shared: Line(Shared {
                capacity,
                owner: AtomicU64::new(0),
                senders: AtomicUsize::new(1),
                closed: AtomicBool::new(false),
            }),
            local: Line(UnsafeCell::new(Local {
                queue: VecDeque::new(),
                receiver: None,
                parked: false,
                registered: None,
            })),
            local_len: Line(AtomicUsize::new(0)),
            tail: Line(AtomicU64::new(0)),
            head: Line(AtomicU64::new(0)),
            parked: Line(AtomicBool::new(false)),
            waiting: Line(AtomicBool::new(false)),
            wakers: Mutex::new(Wakers {
                receiver: None,
                waiters: Vec::new(),
            }),
            ring: Ring::new(capacity),
        }
    }

    pub(super) fn owner(&self) -> u64 {
        self.shared.owner.load(Ordering::SeqCst)
    }

    /// Whether the calling thread is the receiver's.
    #[inline]
    fn on_owner(&self, here: ThreadSerial) -> bool {
        self.shared.owner.load(Ordering::Acquire) == here.get()
    }

    pub(super) fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Whether every sender is gone or the receiver closed.
    pub(super) fn is_finished(&self) -> bool {
        self.shared.senders.load(Ordering::Acquire) == 0 || self.is_closed()
    }

    pub(super) fn add_sender(&self) {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
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

    fn wakers(&self) -> MutexGuard<'_, Wakers> {
        // No user code runs under the lock, so it is never poisoned in a
        // way that leaves the state inconsistent.
        self.wakers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Tries to queue `value` from this thread; gives it back when the
    /// channel is full or closed.
    pub(super) fn try_push(
        &self,
        value: T,
        remote_only: &AtomicBool,
    ) -> Result<(), TrySendError<T>> {
        if self.is_closed() {
            return Err(TrySendError::Closed(value));
        }
        if !remote_only.load(Ordering::Relaxed) && self.on_owner(ThreadSerial::current()) {
            return self.push_local(value);
        }
        let Claim::Got(position) = self.claim() else {
            return Err(TrySendError::Full(value));
        };
        let slot = self.ring.slot(position);
        // SAFETY: the claim made this slot this sender's until the stamp
        // below publishes it; the previous lap's value was taken (its
        // stamp said so).
        unsafe { (*slot.value.get()).write(value) };
        slot.stamp.store(position + 1, Ordering::Release);
        // Read after the claim (both `SeqCst`), which orders it with the
        // binding: sent here after the receiver was bound elsewhere, this
        // sender keeps to the ring from now on (see "Order").
        if self.owner() != 0 {
            remote_only.store(true, Ordering::Relaxed);
        }
        // The first remote message wakes the receiver whether or not it
        // parked: until there was one, it parks without the flag (see
        // `park`).
        if position == 0
            || (self.parked.load(Ordering::SeqCst) && self.parked.swap(false, Ordering::SeqCst))
        {
            let receiver = self.wakers().receiver.clone();
            if let Some(receiver) = receiver {
                receiver.wake();
            }
        }
        Ok(())
    }

    /// On the owner thread: a send to the local queue.
    fn push_local(&self, value: T) -> Result<(), TrySendError<T>> {
        // SAFETY: on the owner thread; the borrow ends before any wake.
        let local = unsafe { self.local() };
        let head = self.head.load(Ordering::Relaxed);
        let remote = self.ring.distance(head, self.tail.load(Ordering::Acquire));
        if local.queue.len() + remote >= self.shared.capacity {
            return Err(TrySendError::Full(value));
        }
        local.queue.push_back(value);
        self.local_len.store(local.queue.len(), Ordering::Release);
        if !mem::take(&mut local.parked) {
            return Ok(());
        }
        if let Some(receiver) = local.receiver.clone() {
            receiver.wake();
        }
        Ok(())
    }

    /// Claims the ring's next position, unless the ring is full or the
    /// local queue takes the rest of the capacity.
    fn claim(&self) -> Claim {
        let mut tail = self.tail.load(Ordering::Relaxed);
        loop {
            let stamp = self.ring.slot(tail).stamp.load(Ordering::Acquire);
            if stamp == tail {
                if self.local_taken(tail) {
                    return Claim::Full;
                }
                match self.tail.compare_exchange_weak(
                    tail,
                    self.ring.next(tail),
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return Claim::Got(tail),
                    Err(now) => tail = now,
                }
            } else if stamp.wrapping_add(self.ring.lap) == tail + 1 {
                // The slot still holds the message of the lap before.
                return Claim::Full;
            } else {
                // Another sender claimed this position first.
                std::hint::spin_loop();
                tail = self.tail.load(Ordering::Relaxed);
            }
        }
    }

    /// Whether the local queue and the ring up to `tail` fill the
    /// capacity; the receiver's position is read only when the local queue
    /// holds something (its thread sends too).
    fn local_taken(&self, tail: u64) -> bool {
        let local = self.local_len.load(Ordering::Acquire);
        local > 0
            && local + self.ring.distance(self.head.load(Ordering::Acquire), tail)
                >= self.shared.capacity
    }

    /// Registers `waker` to be woken when room is made or the channel
    /// closes.
    pub(super) fn wait_for_room(&self, waker: &Waker) {
        let mut wakers = self.wakers();
        if !wakers.waiters.iter().any(|stored| stored.will_wake(waker)) {
            wakers.waiters.push(waker.clone());
        }
        self.waiting.store(true, Ordering::Relaxed);
    }

    /// Whether the channel is still full and open, read after registering
    /// a waiter, so that a receive in between is not missed. The fence
    /// pairs with the one in `made_room`: either the receiver sees the
    /// waiter's flag, or this read sees the room it made.
    pub(super) fn still_full(&self, local: bool) -> bool {
        fence(Ordering::SeqCst);
        if self.is_closed() {
            return false;
        }
        // The head first: the tail read after it is at or past it.
        let head = self.head.load(Ordering::Acquire);
        let tail = self.tail.load(Ordering::Acquire);
        let queued = self.local_len.load(Ordering::Acquire) + self.ring.distance(head, tail);
        if queued >= self.shared.capacity {
            return true;
        }
        // A remote sender also needs the ring's slot free.
        !local && self.ring.slot(tail).stamp.load(Ordering::Acquire) != tail
    }

    /// Whether a send from this thread goes to the local queue.
    pub(super) fn sends_local(&self, remote_only: &AtomicBool) -> bool {
        !remote_only.load(Ordering::Relaxed) && self.on_owner(ThreadSerial::current())
    }

    /// By the receiver, on its thread: takes the next message, local
    /// first, then from the ring.
    pub(super) fn pop(&self) -> Option<T> {
        // SAFETY: called on the owner thread only (the receiver checks).
        let local = unsafe { self.local() };
        if let Some(value) = local.queue.pop_front() {
            self.local_len.store(local.queue.len(), Ordering::Release);
            return Some(value);
        }
        self.pop_ring()
    }

    /// By the receiver (on any thread: it is the ring's one consumer): the
    /// message at the ring's head if its sender has published it.
    fn pop_ring(&self) -> Option<T> {
        let head = self.head.load(Ordering::Relaxed);
        let slot = self.ring.slot(head);
        if slot.stamp.load(Ordering::Acquire) != head + 1 {
            return None;
        }
        // SAFETY: the stamp says the sender wrote this value and is done
        // with it; the receiver is the only reader and takes it once.
        let value = unsafe { (*slot.value.get()).assume_init_read() };
        slot.stamp
            .store(head.wrapping_add(self.ring.lap), Ordering::Release);
        self.head.store(self.ring.next(head), Ordering::Release);
        Some(value)
    }

    /// Whether a remote sender has claimed a position the receiver has not
    /// taken (its message may still be on the way).
    fn ring_claimed(&self) -> bool {
        self.tail.load(Ordering::SeqCst) != self.head.load(Ordering::Relaxed)
    }

    /// On the owner thread, before going pending: stores the receiver's
    /// waker where every sender finds it and marks it parked; says whether
    /// a remote message was claimed meanwhile (the caller looks again, and
    /// yields while it is on the way).
    pub(super) fn park(&self, waker: &Waker) -> bool {
        // SAFETY: on the owner thread (the receiver checks); no wake runs
        // meanwhile.
        let local = unsafe { self.local() };
        match &local.receiver {
            Some(stored) if stored.will_wake(waker) => {}
            _ => local.receiver = Some(waker.clone()),
        }
        local.parked = true;
        if !local
            .registered
            .as_ref()
            .is_some_and(|stored| stored.will_wake(waker))
        {
            local.registered = Some(waker.clone());
            // The old waker is dropped after the lock (its drop is user
            // code).
            let old = self.wakers().receiver.replace(waker.clone());
            drop(old);
        }
        // No remote message yet: no flag, so that a channel between tasks
        // of one core costs no atomic read-modify-write. The first remote
        // send wakes regardless.
        if self.tail.load(Ordering::SeqCst) == 0 {
            return false;
        }
        // Pairs with the sender's claim and read of the flag (all
        // `SeqCst`): either this read sees the claim, or the sender sees
        // the flag and wakes.
        self.parked.store(true, Ordering::SeqCst);
        self.ring_claimed()
    }

    /// After a message was taken or the channel closed: wakes every
    /// sender waiting for room.
    pub(super) fn made_room(&self) {
        // Pairs with the fence in `still_full` (see there).
        fence(Ordering::SeqCst);
        if !self.waiting.load(Ordering::Relaxed) {
            return;
        }
        let waiters = {
            let mut wakers = self.wakers();
            self.waiting.store(false, Ordering::Relaxed);
            mem::take(&mut wakers.waiters)
        };
        for waiter in waiters {
            waiter.wake();
        }
    }

    /// The first receive, on the receiver's thread: binds the channel to
    /// it. What was sent before moves to the local queue, so that a sender
    /// of this thread, whose earlier messages went to the ring, cannot
    /// overtake them with its next ones (which go to the local queue).
    #[cold]
    pub(super) fn bind(&self, here: u64) {
        self.shared.owner.store(here, Ordering::SeqCst);
        // Every claim before this read moves; a sender that claims after
        // it sees the owner (both `SeqCst`) and keeps to the ring. A
        // message claimed and not yet published is waited for: its sender
        // is between two stores.
        let tail = self.tail.load(Ordering::SeqCst);
        let mut moved = VecDeque::new();
        while self.head.load(Ordering::Relaxed) != tail {
            match self.pop_ring() {
                Some(value) => moved.push_back(value),
                None => std::thread::yield_now(),
            }
        }
        // SAFETY: this thread is the owner from now on; nothing else runs.
        let local = unsafe { self.local() };
        local.queue = moved;
        self.local_len.store(local.queue.len(), Ordering::Release);
    }

    /// Closes the channel: every later send hands its value back.
    pub(super) fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        // The senders waiting for room see the close.
        self.made_room();
    }

    /// The receiver's drop, after its close: what is queued is returned to
    /// be dropped by the caller, outside the borrows. Away from its thread
    /// the local queue is left to the channel's own drop, since senders of
    /// that thread may still touch it; a message still on its way in the
    /// ring is too.
    pub(super) fn take_queued(&self, here: u64) -> VecDeque<T> {
        let mut queued = VecDeque::new();
        if self.owner() == here {
            // SAFETY: on the owner thread; the queue is moved out.
            let local = unsafe { self.local() };
            self.local_len.store(0, Ordering::Release);
            queued = mem::take(&mut local.queue);
        }
        while let Some(value) = self.pop_ring() {
            queued.push_back(value);
        }
        self.wakers().receiver = None;
        queued
    }

    /// The last sender's drop: wakes the receiver, through the side it can
    /// be reached from here, to see the end.
    pub(super) fn drop_sender(&self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        let receiver = if self.on_owner(ThreadSerial::current()) {
            // SAFETY: on the owner thread; the clone ends the borrow.
            unsafe { self.local() }.receiver.clone()
        } else {
            self.wakers().receiver.clone()
        };
        if let Some(receiver) = receiver {
            receiver.wake();
        }
    }

    /// Whether a remote message is claimed and not yet published: the
    /// receiver yields instead of parking on it.
    pub(super) fn on_the_way(&self) -> bool {
        self.ring_claimed()
    }
}

impl<T> Drop for Chan<T> {
    fn drop(&mut self) {
        // The last handle is gone: every queue is this thread's now (a
        // receiver dropped away from its thread left the local one), and
        // every claimed slot holds its message (its sender is gone).
        drop(mem::take(&mut self.local.0.get_mut().queue));
        while self.pop_ring().is_some() {}
    }
}
