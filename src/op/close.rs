//! `IORING_OP_CLOSE` on a descriptor whose other handles are all gone.

use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, squeue, types};

use crate::driver::{Completion, Operation};

/// Closes a raw descriptor the caller has given up.
pub(crate) struct Close {
    fd: RawFd,
}

impl Close {
    /// `fd` is owned by the operation from now on.
    pub(crate) fn new(fd: RawFd) -> Close {
        assert!(fd >= 0, "closing an invalid descriptor");
        Close { fd }
    }
}

// SAFETY: the SQE refers to no memory.
unsafe impl Operation for Close {
    type Output = io::Result<()>;

    fn build(&mut self) -> squeue::Entry {
        opcode::Close::new(types::Fd(self.fd)).build()
    }

    fn complete(self, completion: Completion) -> io::Result<()> {
        completion.into_result().map(drop)
    }
}
