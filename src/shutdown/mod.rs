//! Graceful shutdown: a token any core or thread triggers, and per-core
//! tracking of the connections a core serves.
//!
//! A shutdown runs in three phases.
//!
//! 1. **Stop and finish.** The launch's [`Shutdown`] token is triggered
//!    (by [`Shutdown::trigger`] from anywhere, or by `SIGINT`/`SIGTERM`
//!    with [`Builder::shutdown_on_signals`](crate::Builder::shutdown_on_signals)).
//!    Accept loops written with [`Shutdown::until`] stop and drop their
//!    listeners, so the port refuses new connections. Every connection a
//!    [`Tracker`] spawned sees [`Conn::is_closing`]; one waiting for a
//!    request in [`Conn::until`] is told to close (an idle connection),
//!    one in the middle of a request finishes it.
//! 2. **Deadline.** [`Tracker::drain`] waits until every connection has
//!    finished or the deadline passes (or the shutdown is forced, by a
//!    second signal), then aborts what is left.
//! 3. **Drain the ring.** The core's future returns; dropping its runtime
//!    cancels every operation still in flight and reaps it, and
//!    [`run_on_cores`](crate::Builder::run_on_cores) returns each core's
//!    output.
//!
//! ```no_run
//! use std::time::Duration;
//! use corering::net::TcpListener;
//! use corering::shutdown::{self, Tracker};
//!
//! let served = corering::Runtime::builder()
//!     .shutdown_on_signals(true)
//!     .run_on_cores(|_core| async {
//!         let shutdown = shutdown::token();
//!         let tracker = Tracker::new(&shutdown);
//!         let listener = TcpListener::bind_reuse_port("127.0.0.1:8080").unwrap();
//!         while let Some(accepted) = shutdown.until(listener.accept()).await {
//!             let Ok((stream, _)) = accepted else { continue };
//!             tracker.spawn(|conn| async move {
//!                 let mut buf = vec![0; 4096];
//!                 while let Some((read, back)) = conn.until(stream.read(buf)).await {
//!                     buf = back;
//!                     match read {
//!                         Ok(n) if n > 0 => {}
//!                         _ => break,
//!                     }
//!                     // ... answer the request, then:
//!                     if conn.is_closing() {
//!                         break;
//!                     }
//!                 }
//!             });
//!         }
//!         drop(listener);
//!         tracker.drain(Duration::from_secs(5)).await
//!     })
//!     .unwrap();
//! println!("{served:?}");
//! ```

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::rc::{Rc, Weak};
use std::task::{Poll, Waker};
use std::time::Duration;

use slab::Slab;

use crate::executor::JoinHandle;
pub use crate::sync::shutdown::{Shutdown, Triggered};

/// The current launch's shutdown token (a lone runtime has its own): the
/// one that [`Builder::shutdown`](crate::Builder::shutdown) gave, or one
/// made for the launch.
///
/// # Panics
///
/// Outside a corering runtime.
pub fn token() -> Shutdown {
    crate::runtime::shutdown_token()
}

/// The connections one core serves, for a graceful shutdown (see the
/// module docs). `!Send`: it lives on its core.
pub struct Tracker {
    inner: Rc<Inner>,
}

struct Inner {
    shutdown: Shutdown,
    /// Set when the shutdown was seen (or a drain began).
    closing: Cell<bool>,
    /// Connections open when `closing` was set.
    open_at_close: Cell<usize>,
    conns: RefCell<Slab<Entry>>,
    /// Handles of finished connections, dropped at the next spawn or
    /// drain rather than from inside their own task's last poll.
    finished: RefCell<Vec<JoinHandle<()>>>,
    /// The drain, waiting for the last connection.
    drain: RefCell<Option<Waker>>,
    /// Connections spawned, for the drain's count.
    spawned: Cell<usize>,
}

struct Entry {
    /// The connection's number (`spawned` when it was made), so that a
    /// connection aborted by a drain cannot free a later one's place.
    id: usize,
    /// `None` only between the spawn and the store of its handle.
    handle: Option<JoinHandle<()>>,
    /// The connection's task while it waits in [`Conn::until`].
    waiter: Option<Waker>,
}

/// What a [`Tracker::drain`] saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Drained {
    /// Connections the tracker spawned over its life.
    pub served: usize,
    /// Connections open when the shutdown was seen (or the drain began,
    /// if that came first).
    pub open: usize,
    /// Of those, the ones aborted at the deadline (or when forced).
    pub aborted: usize,
}

impl Tracker {
    /// A tracker whose connections close when `shutdown` is triggered.
    /// Spawns one small task on this core that waits for it.
    ///
    /// # Panics
    ///
    /// Outside a corering runtime.
    pub fn new(shutdown: &Shutdown) -> Tracker {
        let inner = Rc::new(Inner {
            shutdown: shutdown.clone(),
            closing: Cell::new(false),
            open_at_close: Cell::new(0),
            conns: RefCell::new(Slab::new()),
            finished: RefCell::new(Vec::new()),
            drain: RefCell::new(None),
            spawned: Cell::new(0),
        });
        let weak = Rc::downgrade(&inner);
        let triggered = shutdown.triggered();
        drop(crate::spawn(async move {
            triggered.await;
            if let Some(inner) = weak.upgrade() {
                inner.close_all();
            }
        }));
        Tracker { inner }
    }

    /// Spawns a connection's task on this core: `serve` gets the
    /// connection's [`Conn`], which says when to close.
    pub fn spawn<F, Fut>(&self, serve: F)
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = ()> + 'static,
    {
        self.inner.finished.borrow_mut().clear();
        let id = self.inner.spawned.get();
        self.inner.spawned.set(id + 1);
        let key = self.inner.conns.borrow_mut().insert(Entry {
            id,
            handle: None,
            waiter: None,
        });
        let conn = Conn {
            inner: Rc::downgrade(&self.inner),
            key,
            id,
        };
        // The entry lives as long as the task (the guard goes with its
        // future), whatever `serve` does with its `Conn`.
        let guard = Finish(conn.clone());
        let future = serve(conn);
        let handle = crate::spawn(async move {
            let _guard = guard;
            future.await;
        });
        self.inner.conns.borrow_mut()[key].handle = Some(handle);
    }

    /// Connections open now.
    pub fn len(&self) -> usize {
        self.inner.conns.borrow().len()
    }

    /// Whether no connection is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the shutdown was seen (or a drain began).
    pub fn is_closing(&self) -> bool {
        self.inner.closing.get()
    }

    /// Closes every connection (as the shutdown does, if it has not yet)
    /// and waits until all have finished, at most `deadline`, or until the
    /// shutdown is forced; then aborts what is left.
    pub async fn drain(&self, deadline: Duration) -> Drained {
        self.inner.close_all();
        self.inner.finished.borrow_mut().clear();
        let inner = &self.inner;
        let all_done = poll_fn(|cx| {
            if inner.conns.borrow().is_empty() {
                return Poll::Ready(());
            }
            let mut drain = inner.drain.borrow_mut();
            if !drain
                .as_ref()
                .is_some_and(|stored| stored.will_wake(cx.waker()))
            {
                *drain = Some(cx.waker().clone());
            }
            Poll::Pending
        });
        let forced = inner.shutdown.forced();
        let mut all_done = pin!(all_done);
        let mut forced = pin!(forced);
        let _ = crate::time::timeout(
            deadline,
            poll_fn(|cx| {
                if all_done.as_mut().poll(cx).is_ready() || forced.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(());
                }
                Poll::Pending
            }),
        )
        .await;
        inner.drain.borrow_mut().take();
        let left: Vec<JoinHandle<()>> = inner
            .conns
            .borrow_mut()
            .drain()
            .filter_map(|entry| entry.handle)
            .collect();
        let aborted = left.len();
        for handle in &left {
            handle.abort();
        }
        drop(left);
        inner.finished.borrow_mut().clear();
        Drained {
            served: inner.spawned.get(),
            open: inner.open_at_close.get(),
            aborted,
        }
    }
}

impl Inner {
    /// Marks the tracker closing and wakes every connection waiting in
    /// [`Conn::until`].
    fn close_all(&self) {
        if self.closing.replace(true) {
            return;
        }
        self.open_at_close.set(self.conns.borrow().len());
        let waiters: Vec<Waker> = self
            .conns
            .borrow_mut()
            .iter_mut()
            .filter_map(|(_, entry)| entry.waiter.take())
            .collect();
        for waiter in waiters {
            waiter.wake();
        }
    }
}

impl fmt::Debug for Tracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracker")
            .field("open", &self.len())
            .field("closing", &self.is_closing())
            .finish()
    }
}

/// One tracked connection, handed to its task by [`Tracker::spawn`] (the
/// tracker counts it open until the task ends).
#[derive(Clone)]
pub struct Conn {
    inner: Weak<Inner>,
    key: usize,
    id: usize,
}

impl Conn {
    /// Whether the connection should close after what it is doing: say so
    /// to the peer (`Connection: close`) and end.
    pub fn is_closing(&self) -> bool {
        self.inner.upgrade().is_none_or(|inner| inner.closing.get())
    }

    /// Runs `future` (typically the read of the next request) until it
    /// finishes (`Some`) or the connection is told to close while it waits
    /// (`None`, the future dropped: an idle connection closes). A future
    /// ready in the poll that sees the close still gives its output, and
    /// one started after the close runs until a first `Pending`.
    pub async fn until<F: Future>(&self, future: F) -> Option<F::Output> {
        let mut future = pin!(future);
        poll_fn(|cx| {
            if let Poll::Ready(output) = future.as_mut().poll(cx) {
                return Poll::Ready(Some(output));
            }
            let Some(inner) = self.inner.upgrade() else {
                return Poll::Ready(None);
            };
            if inner.closing.get() {
                return Poll::Ready(None);
            }
            if let Some(entry) = inner
                .conns
                .borrow_mut()
                .get_mut(self.key)
                .filter(|entry| entry.id == self.id)
            {
                if !entry
                    .waiter
                    .as_ref()
                    .is_some_and(|stored| stored.will_wake(cx.waker()))
                {
                    entry.waiter = Some(cx.waker().clone());
                }
            }
            Poll::Pending
        })
        .await
    }
}

/// Goes with a tracked task's future: its drop (the task's end, or its
/// abort) tells the tracker the connection finished.
struct Finish(Conn);

impl Drop for Finish {
    fn drop(&mut self) {
        let Conn { inner, key, id } = &self.0;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let mine = inner
            .conns
            .borrow()
            .get(*key)
            .is_some_and(|entry| entry.id == *id);
        let entry = mine.then(|| inner.conns.borrow_mut().remove(*key));
        if let Some(Entry {
            handle: Some(handle),
            ..
        }) = entry
        {
            inner.finished.borrow_mut().push(handle);
        }
        if inner.conns.borrow().is_empty() {
            if let Some(drain) = inner.drain.borrow_mut().take() {
                drain.wake();
            }
        }
    }
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("closing", &self.is_closing())
            .finish()
    }
}
