//! `IORING_OP_POLL_ADD` in multishot mode: a readiness stream for one
//! direction of a descriptor, the readiness half of `compat::PollIo`.

use io_uring::{opcode, squeue};

use super::ready::Attempt;
use super::{MultishotOperation, SharedFd};
use crate::driver::epoll::Interest;
use crate::driver::with_target;
use crate::driver::Completion;

/// Posts a CQE each time `fd` becomes ready for one of `events` (`POLLIN`,
/// `POLLOUT`; errors and hang-ups always count), until cancelled or until
/// the kernel ends it (a CQE without `F_MORE`). CQEs that queue up
/// between two polls merge into one.
pub(crate) struct PollMulti {
    /// Held so the descriptor stays open while the poll is armed.
    fd: SharedFd,
    events: u32,
}

impl PollMulti {
    pub(crate) fn new(fd: SharedFd, events: u32) -> PollMulti {
        PollMulti { fd, events }
    }
}

// SAFETY: the SQE refers to no memory, only to the descriptor, which `fd`
// keeps open until the final CQE.
unsafe impl MultishotOperation for PollMulti {
    /// The events the kernel saw, or the poll's own error (negative).
    type Item = Completion;

    const MERGE: bool = true;

    fn build(&mut self) -> squeue::Entry {
        with_target!(self.fd.target(), |t| opcode::PollAdd::new(t, self.events)
            .multi(true)
            .build())
    }

    fn next(&mut self, completion: Completion) -> Completion {
        completion
    }

    fn interest(&self) -> Option<(&SharedFd, Interest)> {
        let interest = if self.events & libc::POLLOUT as u32 != 0 {
            Interest::WRITE
        } else {
            Interest::READ
        };
        Some((&self.fd, interest))
    }

    /// Each epoll event of the descriptor is an item, with its `poll(2)`
    /// bits, as each CQE of the multishot poll is.
    fn attempt(&mut self) -> Attempt {
        Attempt::Readiness
    }
}
