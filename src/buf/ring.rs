//! Provided-buffer rings: buffers registered with the kernel as a group,
//! from which a receive picks one only when data arrives.
//!
//! With a [`BufRing`], a connection waiting for data holds no buffer: the
//! multishot receive ([`TcpStream::recv_multi`](crate::net::TcpStream::recv_multi))
//! names the group, and each completion says which buffer the kernel
//! filled. The received [`RingBuf`] goes back to the ring when dropped, so
//! memory is bounded by the ring, not by the number of connections.
//!
//! # Layout
//!
//! The ring is a page-aligned array of `io_uring_buf { addr, len, bid }`
//! entries that the kernel consumes from its head; user space adds entries
//! at the tail and publishes the tail (a `u16` overlaid on the first entry's
//! reserved field) with a release store. The buffers themselves are one
//! heap allocation, `entries * buf_len` bytes, buffer `bid` at
//! `bid * buf_len`.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::mem::{size_of, ManuallyDrop};
use std::ops::Deref;
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::task::Waker;

use crate::executor::RuntimeId;
use crate::runtime::context::{self, Gone};
use crate::sys::mapping::Mapping;

/// One ring entry (`struct io_uring_buf`, kernel ABI).
#[repr(C)]
struct RingEntry {
    addr: u64,
    len: u32,
    bid: u16,
    /// Reserved; in entry 0 it is the ring's tail.
    resv: u16,
}

/// Where the tail sits: the `resv` field of entry 0.
const TAIL_OFFSET: usize = 14;

/// A group of equal buffers registered with this core's ring, for
/// receives that pick a buffer when data arrives.
///
/// Cheap to clone (a reference count). Owned by the core that made it.
///
/// # Examples
///
/// ```
/// use corering::buf::BufRing;
///
/// corering::start(async {
///     let ring = BufRing::new(8, 4096).unwrap();
///     assert_eq!((ring.entries(), ring.buf_len(), ring.available()), (8, 4096, 8));
/// });
/// ```
#[derive(Clone)]
pub struct BufRing {
    inner: Rc<Inner>,
}

pub(crate) struct Inner {
    /// The entries, at the start of `mapping`.
    ring: NonNull<RingEntry>,
    /// Where the entries live; unmapped only once the kernel is done with
    /// them (see `Drop`), leaked otherwise.
    mapping: ManuallyDrop<Mapping>,
    buffers: NonNull<u8>,
    buf_len: usize,
    entries: u16,
    bgid: u16,
    /// Our tail, published to the kernel on every return.
    tail: Cell<u16>,
    /// On the epoll backend, where no kernel consumes the ring: the head
    /// its receives pick from, as the kernel's would.
    head: Cell<u16>,
    /// Buffers picked by the kernel and not yet given back.
    out: Cell<u16>,
    /// Receives waiting for a buffer to come back after the ring ran dry.
    waiters: RefCell<Vec<Waker>>,
    /// Times a receive found the ring empty.
    exhausted: Cell<u64>,
    /// Buffers given back to the kernel so far (see `starved`).
    returned: Cell<u64>,
    /// The runtime whose ring the group is registered with.
    owner: RuntimeId,
    /// The kernel accepted the registration (a failed one frees the memory
    /// without unregistering).
    registered: bool,
}

impl BufRing {
    /// Registers `entries` buffers of `buf_len` bytes with the current
    /// core's ring. `entries` must be a power of two, at most 32,768.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a bad size; as `io_uring_register(2)` otherwise
    /// (`EINVAL` on kernels before 5.19, which lack buffer rings).
    ///
    /// # Panics
    ///
    /// Outside a corering runtime.
    pub fn new(entries: u16, buf_len: usize) -> io::Result<BufRing> {
        if !entries.is_power_of_two()
            || entries > 32_768
            || buf_len == 0
            || buf_len > u32::MAX as usize
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a buffer ring needs a power-of-two entry count up to 32768 and a buffer length from 1 to 4 GiB",
            ));
        }
        // On epoll there is no kernel ring to register with: receives
        // pick from the ring themselves (`pick`), group 0.
        let (bgid, owner, kernel) = context::with_core(|core| match core.ring() {
            Some(driver) => driver
                .borrow_mut()
                .take_buf_group()
                .map(|bgid| (bgid, core.id(), true)),
            None => Ok((0, core.id(), false)),
        })?;
        let total = usize::from(entries)
            .checked_mul(buf_len)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "buffer ring too large"))?;
        // Page-aligned, as the kernel wants the ring.
        let mapping = Mapping::anonymous(usize::from(entries) * size_of::<RingEntry>())?;
        let ring = mapping.base().cast::<RingEntry>();
        let buffers: Box<[u8]> = vec![0u8; total].into_boxed_slice();
        let buffers = NonNull::new(Box::into_raw(buffers).cast::<u8>()).expect("a box is not null");
        let mut inner = Inner {
            ring,
            mapping: ManuallyDrop::new(mapping),
            buffers,
            buf_len,
            entries,
            bgid,
            tail: Cell::new(0),
            head: Cell::new(0),
            out: Cell::new(0),
            waiters: RefCell::new(Vec::new()),
            exhausted: Cell::new(0),
            returned: Cell::new(0),
            owner,
            registered: false,
        };
        for bid in 0..entries {
            inner.push(bid);
        }
        inner.publish();
        if kernel {
            // SAFETY: the ring memory stays mapped until `Inner` drops, which
            // unregisters the group first (or finds the ring already gone).
            context::with_core(|core| unsafe {
                core.ring()
                    .expect("taken a group from this ring")
                    .borrow_mut()
                    .register_buf_ring(ring.as_ptr() as u64, entries, bgid)
            })?;
            inner.registered = true;
        }
        Ok(BufRing {
            inner: Rc::new(inner),
        })
    }

    /// Buffers in the ring.
    pub fn entries(&self) -> u16 {
        self.inner.entries
    }

    /// Bytes per buffer.
    pub fn buf_len(&self) -> usize {
        self.inner.buf_len
    }

    /// Buffers the kernel may pick right now (not handed out).
    pub fn available(&self) -> u16 {
        self.inner.entries - self.inner.out.get()
    }

    /// Times a receive found the ring empty (and waited for a buffer to
    /// come back before receiving again).
    pub fn exhausted(&self) -> u64 {
        self.inner.exhausted.get()
    }

    pub(crate) fn inner(&self) -> &Rc<Inner> {
        &self.inner
    }
}

impl Inner {
    pub(crate) fn bgid(&self) -> u16 {
        self.bgid
    }

    /// Writes buffer `bid` at the tail (unpublished).
    fn push(&self, bid: u16) {
        let tail = self.tail.get();
        let index = usize::from(tail & (self.entries - 1));
        // SAFETY: `index` is inside the ring; the fields are written one by
        // one so entry 0's `resv` (the published tail) is left alone.
        unsafe {
            let entry = self.ring.as_ptr().add(index);
            (*entry).addr = self.buffers.as_ptr().add(usize::from(bid) * self.buf_len) as u64;
            (*entry).len = self.buf_len as u32;
            (*entry).bid = bid;
        }
        self.tail.set(tail.wrapping_add(1));
    }

    /// Makes every pushed entry visible to the kernel.
    fn publish(&self) {
        // SAFETY: the tail is a naturally aligned u16 inside the mapping,
        // shared with the kernel, which reads it with acquire semantics.
        let tail = unsafe {
            &*self
                .ring
                .as_ptr()
                .cast::<u8>()
                .add(TAIL_OFFSET)
                .cast::<AtomicU16>()
        };
        tail.store(self.tail.get(), Ordering::Release);
    }

    /// The next buffer at the head, as the kernel would pick it (the epoll
    /// backend's receives): its id and memory, `buf_len` bytes. `None`
    /// when every buffer is out.
    pub(crate) fn pick(&self) -> Option<(u16, *mut u8)> {
        let head = self.head.get();
        if head == self.tail.get() {
            return None;
        }
        let index = usize::from(head & (self.entries - 1));
        // SAFETY: `index` is inside the ring; the entry was written by
        // `push` (never read by a kernel on this backend).
        let bid = unsafe { (*self.ring.as_ptr().add(index)).bid };
        self.head.set(head.wrapping_add(1));
        // SAFETY: buffer `bid` lies inside the one allocation.
        Some((bid, unsafe {
            self.buffers.as_ptr().add(usize::from(bid) * self.buf_len)
        }))
    }

    /// Bytes per buffer.
    pub(crate) fn buf_len(&self) -> usize {
        self.buf_len
    }

    /// Puts back the buffer [`pick`](Self::pick) just took (its receive
    /// found nothing).
    pub(crate) fn unpick(&self) {
        self.head.set(self.head.get().wrapping_sub(1));
    }

    /// A CQE handed out buffer `bid` holding `len` bytes.
    pub(crate) fn take(self: &Rc<Self>, bid: u16, len: usize) -> RingBuf {
        self.note_taken();
        RingBuf {
            ring: self.clone(),
            bid,
            len,
        }
    }

    /// A CQE handed out a buffer (to a stream, or to a receive whose stream
    /// is gone and which gives it back later with
    /// [`give_back`](Self::give_back)).
    pub(crate) fn note_taken(&self) {
        self.out.set(self.out.get() + 1);
    }

    /// Gives buffer `bid` back to the kernel and wakes receives waiting for
    /// one.
    pub(crate) fn give_back(&self, bid: u16) {
        self.push(bid);
        self.publish();
        self.out.set(self.out.get() - 1);
        self.returned.set(self.returned.get() + 1);
        for waker in self.waiters.borrow_mut().drain(..) {
            waker.wake();
        }
    }

    /// Records that a receive found the ring empty.
    pub(crate) fn note_exhausted(&self) {
        self.exhausted.set(self.exhausted.get() + 1);
    }

    /// Buffers given back so far: a receive notes it before it goes out,
    /// for [`starved`](Self::starved).
    pub(crate) fn returned(&self) -> u64 {
        self.returned.get()
    }

    /// A receive that went out when [`returned`](Self::returned) read
    /// `since` found the ring empty: counts it, then waits until a buffer
    /// has come back since. The count of buffers handed out cannot say
    /// whether the kernel has one: buffers it picked for CQEs not yet taken
    /// (queued in another stream) are not counted yet, and a receive that
    /// trusted it would re-arm and fail again on every tick. If none came
    /// back since the receive went out, the ring can only have emptied
    /// further; if one did, the receive tries again at once.
    pub(crate) async fn starved(&self, since: u64) {
        self.note_exhausted();
        std::future::poll_fn(|cx| {
            if self.wait_for_buffer(since, cx.waker()) {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await;
    }

    /// Whether a buffer came back since [`returned`](Self::returned) read
    /// `since`; if not, `waker` is woken when one does (stored once, however
    /// often the same task asks).
    pub(crate) fn wait_for_buffer(&self, since: u64, waker: &Waker) -> bool {
        if self.returned.get() != since {
            return true;
        }
        let mut waiters = self.waiters.borrow_mut();
        if !waiters.iter().any(|waiter| waiter.will_wake(waker)) {
            waiters.push(waker.clone());
        }
        false
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Unregister on the owning ring wherever the last handle goes (inside
        // another runtime or outside any), and give the group id back.
        let (registered, bgid) = (self.registered, self.bgid);
        let unregistered = context::with_owner(self.owner, |core| {
            // An epoll core's ring was never the kernel's.
            let Some(driver) = core.ring() else {
                return Ok(());
            };
            let mut driver = driver.borrow_mut();
            let unregistered = if registered {
                driver.unregister_buf_ring(bgid)
            } else {
                Ok(())
            };
            if unregistered.is_ok() {
                driver.give_back_buf_group(bgid);
            }
            unregistered
        });
        match unregistered {
            // Unregistered, or the ring closed with nothing left in flight.
            Ok(Ok(())) | Err(Gone::Drained) => {}
            Ok(Err(error)) => {
                // The kernel may still use the memory: leak it rather than free it.
                eprintln!("corering: cannot unregister buffer ring {bgid}: {error}; leaking it");
                return;
            }
            // Receives the kernel may still fill from it were leaked.
            Err(Gone::Leaked) => return,
        }
        // SAFETY: the group is unregistered (or its ring closed), so the
        // kernel no longer touches either allocation; both came from here,
        // and neither is used again.
        unsafe {
            ManuallyDrop::drop(&mut self.mapping);
            let total = usize::from(self.entries) * self.buf_len;
            drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                self.buffers.as_ptr(),
                total,
            )));
        }
    }
}

impl fmt::Debug for BufRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufRing")
            .field("group", &self.inner.bgid)
            .field("entries", &self.inner.entries)
            .field("buf_len", &self.inner.buf_len)
            .field("available", &self.available())
            .finish()
    }
}

/// A buffer the kernel filled from a [`BufRing`]; it goes back to the ring
/// when dropped.
pub struct RingBuf {
    ring: Rc<Inner>,
    bid: u16,
    len: usize,
}

impl Deref for RingBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: the kernel wrote `len` (at most `buf_len`) bytes into
        // buffer `bid`, which nobody else uses until this value drops.
        unsafe {
            std::slice::from_raw_parts(
                self.ring
                    .buffers
                    .as_ptr()
                    .add(usize::from(self.bid) * self.ring.buf_len),
                self.len,
            )
        }
    }
}

impl Drop for RingBuf {
    fn drop(&mut self) {
        self.ring.give_back(self.bid);
    }
}

impl fmt::Debug for RingBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingBuf")
            .field("bid", &self.bid)
            .field("len", &self.len)
            .finish()
    }
}
