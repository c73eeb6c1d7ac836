//! `IORING_OP_POLL_ADD` in multishot mode: a readiness stream for one
//! direction of a descriptor, the readiness half of `compat::PollIo`.

use io_uring::{opcode, squeue};

use super::{MultishotOperation, SharedFd};
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
}
