//! The driver: one io_uring, the in-flight slot table, and the policy for
//! submitting, reaping and parking. It is a leaf: it uses nothing of the
//! crate but `sys/`, and knows opaque wake tokens, never tasks, sockets or
//! files. A `Driver` can be built and run without a runtime (see the tests
//! below).
//!
//! # Files
//!
//! - `lifecycle.rs`: the states of a slot and every transition (its module
//!   doc is the transition table).
//! - `slot.rs`: the slot table and the ids in `user_data`.
//! - `submit.rs`: pushes, the FIFO for a full SQ, entering the kernel.
//! - `reap.rs`: CQEs copied out in a batch and routed to their slots.
//! - `registry.rs`: direct descriptors, buffer groups, fixed buffers.
//! - `doorbell.rs`: how a park ends: an eventfd read, or another core's
//!   `MSG_RING`.
//! - `wake.rs`: tokens and wakers, and the waiters for a free slot.
//! - `target.rs`: what an SQE names (a descriptor or a direct entry).
//! - `epoll/`: the epoll backend's driver, for where io_uring is refused
//!   (its own module doc); it shares the wake tokens (`wake.rs`) and the
//!   counters.
//!
//! # Policy
//!
//! - **Submit lazily**: an operation pushes its SQE on its first poll; the run
//!   loop enters the kernel once per tick to submit everything pushed and reap
//!   what completed.
//! - **SQ full: queue, don't recurse**: a push that finds no room waits in a
//!   FIFO that the next enter flushes first; nothing enters the kernel from
//!   inside a push, and an SQE is never dropped (`submit.rs`).
//! - **Cancellations name their target**: a cancellation's CQE carries the
//!   slot it was aimed at, so one that found nothing while the slot still
//!   waits (it raced its target's submission) is sent again next tick.
//! - **CQ overflow, `EBUSY`, `EAGAIN`**: reap, then enter again. `EINTR`: enter
//!   again. The CQ is twice the SQ, and the kernel keeps overflowed CQEs
//!   (`IORING_FEAT_NODROP`, required at setup), so nothing is lost.
//! - **Reap first, wake after**: CQEs are copied into slots in a batch. The
//!   tokens of completed slots go to the caller (no code runs); other
//!   wakers and the states of dropped futures are handed out after the
//!   driver is released, so no user `Drop` or `wake` runs while it is
//!   borrowed.

mod doorbell;
pub(crate) mod epoll;
#[cfg(feature = "fault-injection")]
pub(crate) mod faults;
mod lifecycle;
mod reap;
mod registry;
mod slot;
mod stats;
mod submit;
mod target;
mod wake;

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::task::Waker;
use std::time::Duration;

use io_uring::{cqueue, opcode, IoUring};

pub(crate) use lifecycle::{Abandoned, Lifecycle, StreamSlot};
pub(crate) use slot::{SlotId, SLOTS_LIMIT};
pub use stats::Stats;
pub(crate) use target::{with_target, Target};
pub(crate) use wake::{SlotTicket, Tokens, Wake};

use crate::sys::queues::Queues;
use crate::sys::ring::{self, RingFlags};
use doorbell::Doorbell;
use registry::Registry;
use slot::SlotTable;
use submit::Queued;
use wake::SlotWaiters;

/// A CQE copied out of the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Completion {
    /// The CQE's `res`: a count or descriptor when non-negative, `-errno`
    /// otherwise.
    pub(crate) result: i32,
    /// The CQE's flags (`IORING_CQE_F_MORE`, `F_BUFFER`, ...).
    pub(crate) flags: u32,
}

impl Completion {
    /// The result as an `io::Result`.
    pub(crate) fn into_result(self) -> io::Result<u32> {
        if self.result >= 0 {
            Ok(self.result as u32)
        } else {
            Err(io::Error::from_raw_os_error(-self.result))
        }
    }

    /// A failure, as a CQE reports one (`-errno`).
    pub(crate) fn failed(error: &io::Error) -> Completion {
        Completion {
            result: -error.raw_os_error().unwrap_or(libc::EIO),
            flags: 0,
        }
    }

    /// Whether more CQEs follow for the same operation.
    pub(crate) fn has_more(self) -> bool {
        cqueue::more(self.flags)
    }
}

/// How long [`Driver::enter`] may wait for a completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Submit and reap without waiting.
    No,
    /// Wait for at least one completion, at most the given time when one is
    /// given (the caller works it out from its own clock reading).
    For(Option<Duration>),
}

/// The sizes the driver is built with (see the runtime's `Config`).
pub(crate) struct DriverConfig {
    pub(crate) entries: u32,
    pub(crate) sqpoll_idle: Option<Duration>,
    pub(crate) slots_max: usize,
    pub(crate) direct_fds: u32,
    pub(crate) batch_wait: Option<(u32, Duration)>,
    /// Whether to wake other cores with `MSG_RING` where the kernel has it
    /// (the eventfd otherwise).
    pub(crate) msg_ring: bool,
    /// Faults to inject (tests only).
    #[cfg(feature = "fault-injection")]
    pub(crate) faults: Option<faults::Faults>,
}

/// One core's ring and everything in flight on it.
pub(crate) struct Driver {
    ring: IoUring,
    /// The ring's SQ and CQ, read and written in place.
    queues: Queues,
    flags: RingFlags,
    slots: SlotTable,
    /// What found the SQ full, oldest first (see `submit.rs`); bounded by
    /// the slot table.
    waiting: VecDeque<Queued>,
    /// Linked pairs abandoned while their kernel work runs: a cancellation
    /// of theirs that finds nothing may have raced the start of their
    /// second SQE and is sent again (see `cancel_done`). At most one entry
    /// per linked pair in flight.
    linked_abandoned: Vec<SlotId>,
    /// Results of linked pairs' heads that failed, by slot, until the pair's
    /// future takes them with the completion (the same CQE). At most one
    /// per linked pair in flight; almost always empty.
    head_failures: Vec<(SlotId, i32)>,
    /// Whether the kernel honours `IOSQE_CQE_SKIP_SUCCESS` (5.17), which
    /// linked pairs need.
    skip_success: bool,
    /// Whether other cores are woken with `MSG_RING` (see `doorbell.rs`).
    msg_ring: bool,
    /// This ring's descriptor, for other cores' `MSG_RING`.
    ring_fd: RawFd,
    /// Wakers (not tokens) of completed operations, woken after the driver
    /// is released; at most one per slot completed in a tick.
    wakers: Vec<Waker>,
    /// Waiters of operations that found every slot in use.
    slot_waiters: SlotWaiters,
    /// Abandoned states whose final CQE arrived, dropped after the driver
    /// is released; at most one per slot freed in a tick.
    graveyard: Vec<Box<dyn Abandoned>>,
    doorbell: Doorbell,
    registry: Registry,
    /// How a park waits for a batch: (completions, µs after the first);
    /// `None` wakes on the first completion.
    batch_wait: Option<(u32, u32)>,
    /// Set at shutdown: the doorbell is no longer re-armed.
    shutting_down: bool,
    /// Set when the shutdown deadline passed and in-flight states were
    /// leaked to the kernel.
    leaked: bool,
    /// Injects faults (tests only; see the `faults` module).
    #[cfg(feature = "fault-injection")]
    injector: Option<faults::Injector>,
    stats: Stats,
}

impl Driver {
    /// Sets up the ring. `doorbell_fd` is an eventfd that outlives the
    /// driver; a write to it ends a park.
    pub(crate) fn new(config: &DriverConfig, doorbell_fd: RawFd) -> io::Result<Driver> {
        let (ring, flags) = ring::create(config.entries, config.sqpoll_idle)?;
        let skip_success = ring.params().is_feature_skip_cqe_on_success();
        let msg_ring = config.msg_ring && ring::supports(&ring, opcode::MsgRingData::CODE);
        let ring_fd = ring.as_raw_fd();
        let queues = Queues::new(&ring)?;
        // A sparse table the kernel fills on direct accepts. Kernels without
        // it (before 5.19) simply get none: direct accepts fall back.
        let registered = config.direct_fds > 0
            && ring
                .submitter()
                .register_files_sparse(config.direct_fds)
                .is_ok();
        let registry = Registry::new(if registered { config.direct_fds } else { 0 });
        // The batch wait needs the kernel's minimum-wait timeout (6.12).
        let batch_wait = config
            .batch_wait
            .filter(|_| ring.params().is_feature_min_timeout())
            .map(|(count, delay)| {
                let micros = u32::try_from(delay.as_micros()).unwrap_or(u32::MAX).max(1);
                (count, micros)
            });
        Ok(Driver {
            ring,
            queues,
            flags,
            slots: SlotTable::new(config.slots_max),
            waiting: VecDeque::new(),
            linked_abandoned: Vec::new(),
            head_failures: Vec::new(),
            skip_success,
            msg_ring,
            ring_fd,
            wakers: Vec::new(),
            slot_waiters: SlotWaiters::default(),
            graveyard: Vec::new(),
            doorbell: Doorbell::new(doorbell_fd),
            registry,
            batch_wait,
            shutting_down: false,
            leaked: false,
            #[cfg(feature = "fault-injection")]
            injector: config.faults.map(faults::Injector::new),
            stats: Stats::default(),
        })
    }

    /// The flags the ring was set up with.
    pub(crate) fn flags(&self) -> RingFlags {
        self.flags
    }

    /// The counters, with `in_flight` and `slots_in_use` filled in.
    pub(crate) fn stats(&self) -> Stats {
        Stats {
            in_flight: self.stats.submitted
                - self.stats.completed
                - self.stats.cancelled
                - self.stats.abandoned,
            slots_in_use: self.slots.len() as u64,
            #[cfg(feature = "fault-injection")]
            faults_injected: self
                .injector
                .as_ref()
                .map_or(0, |injector| injector.injected),
            ..self.stats
        }
    }

    /// Whether anything is still in flight or waits to be submitted (a
    /// `MSG_RING` to another core, say), the doorbell read included.
    pub(crate) fn is_idle(&self) -> bool {
        self.slots.len() == 0
            && !self.doorbell.is_armed()
            && self.waiting.is_empty()
            && self.queues.sq_len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;
    use std::task::{Poll, Waker};
    use std::time::Duration;

    use io_uring::{opcode, squeue};

    use super::{Driver, DriverConfig, Wait, Wake};
    use crate::sys::eventfd::EventFd;

    fn driver(entries: u32, doorbell: &EventFd) -> Driver {
        let config = DriverConfig {
            entries,
            sqpoll_idle: None,
            slots_max: 1024,
            direct_fds: 0,
            batch_wait: None,
            msg_ring: true,
            #[cfg(feature = "fault-injection")]
            faults: None,
        };
        Driver::new(&config, doorbell.as_raw_fd()).unwrap()
    }

    fn nop() -> squeue::Entry {
        opcode::Nop::new().build()
    }

    /// Enters (waiting at most a second each time) until `want` tokens
    /// came back, and returns them in the order they came.
    fn enter_until(driver: &mut Driver, want: usize) -> Vec<u32> {
        let mut ready = Vec::new();
        for _ in 0..100 {
            if ready.len() >= want {
                break;
            }
            driver.enter(Wait::For(Some(Duration::from_secs(1))), &mut |token| {
                ready.push(token)
            });
        }
        ready
    }

    /// Stops the driver as the runtime does: cancels what waits (the
    /// doorbell read), then enters until nothing is in flight.
    fn shut_down(mut driver: Driver) {
        driver.cancel_all();
        for _ in 0..100 {
            if driver.is_idle() {
                return;
            }
            driver.enter(Wait::For(Some(Duration::from_millis(100))), &mut |_| {});
        }
        panic!("the driver did not drain: {:?}", driver.stats());
    }

    /// The driver needs no runtime: a caller with a token and a waker
    /// pushes a nop, enters, gets its token back and takes the completion.
    #[test]
    fn a_nop_runs_through_a_driver_without_a_runtime() {
        let doorbell = EventFd::new().unwrap();
        let mut driver = driver(8, &doorbell);
        let wake = Wake {
            waker: Waker::noop(),
            tokens: &Some(7),
        };
        // SAFETY: a nop refers to no memory.
        let id = unsafe { driver.push_submitted(nop, wake) };
        assert_eq!(driver.poll_completion(id, wake), Poll::Pending);
        assert_eq!(driver.stats().in_flight, 1);
        assert_eq!(enter_until(&mut driver, 1), [7]);
        let Poll::Ready(completion) = driver.poll_completion(id, wake) else {
            panic!("the nop's token came back, so it completed");
        };
        assert_eq!(completion.into_result().unwrap(), 0);
        let stats = driver.stats();
        assert_eq!(
            (
                stats.submitted,
                stats.completed,
                stats.in_flight,
                stats.slots_in_use
            ),
            (1, 1, 0, 0)
        );
        shut_down(driver);
    }

    /// A poll without a token stores the waker, which comes back through
    /// `take_ready` (to be woken once the driver is released), not as a
    /// token.
    #[test]
    fn a_waiter_without_a_token_is_handed_back_as_a_waker() {
        let doorbell = EventFd::new().unwrap();
        let mut driver = driver(8, &doorbell);
        let wake = Wake {
            waker: Waker::noop(),
            tokens: &None,
        };
        // SAFETY: a nop refers to no memory.
        let id = unsafe { driver.push_submitted(nop, wake) };
        assert_eq!(driver.poll_completion(id, wake), Poll::Pending);
        let mut tokens = Vec::new();
        let (mut wakers, mut graveyard) = (Vec::new(), Vec::new());
        for _ in 0..100 {
            driver.enter(Wait::For(Some(Duration::from_secs(1))), &mut |token| {
                tokens.push(token)
            });
            driver.take_ready(&mut |token| tokens.push(token), &mut wakers, &mut graveyard);
            if !wakers.is_empty() {
                break;
            }
        }
        assert_eq!((tokens.len(), wakers.len(), graveyard.len()), (0, 1, 0));
        assert!(driver.poll_completion(id, wake).is_ready());
        shut_down(driver);
    }

    /// On an 8-entry ring, 40 single SQEs and 10 linked pairs pushed in
    /// one go: the pushes enter nothing (what does not fit waits in the
    /// FIFO), every operation completes once, and the single nops complete
    /// in push order (the kernel completes a nop as it consumes it; a
    /// linked pair's second SQE runs from task work, so pairs may come
    /// later). Every pair's head succeeded, so no pair straddled a full SQ:
    /// its head and second SQE went in together.
    #[test]
    fn a_full_sq_queues_in_order_and_never_enters_from_a_push() {
        let doorbell = EventFd::new().unwrap();
        let mut driver = driver(8, &doorbell);
        if !driver.can_link() {
            eprintln!("skipped: this kernel lacks IOSQE_CQE_SKIP_SUCCESS");
            return shut_down(driver);
        }
        let enters = driver.stats().enters;
        let mut ids = Vec::new();
        let tokens: Vec<Option<u32>> = (0..50).map(Some).collect();
        for token in 0..50u32 {
            let wake = Wake {
                waker: Waker::noop(),
                tokens: &tokens[token as usize],
            };
            // Every fifth operation is a linked pair, so pairs meet the
            // end of the SQ at different offsets.
            // SAFETY: nops refer to no memory; the kernel links them
            // (`can_link` said so).
            let id = unsafe {
                if token % 5 == 4 {
                    driver.push_linked(nop(), nop(), wake)
                } else {
                    driver.push_submitted(nop, wake)
                }
            };
            ids.push((id, wake));
        }
        let stats = driver.stats();
        assert_eq!(stats.enters, enters, "no push entered the kernel");
        assert_eq!(stats.submitted, 50);
        assert!(stats.sq_full > 0, "60 SQEs cannot fit an 8-entry SQ");
        let mut ready = enter_until(&mut driver, 50);
        let singles: Vec<u32> = ready.iter().copied().filter(|t| t % 5 != 4).collect();
        assert_eq!(singles, (0..50).filter(|t| t % 5 != 4).collect::<Vec<_>>());
        ready.sort_unstable();
        assert_eq!(ready, (0..50).collect::<Vec<_>>());
        for (id, wake) in ids {
            let Poll::Ready(completion) = driver.poll_completion(id, wake) else {
                panic!("every token came back");
            };
            assert_eq!(completion.into_result().unwrap(), 0);
            assert_eq!(driver.take_head_failure(id), None);
        }
        let stats = driver.stats();
        assert_eq!(
            (stats.completed, stats.in_flight, stats.stale_completions),
            (50, 0, 0)
        );
        shut_down(driver);
    }

    /// A slot polled a thousand times by the same waker holds one clone of
    /// it, not a thousand.
    #[test]
    fn a_slot_polled_again_keeps_one_waiter() {
        struct Nothing;
        impl std::task::Wake for Nothing {
            fn wake(self: std::sync::Arc<Self>) {}
        }
        let doorbell = EventFd::new().unwrap();
        let mut driver = driver(8, &doorbell);
        let owner = std::sync::Arc::new(Nothing);
        let waker = Waker::from(owner.clone());
        let wake = Wake {
            waker: &waker,
            tokens: &None,
        };
        // SAFETY: a nop refers to no memory.
        let id = unsafe { driver.push_submitted(nop, wake) };
        for _ in 0..1000 {
            assert_eq!(driver.poll_completion(id, wake), Poll::Pending);
        }
        // `owner`, `waker` and the one waiter the slot stores.
        assert_eq!(std::sync::Arc::strong_count(&owner), 3);
        let (mut wakers, mut graveyard) = (Vec::new(), Vec::new());
        while wakers.is_empty() {
            driver.enter(Wait::For(Some(Duration::from_secs(1))), &mut |_| {});
            driver.take_ready(&mut |_| {}, &mut wakers, &mut graveyard);
        }
        assert_eq!(wakers.len(), 1);
        drop(wakers);
        assert!(driver.poll_completion(id, wake).is_ready());
        assert_eq!(std::sync::Arc::strong_count(&owner), 2);
        shut_down(driver);
    }

    /// One core ends another's park with a `MSG_RING`: the target's wait
    /// (5 s at most) returns with the message counted, and the sender sees
    /// no CQE for it.
    #[test]
    fn a_msg_ring_ends_another_rings_park() {
        let doorbell = EventFd::new().unwrap();
        let mut sender = driver(8, &doorbell);
        if !sender.can_msg_ring() {
            eprintln!("skipped: this kernel lacks IORING_OP_MSG_RING");
            return shut_down(sender);
        }
        let (fd_tx, fd_rx) = std::sync::mpsc::channel();
        // The target ring is single-issuer: built and entered on its thread.
        let parked = std::thread::spawn(move || {
            let doorbell = EventFd::new().unwrap();
            let mut target = driver(8, &doorbell);
            fd_tx.send(target.ring_fd()).unwrap();
            let started = std::time::Instant::now();
            target.enter(Wait::For(Some(Duration::from_secs(5))), &mut |_| {});
            let waited = started.elapsed();
            let wakes = target.stats().msg_ring_wakes;
            shut_down(target);
            (waited, wakes)
        });
        let target_fd = fd_rx.recv().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        sender.msg_ring(target_fd);
        sender.enter(Wait::No, &mut |_| {});
        let (waited, wakes) = parked.join().unwrap();
        assert!(
            waited < Duration::from_secs(4),
            "woken, not timed out: {waited:?}"
        );
        assert_eq!(wakes, 1);
        let stats = sender.stats();
        assert_eq!((stats.msg_ring_sent, stats.msg_ring_failed), (1, 0));
        shut_down(sender);
    }
}
