//! Where a timer sits: filing it into the due list, a slot or the
//! delayed list, the cascade that re-files a reached slot's timers, and the
//! intrusive lists of slab indices that hold them.

use std::task::Waker;
use std::time::{Duration, Instant};

use super::{
    Entry, NextSlot, State, Wheel, DELAYED_LIST, DUE_LIST, HORIZON_TICKS, LEVELS, NIL, SLOTS,
    SLOT_BITS, SLOT_MASK,
};

impl Wheel {
    /// Files the pending entry at `index` by its tick: into the due list if
    /// the tick has passed, else into its slot; counts it as pending.
    pub(super) fn file(&mut self, index: usize) {
        let tick = self.entries[index].tick;
        if tick <= self.elapsed {
            self.link(DUE_LIST, index);
        } else {
            self.place(index);
        }
        self.pending += 1;
        if let Some(earliest) = self.earliest_cache.get() {
            self.earliest_cache.set(Some(earliest.min(tick)));
        }
    }

    /// Files every delayed timer at `now` plus its delay.
    pub(super) fn start_delayed(&mut self, now: Instant) {
        let mut index = std::mem::replace(&mut self.heads[DELAYED_LIST], NIL);
        while index != NIL {
            let Entry { next, tick, .. } = self.entries[index];
            self.entries[index].tick = now
                .checked_add(Duration::from_nanos(tick))
                .map_or(u64::MAX, |deadline| self.tick_ceil(deadline));
            // `file` counts it pending again.
            self.pending -= 1;
            self.file(index);
            index = next;
        }
    }

    /// Takes the pending entry at `index` out of its list; it stays stored.
    pub(super) fn unfile(&mut self, index: usize) {
        self.unlink(index);
        self.pending -= 1;
        // The cached bound stays valid: removing a timer makes no other
        // earlier (see `next_deadline`).
        if self.pending == 0 {
            self.earliest_cache.set(None);
        }
    }

    /// Links the entry at `index`, whose tick is after `elapsed`, into the
    /// slot that holds its tick, or the horizon if the tick is beyond it.
    pub(super) fn place(&mut self, index: usize) {
        let tick = self.entries[index].tick;
        debug_assert!(tick > self.elapsed, "a past tick belongs in the due list");
        let slot_tick = tick.min(self.elapsed.saturating_add(HORIZON_TICKS));
        let level = level_for(self.elapsed, slot_tick);
        let slot = (slot_tick >> (SLOT_BITS * level as u32)) & SLOT_MASK;
        self.link(level * SLOTS + slot as usize, index);
    }

    /// Marks the pending entry at `index`, already out of its list, fired and
    /// hands its waker to `wakers`.
    pub(super) fn fire(&mut self, index: usize, wakers: &mut Vec<Waker>) {
        let entry = &mut self.entries[index];
        entry.list = NIL;
        match std::mem::replace(&mut entry.state, State::Fired) {
            State::Pending { waker } => wakers.push(waker),
            State::Fired => unreachable!("only a pending timer is in a list"),
        }
        self.pending -= 1;
    }

    /// Fires the timers in the due list whose tick is at or before
    /// `now_tick`. Returns how many fired.
    pub(super) fn fire_due(&mut self, now_tick: u64, wakers: &mut Vec<Waker>) -> usize {
        let mut fired = 0;
        let mut index = self.heads[DUE_LIST];
        while index != NIL {
            let next = self.entries[index].next;
            // Only a `now` that went backwards leaves a due timer unfired.
            if self.entries[index].tick <= now_tick {
                self.unlink(index);
                self.fire(index, wakers);
                fired += 1;
            }
            index = next;
        }
        fired
    }

    /// Empties the slot list `list`, which time (`elapsed`) has just reached:
    /// fires the timers whose tick has come and re-files the rest relative to
    /// `elapsed`, which puts them in lower levels or, past the horizon, in a
    /// later top-level slot. Returns how many fired.
    pub(super) fn drain(&mut self, list: usize, wakers: &mut Vec<Waker>) -> usize {
        let mut index = self.heads[list];
        self.heads[list] = NIL;
        self.occupied[list / SLOTS] &= !(1 << (list % SLOTS));
        let mut fired = 0;
        while index != NIL {
            let next = self.entries[index].next;
            if self.entries[index].tick <= self.elapsed {
                self.fire(index, wakers);
                fired += 1;
            } else {
                self.place(index);
            }
            index = next;
        }
        fired
    }

    /// Moves the wheel's time straight to `now_tick`: takes every timer out
    /// of the slots, fires those whose tick has come and re-files the rest.
    /// O(timers + slots); used only when time jumps past the horizon.
    pub(super) fn refile_all(&mut self, now_tick: u64, wakers: &mut Vec<Waker>) -> usize {
        let mut indices = Vec::new();
        for list in 0..DUE_LIST {
            let mut index = std::mem::replace(&mut self.heads[list], NIL);
            while index != NIL {
                indices.push(index);
                index = self.entries[index].next;
            }
        }
        self.occupied = [0; LEVELS];
        self.elapsed = now_tick;
        let mut fired = 0;
        for index in indices {
            if self.entries[index].tick <= now_tick {
                self.fire(index, wakers);
                fired += 1;
            } else {
                self.place(index);
            }
        }
        fired
    }

    /// The first non-empty slot of the lowest non-empty level; it holds the
    /// earliest timers in the wheel (the due list aside).
    pub(super) fn next_slot(&self) -> Option<NextSlot> {
        let level = self.occupied.iter().position(|&bits| bits != 0)?;
        let shift = SLOT_BITS * level as u32;
        let now_slot = ((self.elapsed >> shift) & SLOT_MASK) as u32;
        // Rotating puts the slot `elapsed` is in at bit 0; that slot is always
        // empty, as time entering it would have emptied it.
        let distance = self.occupied[level].rotate_right(now_slot).trailing_zeros();
        debug_assert!(distance > 0, "the slot holding `elapsed` must be empty");
        let slot = (now_slot + distance) as usize % SLOTS;
        // The slot starts at or before the ticks filed in it, so no overflow.
        let start = (self.elapsed >> shift << shift) + (u64::from(distance) << shift);
        Some(NextSlot {
            list: level * SLOTS + slot,
            level,
            start,
        })
    }

    /// The earliest pending tick, or a top-level slot's last tick when the
    /// first slot holds only timers beyond the horizon; see `next_deadline`.
    pub(super) fn earliest_tick(&self) -> Option<u64> {
        if self.heads[DUE_LIST] != NIL {
            // Due timers are all at or before `elapsed`, so before the slots.
            return Some(self.list_min(DUE_LIST, u64::MAX));
        }
        let slot = self.next_slot()?;
        let width = 1_u64 << (SLOT_BITS * slot.level as u32);
        // A timer filed at the horizon has a tick past its slot's end; every
        // timer in later slots is after that end, so the end is a safe bound.
        Some(self.list_min(slot.list, slot.start.saturating_add(width - 1)))
    }

    /// The smallest tick in list `list`, or `bound` if that is smaller.
    pub(super) fn list_min(&self, list: usize, bound: u64) -> u64 {
        let mut earliest = bound;
        let mut index = self.heads[list];
        while index != NIL {
            earliest = earliest.min(self.entries[index].tick);
            index = self.entries[index].next;
        }
        earliest
    }

    /// Pushes the entry at `index` onto the front of list `list`.
    pub(super) fn link(&mut self, list: usize, index: usize) {
        let head = self.heads[list];
        let entry = &mut self.entries[index];
        entry.list = list;
        entry.prev = NIL;
        entry.next = head;
        if head != NIL {
            self.entries[head].prev = index;
        }
        self.heads[list] = index;
        if list < DUE_LIST {
            self.occupied[list / SLOTS] |= 1 << (list % SLOTS);
        }
    }

    /// Unlinks the entry at `index` from the list it is in.
    pub(super) fn unlink(&mut self, index: usize) {
        let Entry {
            list, prev, next, ..
        } = self.entries[index];
        if prev == NIL {
            self.heads[list] = next;
        } else {
            self.entries[prev].next = next;
        }
        if next != NIL {
            self.entries[next].prev = prev;
        }
        if list < DUE_LIST && self.heads[list] == NIL {
            self.occupied[list / SLOTS] &= !(1 << (list % SLOTS));
        }
    }
}

/// The level at which a timer whose (horizon-capped) tick is `slot_tick` is
/// filed when the wheel's time is `elapsed`: the level of the highest bit in
/// which the two differ, so the tick lies in `elapsed`'s span of that level
/// but not in `elapsed`'s slot. Beyond the top level's span it is the top.
pub(super) fn level_for(elapsed: u64, slot_tick: u64) -> usize {
    // Setting the low bits makes the answer 0 for ticks in `elapsed`'s
    // level-0 span, and keeps `leading_zeros` below 64.
    let differing = (elapsed ^ slot_tick) | SLOT_MASK;
    let highest_bit = 63 - differing.leading_zeros();
    ((highest_bit / SLOT_BITS) as usize).min(LEVELS - 1)
}
