//! One descriptor's entry: whether it is in the epoll set, the readiness
//! not used up yet, and the operations waiting on it.

use super::{Interest, Ticket, Waiter};

/// Whether a descriptor is in the epoll set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum Polled {
    /// Not yet (no operation waited on it since it was opened).
    #[default]
    No,
    /// Added, edge-triggered, for both directions.
    Added,
    /// epoll refused it (a regular file): its operations run on the pool.
    Refused,
}

/// An operation waiting on the descriptor.
pub(super) struct Waiting {
    pub(super) ticket: Ticket,
    /// The directions it waits for (`Interest` bits).
    pub(super) interest: u8,
    pub(super) waiter: Waiter,
}

/// See the module docs.
#[derive(Default)]
pub(super) struct Entry {
    pub(super) polled: Polled,
    /// Bumped each time the descriptor is forgotten (closed), and carried
    /// in its events' data, so an event of an earlier descriptor with the
    /// same number is told apart.
    pub(super) generation: u32,
    /// Directions not known to be drained (`Interest` bits): set by
    /// events, cleared by a call that found nothing to do. A new entry is
    /// unknown, so ready: the first call is made.
    not_drained: Option<u8>,
    /// Directions an event closed for good (see `Interest::closed_by`):
    /// never drained again.
    closed: u8,
    /// Events seen, wrapping: a readiness stream yields one item for each
    /// change of it.
    pub(super) sequence: u32,
    /// The last event's `poll(2)` bits.
    pub(super) last_events: u32,
    /// The operations waiting: one entry per operation, so bounded by the
    /// operations in flight on the descriptor (usually one per direction).
    waiters: Vec<Waiting>,
}

impl Entry {
    /// Whether a call in direction `interest` may find work.
    pub(super) fn may_be_ready(&self, interest: Interest) -> bool {
        self.not_drained.is_none_or(|bits| bits & interest.0 != 0)
    }

    /// Notes that direction `interest` is drained.
    pub(super) fn clear(&mut self, interest: Interest) {
        let bits = self
            .not_drained
            .unwrap_or(Interest::READ.0 | Interest::WRITE.0);
        self.not_drained = Some(bits & !(interest.0 & !self.closed));
    }

    pub(super) fn push(&mut self, ticket: Ticket, interest: Interest, waiter: Waiter) {
        self.waiters.push(Waiting {
            ticket,
            interest: interest.0,
            waiter,
        });
    }

    pub(super) fn remove(&mut self, ticket: Ticket) {
        if let Some(index) = self.waiters.iter().position(|w| w.ticket == ticket) {
            self.waiters.swap_remove(index);
        }
    }

    /// Whether no operation waits on the descriptor.
    pub(super) fn is_unwaited(&self) -> bool {
        self.waiters.is_empty()
    }

    /// An event for `directions` (`Interest` bits; `closed` of them for
    /// good) with `poll(2)` bits `events`: the directions are ready
    /// again, and their waiters are handed to `woken` and removed.
    pub(super) fn fire(
        &mut self,
        directions: u8,
        closed: u8,
        events: u32,
        woken: &mut impl FnMut(Waiter),
    ) {
        self.closed |= closed;
        self.not_drained = Some(self.not_drained.unwrap_or(0) | directions);
        self.sequence = self.sequence.wrapping_add(1);
        self.last_events = events;
        let mut index = 0;
        while index < self.waiters.len() {
            if self.waiters[index].interest & directions != 0 {
                woken(self.waiters.swap_remove(index).waiter);
            } else {
                index += 1;
            }
        }
    }

    /// Back to a descriptor never waited on, in a new generation.
    pub(super) fn reset(&mut self) {
        *self = Entry {
            generation: self.generation.wrapping_add(1),
            ..Entry::default()
        };
    }
}
