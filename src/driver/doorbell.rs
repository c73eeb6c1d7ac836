//! The doorbell: a read of an eventfd kept in flight while the core is
//! parked, so that a thread without a ring can end the park by writing to
//! the eventfd.

use std::os::fd::RawFd;

use io_uring::{opcode, types};

use super::slot::{CANCEL_TAG, DOORBELL_TAG};
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
}
