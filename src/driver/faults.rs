//! Fault injection: a test-only mode of the driver (cargo feature
//! `fault-injection`, off in normal builds) that, from a seed, makes the
//! ring behave as a hostile but legal kernel would.
//!
//! - **Failed operations**: an SQE is not submitted; a CQE with a plausible
//!   error is posted for it instead, as if the kernel had refused it before
//!   doing anything. Transient errors (`EINTR`, `EAGAIN`) are always
//!   candidates; with [`Faults::hard_errors`], so are `ECANCELED` and
//!   `ECONNRESET` (socket operations). `ENOBUFS` is not made up: the kernel
//!   gives it only when a buffer ring is empty, and a receive told so waits
//!   for a buffer to come back (small rings exercise that for real).
//! - **Short transfers**: the length of a read, write, send or receive is
//!   cut before submission, so the kernel moves fewer bytes and says so, as
//!   it may. A linked pair's send is never cut (its success is silent and
//!   must mean "all of it"), and file transfers are cut only in whole pages
//!   (direct I/O needs aligned lengths).
//! - **Late completions**: a reaped CQE is held back for a few ticks
//!   (CQEs of one operation stay in order).
//! - **A full SQ**: the SQ is reported full when it is not, so pushes take
//!   the submit-first path and cancellations wait in their queue.
//! - **A busy ring**: `io_uring_enter` answers `EBUSY` or `EAGAIN` without
//!   entering.
//!
//! Multishot operations, closes and the driver's own SQEs (doorbell,
//! cancellations) are never failed or cut; their CQEs may be held.

use std::collections::VecDeque;

use io_uring::{opcode, squeue};

use super::Completion;

/// What to inject, and how often (each rate is "one in n"; 0 turns that
/// fault off). Built from a seed with [`Faults::new`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Faults {
    /// Seeds the generator: the same seed and program inject the same
    /// faults.
    pub seed: u64,
    /// One operation in `fail_one_in` is failed before submission.
    pub fail_one_in: u32,
    /// Whether failures may be hard errors (`ECANCELED`, `ECONNRESET`) that
    /// reach the caller, not only transient ones that the runtime retries.
    pub hard_errors: bool,
    /// One transfer in `shorten_one_in` is cut short.
    pub shorten_one_in: u32,
    /// One completion in `hold_one_in` is held back for 1 to 3 ticks.
    pub hold_one_in: u32,
    /// One check for room in `sq_full_one_in` reports the SQ full.
    pub sq_full_one_in: u32,
    /// One `io_uring_enter` in `enter_busy_one_in` answers `EBUSY` or
    /// `EAGAIN`.
    pub enter_busy_one_in: u32,
}

impl Faults {
    /// Transient faults only, at rates that hit every path many times in
    /// a short test: with these, every operation must still succeed.
    pub fn new(seed: u64) -> Faults {
        Faults {
            seed,
            fail_one_in: 8,
            hard_errors: false,
            shorten_one_in: 4,
            hold_one_in: 8,
            sq_full_one_in: 16,
            enter_busy_one_in: 16,
        }
    }

    /// Adds hard errors, which reach the caller.
    pub fn with_hard_errors(self) -> Faults {
        Faults {
            hard_errors: true,
            ..self
        }
    }
}

/// A CQE held back, or made up for an SQE that was not submitted.
struct Held {
    user_data: u64,
    completion: Completion,
    /// Reaps to wait before delivery.
    ticks_left: u8,
}

/// The injector's state in one driver.
pub(crate) struct Injector {
    faults: Faults,
    rng: u64,
    /// In delivery order. Bounded by the operations in flight: an entry
    /// stands for one CQE of a live slot.
    held: VecDeque<Held>,
    /// Faults injected so far.
    pub(crate) injected: u64,
}

/// Byte offsets in an SQE (`struct io_uring_sqe`).
const SQE_OPCODE: usize = 0;
const SQE_LEN: usize = 24;

/// The bytes of `sqe`.
fn raw(sqe: &mut squeue::Entry) -> &mut [u8; 64] {
    const _: () = assert!(std::mem::size_of::<squeue::Entry>() == 64);
    // SAFETY: `Entry` is `repr(C)` around the kernel's 64-byte
    // `io_uring_sqe`, and every byte pattern is a valid SQE to hold.
    unsafe { &mut *(sqe as *mut squeue::Entry).cast::<[u8; 64]>() }
}

impl Injector {
    pub(crate) fn new(faults: Faults) -> Injector {
        Injector {
            faults,
            rng: faults.seed ^ 0x9e37_79b9_7f4a_7c15,
            held: VecDeque::new(),
            injected: 0,
        }
    }

    /// splitmix64.
    fn next(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// True once in `n` calls on average (never for `n == 0`).
    fn one_in(&mut self, n: u32) -> bool {
        let hit = n != 0 && self.next().is_multiple_of(u64::from(n));
        self.injected += u64::from(hit);
        hit
    }

    /// Decides the fate of a single-shot operation's SQE before it is
    /// pushed: `Some(errno)` when it is not to be submitted (its failure is
    /// then posted by [`fail`](Self::fail)); otherwise its length may have
    /// been cut. `head` marks a linked pair's head, which is never cut.
    pub(crate) fn before_push(&mut self, sqe: &mut squeue::Entry, head: bool) -> Option<i32> {
        let bytes = raw(sqe);
        let code = bytes[SQE_OPCODE];
        let kind = Kind::of(code);
        if kind == Kind::Other {
            return None;
        }
        if self.one_in(self.faults.fail_one_in) {
            return Some(self.errno(is_socket(code)));
        }
        if head || !self.one_in(self.faults.shorten_one_in) {
            return None;
        }
        let len = u32::from_ne_bytes(bytes[SQE_LEN..SQE_LEN + 4].try_into().expect("4 bytes"));
        let cut = match kind {
            // An iovec count, or a socket's byte count: any shorter length.
            Kind::Vectored | Kind::Socket if len > 1 => {
                1 + (self.next() % u64::from(len - 1)) as u32
            }
            // Files may be opened for direct I/O: whole pages only.
            Kind::File if len > 4096 => {
                4096 * (1 + (self.next() % u64::from(len / 4096 - 1).max(1)) as u32)
            }
            _ => return None,
        };
        bytes[SQE_LEN..SQE_LEN + 4].copy_from_slice(&cut.min(len).to_ne_bytes());
        None
    }

    /// A plausible error for an operation (on a socket or not).
    fn errno(&mut self, socket: bool) -> i32 {
        let mut choices = vec![libc::EINTR, libc::EAGAIN];
        if self.faults.hard_errors {
            choices.push(libc::ECANCELED);
            if socket {
                choices.push(libc::ECONNRESET);
            }
        }
        choices[(self.next() % choices.len() as u64) as usize]
    }

    /// Posts the failure `errno` for the SQE `user_data` that was not
    /// submitted, delivered at one of the next reaps.
    pub(crate) fn fail(&mut self, user_data: u64, errno: i32) {
        let ticks_left = (self.next() % 3) as u8;
        self.hold(
            user_data,
            Completion {
                result: -errno,
                flags: 0,
            },
            ticks_left,
        );
    }

    /// Whether the completion just reaped is held back (it then comes out
    /// of [`due`](Self::due) later).
    pub(crate) fn hold_reaped(&mut self, user_data: u64, completion: Completion) -> bool {
        let behind = self.held.iter().any(|held| held.user_data == user_data);
        if !behind && !self.one_in(self.faults.hold_one_in) {
            return false;
        }
        let ticks_left = 1 + (self.next() % 3) as u8;
        self.hold(user_data, completion, ticks_left);
        true
    }

    /// Queues a CQE; one behind another of the same operation waits at
    /// least as long, so an operation's CQEs stay in order.
    fn hold(&mut self, user_data: u64, completion: Completion, mut ticks_left: u8) {
        if let Some(ahead) = self
            .held
            .iter()
            .rev()
            .find(|held| held.user_data == user_data)
        {
            ticks_left = ticks_left.max(ahead.ticks_left);
        }
        self.held.push_back(Held {
            user_data,
            completion,
            ticks_left,
        });
    }

    /// Whether completions are held: the driver must not park waiting for
    /// the kernel, which will post nothing for them.
    pub(crate) fn holds(&self) -> bool {
        !self.held.is_empty()
    }

    /// Takes the held completions due at this reap, in order, and counts
    /// down the rest.
    pub(crate) fn due(&mut self, into: &mut Vec<(u64, Completion)>) {
        let mut index = 0;
        while index < self.held.len() {
            let held = &mut self.held[index];
            if held.ticks_left == 0 {
                let held = self.held.remove(index).expect("in range");
                into.push((held.user_data, held.completion));
            } else {
                held.ticks_left -= 1;
                index += 1;
            }
        }
    }

    /// Whether this check for room in the SQ says "full" regardless.
    pub(crate) fn sq_full(&mut self) -> bool {
        self.one_in(self.faults.sq_full_one_in)
    }

    /// `Some(errno)` when this `io_uring_enter` is to answer busy instead.
    pub(crate) fn enter_busy(&mut self) -> Option<i32> {
        if !self.one_in(self.faults.enter_busy_one_in) {
            return None;
        }
        Some(if self.next().is_multiple_of(2) {
            libc::EBUSY
        } else {
            libc::EAGAIN
        })
    }
}

/// Whether `code` works on sockets only.
fn is_socket(code: u8) -> bool {
    matches!(
        code,
        opcode::Send::CODE
            | opcode::Recv::CODE
            | opcode::SendMsg::CODE
            | opcode::RecvMsg::CODE
            | opcode::Accept::CODE
            | opcode::Connect::CODE
            | opcode::Shutdown::CODE
    )
}

/// What an opcode's failure and length mean.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A byte count on a socket.
    Socket,
    /// A byte count on a descriptor that may be a file opened for direct I/O.
    File,
    /// An iovec count.
    Vectored,
    /// Single-shot operations whose length means no transfer.
    Plain,
    /// Never failed nor cut.
    Other,
}

impl Kind {
    fn of(code: u8) -> Kind {
        match code {
            opcode::Send::CODE | opcode::Recv::CODE => Kind::Socket,
            opcode::Read::CODE
            | opcode::Write::CODE
            | opcode::ReadFixed::CODE
            | opcode::WriteFixed::CODE => Kind::File,
            opcode::Readv::CODE | opcode::Writev::CODE => Kind::Vectored,
            opcode::Nop::CODE
            | opcode::SendMsg::CODE
            | opcode::RecvMsg::CODE
            | opcode::Accept::CODE
            | opcode::Connect::CODE
            | opcode::OpenAt2::CODE
            | opcode::Statx::CODE
            | opcode::Fsync::CODE
            | opcode::Shutdown::CODE => Kind::Plain,
            _ => Kind::Other,
        }
    }
}
