//! The task allocation: one heap block per spawn, holding the header every
//! handle reads and the stage, a union of the future and, once it is gone,
//! its output.
//!
//! ```text
//! Cell<F>:  Header { state, flags, key, vtable, scheduler, join_waker }
//!           Stage  { future: F  |  output: Result<F::Output, JoinError> }
//! ```
//!
//! Which member of the stage is live is read from the header's flags (see
//! [`state`](super::state)): the future until `COMPLETE`, the output while
//! `OUTPUT`. The [`JoinHandle`] finds the output member through the
//! vtable's offset and takes the output from there, so a spawn allocates
//! once, and a join copies the output once. The block comes from the core's
//! [`BlockCache`](super::cache::BlockCache) and goes back there when the
//! task is freed on its core's thread.
//!
//! # Task keys
//!
//! The core's task list holds a [`Task`] (the listed reference) for every
//! task whose future is live, by key, and the run queue holds keys, not
//! references. An operation polled with the waker of one of its core's
//! tasks stores that task's key (as the driver's wake token) instead of a
//! cloned waker, so the common path from submission to completion to the
//! next poll touches no reference count. A key outlives its task only as a
//! stale wake: the key may by then name a newer task, which is polled
//! spuriously (futures tolerate that), or no task, which is skipped.

use std::alloc::Layout;
use std::any::Any;
use std::cell::UnsafeCell;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::ptr::{self, NonNull};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use super::cache;
use super::join::{JoinError, JoinHandle};
use super::scheduler::{Local, Scheduler};
use super::state::{Flags, State, ABORTED, COMPLETE, HANDLE, LISTED, OUTPUT};
use super::waker;

/// The start of every task allocation, whatever its future's type.
#[repr(C)]
pub(super) struct Header {
    /// The shared word: references and the flags wakers touch.
    pub(super) state: State,
    /// The owner's word: touched only on the owner thread (and read by the
    /// thread that frees the task, after every owner-side reference was
    /// released with `Release` ordering).
    pub(super) flags: Flags,
    /// The key of the task in its core's task list, fixed at spawn.
    pub(super) key: usize,
    vtable: &'static TaskVTable,
    /// The core's scheduler, which outlives the task (see
    /// [`scheduler`](super::scheduler#lifetime)).
    scheduler: NonNull<Scheduler>,
    /// The waker of whoever awaits the `JoinHandle`. Owner thread only,
    /// and never borrowed across a call out (see [`Header::replace_join_waker`]).
    join_waker: UnsafeCell<Option<Waker>>,
}

/// What depends on the future's type.
struct TaskVTable {
    /// Polls the future, or drops it when aborted; true once complete.
    run: unsafe fn(NonNull<Header>) -> bool,
    /// Drops the future and completes the task as cancelled.
    cancel: unsafe fn(NonNull<Header>),
    /// Frees the allocation, into the core's cache when it can.
    dealloc: unsafe fn(NonNull<Header>),
    /// Where the output member of the stage starts, in bytes from the
    /// header (which depends on the future's alignment).
    output_offset: usize,
}

/// One task allocation. `repr(C)`, header first, so a pointer to the
/// header is a pointer to the cell.
#[repr(C)]
struct Cell<F: Future> {
    header: Header,
    stage: UnsafeCell<Stage<F>>,
}

/// The future, then its output, in the same bytes. A union drops neither
/// member by itself: the owner drops each explicitly, as the flags say.
#[repr(C)]
union Stage<F: Future> {
    /// Live while `COMPLETE` is clear; pinned (dropped in place, never moved).
    future: ManuallyDrop<F>,
    /// Live while `OUTPUT` is set.
    output: ManuallyDrop<Result<F::Output, JoinError>>,
}

impl<F: Future> Cell<F> {
    const VTABLE: TaskVTable = TaskVTable {
        run: run::<F>,
        cancel: cancel::<F>,
        dealloc: dealloc::<F>,
        // A `repr(C)` union's members all start where it does, and
        // `ManuallyDrop` is transparent.
        output_offset: std::mem::offset_of!(Cell<F>, stage),
    };
}

impl Header {
    /// The place of the output of the task at `header`, of the type
    /// `Result<T, JoinError>` its future's output makes.
    ///
    /// # Safety
    ///
    /// `header` is a live task whose future's output is `T`.
    #[inline]
    pub(super) unsafe fn output<T>(header: NonNull<Header>) -> *mut Result<T, JoinError> {
        // SAFETY: the allocation is live; the offset is the stage's within
        // it, and the pointer keeps the provenance of the whole block.
        unsafe {
            let offset = header.as_ref().vtable.output_offset;
            header.as_ptr().cast::<u8>().add(offset).cast()
        }
    }

    /// Whether the task belongs to `scheduler`'s core (by address).
    #[inline]
    pub(super) fn is_on(&self, scheduler: *const Scheduler) -> bool {
        std::ptr::eq(self.scheduler.as_ptr(), scheduler)
    }

    /// The core's scheduler.
    ///
    /// # Safety
    ///
    /// The caller holds a reference to the task, which keeps its scheduler
    /// alive (see [`scheduler`](super::scheduler#lifetime)); the returned
    /// reference is not used once that reference is given up.
    #[inline]
    pub(super) unsafe fn scheduler(&self) -> &Scheduler {
        // SAFETY: forwarded to the caller.
        unsafe { self.scheduler.as_ref() }
    }

    /// Puts `waker` in the join waker's place and returns what was there.
    /// The borrow ends before the return, so neither waker's user code runs
    /// while the slot is borrowed.
    ///
    /// # Safety
    ///
    /// On the owner thread (the slot's only user, with the free of the
    /// task, after every owner-side reference is gone).
    pub(super) unsafe fn replace_join_waker(&self, waker: Option<Waker>) -> Option<Waker> {
        // SAFETY: the owner thread is the slot's only user here, and
        // nothing in this method calls out, so the borrow is unique.
        unsafe { std::mem::replace(&mut *self.join_waker.get(), waker) }
    }

    /// Whether the join waker would wake the same task as `waker`.
    ///
    /// # Safety
    ///
    /// As [`replace_join_waker`](Header::replace_join_waker).
    pub(super) unsafe fn join_waker_wakes(&self, waker: &Waker) -> bool {
        // SAFETY: as in `replace_join_waker`; `will_wake` compares
        // pointers and runs no user code.
        unsafe { &*self.join_waker.get() }
            .as_ref()
            .is_some_and(|registered| registered.will_wake(waker))
    }
}

/// The task list's reference to a task: the `LISTED` flag. `!Send`, like
/// the task list that holds it. Made only by [`init`].
pub(super) struct Task {
    header: NonNull<Header>,
}

impl Task {
    /// A copy of this reference that is not counted, so never dropped: the
    /// run loop polls through it, since a poll may spawn, and so move the
    /// task list's entries.
    ///
    /// # Safety
    ///
    /// The copy must not be used once the reference it copies is gone.
    pub(super) unsafe fn uncounted(&self) -> ManuallyDrop<Task> {
        ManuallyDrop::new(Task {
            header: self.header,
        })
    }

    /// The key the task was made with.
    pub(super) fn key(&self) -> usize {
        self.header().key
    }

    /// The header of the listed task.
    fn header(&self) -> &Header {
        // SAFETY: `LISTED` is set while this value exists, so the owner
        // side's unit of the count keeps the allocation alive.
        unsafe { self.header.as_ref() }
    }

    /// Polls the future once (or drops it if aborted). True when the task
    /// is complete and should leave the task list.
    ///
    /// # Safety
    ///
    /// Called on the owner thread by the run loop, never re-entrantly, while
    /// the core is alive.
    #[inline]
    pub(super) unsafe fn run(&self) -> bool {
        // SAFETY: forwarded; the vtable matches the allocation.
        unsafe { (self.header().vtable.run)(self.header) }
    }

    /// Drops the future, unless the task is complete: at shutdown.
    ///
    /// # Safety
    ///
    /// As [`run`](Task::run).
    pub(super) unsafe fn cancel(&self) {
        if !self.header().flags.has(COMPLETE) {
            // SAFETY: forwarded; the future is live.
            unsafe { (self.header().vtable.cancel)(self.header) }
        }
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        debug_assert!(self.header().flags.has(COMPLETE), "listed until complete");
        // SAFETY: this is the listed reference, given up here, on the owner
        // thread (the task list is `!Send`).
        unsafe { release(self.header, LISTED) }
    }
}

/// The layout of the task of a future `F`, for its block (see
/// [`BlockCache::allocate`](super::cache::BlockCache::allocate)).
#[inline]
pub(super) fn layout<F: Future>() -> Layout {
    Layout::new::<Cell<F>>()
}

/// Makes a task for `future` with key `key` on `scheduler`'s core, in
/// `block`: returns the task list's reference and the handle.
///
/// # Safety
///
/// `block` is unused and came from the core's cache for [`layout::<F>`]
/// (so it is held, see [`scheduler`](super::scheduler#lifetime)).
#[inline]
pub(super) unsafe fn init<F>(
    block: NonNull<u8>,
    future: F,
    key: usize,
    scheduler: &Arc<Scheduler>,
) -> (Task, JoinHandle<F::Output>)
where
    F: Future + 'static,
    F::Output: 'static,
{
    // Every pointer below derives from this one, which owns the whole
    // block.
    let cell = block.cast::<Cell<F>>();
    let value = Cell {
        header: Header {
            state: State::new(),
            flags: Flags::new(),
            key,
            vtable: &Cell::<F>::VTABLE,
            // `as_ptr`, not a reference, so the pointer may give a strong
            // count back later (`Arc::decrement_strong_count`).
            scheduler: NonNull::new(Arc::as_ptr(scheduler).cast_mut())
                .expect("an Arc points somewhere"),
            join_waker: UnsafeCell::new(None),
        },
        stage: UnsafeCell::new(Stage {
            future: ManuallyDrop::new(future),
        }),
    };
    // SAFETY: the block is unused, of `cache::block_layout` of a
    // `Cell<F>`'s layout, which is at least as large and as aligned.
    unsafe { cell.write(value) };
    let header = cell.cast::<Header>();
    if cfg!(debug_assertions) {
        // SAFETY: the task is live, and its output is `F::Output`.
        let (found, placed) = unsafe { (Header::output::<F::Output>(header), output_of(cell)) };
        assert_eq!(found, placed, "the vtable's offset names the output");
    }
    // SAFETY: a new task: listed (`Task`) and with its handle (`HANDLE`),
    // whose output has the handle's type.
    let handle = unsafe { JoinHandle::new(header) };
    (Task { header }, handle)
}

/// The address of the output member of `cell`'s stage.
///
/// # Safety
///
/// `cell` is a live allocation.
unsafe fn output_of<F: Future>(cell: NonNull<Cell<F>>) -> *mut Result<F::Output, JoinError> {
    // SAFETY: forwarded; no reference is made, so nothing is asserted
    // about the bytes.
    unsafe {
        let stage = UnsafeCell::raw_get(ptr::addr_of!((*cell.as_ptr()).stage));
        ptr::addr_of_mut!((*stage).output).cast()
    }
}

/// The address of the future member of `cell`'s stage.
///
/// # Safety
///
/// As [`output_of`].
unsafe fn future_of<F: Future>(cell: NonNull<Cell<F>>) -> *mut F {
    // SAFETY: as in `output_of`.
    unsafe {
        let stage = UnsafeCell::raw_get(ptr::addr_of!((*cell.as_ptr()).stage));
        ptr::addr_of_mut!((*stage).future).cast()
    }
}

/// Clears `bit` (`LISTED` or `HANDLE`) and, when that was the last of the
/// two, gives back the owner side's unit of the count, freeing the task if
/// no waker is left.
///
/// # Safety
///
/// On the owner thread, by the holder of the reference `bit` stands for,
/// which is not used afterwards.
pub(super) unsafe fn release(header: NonNull<Header>, bit: u8) {
    // SAFETY: the caller's reference keeps the allocation alive until here.
    let task = unsafe { header.as_ref() };
    if task.flags.remove(bit) && task.state.release_owner() {
        // SAFETY: that was the last reference.
        unsafe { (task.vtable.dealloc)(header) }
    }
}

/// Frees the task at `header` after its last waker is gone.
///
/// # Safety
///
/// The caller gave up the last reference (`State::release_waker` said so).
pub(super) unsafe fn free(header: NonNull<Header>) {
    // SAFETY: the allocation is alive until the call below frees it.
    let dealloc = unsafe { header.as_ref() }.vtable.dealloc;
    // SAFETY: forwarded.
    unsafe { dealloc(header) }
}

/// `TaskVTable::run` for a `Cell<F>`.
///
/// # Safety
///
/// `header` starts a live `Cell<F>` whose future is live (the task is
/// listed); called by the run loop on the owner thread, not re-entrantly.
unsafe fn run<F: Future>(header: NonNull<Header>) -> bool {
    // SAFETY: the listed reference keeps the allocation alive.
    let task = unsafe { header.as_ref() };
    task.state.clear_queued_remote();
    debug_assert!(!task.flags.has(COMPLETE), "a listed task is not complete");
    if task.flags.has(ABORTED) {
        // SAFETY: forwarded.
        unsafe { cancel::<F>(header) };
        return true;
    }
    // SAFETY: the waker borrows the listed reference: it is never dropped
    // (`ManuallyDrop`) and does not outlive this call; a clone counts a
    // reference of its own.
    let waker = ManuallyDrop::new(unsafe { Waker::new(header.as_ptr().cast(), &waker::VTABLE) });
    let mut cx = Context::from_waker(&waker);
    let cell = header.cast::<Cell<F>>();
    // SAFETY: `COMPLETE` is clear, so the future member is live; it lives
    // in the allocation and is never moved out (it is dropped in place);
    // only this thread touches it, and not re-entrantly, so the borrow is
    // unique for the poll.
    let future = unsafe { Pin::new_unchecked(&mut *future_of(cell)) };
    // Each arm completes on its own, so the output is written straight
    // into its place rather than through a result assembled on the stack
    // and copied (a store-forwarding stall on the hot path).
    match catch_unwind(AssertUnwindSafe(|| future.poll(&mut cx))) {
        Ok(Poll::Pending) => return false,
        // SAFETY: the poll is over and its borrow gone; the future is live.
        Ok(Poll::Ready(output)) => match unsafe { drop_future(cell) } {
            // SAFETY: the future is gone, the task not yet complete.
            Ok(()) => unsafe { complete(cell, Ok(output)) },
            Err(payload) => {
                // SAFETY: on the owner thread, the core alive.
                let local = unsafe { local_of(task) };
                // The output goes with the panic that replaces it.
                local.contain(|| drop(output));
                // SAFETY: as above.
                unsafe { complete(cell, Err(JoinError::panicked(payload))) };
            }
        },
        Err(payload) => {
            // Dropped now, so its resources go with the panic; a second
            // panic from its `Drop` is contained and counted.
            // SAFETY: as above.
            if let Err(again) = unsafe { drop_future(cell) } {
                // SAFETY: as above.
                unsafe { local_of(task) }.count_panic(again);
            }
            // SAFETY: as above.
            unsafe { complete(cell, Err(JoinError::panicked(payload))) };
        }
    }
    true
}

/// `TaskVTable::cancel` for a `Cell<F>`: drops the future; a panic in its
/// `Drop` is reported through the handle instead of the cancellation.
///
/// # Safety
///
/// As [`run`], the future not borrowed.
unsafe fn cancel<F: Future>(header: NonNull<Header>) {
    let cell = header.cast::<Cell<F>>();
    // SAFETY: forwarded.
    let result = match unsafe { drop_future(cell) } {
        Ok(()) => Err(JoinError::cancelled()),
        Err(payload) => Err(JoinError::panicked(payload)),
    };
    // SAFETY: the future is gone, the task not yet complete.
    unsafe { complete(cell, result) };
}

/// Drops the future in place; the payload of a panic in its `Drop`.
///
/// # Safety
///
/// `cell` is live, its future live and not borrowed; owner thread. On
/// return the future member is dead whatever happened (a panicking drop
/// still drops the fields), and must not be touched again.
unsafe fn drop_future<F: Future>(cell: NonNull<Cell<F>>) -> Result<(), Box<dyn Any + Send>> {
    // SAFETY: forwarded; dropping in place keeps the pin promise.
    catch_unwind(AssertUnwindSafe(|| unsafe {
        ptr::drop_in_place(future_of(cell))
    }))
}

/// Completes the task with `result`: stores it for the handle and wakes
/// whoever awaits it, or, with the handle gone, drops it.
///
/// # Safety
///
/// `cell` is live and its future gone (dropped), `COMPLETE` not yet set;
/// owner thread, the core alive.
#[inline(always)]
unsafe fn complete<F: Future>(cell: NonNull<Cell<F>>, result: Result<F::Output, JoinError>) {
    // SAFETY: the caller's reference keeps the allocation alive.
    let task = unsafe { &cell.as_ref().header };
    // SAFETY: as the caller guarantees.
    let local = unsafe { local_of(task) };
    // Final now: no poll is left to clone a waker from (see `state`).
    if task.state.is_shared() {
        // From here on the task may be freed on any thread, so it keeps its
        // scheduler alive with a count of its own instead of being held.
        // SAFETY: the pointer came from `Arc::as_ptr` (the pointer
        // `Arc::into_raw` gives), and the executor's count keeps the
        // scheduler alive meanwhile.
        unsafe { Arc::increment_strong_count(task.scheduler.as_ptr().cast_const()) };
        let last = local.release_task();
        debug_assert!(!last, "the executor is alive while its tasks complete");
    }
    // Written in place whoever takes it, so that the result goes straight
    // from the poll to the stage, never through a copy on the stack.
    // SAFETY: the future member is dead and nothing borrows the stage.
    unsafe { output_of(cell).write(result) };
    if !task.flags.has(HANDLE) {
        task.flags.insert(COMPLETE);
        // SAFETY: written just above, and read once; the stage is dead
        // again after.
        let result = unsafe { output_of(cell).read() };
        // The output's drop is user code.
        return local.contain(|| drop(result));
    }
    // `OUTPUT` says the output member is live from now on.
    task.flags.insert(COMPLETE | OUTPUT);
    // SAFETY: on the owner thread, as the caller guarantees.
    if let Some(waker) = unsafe { task.replace_join_waker(None) } {
        // The awaiting side's waker may be anyone's.
        local.contain(|| waker.wake());
    }
}

/// The owner's part of the task's scheduler.
///
/// # Safety
///
/// On the owner thread, the core alive.
unsafe fn local_of(task: &Header) -> &Local {
    // SAFETY: forwarded to the caller.
    unsafe { task.scheduler().local_unchecked() }
}

/// `TaskVTable::dealloc` for a `Cell<F>`.
///
/// # Safety
///
/// `header` starts a `Cell<F>` made by [`init`] to which no reference is
/// left. Any thread: neither the future nor the output is live (see
/// `state`), so only the header's `Send` parts are dropped here.
unsafe fn dealloc<F: Future>(header: NonNull<Header>) {
    let cell = header.cast::<Cell<F>>();
    let (shared, scheduler) = {
        // SAFETY: the allocation is alive until the block is freed below.
        let task = unsafe { header.as_ref() };
        debug_assert!(task.flags.has(COMPLETE));
        debug_assert!(
            !task.flags.has(LISTED) && !task.flags.has(HANDLE) && !task.flags.has(OUTPUT)
        );
        (task.state.is_shared(), task.scheduler)
    };
    // SAFETY: the task is unused from here on. This drops the header (its
    // join waker, which is `Send`) and not the stage: a union has no drop
    // glue.
    unsafe { ptr::drop_in_place(cell.as_ptr()) };
    let block = cell.cast::<u8>();
    let layout = Layout::new::<Cell<F>>();
    let give_back = {
        // SAFETY: the task kept its scheduler alive up to here, by the
        // count given back below (see `scheduler#lifetime`); the reference
        // ends before that.
        let scheduler = unsafe { scheduler.as_ref() };
        if shared {
            // Any thread: the cache only on the owner's.
            match scheduler.local_here() {
                // SAFETY: the block came from a `BlockCache::allocate` for
                // this layout, and is unused.
                Some(local) => unsafe { local.cache.free(block, layout) },
                // SAFETY: as above.
                None => unsafe { cache::free_now(block, layout) },
            }
            true
        } else {
            // A held task has only owner-side references, so the owner
            // thread frees it.
            // SAFETY: that is this thread.
            let local = unsafe { scheduler.local_unchecked() };
            // SAFETY: the block came from a `BlockCache::allocate` for this
            // layout, and is unused.
            unsafe { local.cache.free(block, layout) };
            local.release_task()
        }
    };
    if give_back {
        // SAFETY: the count this task kept its scheduler alive with: its
        // own (`shared`), or the executor's left to the last held task;
        // the pointer came from `Arc::as_ptr`.
        unsafe { Arc::decrement_strong_count(scheduler.as_ptr().cast_const()) };
    }
}
