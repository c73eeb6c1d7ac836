//! `FixedBufPool`: buffers registered with the ring (`IORING_REGISTER_BUFFERS`),
//! which reads and writes name by index, so the kernel skips pinning and
//! mapping the pages on every operation.

use std::alloc::{self, Layout};
use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::rc::Rc;
use std::task::{Poll, Waker};

use super::filled::Filled;
use super::{IoBuf, IoBufMut};
use crate::executor::RuntimeId;
use crate::runtime::context::{self, Gone};

/// The alignment of a pool's memory and of each buffer: a page, which also
/// suits `O_DIRECT` on every common device.
const PAGE: usize = 4096;

/// A pool of equal buffers registered with this core's ring, for
/// [`File::read_fixed_at`](crate::fs::File::read_fixed_at) and
/// [`File::write_fixed_at`](crate::fs::File::write_fixed_at).
///
/// [`get`](FixedBufPool::get) checks a buffer out, waiting for one to come
/// back when all are out; a [`FixedBuf`] returns to the pool when dropped
/// (after the kernel is done with it: an operation in flight owns it). Each
/// buffer is page-aligned and its length is rounded up to whole pages, so
/// the buffers also serve direct I/O.
///
/// Cheap to clone (a reference count); owned by the core that made it.
///
/// # Examples
///
/// ```
/// use corering::buf::{FixedBufPool, IoBuf};
///
/// corering::start(async {
///     let pool = FixedBufPool::new(2, 4096).unwrap();
///     let a = pool.get().await;
///     let b = pool.get().await;
///     assert_eq!((a.bytes_total(), pool.available()), (4096, 0));
///     assert!(pool.try_get().is_none());
///     drop(a);
///     assert!(pool.try_get().is_some());
///     drop(b);
/// });
/// ```
#[derive(Clone)]
pub struct FixedBufPool {
    inner: Rc<Inner>,
}

struct Inner {
    memory: NonNull<u8>,
    layout: Layout,
    buf_len: usize,
    count: u16,
    /// The index of buffer 0 in the ring's buffer table.
    first: u32,
    free: RefCell<Vec<u16>>,
    /// Tasks waiting in `get`; all are woken when a buffer comes back.
    waiters: RefCell<Vec<Waker>>,
    /// Times `get` found the pool empty.
    waited: Cell<u64>,
    /// The runtime whose ring the buffers are registered with.
    owner: RuntimeId,
}

impl FixedBufPool {
    /// Allocates `count` buffers of `buf_len` bytes (rounded up to whole
    /// pages) and registers them with the current core's ring.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for no buffers or a length of 0; `OutOfMemory` when
    /// the ring's table (1,024 entries) has no room for `count`; as
    /// `io_uring_register(2)` otherwise (`ENOMEM` past the locked-memory
    /// limit for a user without `CAP_IPC_LOCK`).
    ///
    /// # Panics
    ///
    /// Outside a corering runtime.
    pub fn new(count: u16, buf_len: usize) -> io::Result<FixedBufPool> {
        if count == 0 || buf_len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a fixed-buffer pool needs at least one buffer of at least one byte",
            ));
        }
        let too_large =
            || io::Error::new(io::ErrorKind::InvalidInput, "fixed-buffer pool too large");
        let buf_len = buf_len
            .checked_next_multiple_of(PAGE)
            .ok_or_else(too_large)?;
        let total = buf_len
            .checked_mul(usize::from(count))
            .ok_or_else(too_large)?;
        let layout = Layout::from_size_align(total, PAGE).map_err(|_| too_large())?;
        // SAFETY: the layout's size is at least one page.
        let memory = NonNull::new(unsafe { alloc::alloc_zeroed(layout) })
            .ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))?;
        let iovecs: Vec<libc::iovec> = (0..usize::from(count))
            .map(|index| libc::iovec {
                // SAFETY: inside the allocation of `count` buffers.
                iov_base: unsafe { memory.as_ptr().add(index * buf_len) }.cast(),
                iov_len: buf_len,
            })
            .collect();
        let registered = context::with_core(|core| {
            // On epoll there is no table to register with: the buffers are
            // plain memory, read and written with plain calls.
            let Some(driver) = core.ring() else {
                return Ok((0, core.id()));
            };
            // SAFETY: the memory stays allocated until `Inner` drops, which
            // unregisters it first (or finds the ring already gone).
            let first = unsafe { driver.borrow_mut().register_fixed_bufs(&iovecs) };
            first.map(|first| (first, core.id()))
        });
        let (first, owner) = match registered {
            Ok(registered) => registered,
            Err(error) => {
                // SAFETY: allocated above with this layout, never registered.
                unsafe { alloc::dealloc(memory.as_ptr(), layout) };
                return Err(error);
            }
        };
        Ok(FixedBufPool {
            inner: Rc::new(Inner {
                memory,
                layout,
                buf_len,
                count,
                first,
                free: RefCell::new((0..count).rev().collect()),
                waiters: RefCell::new(Vec::new()),
                waited: Cell::new(0),
                owner,
            }),
        })
    }

    /// Checks a buffer out, waiting for one to come back while all are
    /// out. The buffer is empty (no initialized bytes) and
    /// [`buf_len`](FixedBufPool::buf_len) bytes long.
    pub async fn get(&self) -> FixedBuf {
        let mut counted = false;
        poll_fn(|cx| match self.try_get() {
            Some(buf) => Poll::Ready(buf),
            None => {
                if !counted {
                    counted = true;
                    self.inner.waited.set(self.inner.waited.get() + 1);
                }
                self.inner.waiters.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }

    /// A buffer if one is free.
    pub fn try_get(&self) -> Option<FixedBuf> {
        let index = self.inner.free.borrow_mut().pop()?;
        let pool = &self.inner;
        // SAFETY: buffer `index` lies inside the pool's allocation (zeroed
        // when made, so initialized), and it is this value's alone until
        // its drop puts the index back on the free list.
        let memory = unsafe {
            let ptr = pool.memory.add(usize::from(index) * pool.buf_len);
            Filled::new(ptr, pool.buf_len)
        };
        Some(FixedBuf {
            pool: pool.clone(),
            index,
            memory,
        })
    }

    /// The length of each buffer (a whole number of pages).
    pub fn buf_len(&self) -> usize {
        self.inner.buf_len
    }

    /// Buffers in the pool.
    pub fn count(&self) -> u16 {
        self.inner.count
    }

    /// Buffers not checked out.
    pub fn available(&self) -> u16 {
        self.inner.free.borrow().len() as u16
    }

    /// Times [`get`](FixedBufPool::get) found every buffer out and waited.
    pub fn waited(&self) -> u64 {
        self.inner.waited.get()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Unregister on the owning ring wherever the last handle goes
        // (inside another runtime or outside any), so the table range is
        // free for the next pool.
        let (first, count) = (self.first, u32::from(self.count));
        let unregistered = context::with_owner(self.owner, |core| match core.ring() {
            Some(driver) => driver.borrow_mut().unregister_fixed_bufs(first, count),
            None => Ok(()),
        });
        match unregistered {
            // Unregistered, or the ring closed with nothing left in flight.
            Ok(Ok(())) | Err(Gone::Drained) => {}
            Ok(Err(error)) => {
                // The kernel may still map the memory: leak it rather than free it.
                eprintln!("corering: cannot unregister fixed buffers: {error}; leaking them");
                return;
            }
            // Operations the kernel may still run on them were leaked.
            Err(Gone::Leaked) => return,
        }
        // SAFETY: unregistered (or the ring is gone), and every `FixedBuf`
        // (each holding this `Inner`) has been dropped; allocated in `new`
        // with this layout.
        unsafe { alloc::dealloc(self.memory.as_ptr(), self.layout) };
    }
}

impl fmt::Debug for FixedBufPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FixedBufPool")
            .field("count", &self.inner.count)
            .field("buf_len", &self.inner.buf_len)
            .field("available", &self.available())
            .finish()
    }
}

/// A buffer checked out of a [`FixedBufPool`]; it goes back when dropped.
/// Like a `Vec<u8>`, it has initialized bytes within its capacity.
pub struct FixedBuf {
    pool: Rc<Inner>,
    index: u16,
    memory: Filled,
}

/// How panics name this buffer.
const WHAT: &str = "fixed buffer";

impl FixedBuf {
    /// The buffer's index in the ring's table, for the SQE.
    pub(crate) fn table_index(&self) -> u16 {
        // The table has 1,024 entries.
        (self.pool.first + u32::from(self.index)) as u16
    }

    /// The initialized bytes.
    pub fn len(&self) -> usize {
        self.memory.len()
    }

    /// Whether no byte is initialized.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The buffer's length.
    pub fn capacity(&self) -> usize {
        self.memory.capacity()
    }

    /// Marks no byte initialized.
    pub fn clear(&mut self) {
        self.memory.set_len(0, WHAT);
    }

    /// Appends `data` after the initialized bytes.
    ///
    /// # Panics
    ///
    /// When it does not fit.
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        self.memory.extend_from_slice(data, WHAT);
    }

    /// Sets the initialized length (the memory is always initialized:
    /// zeroed at first).
    ///
    /// # Panics
    ///
    /// Past the buffer's length.
    pub fn set_len(&mut self, len: usize) {
        self.memory.set_len(len, WHAT);
    }
}

impl Drop for FixedBuf {
    fn drop(&mut self) {
        self.pool.free.borrow_mut().push(self.index);
        let waiters = std::mem::take(&mut *self.pool.waiters.borrow_mut());
        for waker in waiters {
            waker.wake();
        }
    }
}

impl Deref for FixedBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.memory.as_slice()
    }
}

impl DerefMut for FixedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.memory.as_mut_slice()
    }
}

impl fmt::Debug for FixedBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FixedBuf")
            .field("index", &self.table_index())
            .field("len", &self.len())
            .finish()
    }
}

// SAFETY: the pool's allocation does not move; this buffer's `capacity`
// bytes belong to it alone while it is checked out, all initialized;
// len <= capacity.
unsafe impl IoBuf for FixedBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.memory.ptr()
    }

    fn bytes_init(&self) -> usize {
        self.len()
    }

    fn bytes_total(&self) -> usize {
        self.capacity()
    }
}

// SAFETY: the same address, valid for writes of the whole buffer;
// `set_init` only raises the length, within the buffer.
unsafe impl IoBufMut for FixedBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.memory.ptr()
    }

    unsafe fn set_init(&mut self, pos: usize) {
        self.memory.raise_len(pos, WHAT);
    }
}
