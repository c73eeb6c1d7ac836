//! `IORING_OP_CLOSE` on a descriptor (or direct descriptor) whose other
//! handles are all gone.

use std::io;

use io_uring::{opcode, squeue};

use crate::driver::{Completion, Operation};
use crate::fd::{with_target, Target};

/// Closes a descriptor (or direct descriptor) the caller has given up.
pub(crate) struct Close {
    target: Target,
}

impl Close {
    /// `target` is owned by the operation from now on.
    pub(crate) fn new(target: Target) -> Close {
        assert!(target != Target::Fd(-1), "closing an invalid descriptor");
        Close { target }
    }
}

// SAFETY: the SQE refers to no memory.
unsafe impl Operation for Close {
    type Output = io::Result<()>;

    fn build(&mut self) -> squeue::Entry {
        with_target!(self.target, |t| opcode::Close::new(t).build())
    }

    fn complete(self, completion: Completion) -> io::Result<()> {
        if let Target::Fixed(_) = self.target {
            crate::runtime::context::try_with_driver(|driver| driver.release_direct());
        }
        completion.into_result().map(drop)
    }
}
