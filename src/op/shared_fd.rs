//! The descriptor handle that operations share.
//!
//! Every in-flight operation holds a clone of its descriptor's `SharedFd`,
//! and a dropped operation's state (with its clone) stays in its slot until
//! the final CQE. So the descriptor is closed only once the last operation
//! on it has completed, and the close itself goes through the ring
//! (`IORING_OP_CLOSE`, deferred to the run loop when the last handle is
//! dropped), never blocking the core.

use std::cell::Cell;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::os::fd::{BorrowedFd, IntoRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::task::{Poll, Waker};

use super::{Close, Op};
use crate::driver::Target;
use crate::executor::RuntimeId;
use crate::runtime::defer_close;

/// The handle that operations share.
#[derive(Clone)]
pub(crate) struct SharedFd {
    inner: Rc<Inner>,
}

struct Inner {
    /// The descriptor; `None` once `close` has taken it.
    target: Cell<Option<Target>>,
    /// The runtime whose ring's table holds a direct descriptor (`None`
    /// for a plain one, which any ring or `close(2)` can close).
    owner: Option<RuntimeId>,
    /// The task waiting in `close` for the other handles to go.
    closer: Cell<Option<Waker>>,
    /// The epoll core whose set the descriptor joined (at an operation's
    /// first wait), to leave before it is closed.
    polled_by: Cell<Option<RuntimeId>>,
    /// Set once the descriptor was made non-blocking (epoll backend).
    nonblocking: Cell<bool>,
}

impl SharedFd {
    pub(crate) fn new(fd: OwnedFd) -> SharedFd {
        SharedFd::from_target(Target::Fd(fd.into_raw_fd()), None)
    }

    /// Takes ownership of entry `index` of the ring's direct descriptor table.
    ///
    /// # Panics
    ///
    /// Outside a runtime (a direct descriptor belongs to the current one).
    pub(crate) fn new_direct(index: u32) -> SharedFd {
        let owner = crate::runtime::context::with_core(|core| core.id());
        SharedFd::from_target(Target::Fixed(index), Some(owner))
    }

    fn from_target(target: Target, owner: Option<RuntimeId>) -> SharedFd {
        SharedFd {
            inner: Rc::new(Inner {
                target: Cell::new(Some(target)),
                owner,
                closer: Cell::new(None),
                polled_by: Cell::new(None),
                nonblocking: Cell::new(false),
            }),
        }
    }

    /// What operations name.
    ///
    /// # Panics
    ///
    /// After `close` took the descriptor (no operation is built then: close
    /// waits for every other handle).
    pub(crate) fn target(&self) -> Target {
        self.inner
            .target
            .get()
            .expect("descriptor used after close")
    }

    /// The file descriptor, `None` for a direct descriptor (which has
    /// none).
    pub(crate) fn as_fd(&self) -> Option<BorrowedFd<'_>> {
        match self.inner.target.get() {
            // SAFETY: the descriptor stays open while this handle lives:
            // only `close` takes it, and `close` consumes a handle and waits
            // for every other one (this one included) to be dropped first.
            Some(Target::Fd(fd)) => Some(unsafe { BorrowedFd::borrow_raw(fd) }),
            _ => None,
        }
    }

    /// The file descriptor of a handle that never holds a direct one (made
    /// by [`SharedFd::new`]).
    ///
    /// # Panics
    ///
    /// For a direct descriptor: a bug in the caller, which promised none.
    pub(crate) fn plain_fd(&self) -> BorrowedFd<'_> {
        self.as_fd()
            .expect("only a TcpStream accepted directly holds a direct descriptor")
    }

    /// The file descriptor, for system calls outside the ring.
    ///
    /// # Errors
    ///
    /// `Unsupported` for a direct descriptor.
    pub(crate) fn raw_fd(&self) -> io::Result<RawFd> {
        match self.inner.target.get() {
            Some(Target::Fd(fd)) => Ok(fd),
            _ => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a direct (registered) descriptor has no file descriptor for this call",
            )),
        }
    }

    /// The file descriptor, on the epoll backend (which has only plain
    /// ones).
    #[inline]
    pub(crate) fn plain_raw(&self) -> RawFd {
        match self.inner.target.get() {
            Some(Target::Fd(fd)) => fd,
            _ => unreachable!("the epoll backend has only plain descriptors, open ones"),
        }
    }

    /// Notes that the descriptor joined the epoll set of core `owner`.
    #[inline]
    pub(crate) fn note_polled(&self, owner: RuntimeId) {
        self.inner.polled_by.set(Some(owner));
    }

    /// Makes the descriptor non-blocking, once (the epoll backend's
    /// `accept4` and `connect`, which have no per-call flag): 0 or
    /// `-errno`.
    pub(crate) fn ensure_nonblocking(&self) -> i32 {
        if self.inner.nonblocking.get() {
            return 0;
        }
        let result = crate::sys::nowait::set_nonblocking(self.plain_raw());
        self.inner.nonblocking.set(result == 0);
        result
    }

    /// Waits until this is the only handle, then closes through the ring.
    pub(crate) async fn close(self) -> io::Result<()> {
        poll_fn(|cx| {
            if Rc::strong_count(&self.inner) == 1 {
                Poll::Ready(())
            } else {
                self.inner.closer.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await;
        self.inner.leave_epoll();
        let target = self.inner.target.take().expect("closed once");
        Op::new(Close::new(target, self.inner.owner)).await
    }
}

impl Drop for SharedFd {
    fn drop(&mut self) {
        // The handle left after this one may be a `close` waiting for it.
        if Rc::strong_count(&self.inner) == 2 {
            if let Some(waker) = self.inner.closer.take() {
                waker.wake();
            }
        }
    }
}

impl Inner {
    /// Takes the descriptor out of the epoll set it joined, before it is
    /// closed (wherever the last handle goes: on its core, in another
    /// runtime or outside any), so that no entry outlives it.
    fn leave_epoll(&self) {
        let (Some(owner), Some(Target::Fd(fd))) = (self.polled_by.take(), self.target.get()) else {
            return;
        };
        let _ = crate::runtime::context::with_owner(owner, |core| {
            if let crate::runtime::context::Io::Epoll(reactor) = &core.io {
                reactor.borrow_mut().forget(fd);
            }
        });
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.leave_epoll();
        if let Some(target) = self.target.get() {
            defer_close(target, self.owner);
        }
    }
}

impl fmt::Debug for SharedFd {
    /// The file descriptor, `Direct(index)` for an entry of the ring's
    /// table, or `Closed` once `close` has taken it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.inner.target.get() {
            Some(Target::Fd(fd)) => fmt::Debug::fmt(&fd, f),
            Some(Target::Fixed(index)) => f.debug_tuple("Direct").field(&index).finish(),
            None => f.write_str("Closed"),
        }
    }
}
