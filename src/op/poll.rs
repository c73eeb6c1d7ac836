//! `IORING_OP_POLL_ADD`: a one-shot wait until a descriptor is ready for
//! the events asked for, the readiness half of `compat::PollIo`.

use std::io;

use io_uring::{opcode, squeue};

use super::{Operation, SharedFd};
use crate::driver::with_target;
use crate::driver::Completion;

/// Waits until `fd` reports one of `events` (`POLLIN`, `POLLOUT`; errors
/// and hang-ups always end the wait). Resolves to the events the kernel saw.
pub(crate) struct PollAdd {
    /// Held so the descriptor stays open while the wait is armed.
    fd: SharedFd,
    events: u32,
}

impl PollAdd {
    pub(crate) fn new(fd: SharedFd, events: u32) -> PollAdd {
        PollAdd { fd, events }
    }
}

// SAFETY: the SQE refers to no memory, only to the descriptor, which `fd`
// keeps open until the final CQE.
unsafe impl Operation for PollAdd {
    type Output = io::Result<u32>;

    fn build(&mut self) -> squeue::Entry {
        with_target!(self.fd.target(), |t| opcode::PollAdd::new(t, self.events)
            .build())
    }

    fn complete(self, completion: Completion) -> io::Result<u32> {
        completion.into_result()
    }
}
