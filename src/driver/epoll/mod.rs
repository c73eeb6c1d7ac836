//! The epoll backend's driver: one epoll instance per core, the readiness
//! of every descriptor an operation waited on, the doorbell, and the
//! results of file work run on the blocking pool.
//!
//! Where the ring completes an operation, this driver only says when to
//! try it again: an operation makes its system call itself (its
//! readiness path, beside its SQE in `op/`), and when the call says
//! `EAGAIN` it waits here for its descriptor's readiness ([`Interest`]),
//! woken as a token or a waker, as the ring's slots do (`wake.rs`).
//!
//! # Readiness
//!
//! A descriptor is added to the epoll set at its first wait, for reads,
//! writes and hang-ups at once, edge-triggered (`EPOLLET`), and stays
//! there until it is closed ([`Reactor::forget`], before the close): one
//! `epoll_ctl` per descriptor, none per wait. Its entry keeps the
//! readiness the last events announced and nobody has used up yet: an
//! operation that got `EAGAIN` (or a short transfer on a stream, which
//! means the same, as tokio takes it) clears its direction, and the next
//! operation in that direction waits without making a call that would say
//! `EAGAIN` again; an event sets it back and wakes the waiters of its
//! direction (a hang-up or an error wakes both). Waiters are woken once
//! and removed; one that polls again while it waits keeps its one entry
//! (its [`Ticket`]). A descriptor epoll refuses (`EPERM`: a regular file)
//! is remembered as such, and its operations run on the blocking pool.
//!
//! # Blocking work
//!
//! File and path operations run on the process's blocking pool, each with
//! a [`Blocking`] cell its result comes back in. A future dropped while
//! its job runs gives its state here ([`Reactor::orphan`]); the state is
//! handed its late result (an opened descriptor is closed) and dropped
//! once the job is done, after the driver is released, as the ring's
//! abandoned slots are. The runtime's shutdown waits for them.

mod blocking;
mod table;

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::task::Waker;
use std::time::Duration;

pub(crate) use blocking::Blocking;
use table::{Entry, Polled};

use super::wake::{hand_on, Tokens, Waiter, Wake};
use super::{Abandoned, Completion, Stats, Wait};
use crate::sys::epoll::Epoll;

/// The data of the doorbell's events (a descriptor's carry its number and
/// its entry's generation, never all ones).
const DOORBELL: u64 = u64::MAX;

/// Events read per wait.
const EVENTS_PER_WAIT: usize = 256;

/// A direction an operation waits on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Interest(u8);

impl Interest {
    /// Readable (or hung up, or failed).
    pub(crate) const READ: Interest = Interest(1);
    /// Writable (or hung up, or failed).
    pub(crate) const WRITE: Interest = Interest(2);

    /// The directions an epoll event closes for good: a hang-up of the
    /// peer's side (`EPOLLRDHUP`) the reads, a hang-up or an error both.
    /// No later edge announces that state again, so from then on the
    /// direction is never taken as drained: every call is made (and says
    /// end of stream, or the error).
    fn closed_by(events: u32) -> u8 {
        if events & (libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0 {
            Interest::READ.0 | Interest::WRITE.0
        } else if events & libc::EPOLLRDHUP as u32 != 0 {
            Interest::READ.0
        } else {
            0
        }
    }

    /// The directions an epoll event announces.
    fn of_event(events: u32) -> u8 {
        let both = (libc::EPOLLHUP | libc::EPOLLERR) as u32;
        let read = (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLPRI) as u32 | both;
        let write = libc::EPOLLOUT as u32 | both;
        let mut bits = 0;
        if events & read != 0 {
            bits |= Interest::READ.0;
        }
        if events & write != 0 {
            bits |= Interest::WRITE.0;
        }
        bits
    }
}

/// Where an operation's waiter sits in its descriptor's entry, so that
/// polling again updates that waiter instead of adding one. Kept by the
/// operation; `Default` is "not waiting".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Ticket(u64);

/// One core's epoll driver (see the module docs).
pub(crate) struct Reactor {
    epoll: Epoll,
    events: Vec<libc::epoll_event>,
    /// The eventfd other threads write to end a wait.
    doorbell: RawFd,
    /// The entries of the descriptors waited on, by descriptor number
    /// (dense, like the process's table): bounded by the highest
    /// descriptor waited on.
    table: Vec<Entry>,
    /// The last ticket handed out.
    tickets: u64,
    /// Wakers (not tokens) of waiters woken, woken after the driver is
    /// released; at most one per waiter.
    wakers: Vec<Waker>,
    /// States of futures dropped while their job ran on the pool, with
    /// the job's cell; at most one per such job.
    orphans: Vec<(Arc<Blocking>, Box<dyn Abandoned>)>,
    /// Orphans whose job is done, dropped after the driver is released.
    graveyard: Vec<Box<dyn Abandoned>>,
    /// Set when the shutdown deadline passed with jobs still running.
    leaked: bool,
    stats: Stats,
}

impl Reactor {
    /// A new epoll instance, with `doorbell` (an eventfd that outlives the
    /// driver) in its set.
    pub(crate) fn new(doorbell: RawFd) -> io::Result<Reactor> {
        let epoll = Epoll::new()?;
        epoll.add(doorbell, libc::EPOLLIN as u32, DOORBELL)?;
        Ok(Reactor {
            epoll,
            events: Vec::with_capacity(EVENTS_PER_WAIT),
            doorbell,
            table: Vec::new(),
            tickets: 0,
            wakers: Vec::new(),
            orphans: Vec::new(),
            graveyard: Vec::new(),
            leaked: false,
            stats: Stats::default(),
        })
    }

    fn entry(&self, fd: RawFd) -> Option<&Entry> {
        self.table.get(usize::try_from(fd).ok()?)
    }

    fn entry_mut(&mut self, fd: RawFd) -> &mut Entry {
        let index = usize::try_from(fd).expect("a descriptor is not negative");
        if index >= self.table.len() {
            self.table.resize_with(index + 1, Entry::default);
        }
        &mut self.table[index]
    }

    /// Whether a call in direction `interest` on `fd` may find work: false
    /// only when the last one found none and no event came since.
    #[inline]
    pub(crate) fn may_be_ready(&self, fd: RawFd, interest: Interest) -> bool {
        self.entry(fd)
            .is_none_or(|entry| entry.may_be_ready(interest))
    }

    /// Whether epoll refused `fd` (a regular file): its operations run on
    /// the blocking pool.
    #[inline]
    pub(crate) fn refused(&self, fd: RawFd) -> bool {
        self.entry(fd)
            .is_some_and(|entry| entry.polled == Polled::Refused)
    }

    /// Notes that a call in direction `interest` on `fd` used up its
    /// readiness (a short transfer on a stream): the next call waits for
    /// an event first. Nothing for a descriptor not in the set (the next
    /// call is made, and its `EAGAIN` adds it).
    #[inline]
    pub(crate) fn drained(&mut self, fd: RawFd, interest: Interest) {
        if let Some(entry) = self.entry(fd) {
            if entry.polled == Polled::Added {
                self.entry_mut(fd).clear(interest);
            }
        }
    }

    /// Waits for `interest` on `fd`, whose call said `EAGAIN` (or which
    /// [`may_be_ready`](Self::may_be_ready) said is not): adds `fd` to the
    /// set at its first wait, and stores the waiter under a new `ticket`
    /// (in place of the one `ticket` held, if still there).
    ///
    /// # Errors
    ///
    /// What `epoll_ctl` said when it refused `fd`: `EPERM` for a regular
    /// file (remembered: see [`refused`](Self::refused)).
    pub(crate) fn wait<T: Tokens + ?Sized>(
        &mut self,
        fd: RawFd,
        interest: Interest,
        wake: Wake<'_, T>,
        ticket: &mut Ticket,
    ) -> io::Result<()> {
        let entry = self.entry_mut(fd);
        match entry.polled {
            Polled::Added => {}
            Polled::Refused => return Err(io::Error::from_raw_os_error(libc::EPERM)),
            Polled::No => {
                let generation = entry.generation;
                let events =
                    (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
                let data = u64::from(generation) << 32 | fd as u32 as u64;
                if let Err(error) = self.epoll.add(fd, events, data) {
                    if error.raw_os_error() == Some(libc::EPERM) {
                        self.entry_mut(fd).polled = Polled::Refused;
                    }
                    return Err(error);
                }
                self.entry_mut(fd).polled = Polled::Added;
            }
        }
        self.cancel(fd, ticket);
        self.tickets += 1;
        *ticket = Ticket(self.tickets);
        let entry = self.entry_mut(fd);
        entry.clear(interest);
        entry.push(*ticket, interest, wake.waiter());
        Ok(())
    }

    /// Removes the waiter under `ticket` (an operation dropped while it
    /// waits, or done waiting), if it is still there.
    #[inline]
    pub(crate) fn cancel(&mut self, fd: RawFd, ticket: &mut Ticket) {
        if *ticket != Ticket::default() {
            if let Some(index) = usize::try_from(fd).ok().filter(|&i| i < self.table.len()) {
                self.table[index].remove(*ticket);
            }
            *ticket = Ticket::default();
        }
    }

    /// The events `fd` has seen: how many (a sequence that wraps) and the
    /// last one's, as `poll(2)` bits. Readiness streams count on it.
    pub(crate) fn events_seen(&self, fd: RawFd) -> (u32, u32) {
        self.entry(fd)
            .map_or((0, 0), |entry| (entry.sequence, entry.last_events))
    }

    /// Takes `fd` out of the set before it is closed: its entry is reset
    /// (a new generation, so no event of the old one is read as the new
    /// one's).
    pub(crate) fn forget(&mut self, fd: RawFd) {
        let Some(entry) = usize::try_from(fd)
            .ok()
            .and_then(|index| self.table.get_mut(index))
        else {
            return;
        };
        debug_assert!(entry.is_unwaited(), "a descriptor closed with waiters");
        if entry.polled == Polled::Added {
            // It fails only for a descriptor closed already, which the
            // kernel took out of the set itself.
            let _ = self.epoll.delete(fd);
        }
        entry.reset();
    }

    /// Counts an operation started (its first call made or its job sent).
    #[inline]
    pub(crate) fn started(&mut self) {
        self.stats.submitted += 1;
    }

    /// Counts an operation whose future took its result.
    #[inline]
    pub(crate) fn finished(&mut self) {
        self.stats.completed += 1;
    }

    /// Counts an operation whose future was dropped before its result
    /// (one that waited for readiness: nothing of it is left).
    #[inline]
    pub(crate) fn dropped(&mut self) {
        self.stats.cancelled += 1;
    }

    /// Counts a call made again after `EINTR`.
    #[inline]
    pub(crate) fn note_retry(&mut self) {
        self.stats.retries += 1;
    }

    /// Keeps the state of a future dropped while its job runs until the
    /// job is done; `waker` (the core's) is woken then, so the state goes
    /// without waiting for other work to end a park.
    pub(crate) fn orphan(&mut self, job: Arc<Blocking>, state: Box<dyn Abandoned>, waker: &Waker) {
        self.stats.cancelled += 1;
        job.set_waker(waker);
        self.orphans.push((job, state));
    }

    /// Waits for events as `wait` says (bounded by the timeout), hands the
    /// tokens of the waiters woken to `ready` and keeps their other wakers
    /// for [`take_ready`](Self::take_ready); then hands the orphans whose
    /// job is done their result.
    pub(crate) fn turn(&mut self, wait: Wait, ready: &mut impl FnMut(u32)) {
        let timeout = match wait {
            Wait::No => Some(Duration::ZERO),
            Wait::For(timeout) => timeout,
        };
        self.stats.enters += 1;
        if let Err(error) = self.epoll.wait(&mut self.events, timeout) {
            panic!("epoll_wait failed on a working epoll instance: {error}");
        }
        let mut events = std::mem::take(&mut self.events);
        for event in &events {
            let (data, bits) = (event.u64, event.events);
            if data == DOORBELL {
                self.stats.eventfd_wakes += 1;
                drain_doorbell(self.doorbell);
                continue;
            }
            self.stats.cqes += 1;
            let (fd, generation) = (data as u32 as RawFd, (data >> 32) as u32);
            let entry = self.entry_mut(fd);
            if entry.polled != Polled::Added || entry.generation != generation {
                self.stats.stale_completions += 1;
                continue;
            }
            let (directions, closed) = (Interest::of_event(bits), Interest::closed_by(bits));
            let mut woken = |waiter| hand_on(Some(waiter), ready, &mut self.wakers);
            self.table[fd as usize].fire(directions, closed, poll_bits(bits), &mut woken);
        }
        events.clear();
        self.events = events;
        if !self.orphans.is_empty() {
            self.bury_orphans();
        }
    }

    /// Moves the orphans whose job is done to the graveyard, each told its
    /// result first.
    fn bury_orphans(&mut self) {
        let mut index = 0;
        while index < self.orphans.len() {
            let Some(result) = self.orphans[index].0.result() else {
                index += 1;
                continue;
            };
            let (_, mut state) = self.orphans.swap_remove(index);
            state.late_completion(Completion { result, flags: 0 });
            self.graveyard.push(state);
        }
    }

    /// Hands out the wakers of waiters woken and the orphans done, to be
    /// woken and dropped once the driver is released.
    pub(crate) fn take_ready(
        &mut self,
        wakers: &mut Vec<Waker>,
        graveyard: &mut Vec<Box<dyn Abandoned>>,
    ) {
        wakers.append(&mut self.wakers);
        graveyard.append(&mut self.graveyard);
    }

    /// Whether no job of a dropped future still runs.
    pub(crate) fn is_idle(&self) -> bool {
        self.orphans.is_empty() && self.graveyard.is_empty()
    }

    /// At the shutdown deadline: the states of jobs still running are
    /// leaked (the pool may still write into their buffers), counted as
    /// `abandoned`.
    pub(crate) fn leak_in_flight(&mut self) {
        for (_, state) in self.orphans.drain(..) {
            self.stats.cancelled -= 1;
            self.stats.abandoned += 1;
            std::mem::forget(state);
        }
        self.leaked = true;
    }

    /// Whether the shutdown leaked states.
    pub(crate) fn leaked(&self) -> bool {
        self.leaked
    }

    /// The counters: `enters` are waits, `cqes` descriptor events,
    /// `eventfd_wakes` doorbell events; `in_flight` (and `slots_in_use`)
    /// operations started and not yet finished or dropped.
    pub(crate) fn stats(&self) -> Stats {
        let in_flight = self.stats.submitted
            - self.stats.completed
            - self.stats.cancelled
            - self.stats.abandoned;
        Stats {
            in_flight,
            slots_in_use: in_flight + self.orphans.len() as u64,
            ..self.stats
        }
    }
}

/// Empties the doorbell eventfd (level-triggered in the set, so it must
/// be read to stop reporting).
fn drain_doorbell(fd: RawFd) {
    let mut count = 0u64;
    // SAFETY: `count` is 8 writable bytes; the eventfd is non-blocking, so
    // an empty one says `EAGAIN`, which is ignored with any other error
    // (the next wait reports it again, or it was a spurious event).
    let _ = unsafe { libc::read(fd, (&mut count as *mut u64).cast(), 8) };
}

/// An epoll event's bits as the `poll(2)` bits a ring's `POLL_ADD` would
/// post (the two agree on Linux for these).
fn poll_bits(events: u32) -> u32 {
    events
        & (libc::EPOLLIN
            | libc::EPOLLOUT
            | libc::EPOLLRDHUP
            | libc::EPOLLHUP
            | libc::EPOLLERR
            | libc::EPOLLPRI) as u32
}

#[cfg(test)]
mod tests;
