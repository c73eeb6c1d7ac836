//! The doorbell: how a parked core is woken from another thread.
//!
//! Two ways in. Another corering core posts a CQE straight into this
//! ring with `IORING_OP_MSG_RING` (pushed on its own ring, no CQE on its
//! side unless it fails); a thread without a ring writes the core's
//! eventfd, of which this core keeps one read in flight while parked. The
//! runtime decides when to ring (only when the target is parked, once per
//! park); the driver only sends and receives.

use std::os::fd::RawFd;

use io_uring::{opcode, squeue, types};

use super::slot::{CANCEL_TAG, DOORBELL_TAG, MSG_SENT_TAG, MSG_WAKE_TAG};
use super::Completion;
use super::Driver;

/// The eventfd read's state.
pub(super) struct Doorbell {
    /// The eventfd other threads write to; owned by the core's `Remote`,
    /// which outlives the driver.
    fd: RawFd,
    /// Where the read lands; boxed so the address is stable.
    buf: Box<u64>,
    /// A read is in flight.
    armed: bool,
}

impl Doorbell {
    pub(super) fn new(fd: RawFd) -> Doorbell {
        Doorbell {
            fd,
            buf: Box::new(0),
            armed: false,
        }
    }

    /// Whether a read is in flight.
    pub(super) fn is_armed(&self) -> bool {
        self.armed
    }

    /// The read's CQE arrived.
    pub(super) fn rang(&mut self) {
        self.armed = false;
    }
}

impl Driver {
    /// Keeps one read of the doorbell eventfd in flight while parked, so a
    /// write from another thread ends the park.
    pub(super) fn arm_doorbell(&mut self) {
        if self.doorbell.armed || self.shutting_down {
            return;
        }
        let sqe = opcode::Read::new(
            types::Fd(self.doorbell.fd),
            (&mut *self.doorbell.buf as *mut u64).cast(),
            8,
        )
        .build()
        .user_data(DOORBELL_TAG);
        // SAFETY: `buf` is boxed and owned by the driver, which drains this
        // read (`armed`) before the ring closes, or leaks the box.
        unsafe { self.push_entry(sqe) };
        self.doorbell.armed = true;
    }

    /// At shutdown: cancels the doorbell read and stops re-arming it.
    pub(super) fn cancel_doorbell(&mut self) {
        self.shutting_down = true;
        if self.doorbell.armed {
            let sqe = opcode::AsyncCancel::new(DOORBELL_TAG)
                .build()
                .user_data(CANCEL_TAG);
            // SAFETY: a cancel SQE refers to no memory.
            unsafe { self.push_entry(sqe) };
        }
    }

    /// Past the shutdown deadline: the kernel may still write into the
    /// read's buffer, so it is leaked.
    pub(super) fn leak_doorbell(&mut self) {
        if self.doorbell.armed {
            std::mem::forget(std::mem::replace(&mut self.doorbell.buf, Box::new(0)));
        }
    }

    /// Whether this ring can wake another with `MSG_RING` (probed at
    /// setup, and allowed by the configuration).
    pub(crate) fn can_msg_ring(&self) -> bool {
        self.msg_ring
    }

    /// This ring's descriptor, which other cores name in their `MSG_RING`.
    pub(crate) fn ring_fd(&self) -> RawFd {
        self.ring_fd
    }

    /// Wakes the core whose ring is `target` with one `MSG_RING`, sent
    /// with this core's next submission (the runtime submits at once). Its
    /// CQE on the target carries [`MSG_WAKE_TAG`]; on this side a CQE
    /// comes only if it fails (`IOSQE_CQE_SKIP_SUCCESS`). The caller
    /// checked [`can_msg_ring`](Self::can_msg_ring).
    pub(crate) fn msg_ring(&mut self, target: RawFd) {
        debug_assert!(self.msg_ring);
        let sqe = opcode::MsgRingData::new(types::Fd(target), 0, MSG_WAKE_TAG, None)
            .build()
            .flags(squeue::Flags::SKIP_SUCCESS)
            .user_data(MSG_SENT_TAG);
        self.stats.msg_ring_sent += 1;
        // SAFETY: a MSG_RING SQE refers to no memory of this process.
        unsafe { self.push_entry(sqe) };
    }

    /// A `MSG_RING` could not be posted: the target ring is gone (it shut
    /// down after the sender looked) or its CQ is full. Either way nothing
    /// waits on it: a gone core has no tasks, and a full CQ means the
    /// target is awake reaping.
    #[cold]
    pub(super) fn msg_ring_failed(&mut self, completion: Completion) {
        debug_assert!(completion.result < 0);
        self.stats.msg_ring_failed += 1;
    }
}
