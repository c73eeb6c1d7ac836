//! The in-flight slot table: one slot per operation the kernel may still be
//! working on, and the ids that name them (what a slot goes through is in
//! `lifecycle.rs`).
//!
//! The SQE's `user_data`
//! carries the slot index and a generation, so a CQE that arrives for a slot
//! that has since been reused is detected as stale and never delivered to the
//! wrong future. Each slot keeps its own generation, bumped when it is
//! freed and never 0, so no id is 0 and `Option<SlotId>` is one word with
//! no undefined bytes (an operation's state is built in place, where a
//! tag beside an uninitialised payload was assembled on the stack and
//! copied, a store-forwarding stall on every operation); indices stay below 2^30, so no id equals a reserved tag, bit 31
//! can mark the head SQE of a linked pair and bit 30 the cancellation of a
//! slot's SQE.

use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU32, Ordering};

use super::lifecycle::Lifecycle;
use super::wake::{Tokens, Waiter, Wake};

/// `user_data` of the cancellation of the doorbell read; its CQE carries
/// nothing to deliver. (A slot's cancellation carries the slot's id, see
/// [`SlotId::cancel`].)
pub(crate) const CANCEL_TAG: u64 = u64::MAX;
/// `user_data` of the doorbell read that ends a park on a cross-thread wake.
pub(crate) const DOORBELL_TAG: u64 = u64::MAX - 1;
/// `user_data` of the CQE another core's `MSG_RING` posts to end a park.
pub(crate) const MSG_WAKE_TAG: u64 = u64::MAX - 2;
/// `user_data` of a `MSG_RING` this core sent; its CQE comes only when the
/// message could not be posted.
pub(crate) const MSG_SENT_TAG: u64 = u64::MAX - 3;

/// Set in the `user_data` of the first SQE of a linked pair (see
/// [`SlotId::head`]); slot indices stay below it.
const HEAD_BIT: u64 = 1 << 31;

/// Set in the `user_data` of an `ASYNC_CANCEL` aimed at a slot's SQE (see
/// [`SlotId::cancel`]); slot indices stay below it.
const CANCEL_BIT: u64 = 1 << 30;

/// The most slots a table may hold: indices below `CANCEL_BIT - 4` keep
/// ids, head and cancel marks included, clear of the reserved tags (whose
/// index halves are `u32::MAX` down to `u32::MAX - 3`).
pub(crate) const SLOTS_LIMIT: usize = CANCEL_BIT as usize - 4;

/// Names one slot: its index in the table and the generation it was claimed
/// with, packed as the SQE `user_data` (generation high, index low). The id
/// of a linked pair's head SQE also carries [`HEAD_BIT`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct SlotId(NonZeroU64);

impl SlotId {
    #[inline]
    fn new(index: u32, generation: u32) -> SlotId {
        debug_assert_ne!(generation, 0, "generations skip 0");
        SlotId::from_bits((u64::from(generation) << 32) | u64::from(index))
    }

    /// An id from its bits, never 0 (generations skip 0, and the marks
    /// only add bits).
    #[inline]
    fn from_bits(bits: u64) -> SlotId {
        match NonZeroU64::new(bits) {
            Some(bits) => SlotId(bits),
            None => unreachable!("a slot id is never 0"),
        }
    }

    #[inline]
    fn bits(self) -> u64 {
        self.0.get()
    }

    #[inline]
    fn index(self) -> u32 {
        (self.bits() & !(HEAD_BIT | CANCEL_BIT)) as u32
    }

    /// The id of the `ASYNC_CANCEL` SQE aimed at this SQE, so its CQE
    /// names what it was meant to cancel (and a miss can be retried).
    #[inline]
    pub(crate) fn cancel(self) -> SlotId {
        SlotId::from_bits(self.bits() | CANCEL_BIT)
    }

    /// Whether this names a cancellation; [`cancelled`](Self::cancelled)
    /// then gives its target.
    #[inline]
    pub(crate) fn is_cancel(self) -> bool {
        self.bits() & CANCEL_BIT != 0
    }

    /// The SQE a cancellation was aimed at.
    #[inline]
    pub(crate) fn cancelled(self) -> SlotId {
        SlotId::from_bits(self.bits() & !CANCEL_BIT)
    }

    /// The id of the head SQE of a linked pair that completes in this slot:
    /// the same slot, with its CQEs told apart from the second SQE's.
    #[inline]
    pub(crate) fn head(self) -> SlotId {
        SlotId::from_bits(self.bits() | HEAD_BIT)
    }

    /// Whether this names a linked pair's head SQE.
    #[inline]
    pub(crate) fn is_head(self) -> bool {
        self.bits() & HEAD_BIT != 0
    }

    /// The slot's own id, without the head mark.
    #[inline]
    pub(crate) fn slot(self) -> SlotId {
        SlotId::from_bits(self.bits() & !HEAD_BIT)
    }

    #[inline]
    fn generation(self) -> u32 {
        (self.bits() >> 32) as u32
    }

    /// The SQE `user_data` naming this slot. Never equals a reserved tag,
    /// because indices stay below `HEAD_BIT`.
    #[inline]
    pub(crate) fn user_data(self) -> u64 {
        self.bits()
    }

    /// A CQE's `user_data` as a slot id; `None` for 0, which names no
    /// slot. Reserved tags are handled before this is called.
    #[inline]
    pub(crate) fn from_user_data(user_data: u64) -> Option<SlotId> {
        NonZeroU64::new(user_data).map(SlotId)
    }
}

impl std::fmt::Debug for SlotId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotId")
            .field("index", &self.index())
            .field("generation", &self.generation())
            .finish()
    }
}

struct Slot {
    /// The generation of the current claim, or of the next one while free.
    generation: u32,
    /// The next free slot while this one is free.
    next_free: u32,
    /// `Some` while claimed.
    lifecycle: Option<Lifecycle>,
}

/// The generation after `generation`, skipping 0 (see the module docs).
#[inline]
fn next_generation(generation: u32) -> u32 {
    match generation.wrapping_add(1) {
        0 => 1,
        next => next,
    }
}

/// The end of the free list.
const NO_SLOT: u32 = u32::MAX;

/// A fixed-capacity table of slots with generations: a vector that grows up
/// to the capacity and a free list threaded through it, so claiming and
/// freeing are a few instructions on the hot path.
pub(crate) struct SlotTable {
    slots: Vec<Slot>,
    free_head: u32,
    len: usize,
    capacity: usize,
    /// The generation new slots start at.
    first_generation: u32,
}

impl SlotTable {
    /// A table that holds at most `capacity` slots.
    pub(crate) fn new(capacity: usize) -> SlotTable {
        assert!((1..=SLOTS_LIMIT).contains(&capacity));
        // Each table starts its generations elsewhere, so an id carried
        // from one runtime into another (a future moved between them) is
        // stale there rather than naming an unrelated slot.
        static TABLES: AtomicU32 = AtomicU32::new(0);
        let first_generation = next_generation(
            TABLES
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_mul(0x9e37_79b9),
        );
        SlotTable {
            slots: Vec::with_capacity(capacity.min(4096)),
            free_head: NO_SLOT,
            len: 0,
            capacity,
            first_generation,
        }
    }

    /// Slots in use.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether every slot is in use.
    #[inline]
    pub(crate) fn is_full(&self) -> bool {
        self.len >= self.capacity
    }

    /// Claims a slot for a single-shot operation awaited by `waker`. Each
    /// case writes its lifecycle straight into the slot: an enum assembled
    /// on the stack and then copied in costs a store-forwarding stall on the
    /// hottest path. The caller checks [`is_full`](Self::is_full) first.
    #[inline]
    pub(crate) fn claim_submitted<T: Tokens + ?Sized>(&mut self, wake: Wake<'_, T>) -> SlotId {
        let (id, lifecycle) = self.claim_vacant();
        // The old value is `None` and owns nothing: skip its drop glue.
        let vacant = match wake.token() {
            Some(token) => lifecycle.replace(Lifecycle::Submitted(Some(Waiter::Token(token)))),
            None => {
                let waiter = Waiter::Waker(wake.waker.clone());
                lifecycle.replace(Lifecycle::Submitted(Some(waiter)))
            }
        };
        std::mem::forget(vacant);
        id
    }

    /// Claims a slot in `lifecycle`. The caller checks [`is_full`](Self::is_full) first.
    #[inline]
    pub(crate) fn claim(&mut self, lifecycle: Lifecycle) -> SlotId {
        let (id, vacant) = self.claim_vacant();
        let vacant = vacant.replace(lifecycle);
        std::mem::forget(vacant);
        id
    }

    /// Claims a slot and hands out its lifecycle, `None`, for the caller
    /// to set.
    #[inline]
    fn claim_vacant(&mut self) -> (SlotId, &mut Option<Lifecycle>) {
        debug_assert!(!self.is_full(), "slot table over capacity");
        self.len += 1;
        let index = self.free_head;
        if index == NO_SLOT {
            return self.grow();
        }
        let slot = &mut self.slots[index as usize];
        debug_assert!(slot.lifecycle.is_none());
        self.free_head = slot.next_free;
        let id = SlotId::new(index, slot.generation);
        (id, &mut slot.lifecycle)
    }

    /// Adds a slot at the end of the table (the free list is empty).
    #[cold]
    fn grow(&mut self) -> (SlotId, &mut Option<Lifecycle>) {
        self.slots.push(Slot {
            generation: self.first_generation,
            next_free: NO_SLOT,
            lifecycle: None,
        });
        let id = SlotId::new((self.slots.len() - 1) as u32, self.first_generation);
        let slot = self.slots.last_mut().expect("just pushed");
        (id, &mut slot.lifecycle)
    }

    /// The lifecycle of a live slot, or `None` for a stale id.
    #[inline]
    pub(crate) fn get_mut(&mut self, id: SlotId) -> Option<&mut Lifecycle> {
        match self.slots.get_mut(id.index() as usize) {
            Some(slot) if slot.generation == id.generation() => slot.lifecycle.as_mut(),
            _ => None,
        }
    }

    /// Frees a live slot and returns its lifecycle.
    ///
    /// # Panics
    ///
    /// When `id` is stale: only the owner of an id frees it.
    #[inline]
    pub(crate) fn free(&mut self, id: SlotId) -> Lifecycle {
        let slot = match self.slots.get_mut(id.index() as usize) {
            Some(slot) if slot.generation == id.generation() => slot,
            _ => panic!("freeing a stale slot {id:?}"),
        };
        slot.generation = next_generation(slot.generation);
        slot.next_free = self.free_head;
        self.free_head = id.index();
        self.len -= 1;
        slot.lifecycle.take().expect("a live slot has a lifecycle")
    }

    /// The ids of the slots whose lifecycle matches `keep`.
    pub(crate) fn ids_where(&self, keep: impl Fn(&Lifecycle) -> bool) -> Vec<SlotId> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| slot.lifecycle.as_ref().is_some_and(&keep))
            .map(|(index, slot)| SlotId::new(index as u32, slot.generation))
            .collect()
    }

    /// Empties the table, leaking every state still in it: used at shutdown
    /// past the deadline, when the kernel may still write into that memory.
    pub(crate) fn leak_all(&mut self) -> usize {
        let leaked = self.len;
        for slot in self.slots.drain(..) {
            std::mem::forget(slot.lifecycle);
        }
        self.free_head = NO_SLOT;
        self.len = 0;
        leaked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_round_trips_and_avoids_tags() {
        let mut table = SlotTable::new(4);
        let id = table.claim(Lifecycle::Submitted(None));
        assert_eq!(SlotId::from_user_data(id.user_data()).unwrap(), id);
        assert_ne!(id.user_data(), CANCEL_TAG);
        assert_ne!(id.user_data(), DOORBELL_TAG);
        let head = SlotId::from_user_data(id.head().user_data()).unwrap();
        assert!(head.is_head() && !id.is_head());
        assert_ne!(head, id);
        assert_eq!(head.slot(), id);
        assert!(table.get_mut(head).is_some(), "a head id names its slot");
        let cancel = SlotId::from_user_data(id.head().cancel().user_data()).unwrap();
        assert!(cancel.is_cancel() && !id.is_cancel() && !head.is_cancel());
        assert_eq!(cancel.cancelled(), head);
        assert_eq!(cancel.cancelled().slot(), id);
    }

    #[test]
    fn the_largest_marked_id_stays_clear_of_every_tag() {
        let largest = SlotId::new(SLOTS_LIMIT as u32 - 1, u32::MAX);
        let marked = largest.head().cancel().user_data();
        for tag in [CANCEL_TAG, DOORBELL_TAG, MSG_WAKE_TAG, MSG_SENT_TAG] {
            assert!(marked < tag, "{marked:#x} must stay below {tag:#x}");
        }
    }

    #[test]
    fn reused_index_gets_a_new_generation() {
        let mut table = SlotTable::new(1);
        let first = table.claim(Lifecycle::Submitted(None));
        table.free(first);
        let second = table.claim(Lifecycle::Submitted(None));
        assert_eq!(first.index(), second.index());
        assert_ne!(first.generation(), second.generation());
        assert!(table.get_mut(first).is_none(), "stale id must not resolve");
        assert!(table.get_mut(second).is_some());
    }

    #[test]
    fn an_absent_id_costs_no_word() {
        assert_eq!(std::mem::size_of::<Option<SlotId>>(), 8);
        assert_eq!(SlotId::from_user_data(0), None);
    }

    #[test]
    fn generation_wraps_around() {
        let mut table = SlotTable::new(1);
        table.first_generation = u32::MAX;
        let id = table.claim(Lifecycle::Submitted(None));
        assert_eq!(id.generation(), u32::MAX);
        table.free(id);
        let id = table.claim(Lifecycle::Submitted(None));
        assert_eq!(id.generation(), 1, "0 is skipped");
        assert_ne!(id.user_data(), CANCEL_TAG);
    }

    #[test]
    fn free_list_reuses_slots_and_counts_exactly() {
        let mut table = SlotTable::new(8);
        let ids: Vec<_> = (0..3).map(|_| table.claim(Lifecycle::Detached)).collect();
        assert_eq!(table.len(), 3);
        assert!(matches!(table.free(ids[1]), Lifecycle::Detached));
        assert!(matches!(table.free(ids[0]), Lifecycle::Detached));
        assert_eq!(table.len(), 1);
        // Last freed, first reused; the vector does not grow.
        assert_eq!(table.claim(Lifecycle::Detached).index(), ids[0].index());
        assert_eq!(table.claim(Lifecycle::Detached).index(), ids[1].index());
        assert_eq!(table.claim(Lifecycle::Detached).index(), 3);
        assert_eq!((table.len(), table.slots.len()), (4, 4));
        assert!(table.get_mut(ids[0]).is_none() && table.get_mut(ids[1]).is_none());
        assert_eq!(table.ids_where(|_| true).len(), 4);
        assert_eq!(table.leak_all(), 4);
        assert_eq!(table.len(), 0);
    }

    #[test]
    #[should_panic(expected = "freeing a stale slot")]
    fn freeing_twice_panics() {
        let mut table = SlotTable::new(2);
        let id = table.claim(Lifecycle::Detached);
        table.free(id);
        table.free(id);
    }

    #[test]
    fn capacity_is_enforced() {
        let mut table = SlotTable::new(2);
        table.claim(Lifecycle::Submitted(None));
        assert!(!table.is_full());
        table.claim(Lifecycle::Submitted(None));
        assert!(table.is_full());
        assert_eq!(table.len(), 2);
    }
}
