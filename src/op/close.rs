//! `IORING_OP_CLOSE` on a descriptor (or direct descriptor) whose other
//! handles are all gone.

use std::io;

use io_uring::{opcode, squeue};

use super::ready::Attempt;
use super::Operation;
use crate::driver::Completion;
use crate::driver::{with_target, Target};
use crate::executor::RuntimeId;
use crate::runtime::defer_close;

/// Closes a descriptor (or direct descriptor) the caller has given up.
///
/// It owns the descriptor from creation on: dropped before its SQE went out
/// (while it waited for a free slot), it hands the descriptor to the
/// runtime's closes instead, so no descriptor is lost. A direct
/// descriptor's table entry is counted free when the state goes, completed
/// or abandoned (a direct close completes inline, before anything pushed
/// after it runs).
pub(crate) struct Close {
    target: Target,
    /// The runtime whose table holds a direct descriptor (see `SharedFd`).
    owner: Option<RuntimeId>,
    /// The SQE was built and pushed: the kernel closes the descriptor.
    submitted: bool,
}

impl Close {
    /// `target` is owned by the operation from now on.
    pub(crate) fn new(target: Target, owner: Option<RuntimeId>) -> Close {
        assert!(target != Target::Fd(-1), "closing an invalid descriptor");
        Close {
            target,
            owner,
            submitted: false,
        }
    }
}

// SAFETY: the SQE refers to no memory.
unsafe impl Operation for Close {
    type Output = io::Result<()>;

    fn build(&mut self) -> squeue::Entry {
        self.submitted = true;
        with_target!(self.target, |t| opcode::Close::new(t).build())
    }

    fn complete(self, completion: Completion) -> io::Result<()> {
        completion.into_result().map(drop)
    }

    /// `close(2)`, made now (it never waits for the network), its result
    /// reported (the descriptor left the epoll set before: see
    /// `SharedFd::close`).
    fn attempt(&mut self) -> Attempt {
        self.submitted = true;
        let Target::Fd(fd) = self.target else {
            unreachable!("the epoll backend has no direct descriptors");
        };
        // SAFETY: the descriptor is this operation's to close; nothing uses
        // it after.
        Attempt::Done(unsafe { crate::sys::nowait::close(fd) })
    }
}

impl Drop for Close {
    fn drop(&mut self) {
        // Runs outside the driver: after `complete`, when the slot frees an
        // abandoned state, or when the future is dropped unsubmitted.
        if !self.submitted {
            defer_close(self.target, self.owner);
        } else if let (Target::Fixed(_), Some(owner)) = (self.target, self.owner) {
            let _ = crate::runtime::context::with_owner(owner, |core| {
                core.ring()
                    .expect("a direct descriptor lives in a ring")
                    .borrow_mut()
                    .release_direct()
            });
        }
    }
}
