//! Direct access to a ring's submission and completion queues.
//!
//! The `io-uring` crate sets the ring up and makes the `io_uring_enter`
//! calls; the hot path reads and writes the queues itself, through a second
//! mapping of the same ring memory:
//!
//! - SQEs are built in place in the ring, and the SQ tail is kept here and
//!   published once before each enter instead of after every push.
//! - CQEs are read in place and the CQ head is published once per batch,
//!   with no copy of the CQEs and no per-entry call.
//!
//! Every SQ push and CQ read of the driver goes through here; the crate's
//! own queue views are never used, so the two never disagree about the
//! unpublished tail.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU32, Ordering};

use io_uring::{cqueue, squeue, IoUring};

use super::mapping::Mapping;

/// `struct io_sqring_offsets` (kernel ABI).
#[repr(C)]
#[derive(Clone, Copy)]
struct SqOffsets {
    head: u32,
    tail: u32,
    ring_mask: u32,
    ring_entries: u32,
    flags: u32,
    dropped: u32,
    array: u32,
    resv1: u32,
    user_addr: u64,
}

/// `struct io_cqring_offsets` (kernel ABI).
#[repr(C)]
#[derive(Clone, Copy)]
struct CqOffsets {
    head: u32,
    tail: u32,
    ring_mask: u32,
    ring_entries: u32,
    overflow: u32,
    cqes: u32,
    flags: u32,
    resv1: u32,
    user_addr: u64,
}

/// `struct io_uring_params` (kernel ABI), which `io_uring::Parameters`
/// wraps transparently.
#[repr(C)]
struct Params {
    sq_entries: u32,
    cq_entries: u32,
    flags: u32,
    sq_thread_cpu: u32,
    sq_thread_idle: u32,
    features: u32,
    wq_fd: u32,
    resv: [u32; 3],
    sq_off: SqOffsets,
    cq_off: CqOffsets,
}

const IORING_OFF_SQ_RING: libc::off_t = 0;
const IORING_OFF_CQ_RING: libc::off_t = 0x800_0000;
const IORING_OFF_SQES: libc::off_t = 0x1000_0000;
const IORING_FEAT_SINGLE_MMAP: u32 = 1;
const IORING_SETUP_NO_SQARRAY: u32 = 1 << 16;
const IORING_SQ_NEED_WAKEUP: u32 = 1;
const IORING_SQ_CQ_OVERFLOW: u32 = 2;

/// The submission and completion queues of one ring.
pub(crate) struct Queues {
    sq_head: *const AtomicU32,
    sq_tail: *const AtomicU32,
    sq_flags: *const AtomicU32,
    sq_mask: u32,
    sq_entries: u32,
    sqes: *mut squeue::Entry,
    /// The tail including SQEs not yet published to the kernel.
    sq_local_tail: u32,
    /// The kernel's SQ head as last read; refreshed when the SQ looks full.
    sq_cached_head: u32,
    cq: CompletionQueue,
    _maps: Vec<Mapping>,
}

/// The completion queue: raw pointers into the ring, so it can be read
/// while the driver that owns it is borrowed for dispatching.
#[derive(Clone, Copy)]
pub(crate) struct CompletionQueue {
    head: *const AtomicU32,
    tail: *const AtomicU32,
    mask: u32,
    cqes: *const cqueue::Entry,
}

impl Queues {
    /// Maps the queues of `ring`.
    pub(crate) fn new(ring: &IoUring) -> io::Result<Queues> {
        // SAFETY: `Parameters` is documented as a transparent wrapper over
        // `io_uring_params`, whose layout `Params` reproduces.
        let params = unsafe { &*(ring.params() as *const io_uring::Parameters).cast::<Params>() };
        assert!(
            params.flags & IORING_SETUP_NO_SQARRAY == 0,
            "the driver relies on the SQ index array"
        );
        let fd = ring.as_raw_fd();
        let sq_len = params.sq_off.array as usize + params.sq_entries as usize * 4;
        let cq_len = params.cq_off.cqes as usize
            + params.cq_entries as usize * std::mem::size_of::<cqueue::Entry>();
        let mut maps = Vec::with_capacity(3);
        if params.features & IORING_FEAT_SINGLE_MMAP != 0 {
            maps.push(Mapping::ring(fd, IORING_OFF_SQ_RING, sq_len.max(cq_len))?);
        } else {
            maps.push(Mapping::ring(fd, IORING_OFF_SQ_RING, sq_len)?);
            maps.push(Mapping::ring(fd, IORING_OFF_CQ_RING, cq_len)?);
        }
        let sqe_len = params.sq_entries as usize * std::mem::size_of::<squeue::Entry>();
        let sqes = Mapping::ring(fd, IORING_OFF_SQES, sqe_len)?;
        let (sq, cq) = (&maps[0], maps.last().expect("one or two ring mappings"));
        let (sq_off, cq_off) = (params.sq_off, params.cq_off);
        // SAFETY: the offsets come from the kernel and point at the fields
        // they name inside the mappings, which `Queues` owns (and which keep
        // the ring memory alive).
        let (sq_mask, sq_entries, cq_mask) = unsafe {
            (
                *sq.at::<u32>(sq_off.ring_mask),
                *sq.at::<u32>(sq_off.ring_entries),
                *cq.at::<u32>(cq_off.ring_mask),
            )
        };
        let sq_head: *const AtomicU32 = sq.at(sq_off.head);
        let sq_tail: *const AtomicU32 = sq.at(sq_off.tail);
        // SAFETY: as above.
        let (head, tail) = unsafe {
            (
                (*sq_head).load(Ordering::Acquire),
                (*sq_tail).load(Ordering::Acquire),
            )
        };
        let sq_flags = sq.at(sq_off.flags);
        let cq = CompletionQueue {
            head: cq.at(cq_off.head),
            tail: cq.at(cq_off.tail),
            mask: cq_mask,
            cqes: cq.at(cq_off.cqes),
        };
        let sqe_base = sqes.base().as_ptr().cast();
        maps.push(sqes);
        Ok(Queues {
            sq_head,
            sq_tail,
            sq_flags,
            sq_mask,
            sq_entries,
            sqes: sqe_base,
            sq_local_tail: tail,
            sq_cached_head: head,
            cq,
            _maps: maps,
        })
    }

    /// Whether the SQ has room for `entries` more entries.
    #[inline]
    pub(crate) fn sq_has_room(&mut self, entries: u32) -> bool {
        if self.sq_local_tail.wrapping_sub(self.sq_cached_head) + entries <= self.sq_entries {
            return true;
        }
        // SAFETY: `sq_head` points into the live ring mapping.
        self.sq_cached_head = unsafe { &*self.sq_head }.load(Ordering::Acquire);
        self.sq_local_tail.wrapping_sub(self.sq_cached_head) + entries <= self.sq_entries
    }

    /// Builds an SQE in place with `build` and queues it (unpublished until
    /// [`publish`](Self::publish)); when the SQ has no room, hands `build`
    /// back, not called.
    ///
    /// # Safety
    ///
    /// The SQE's pointers stay valid until its final CQE.
    #[inline]
    pub(crate) unsafe fn try_push_with<F: FnOnce() -> squeue::Entry>(
        &mut self,
        build: F,
    ) -> Result<(), F> {
        if !self.sq_has_room(1) {
            return Err(build);
        }
        // SAFETY: there is room for one.
        unsafe { self.write(build()) };
        Ok(())
    }

    /// Queues copies of two SQEs back to back (a linked pair), or neither
    /// when the SQ lacks room for both; returns whether they went in.
    ///
    /// # Safety
    ///
    /// As for [`try_push_with`](Self::try_push_with), for both.
    #[inline]
    pub(crate) unsafe fn try_push_pair(&mut self, pair: &(squeue::Entry, squeue::Entry)) -> bool {
        if !self.sq_has_room(2) {
            return false;
        }
        // SAFETY: there is room for both.
        unsafe {
            self.write(pair.0.clone());
            self.write(pair.1.clone());
        }
        true
    }

    /// Writes `sqe` at the local tail.
    ///
    /// # Safety
    ///
    /// The SQ has room ([`sq_has_room`](Self::sq_has_room) said so), and the
    /// SQE's pointers stay valid until its final CQE.
    #[inline]
    unsafe fn write(&mut self, sqe: squeue::Entry) {
        debug_assert!(self.sq_local_tail.wrapping_sub(self.sq_cached_head) < self.sq_entries);
        let index = (self.sq_local_tail & self.sq_mask) as usize;
        // SAFETY: `index` is inside the SQE array, and the slot is free: the
        // kernel has consumed every entry before `sq_cached_head`, and the
        // caller checked there is room.
        unsafe { self.sqes.add(index).write(sqe) };
        self.sq_local_tail = self.sq_local_tail.wrapping_add(1);
    }

    /// Makes every queued SQE visible to the kernel.
    #[inline]
    pub(crate) fn publish(&self) {
        // SAFETY: `sq_tail` points into the live ring mapping; the SQEs
        // before the new tail are fully written (Release orders them).
        unsafe { &*self.sq_tail }.store(self.sq_local_tail, Ordering::Release);
    }

    /// SQEs queued and not yet consumed by the kernel.
    pub(crate) fn sq_len(&self) -> u32 {
        // SAFETY: `sq_head` points into the live ring mapping.
        let head = unsafe { &*self.sq_head }.load(Ordering::Acquire);
        self.sq_local_tail.wrapping_sub(head)
    }

    fn sq_flags(&self) -> u32 {
        // SAFETY: `sq_flags` points into the live ring mapping.
        unsafe { &*self.sq_flags }.load(Ordering::Acquire)
    }

    /// Whether the SQPOLL thread sleeps and needs `IORING_ENTER_SQ_WAKEUP`.
    pub(crate) fn need_wakeup(&self) -> bool {
        std::sync::atomic::fence(Ordering::SeqCst);
        self.sq_flags() & IORING_SQ_NEED_WAKEUP != 0
    }

    /// Whether CQEs are waiting in the kernel's overflow list.
    pub(crate) fn cq_overflow(&self) -> bool {
        self.sq_flags() & IORING_SQ_CQ_OVERFLOW != 0
    }

    /// The completion queue.
    pub(crate) fn cq(&self) -> CompletionQueue {
        self.cq
    }
}

impl CompletionQueue {
    /// Hands every CQE in the queue to `f` (`user_data`, `res`, `flags`),
    /// in order, and frees their entries. Returns how many there were.
    ///
    /// # Safety
    ///
    /// The `Queues` this came from is alive, and nothing else reads the CQ
    /// meanwhile (`f` must not reap).
    #[inline]
    pub(crate) unsafe fn reap(self, mut f: impl FnMut(u64, i32, u32)) -> usize {
        // SAFETY: the pointers are into the live ring mapping (the caller's
        // contract); only this thread moves the CQ head.
        let (head, tail) = unsafe { (&*self.head, &*self.tail) };
        let first = head.load(Ordering::Relaxed);
        let mut next = first;
        loop {
            let end = tail.load(Ordering::Acquire);
            if next == end {
                break;
            }
            while next != end {
                // SAFETY: entries between head and the kernel's tail are
                // written and ours to read until the head moves past them.
                let cqe = unsafe { &*self.cqes.add((next & self.mask) as usize) };
                f(cqe.user_data(), cqe.result(), cqe.flags());
                next = next.wrapping_add(1);
            }
            head.store(next, Ordering::Release);
        }
        next.wrapping_sub(first) as usize
    }
}
