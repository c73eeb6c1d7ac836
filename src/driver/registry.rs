//! What the ring has registered with the kernel, and who holds which part:
//! the table of direct descriptors, the buffer group ids of provided-buffer
//! rings, and the table of fixed buffers.
//!
//! Each is a bounded table the kernel looks up by index; this file hands
//! out indices and takes them back, so no two owners share one and none
//! is lost.

use std::io;

use super::Driver;

/// Entries of the registered buffer table (the kernel's limit is 16,384).
pub(super) const FIXED_TABLE: u32 = 1024;

/// The indices handed out of the ring's registered tables.
#[derive(Default)]
pub(super) struct Registry {
    /// Buffer group ids handed out so far, in order (at most 65,536).
    buf_groups_issued: u32,
    /// Group ids given back by dropped `BufRing`s, reused first. At most
    /// 65,536 ids exist, so neither grows past that.
    buf_groups_free: Vec<u16>,
    /// Entries of the registered table of direct descriptors (0: none).
    direct_fds: u32,
    /// Entries taken or reserved by a direct accept in flight. Tracked here
    /// because a direct accept that finds the table full loses its
    /// connection in the kernel: none is submitted without an entry.
    direct_in_use: u32,
    /// The registered buffer table: `None` until a fixed-buffer pool first
    /// asks for it.
    fixed: Option<Runs>,
}

impl Registry {
    /// Nothing handed out yet; `direct_fds` entries in the table of direct
    /// descriptors.
    pub(super) fn new(direct_fds: u32) -> Registry {
        Registry {
            direct_fds,
            ..Registry::default()
        }
    }
}

/// Free runs of a table of `FIXED_TABLE` entries, as (start, length),
/// sorted by start, neighbours merged. At most one run per two entries.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Runs(Vec<(u32, u32)>);

impl Runs {
    /// A table of `len` free entries.
    pub(super) fn new(len: u32) -> Runs {
        Runs(vec![(0, len)])
    }

    /// Takes the first run of `count` free entries (first fit); returns its
    /// start.
    pub(super) fn take(&mut self, count: u32) -> Option<u32> {
        let run = self.0.iter().position(|&(_, len)| len >= count)?;
        let start = self.0[run].0;
        self.0[run] = (start + count, self.0[run].1 - count);
        if self.0[run].1 == 0 {
            self.0.remove(run);
        }
        Some(start)
    }

    /// Entries `start..start + count`, from [`take`](Self::take), are free
    /// again; merged with free neighbours on both sides.
    pub(super) fn give_back(&mut self, start: u32, count: u32) {
        let at = self.0.partition_point(|&(run, _)| run < start);
        debug_assert!(at == self.0.len() || start + count <= self.0[at].0);
        debug_assert!(at == 0 || self.0[at - 1].0 + self.0[at - 1].1 <= start);
        let joins_next = self
            .0
            .get(at)
            .is_some_and(|&(next, _)| start + count == next);
        let joins_previous = at > 0 && self.0[at - 1].0 + self.0[at - 1].1 == start;
        match (joins_previous, joins_next) {
            (true, true) => {
                let next = self.0.remove(at);
                self.0[at - 1].1 += count + next.1;
            }
            (true, false) => self.0[at - 1].1 += count,
            (false, true) => self.0[at] = (start, count + self.0[at].1),
            (false, false) => self.0.insert(at, (start, count)),
        }
    }
}

impl Driver {
    /// Reserves an entry of the direct descriptor table for an accept;
    /// false when the table is full or there is none.
    pub(crate) fn reserve_direct(&mut self) -> bool {
        let registry = &mut self.registry;
        let free = registry.direct_in_use < registry.direct_fds;
        if free {
            registry.direct_in_use += 1;
        }
        free
    }

    /// An entry reserved or taken is free again (its accept failed, or its
    /// descriptor is being closed: a direct close completes inline, before
    /// any SQE pushed after it runs).
    pub(crate) fn release_direct(&mut self) {
        let registry = &mut self.registry;
        debug_assert!(registry.direct_in_use > 0);
        registry.direct_in_use = registry.direct_in_use.saturating_sub(1);
    }

    /// A buffer group id not in use on this ring.
    ///
    /// # Errors
    ///
    /// `OutOfMemory` when all 65,536 ids are in use.
    pub(crate) fn take_buf_group(&mut self) -> io::Result<u16> {
        let registry = &mut self.registry;
        if let Some(bgid) = registry.buf_groups_free.pop() {
            return Ok(bgid);
        }
        let bgid = u16::try_from(registry.buf_groups_issued).map_err(|_| {
            io::Error::new(
                io::ErrorKind::OutOfMemory,
                "all 65,536 buffer group ids of this ring are in use",
            )
        })?;
        registry.buf_groups_issued += 1;
        Ok(bgid)
    }

    /// A group id from [`take_buf_group`](Self::take_buf_group) is free
    /// again (its ring was unregistered, or never registered).
    pub(crate) fn give_back_buf_group(&mut self, bgid: u16) {
        debug_assert!(!self.registry.buf_groups_free.contains(&bgid));
        self.registry.buf_groups_free.push(bgid);
    }

    /// Registers a provided-buffer ring as group `bgid`.
    ///
    /// # Safety
    ///
    /// `ring_addr` is a page-aligned array of `entries` `io_uring_buf`
    /// entries that stays valid until [`unregister_buf_ring`](Self::unregister_buf_ring)
    /// or until the ring closes.
    pub(crate) unsafe fn register_buf_ring(
        &mut self,
        ring_addr: u64,
        entries: u16,
        bgid: u16,
    ) -> io::Result<()> {
        // SAFETY: forwarded from the caller.
        unsafe {
            self.ring
                .submitter()
                .register_buf_ring_with_flags(ring_addr, entries, bgid, 0)
        }
    }

    /// Unregisters buffer group `bgid`; the kernel no longer touches its ring.
    pub(crate) fn unregister_buf_ring(&mut self, bgid: u16) -> io::Result<()> {
        self.ring.submitter().unregister_buf_ring(bgid)
    }

    /// Registers `bufs` as fixed buffers in consecutive entries of the
    /// ring's buffer table (a sparse table, registered on first use);
    /// returns the first entry's index.
    ///
    /// # Errors
    ///
    /// `OutOfMemory` when the table has no run of free entries that long;
    /// as `io_uring_register(2)` otherwise (`ENOMEM` past `RLIMIT_MEMLOCK`).
    ///
    /// # Safety
    ///
    /// The memory `bufs` describe stays valid until
    /// [`unregister_fixed_bufs`](Self::unregister_fixed_bufs) or until the
    /// ring closes.
    pub(crate) unsafe fn register_fixed_bufs(&mut self, bufs: &[libc::iovec]) -> io::Result<u32> {
        let count = u32::try_from(bufs.len()).unwrap_or(u32::MAX);
        if self.registry.fixed.is_none() {
            self.ring.submitter().register_buffers_sparse(FIXED_TABLE)?;
            self.registry.fixed = Some(Runs::new(FIXED_TABLE));
        }
        let runs = self.registry.fixed.as_mut().expect("registered above");
        let Some(start) = runs.take(count) else {
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                format!(
                    "no {count} free entries in the ring's table of {FIXED_TABLE} fixed buffers"
                ),
            ));
        };
        // SAFETY: forwarded from the caller; the entries are free.
        let registered = unsafe {
            self.ring
                .submitter()
                .register_buffers_update(start, bufs, None)
        };
        if let Err(error) = registered {
            runs.give_back(start, count);
            return Err(error);
        }
        Ok(start)
    }

    /// Empties entries `start..start + count` of the buffer table, taken by
    /// [`register_fixed_bufs`](Self::register_fixed_bufs).
    pub(crate) fn unregister_fixed_bufs(&mut self, start: u32, count: u32) -> io::Result<()> {
        let empty = vec![
            libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            };
            count as usize
        ];
        // SAFETY: empty entries point at no memory.
        unsafe {
            self.ring
                .submitter()
                .register_buffers_update(start, &empty, None)?
        };
        if let Some(runs) = &mut self.registry.fixed {
            runs.give_back(start, count);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Runs;

    #[test]
    fn runs_are_taken_first_fit_and_fragment() {
        let mut runs = Runs::new(16);
        assert_eq!(runs.take(4), Some(0));
        assert_eq!(runs.take(4), Some(4));
        assert_eq!(runs.take(4), Some(8));
        // Free the middle: two holes of 4 that are not neighbours.
        runs.give_back(4, 4);
        assert_eq!(runs, Runs(vec![(4, 4), (12, 4)]));
        assert_eq!(runs.take(5), None, "no run of 5 although 8 are free");
        assert_eq!(runs.take(3), Some(4), "first fit");
        assert_eq!(runs, Runs(vec![(7, 1), (12, 4)]));
        assert_eq!(runs.take(4), Some(12));
        assert_eq!(runs.take(1), Some(7));
        assert_eq!(runs, Runs(Vec::new()));
        assert_eq!(runs.take(1), None);
    }

    #[test]
    fn runs_given_back_merge_with_both_neighbours() {
        let mut runs = Runs::new(12);
        let starts: Vec<u32> = (0..4).map(|_| runs.take(3).unwrap()).collect();
        assert_eq!(starts, [0, 3, 6, 9]);
        runs.give_back(0, 3);
        runs.give_back(6, 3);
        assert_eq!(runs, Runs(vec![(0, 3), (6, 3)]));
        // Joins the run before and the run after into one.
        runs.give_back(3, 3);
        assert_eq!(runs, Runs(vec![(0, 9)]));
        // Joins the run before only.
        runs.give_back(9, 3);
        assert_eq!(runs, Runs(vec![(0, 12)]));
        assert_eq!(runs.take(12), Some(0));
        // Out of order: the later run first, then the earlier joins it.
        runs.give_back(6, 6);
        runs.give_back(0, 6);
        assert_eq!(runs, Runs::new(12));
    }
}
