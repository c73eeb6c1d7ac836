//! `IORING_OP_NOP`: a round trip through the ring that does nothing, for
//! measuring the runtime's own overhead.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use io_uring::{opcode, squeue};

use super::ready::Attempt;
use super::{Op, Operation};
use crate::driver::Completion;

/// Submits a no-op to the ring and waits for its completion.
///
/// # Examples
///
/// ```
/// corering::start(async {
///     corering::op::nop().await.unwrap();
/// });
/// ```
pub fn nop() -> Nop {
    Nop(Op::new(NopOp))
}

/// The future of [`nop`]; submitted on its first poll.
#[must_use = "futures do nothing unless awaited"]
pub struct Nop(Op<NopOp>);

impl Future for Nop {
    type Output = io::Result<()>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl fmt::Debug for Nop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Nop")
    }
}

/// The no-op operation.
pub(crate) struct NopOp;

// SAFETY: the SQE refers to no memory.
unsafe impl Operation for NopOp {
    type Output = io::Result<()>;

    fn build(&mut self) -> squeue::Entry {
        opcode::Nop::new().build()
    }

    fn complete(self, completion: Completion) -> io::Result<()> {
        completion.into_result().map(drop)
    }

    fn attempt(&mut self) -> Attempt {
        Attempt::Done(0)
    }
}
