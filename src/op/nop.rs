//! `IORING_OP_NOP`: a round trip through the ring that does nothing, for
//! measuring the runtime's own overhead.

use std::io;

use io_uring::{opcode, squeue};

use crate::driver::{Completion, Op, Operation};

/// Submits a no-op to the ring and waits for its completion.
///
/// # Examples
///
/// ```
/// corering::start(async {
///     corering::op::nop().await.unwrap();
/// });
/// ```
pub async fn nop() -> io::Result<()> {
    Op::new(Nop).await
}

/// The no-op operation.
pub(crate) struct Nop;

// SAFETY: the SQE refers to no memory.
unsafe impl Operation for Nop {
    type Output = io::Result<()>;

    fn build(&mut self) -> squeue::Entry {
        opcode::Nop::new().build()
    }

    fn complete(self, completion: Completion) -> io::Result<()> {
        completion.into_result().map(drop)
    }
}
