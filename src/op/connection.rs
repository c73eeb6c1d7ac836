//! Connection operations: `IORING_OP_ACCEPT` (one connection, or
//! multishot), `CONNECT` and `SHUTDOWN`. An accept owns what a late success
//! creates: a future dropped before its CQE still closes the connection.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use io_uring::{opcode, squeue, types};

use super::ready::Attempt;
use super::SharedFd;
use super::{MultishotOperation, Operation};
use crate::driver::epoll::Interest;
use crate::driver::Completion;
use crate::driver::{with_target, Target};
use crate::executor::RuntimeId;
use crate::runtime::defer_close;
use crate::sys::nowait;
use crate::sys::socket::SockAddr;

/// Accepts one connection; the new descriptor is close-on-exec, or, for a
/// direct accept, an entry the kernel allocates in the ring's table of
/// direct descriptors.
pub(crate) struct Accept {
    fd: SharedFd,
    /// Where the kernel writes the peer's address; boxed so it stays put.
    addr: Box<SockAddr>,
    direct: bool,
    /// A direct accept holds a reserved table entry until it produces a
    /// descriptor (which then owns the entry); dropped unused, it frees it.
    reserved: bool,
    /// The runtime whose table the entry is reserved in (`None` when not
    /// direct).
    owner: Option<RuntimeId>,
}

impl Accept {
    pub(crate) fn new(fd: SharedFd) -> Accept {
        Accept {
            fd,
            addr: Box::new(SockAddr::empty()),
            direct: false,
            reserved: false,
            owner: None,
        }
    }

    /// Accepts into the ring's table of direct descriptors, into an entry
    /// the caller reserved (`Driver::reserve_direct`).
    pub(crate) fn direct(fd: SharedFd) -> Accept {
        Accept {
            fd,
            addr: Box::new(SockAddr::empty()),
            direct: true,
            reserved: true,
            owner: Some(crate::runtime::context::with_core(|core| core.id())),
        }
    }

    /// What a successful CQE's result names.
    fn accepted(&self, result: i32) -> Target {
        if self.direct {
            Target::Fixed(result as u32)
        } else {
            Target::Fd(result)
        }
    }
}

// SAFETY: the SQE points into `addr`, a box whose heap memory stays put
// while the operation moves; `Op` keeps `self` until the final CQE.
unsafe impl Operation for Accept {
    type Output = io::Result<(SharedFd, SockAddr)>;

    fn build(&mut self) -> squeue::Entry {
        let addr = &mut *self.addr;
        let file_index = self.direct.then(types::DestinationSlot::auto_target);
        // A direct descriptor is never inherited, and the kernel refuses
        // SOCK_CLOEXEC with it.
        let flags = if self.direct { 0 } else { libc::SOCK_CLOEXEC };
        with_target!(self.fd.target(), |t| opcode::Accept::new(
            t,
            addr.as_mut_ptr(),
            addr.len_mut()
        )
        .file_index(file_index)
        .flags(flags)
        .build())
    }

    fn complete(mut self, completion: Completion) -> io::Result<(SharedFd, SockAddr)> {
        let result = completion.into_result()? as i32;
        self.reserved = false; // the descriptor owns the entry now
        let fd = match self.accepted(result) {
            // SAFETY: the kernel just created `fd` for us and nobody else
            // has it.
            Target::Fd(fd) => SharedFd::new(unsafe { OwnedFd::from_raw_fd(fd) }),
            Target::Fixed(index) => SharedFd::new_direct(index),
        };
        Ok((fd, *self.addr))
    }

    fn late_completion(&mut self, completion: Completion) {
        // The future is gone: close what a late success accepted.
        if completion.result >= 0 {
            self.reserved = false; // the close frees the entry
            defer_close(self.accepted(completion.result), self.owner);
        }
    }

    fn interest(&self) -> Option<(&SharedFd, Interest)> {
        Some((&self.fd, Interest::READ))
    }

    /// `accept4` on the listener made non-blocking (a direct accept never
    /// reaches here: the epoll backend has no table to reserve in).
    fn attempt(&mut self) -> Attempt {
        Attempt::Done(accept_now(&self.fd, &mut self.addr))
    }
}

/// One non-blocking `accept4` on `listener`, the peer's address into
/// `addr`: the new descriptor or `-errno`.
fn accept_now(listener: &SharedFd, addr: &mut SockAddr) -> i32 {
    let nonblocking = listener.ensure_nonblocking();
    if nonblocking < 0 {
        return nonblocking;
    }
    // SAFETY: `addr` is room for any address, its length beside it.
    unsafe { nowait::accept(listener.plain_raw(), addr.as_mut_ptr(), addr.len_mut()) }
}

impl Drop for Accept {
    fn drop(&mut self) {
        // Runs outside the driver (after `complete`, or when the slot's
        // state is freed after its final CQE).
        if let (true, Some(owner)) = (self.reserved, self.owner) {
            let _ = crate::runtime::context::with_owner(owner, |core| {
                core.ring()
                    .expect("a direct descriptor lives in a ring")
                    .borrow_mut()
                    .release_direct()
            });
        }
    }
}

/// Accepts connections until cancelled (multishot accept): one SQE, one
/// CQE per connection. The kernel may end it (an error, or a resource
/// limit); the final CQE has no `IORING_CQE_F_MORE`.
pub(crate) struct AcceptMulti {
    fd: SharedFd,
}

impl AcceptMulti {
    pub(crate) fn new(fd: SharedFd) -> AcceptMulti {
        AcceptMulti { fd }
    }
}

// SAFETY: the SQE refers to no memory (no peer address is asked for).
unsafe impl MultishotOperation for AcceptMulti {
    type Item = io::Result<OwnedFd>;

    fn build(&mut self) -> squeue::Entry {
        with_target!(self.fd.target(), |t| opcode::AcceptMulti::new(t)
            .flags(libc::SOCK_CLOEXEC)
            .build())
    }

    fn next(&mut self, completion: Completion) -> io::Result<OwnedFd> {
        let fd = completion.into_result()? as RawFd;
        // SAFETY: the kernel just created `fd` for us and nobody else has it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    fn late_completion(&mut self, completion: Completion) {
        // The stream is gone: close what was accepted meanwhile.
        if completion.result >= 0 {
            defer_close(Target::Fd(completion.result), None);
        }
    }

    fn interest(&self) -> Option<(&SharedFd, Interest)> {
        Some((&self.fd, Interest::READ))
    }

    fn attempt(&mut self) -> Attempt {
        Attempt::Done(accept_now(&self.fd, &mut SockAddr::empty()))
    }
}

/// Connects a socket to an address.
pub(crate) struct Connect {
    fd: SharedFd,
    /// The address the SQE points at; boxed so it stays put.
    addr: Box<SockAddr>,
    /// On epoll: `connect` said `EINPROGRESS`; the socket turning
    /// writable says how it went.
    in_progress: bool,
}

impl Connect {
    pub(crate) fn new(fd: SharedFd, addr: SockAddr) -> Connect {
        Connect {
            fd,
            addr: Box::new(addr),
            in_progress: false,
        }
    }
}

// SAFETY: the SQE points into `addr`, a box whose heap memory stays put
// while the operation moves; `Op` keeps `self` until the final CQE.
unsafe impl Operation for Connect {
    type Output = io::Result<()>;

    fn build(&mut self) -> squeue::Entry {
        with_target!(self.fd.target(), |t| opcode::Connect::new(
            t,
            self.addr.as_ptr(),
            self.addr.len(),
        )
        .build())
    }

    fn complete(self, completion: Completion) -> io::Result<()> {
        completion.into_result().map(drop)
    }

    fn interest(&self) -> Option<(&SharedFd, Interest)> {
        Some((&self.fd, Interest::WRITE))
    }

    /// A non-blocking `connect`; once it is in progress, the socket's
    /// error (`SO_ERROR`) and whether it has a peer tell a finished
    /// connection (either way) from one still going (`EAGAIN`: wait on).
    fn attempt(&mut self) -> Attempt {
        let fd = self.fd.plain_raw();
        if self.in_progress {
            let error = nowait::socket_error(fd);
            if error != 0 {
                return Attempt::Done(error);
            }
            return Attempt::Done(match crate::sys::socket::peer_raw(fd) {
                Ok(_) => 0,
                Err(error) if error.raw_os_error() == Some(libc::ENOTCONN) => -libc::EAGAIN,
                Err(error) => -error.raw_os_error().unwrap_or(libc::EIO),
            });
        }
        let nonblocking = self.fd.ensure_nonblocking();
        if nonblocking < 0 {
            return Attempt::Done(nonblocking);
        }
        // SAFETY: the boxed address, of its length, only read.
        let result = unsafe { nowait::connect(fd, self.addr.as_ptr(), self.addr.len()) };
        if result == -libc::EINPROGRESS {
            self.in_progress = true;
            return Attempt::Done(-libc::EAGAIN);
        }
        Attempt::Done(result)
    }
}

/// Shuts down one or both directions of a connection.
pub(crate) struct Shutdown {
    fd: SharedFd,
    how: libc::c_int,
}

impl Shutdown {
    pub(crate) fn new(fd: SharedFd, how: std::net::Shutdown) -> Shutdown {
        let how = crate::sys::socket::shutdown_how(how);
        Shutdown { fd, how }
    }
}

// SAFETY: the SQE refers to no memory.
unsafe impl Operation for Shutdown {
    type Output = io::Result<()>;

    fn build(&mut self) -> squeue::Entry {
        with_target!(self.fd.target(), |t| opcode::Shutdown::new(t, self.how)
            .build())
    }

    fn complete(self, completion: Completion) -> io::Result<()> {
        completion.into_result().map(drop)
    }

    fn attempt(&mut self) -> Attempt {
        // SAFETY: plain integers.
        Attempt::Done(unsafe { nowait::shutdown(self.fd.plain_raw(), self.how) })
    }
}
