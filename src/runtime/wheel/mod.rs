//! The timer wheel: the store of every pending timer on one core.
//!
//! `sleep`, `timeout` and `interval` futures register a deadline and a waker
//! here. The run loop calls [`Wheel::advance`] every tick, which hands back
//! the wakers of the timers that came due, and it parks its io_uring no
//! longer than [`Wheel::next_deadline`]. No timer costs an SQE: the park's own
//! timeout is the only clock the kernel sees. The wheel is plain data used by
//! one thread; it does no I/O and reads no clock, `now` is always passed in.
//!
//! # Why a wheel
//!
//! Most timers are timeouts that are cancelled before they fire, so insert
//! and cancel must be cheap. A hierarchical wheel (as in the Linux kernel and
//! tokio) makes both O(1): a timer is pushed onto, or unlinked from, an
//! intrusive doubly-linked list of slab indices. A heap would pay O(log n) for
//! each and could not unlink in place.
//!
//! # Levels
//!
//! Time is counted in ticks of [`TICK`] (1 ms) since the wheel's origin.
//! There are [`LEVELS`] levels of [`SLOTS`] slots. A slot at level `L` spans
//! `64^L` ticks, so level `L` as a whole spans `64^(L + 1)` ticks and the
//! wheel `2^36` ms (about 795 days). A timer is filed at the lowest level whose
//! current span, counted from `elapsed`, holds its deadline. When time reaches
//! a slot at level `L > 0`, the slot's timers are re-filed relative to the new
//! time and drop to lower levels (the cascade); a timer fires only when the
//! slot it sits in is reached and its own tick has come. Each level keeps a
//! 64-bit occupancy bitmap, so the next non-empty slot is one rotate and one
//! `trailing_zeros`, and the earliest timers are always in the first
//! non-empty slot of the lowest non-empty level.
//!
//! A deadline further than [`HORIZON_TICKS`] ahead (about 783 days) is filed
//! as if it were at the horizon and re-filed, not fired, when that slot is
//! reached; it may be re-filed several times before it fires.
//!
//! # Resolution and the never-early guarantee
//!
//! A deadline is rounded *up* to a tick boundary and `now` is rounded *down*.
//! A timer fires on the first `advance(now)` whose tick is at or past its
//! tick, so it never fires before its deadline and at most one tick (plus the
//! run loop's own delay) after it. A deadline already past when it is
//! registered fires on the next `advance`.
//!
//! # Limits
//!
//! * Resolution: 1 ms. Wheel span before re-filing: [`HORIZON_TICKS`].
//! * Instants before the origin count as the origin. Deadline ticks saturate
//!   at `u64::MAX` (about 584 million years) and such a timer never fires;
//!   `now` saturates one tick lower. Nothing panics on extreme instants.
//! * Entries: one per live timer future, bounded by the caller (each timer
//!   belongs to a future); the wheel itself sets no cap. Keys carry a 64-bit
//!   generation unique in the process (wheels draw theirs in blocks from
//!   one counter), so a stale key is detected for the life of the process,
//!   and so is a key of another wheel: a timer future moved to another
//!   runtime never touches that runtime's timers.
//! * `now` should not go backwards. If it does, nothing fires early; the
//!   earlier `now` is simply ignored by the wheel's time.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Waker;
use std::time::{Duration, Instant};

use slab::Slab;

mod filing;

/// Resolution of the wheel: deadlines are rounded up to a multiple of this.
pub(crate) const TICK: Duration = Duration::from_millis(1);

/// Nanoseconds in one tick, for rounding deadlines and `now`.
const TICK_NANOS: u32 = TICK.subsec_nanos();

/// Ticks in one second.
const TICKS_PER_SEC: u64 = 1_000;

// `instant_at` converts ticks back with `Duration::from_millis`.
const _: () = assert!(
    TICK.as_nanos() == 1_000_000 && TICK_NANOS as u64 * TICKS_PER_SEC == 1_000_000_000,
    "tick conversions assume 1 ms ticks"
);

/// log2 of [`SLOTS`]: how many bits of a tick each level consumes.
const SLOT_BITS: u32 = 6;

/// Slots per level; one bit each in a level's `u64` occupancy bitmap.
const SLOTS: usize = 1 << SLOT_BITS;

/// Mask of a slot number within its level.
const SLOT_MASK: u64 = SLOTS as u64 - 1;

/// Levels of the wheel; the top one has slots of `64^5` ticks (about 12 days).
const LEVELS: usize = 6;

/// How far ahead of `elapsed` a timer is filed (`2^36 - 2^30` ticks, about
/// 783 days). Keeping one top-level slot short of a full `2^36` turn means a
/// top-level slot number never names two different spans at once.
const HORIZON_TICKS: u64 = (1 << (SLOT_BITS * LEVELS as u32)) - (1 << (SLOT_BITS * 5));

/// Index into `heads` of the due list: timers whose tick had already passed
/// (was at or before `elapsed`) when they were filed. The lists before it are
/// the wheel's slots, `level * SLOTS + slot`.
const DUE_LIST: usize = LEVELS * SLOTS;

/// Index into `heads` of the delayed list: timers inserted with a delay
/// ([`Wheel::insert_after`]), waiting for the next `advance` to start
/// counting from its `now`. Their `tick` holds the delay in nanoseconds.
const DELAYED_LIST: usize = DUE_LIST + 1;

/// Number of lists: every slot of every level, the due and delayed lists.
const LISTS: usize = DELAYED_LIST + 1;

/// The highest tick `now` is taken to be. Deadline ticks saturate one higher,
/// so a deadline too far away to count never fires.
const NOW_TICK_MAX: u64 = u64::MAX - 1;

/// End of a list: no entry.
const NIL: usize = usize::MAX;

/// Generations a wheel takes from [`GENERATIONS`] at a time: one atomic
/// operation per this many inserts, and no two wheels share a generation.
const GENERATION_BLOCK: u64 = 1 << 16;

/// The first generation no wheel has taken yet. Process-wide, so a key
/// names one timer of one wheel: a timer future dropped or polled on a
/// runtime other than its own finds its key stale there instead of
/// removing or waiting on that wheel's timer with the same index and
/// generation. 64 bits do not run out in a process's life.
static GENERATIONS: AtomicU64 = AtomicU64::new(0);

/// Names one timer in a [`Wheel`]: a slab index and the generation of the
/// entry that was inserted there, so a key kept after `remove` is detected as
/// stale even when the index is reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimerKey {
    /// Index of the entry in the wheel's slab.
    index: usize,
    /// Generation the entry was given at insert; unique in the process.
    generation: u64,
}

/// Where a timer is in its life.
enum State {
    /// Entered by `insert` and `reset`. The entry is linked into the list
    /// its `list` names (a slot or the due list) and owns the waker to hand
    /// out when it fires.
    Pending {
        /// Woken (handed to `advance`'s caller) when the timer fires.
        waker: Waker,
    },
    /// Entered when `advance` fires the timer; its waker went to the caller.
    /// The entry is in no list and stays until `remove` so that its future
    /// can observe the firing; `reset` makes it pending again.
    Fired,
}

/// One timer.
struct Entry {
    /// Deadline in ticks since the origin, rounded up; in the delayed list,
    /// the delay in nanoseconds.
    tick: u64,
    /// Copied into the key; see [`TimerKey`].
    generation: u64,
    /// The list this entry is linked into; meaningful only while pending.
    list: usize,
    /// Previous entry in `list`, or `NIL`; meaningful only while pending.
    prev: usize,
    /// Next entry in `list`, or `NIL`; meaningful only while pending.
    next: usize,
    /// Pending or fired.
    state: State,
}

/// The first non-empty slot of the lowest non-empty level.
struct NextSlot {
    /// Index of the slot's list in `heads`.
    list: usize,
    /// Level of the slot.
    level: usize,
    /// First tick the slot spans; it is after `elapsed`.
    start: u64,
}

/// A hierarchical timer wheel; see the module note.
pub(crate) struct Wheel {
    /// The instant of tick 0.
    origin: Instant,
    /// The wheel's time in ticks. Every timer with a tick at or before it has
    /// fired or sits in the due list; the slots are laid out relative to it.
    elapsed: u64,
    /// Every timer, pending or fired.
    entries: Slab<Entry>,
    /// Head of each list (see [`DUE_LIST`]), or `NIL` when the list is empty.
    heads: [usize; LISTS],
    /// Bit `s` of `occupied[L]` is set iff slot `s` of level `L` is non-empty.
    occupied: [u64; LEVELS],
    /// Number of pending timers.
    pending: usize,
    /// Generation for the next insert.
    generation_next: u64,
    /// End of the block of generations this wheel took (see
    /// [`GENERATION_BLOCK`]); a new block is taken when `generation_next`
    /// reaches it.
    generation_end: u64,
    /// A lower bound of the earliest pending tick, or `None` when it must be
    /// worked out again (`earliest_tick`). Exact when worked out; removing
    /// the earliest timer leaves it in place as a bound, which `advance`
    /// drops once time reaches it.
    earliest_cache: Cell<Option<u64>>,
}

impl Wheel {
    /// Makes an empty wheel whose tick 0 is `origin`; resolution is [`TICK`].
    pub(crate) fn new(origin: Instant) -> Wheel {
        Wheel {
            origin,
            elapsed: 0,
            entries: Slab::new(),
            heads: [NIL; LISTS],
            occupied: [0; LEVELS],
            pending: 0,
            generation_next: 0,
            generation_end: 0,
            earliest_cache: Cell::new(None),
        }
    }

    /// Registers a timer that fires on the first `advance(now)` whose `now`
    /// is at or past `deadline` rounded up to a tick. A deadline already past
    /// fires on the next `advance`. O(1).
    pub(crate) fn insert(&mut self, deadline: Instant, waker: Waker) -> TimerKey {
        let generation = self.next_generation();
        let index = self.entries.insert(Entry {
            tick: self.tick_ceil(deadline),
            generation,
            list: NIL,
            prev: NIL,
            next: NIL,
            state: State::Pending { waker },
        });
        self.file(index);
        TimerKey { index, generation }
    }

    /// Registers a timer that fires `delay` after the `now` of the next
    /// `advance`, which files it: the caller reads no clock, and the timer
    /// never fires less than `delay` after this call. O(1).
    pub(crate) fn insert_after(&mut self, delay: Duration, waker: Waker) -> TimerKey {
        let generation = self.next_generation();
        let index = self.entries.insert(Entry {
            tick: u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX),
            generation,
            list: NIL,
            prev: NIL,
            next: NIL,
            state: State::Pending { waker },
        });
        self.link(DELAYED_LIST, index);
        self.pending += 1;
        TimerKey { index, generation }
    }

    /// Replaces the waker of a pending timer, without cloning when the stored
    /// one already wakes the same task. Returns false, doing nothing, when the
    /// key is stale or the timer has fired.
    pub(crate) fn set_waker(&mut self, key: TimerKey, waker: &Waker) -> bool {
        let Some(index) = self.index_of(key) else {
            return false;
        };
        match &mut self.entries[index].state {
            State::Pending { waker: stored } => {
                if !stored.will_wake(waker) {
                    stored.clone_from(waker);
                }
                true
            }
            State::Fired => false,
        }
    }

    /// Removes a timer, pending or fired, and frees its key. Returns true if
    /// it was still pending. A stale key returns false and changes nothing.
    /// O(1).
    pub(crate) fn remove(&mut self, key: TimerKey) -> bool {
        let Some(index) = self.index_of(key) else {
            return false;
        };
        let was_pending = self.is_pending(index);
        if was_pending {
            self.unfile(index);
        }
        self.entries.remove(index);
        was_pending
    }

    /// True once the timer has fired and until it is reset or removed. A
    /// stale key is not fired.
    pub(crate) fn is_fired(&self, key: TimerKey) -> bool {
        self.index_of(key)
            .is_some_and(|index| matches!(self.entries[index].state, State::Fired))
    }

    /// Moves a timer, pending or fired, to a new deadline and makes it
    /// pending with `waker` (the stored waker is kept if it `will_wake` the
    /// same task). The key stays valid. A stale key is ignored. O(1).
    pub(crate) fn reset(&mut self, key: TimerKey, deadline: Instant, waker: &Waker) {
        let Some(index) = self.index_of(key) else {
            return;
        };
        if self.is_pending(index) {
            self.unfile(index);
            let _ = self.set_waker(key, waker);
        } else {
            self.entries[index].state = State::Pending {
                waker: waker.clone(),
            };
        }
        self.entries[index].tick = self.tick_ceil(deadline);
        self.file(index);
    }

    /// The instant until which no pending timer fires, or `None` when none is
    /// pending: the time to park until. It is never later than the earliest
    /// pending deadline rounded up to a tick, and is that instant exactly
    /// except in two cases where it is earlier:
    /// - after the earliest timer was removed, the removed one's tick stays
    ///   as the answer until `advance` reaches it (so cancelling the earliest
    ///   of many timers, as a timeout that was not needed does, costs no
    ///   search);
    /// - when the earliest timer lies beyond the horizon, the answer may be a
    ///   top-level slot boundary, at which `advance` re-files it.
    ///
    /// It may be in the past (a timer registered with a past deadline, or
    /// `advance` not called yet). Right after `advance(now)` it is later than
    /// `now`.
    ///
    /// Cached; working it out again (after the earliest timer fired, or time
    /// reached a slot or the cached bound) costs a bitmap scan per level plus
    /// a walk of the one slot holding the earliest timers.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        if self.pending == 0 {
            return None;
        }
        let tick = match self.earliest_cache.get() {
            Some(tick) => tick,
            None => {
                let tick = self.earliest_tick()?;
                self.earliest_cache.set(Some(tick));
                tick
            }
        };
        Some(self.instant_at(tick))
    }

    /// Fires every pending timer whose deadline, rounded up to a tick, is at
    /// or before `now` rounded down to a tick: marks it fired and pushes its
    /// waker onto `wakers`. Cascades the slots that time reached. Returns the
    /// number fired. A `now` before the origin fires nothing.
    pub(crate) fn advance(&mut self, now: Instant, wakers: &mut Vec<Waker>) -> usize {
        self.start_delayed(now);
        let Some(now_tick) = self.tick_floor(now) else {
            return 0;
        };
        let mut fired = self.fire_due(now_tick, wakers);
        let mut cascaded = false;
        if now_tick.saturating_sub(self.elapsed) > HORIZON_TICKS {
            // Walking slot by slot would re-file far timers once per horizon
            // crossed; after such a jump, re-filing everything once is cheaper.
            fired += self.refile_all(now_tick, wakers);
            cascaded = true;
        }
        while let Some(slot) = self.next_slot() {
            if slot.start > now_tick {
                break;
            }
            self.elapsed = slot.start;
            fired += self.drain(slot.list, wakers);
            cascaded = true;
        }
        // No slot starts at or before `now_tick` any more, so moving the
        // wheel's time up to it leaves every timer in a valid slot.
        self.elapsed = self.elapsed.max(now_tick);
        if fired > 0
            || cascaded
            || self
                .earliest_cache
                .get()
                .is_some_and(|earliest| earliest <= now_tick)
        {
            self.earliest_cache.set(None);
        }
        fired
    }

    /// Number of timers pending (not yet fired). While it is 0 the run loop
    /// skips [`advance`](Self::advance): the time later advanced over in one
    /// step holds only the timers filed since, which were placed relative to
    /// the older time and cascade down as usual.
    pub(crate) fn pending(&self) -> usize {
        self.pending
    }

    /// Number of entries stored: pending plus fired but not yet removed.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// A generation no key of any wheel has had.
    fn next_generation(&mut self) -> u64 {
        if self.generation_next == self.generation_end {
            // Relaxed: only uniqueness matters, which the atomic add gives.
            self.generation_next = GENERATIONS.fetch_add(GENERATION_BLOCK, Ordering::Relaxed);
            self.generation_end = self.generation_next + GENERATION_BLOCK;
        }
        let generation = self.generation_next;
        self.generation_next += 1;
        generation
    }

    /// The slab index a key names, if the key is not stale.
    fn index_of(&self, key: TimerKey) -> Option<usize> {
        let entry = self.entries.get(key.index)?;
        (entry.generation == key.generation).then_some(key.index)
    }

    /// Whether the entry at `index` is pending.
    fn is_pending(&self, index: usize) -> bool {
        matches!(self.entries[index].state, State::Pending { .. })
    }

    /// `deadline` in ticks since the origin, rounded up; 0 before the
    /// origin, `u64::MAX` when too far to count.
    fn tick_ceil(&self, deadline: Instant) -> u64 {
        deadline
            .checked_duration_since(self.origin)
            .map_or(0, |since| {
                // Whole seconds are whole ticks: no 128-bit division.
                (since.as_secs().saturating_mul(TICKS_PER_SEC))
                    .saturating_add(u64::from(since.subsec_nanos().div_ceil(TICK_NANOS)))
            })
    }

    /// `now` in ticks since the origin, rounded down and capped at
    /// [`NOW_TICK_MAX`]; `None` before the origin.
    fn tick_floor(&self, now: Instant) -> Option<u64> {
        let since = now.checked_duration_since(self.origin)?;
        let ticks = (since.as_secs().saturating_mul(TICKS_PER_SEC))
            .saturating_add(u64::from(since.subsec_nanos() / TICK_NANOS));
        Some(ticks.min(NOW_TICK_MAX))
    }

    /// The instant of `tick`. Should the platform's `Instant` not reach that
    /// far, an earlier instant it can represent: waking early is harmless,
    /// `advance` never fires early.
    fn instant_at(&self, mut tick: u64) -> Instant {
        loop {
            if let Some(at) = self.origin.checked_add(Duration::from_millis(tick)) {
                return at;
            }
            tick /= 2;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::task::Wake;

    /// Counts how often it is woken.
    struct CountWaker(AtomicUsize);

    impl Wake for CountWaker {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }

        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A counting waker and the counter it bumps.
    fn counter() -> (Arc<CountWaker>, Waker) {
        let count = Arc::new(CountWaker(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    /// Times woken so far.
    fn woken(count: &CountWaker) -> usize {
        count.0.load(Ordering::SeqCst)
    }

    /// Records its timer's id in a shared log when woken.
    struct IdWaker {
        id: usize,
        log: Arc<Mutex<Vec<usize>>>,
    }

    impl Wake for IdWaker {
        fn wake(self: Arc<Self>) {
            self.log.lock().unwrap().push(self.id);
        }
    }

    /// xorshift64: a fixed, reproducible sequence.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, limit: u64) -> u64 {
            self.next() % limit
        }
    }

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    /// Advances and wakes what fired; returns how many fired.
    fn advance_to(wheel: &mut Wheel, now: Instant) -> usize {
        let mut wakers = Vec::new();
        let fired = wheel.advance(now, &mut wakers);
        assert_eq!(fired, wakers.len());
        wakers.into_iter().for_each(Waker::wake);
        fired
    }

    /// Offsets from `now` that sit on or next to level boundaries.
    const BOUNDARIES_MS: [u64; 12] = [
        0, 1, 63, 64, 65, 4_095, 4_096, 4_097, 262_143, 262_144, 262_145, 599_999,
    ];

    /// A deadline offset: a level boundary (nudged by a nanosecond either
    /// way) or a uniform nanosecond count below `span`.
    fn offset(rng: &mut XorShift, span: Duration) -> Duration {
        if rng.below(4) == 0 {
            let boundary = ms(BOUNDARIES_MS[rng.below(12) as usize]);
            let nudged = match rng.below(3) {
                0 => boundary.saturating_sub(Duration::from_nanos(1)),
                1 => boundary,
                _ => boundary + Duration::from_nanos(1),
            };
            return nudged.min(span);
        }
        Duration::from_nanos(rng.below(span.as_nanos() as u64 + 1))
    }

    #[test]
    fn random_timers_fire_exactly_when_due() {
        const TOTAL: usize = 100_000;
        let span = Duration::from_secs(600);
        let origin = Instant::now();
        let end = origin + span;
        let mut wheel = Wheel::new(origin);
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut deadlines: Vec<Instant> = Vec::with_capacity(TOTAL);
        let mut deadline_ticks = Vec::with_capacity(TOTAL);
        let mut keys = Vec::with_capacity(TOTAL);
        let mut fired = vec![false; TOTAL];
        let mut removed = vec![false; TOTAL];
        // Timers fired, removed while pending, and removed after firing.
        let (mut fired_total, mut cancelled, mut freed) = (0, 0, 0);
        let mut now = origin;
        while fired_total + cancelled < TOTAL {
            // Half the timers up front, the rest a batch per step, some past.
            let batch = if deadlines.is_empty() { TOTAL / 2 } else { 200 };
            for _ in 0..batch.min(TOTAL - deadlines.len()) {
                let deadline = if rng.below(50) == 0 {
                    now - offset(&mut rng, now - origin)
                } else {
                    now + offset(&mut rng, end - now)
                };
                let id = deadlines.len();
                let waker = Waker::from(Arc::new(IdWaker {
                    id,
                    log: log.clone(),
                }));
                keys.push(wheel.insert(deadline, waker));
                deadlines.push(deadline);
                deadline_ticks.push((deadline - origin).as_nanos().div_ceil(1_000_000));
            }
            // Remove about one timer in twenty, some of them already fired.
            let (cancelled_now, freed_now) =
                remove_some(&mut wheel, &mut rng, &keys, &fired, &mut removed);
            cancelled += cancelled_now;
            freed += freed_now;
            let step = match rng.below(8) {
                0 => Duration::ZERO,
                _ => Duration::from_nanos(rng.below(1_500_000_000)),
            };
            now = (now + step).min(end);
            assert_eq!(advance_to(&mut wheel, now), log.lock().unwrap().len());
            for id in log.lock().unwrap().drain(..) {
                assert!(deadlines[id] <= now, "timer {id} fired early");
                assert!(
                    !fired[id] && !removed[id],
                    "timer {id} fired twice or after remove"
                );
                assert!(wheel.is_fired(keys[id]));
                fired[id] = true;
                fired_total += 1;
            }
            let now_tick = (now - origin).as_nanos() / 1_000_000;
            let earliest = check_not_late(now_tick, &deadline_ticks, &fired, &removed);
            // Never after the earliest pending deadline, and after `advance`
            // always ahead of `now` (a parked loop would otherwise spin).
            match (wheel.next_deadline(), earliest) {
                (None, None) => {}
                (Some(next), Some(tick)) => {
                    assert!(next <= origin + ms(tick as u64));
                    assert!(next > now);
                }
                (next, earliest) => panic!("next deadline {next:?}, earliest tick {earliest:?}"),
            }
            assert_eq!(wheel.pending(), deadlines.len() - fired_total - cancelled);
            assert_eq!(wheel.len(), deadlines.len() - cancelled - freed);
        }
        assert_eq!(deadlines.len(), TOTAL);
        assert_eq!(wheel.pending(), 0);
        assert_eq!(wheel.next_deadline(), None);
        assert_eq!(wheel.len(), fired_total - freed);
        assert!((0..TOTAL).all(|id| fired[id] || removed[id]));
    }

    /// Removes up to ten random timers not removed yet, checking what
    /// `remove` says; returns how many were pending and how many fired.
    fn remove_some(
        wheel: &mut Wheel,
        rng: &mut XorShift,
        keys: &[TimerKey],
        fired: &[bool],
        removed: &mut [bool],
    ) -> (usize, usize) {
        let (mut cancelled, mut freed) = (0, 0);
        for _ in 0..10 {
            let id = rng.below(keys.len() as u64) as usize;
            if !removed[id] {
                assert_eq!(wheel.remove(keys[id]), !fired[id]);
                removed[id] = true;
                cancelled += usize::from(!fired[id]);
                freed += usize::from(fired[id]);
            }
        }
        (cancelled, freed)
    }

    /// Asserts that every live timer whose rounded-up deadline tick is at or
    /// before `now_tick` has fired and no other has; returns the earliest
    /// deadline tick among the live unfired timers. Timers before the origin
    /// are not generated, so a tick is the deadline's offset rounded up.
    fn check_not_late(
        now_tick: u128,
        deadline_ticks: &[u128],
        fired: &[bool],
        removed: &[bool],
    ) -> Option<u128> {
        let mut earliest = None;
        for (id, &tick) in deadline_ticks.iter().enumerate() {
            if removed[id] {
                continue;
            }
            assert_eq!(fired[id], tick <= now_tick, "timer {id} late");
            if !fired[id] && earliest.is_none_or(|earliest| tick < earliest) {
                earliest = Some(tick);
            }
        }
        earliest
    }

    #[test]
    fn removed_timer_never_fires_and_stale_keys_are_detected() {
        let origin = Instant::now();
        let mut wheel = Wheel::new(origin);
        let (count, waker) = counter();
        let key = wheel.insert(origin + ms(10), waker.clone());
        assert_eq!((wheel.pending(), wheel.len()), (1, 1));
        assert!(wheel.remove(key));
        assert_eq!((wheel.pending(), wheel.len()), (0, 0));
        assert_eq!(advance_to(&mut wheel, origin + ms(20)), 0);
        assert_eq!(woken(&count), 0);
        assert!(!wheel.remove(key));

        // The slab reuses the index; the generation tells the keys apart.
        let reused = wheel.insert(origin + ms(30), waker.clone());
        assert_eq!(reused.index, key.index);
        assert_ne!(reused, key);
        assert!(!wheel.remove(key));
        assert!(!wheel.set_waker(key, &waker));
        assert!(!wheel.is_fired(key));
        wheel.reset(key, origin + ms(25), &waker);
        assert_eq!(wheel.pending(), 1);
        assert_eq!(wheel.next_deadline(), Some(origin + ms(30)));

        // A fired timer is kept until removed, and removing it says so.
        assert_eq!(advance_to(&mut wheel, origin + ms(30)), 1);
        assert!(wheel.is_fired(reused));
        assert!(!wheel.set_waker(reused, &waker));
        assert_eq!((wheel.pending(), wheel.len()), (0, 1));
        assert!(!wheel.remove(reused));
        assert_eq!((wheel.pending(), wheel.len()), (0, 0));
        assert!(!wheel.is_fired(reused));
        assert_eq!(woken(&count), 1);
    }

    #[test]
    fn a_key_of_one_wheel_is_stale_in_another() {
        let origin = Instant::now();
        let (mut first, mut second) = (Wheel::new(origin), Wheel::new(origin));
        let (count, waker) = counter();
        let mine = first.insert(origin + ms(10), waker.clone());
        let theirs = second.insert(origin + ms(10), waker.clone());
        // Same slab index, so only the generation tells them apart.
        assert_eq!(mine.index, theirs.index);
        assert!(!second.set_waker(mine, &waker));
        assert!(!second.remove(mine));
        second.reset(mine, origin + ms(5), &waker);
        assert_eq!(second.next_deadline(), Some(origin + ms(10)));
        assert_eq!(advance_to(&mut second, origin + ms(10)), 1);
        assert!(!second.is_fired(mine) && second.is_fired(theirs));
        assert!(first.remove(mine));
        assert_eq!(woken(&count), 1);
    }

    #[test]
    fn set_waker_replaces_the_waker_woken() {
        let origin = Instant::now();
        let mut wheel = Wheel::new(origin);
        let (old_count, old) = counter();
        let (new_count, new) = counter();
        let key = wheel.insert(origin + ms(5), old);
        assert!(wheel.set_waker(key, &new));
        assert_eq!(advance_to(&mut wheel, origin + ms(5)), 1);
        assert_eq!((woken(&old_count), woken(&new_count)), (0, 1));
    }

    #[test]
    fn reset_moves_pending_and_rearms_fired_timers() {
        let origin = Instant::now();
        let mut wheel = Wheel::new(origin);
        let (count, waker) = counter();
        let key = wheel.insert(origin + ms(100), waker.clone());
        wheel.reset(key, origin + ms(50), &waker);
        assert_eq!(wheel.next_deadline(), Some(origin + ms(50)));
        assert_eq!(advance_to(&mut wheel, origin + ms(49)), 0);
        assert_eq!(advance_to(&mut wheel, origin + ms(50)), 1);
        assert!(wheel.is_fired(key));

        // Re-armed like an interval: pending again, same key.
        wheel.reset(key, origin + ms(5_000), &waker);
        assert!(!wheel.is_fired(key));
        assert_eq!((wheel.pending(), wheel.len()), (1, 1));
        assert_eq!(wheel.next_deadline(), Some(origin + ms(5_000)));
        // Moved later while pending: the old deadline no longer fires it.
        wheel.reset(key, origin + ms(9_000), &waker);
        assert_eq!(advance_to(&mut wheel, origin + ms(8_999)), 0);
        assert_eq!(wheel.next_deadline(), Some(origin + ms(9_000)));
        assert_eq!(advance_to(&mut wheel, origin + ms(9_000)), 1);
        assert_eq!(woken(&count), 2);
        assert_eq!((wheel.pending(), wheel.len()), (0, 1));
    }

    #[test]
    fn next_deadline_is_the_earliest_deadline_rounded_up() {
        let origin = Instant::now();
        let mut wheel = Wheel::new(origin);
        let (_count, waker) = counter();
        assert_eq!(wheel.next_deadline(), None);
        let sub_tick = wheel.insert(origin + Duration::from_micros(5_500), waker.clone());
        assert_eq!(wheel.next_deadline(), Some(origin + ms(6)));
        let early = wheel.insert(origin + ms(3), waker.clone());
        assert_eq!(wheel.next_deadline(), Some(origin + ms(3)));
        let late = wheel.insert(origin + ms(5_000), waker.clone());
        let _later = wheel.insert(origin + ms(300_000), waker.clone());
        // Removing the earliest leaves its tick as a bound until time
        // reaches it; then the answer is exact again.
        assert!(wheel.remove(early));
        assert_eq!(wheel.next_deadline(), Some(origin + ms(3)));
        assert_eq!(advance_to(&mut wheel, origin + ms(3)), 0);
        assert_eq!(wheel.next_deadline(), Some(origin + ms(6)));

        // Rounded up: 5.5 ms has not come at 5.9 ms, and has at 6 ms.
        assert_eq!(
            advance_to(&mut wheel, origin + Duration::from_micros(5_900)),
            0
        );
        assert_eq!(advance_to(&mut wheel, origin + ms(6)), 1);
        assert!(wheel.is_fired(sub_tick));
        // Timers in higher levels are exact too, before and after cascading.
        assert_eq!(wheel.next_deadline(), Some(origin + ms(5_000)));
        assert_eq!(advance_to(&mut wheel, origin + ms(4_999)), 0);
        assert_eq!(wheel.next_deadline(), Some(origin + ms(5_000)));
        assert!(wheel.remove(late));
        assert_eq!(wheel.next_deadline(), Some(origin + ms(5_000)));
        assert_eq!(advance_to(&mut wheel, origin + ms(5_000)), 0);
        assert_eq!(wheel.next_deadline(), Some(origin + ms(300_000)));
        assert_eq!(advance_to(&mut wheel, origin + ms(300_000)), 1);
        assert_eq!(wheel.next_deadline(), None);
    }

    #[test]
    fn delayed_timers_count_from_the_next_advance() {
        let origin = Instant::now();
        let mut wheel = Wheel::new(origin);
        let (count, waker) = counter();
        let delayed = wheel.insert_after(ms(5), waker.clone());
        let dropped = wheel.insert_after(ms(1), waker.clone());
        let _never = wheel.insert_after(Duration::MAX, waker.clone());
        assert_eq!(wheel.pending(), 3);
        // Removed before it started: it never fires.
        assert!(wheel.remove(dropped));
        // Filed at 10 ms + 5 ms, not at insertion time + 5 ms.
        assert_eq!(advance_to(&mut wheel, origin + ms(10)), 0);
        assert_eq!(wheel.next_deadline(), Some(origin + ms(15)));
        assert_eq!(
            advance_to(&mut wheel, origin + Duration::from_micros(14_999)),
            0
        );
        assert_eq!(advance_to(&mut wheel, origin + ms(15)), 1);
        assert!(wheel.is_fired(delayed));
        assert_eq!(woken(&count), 1);
        // The one too far to count stays pending, past any horizon.
        assert_eq!(wheel.pending(), 1);
        assert_eq!(advance_to(&mut wheel, origin + ms(86_400_000)), 0);
        assert_eq!(wheel.pending(), 1);
    }

    #[test]
    fn past_deadlines_fire_on_the_next_advance() {
        let origin = Instant::now();
        let mut wheel = Wheel::new(origin);
        let (count, waker) = counter();
        let now = origin + ms(1_000);
        assert_eq!(advance_to(&mut wheel, now), 0);
        wheel.insert(origin + ms(500), waker.clone());
        wheel.insert(now, waker.clone());
        if let Some(before_origin) = origin.checked_sub(Duration::from_secs(1)) {
            wheel.insert(before_origin, waker.clone());
        }
        let expected = wheel.pending();
        // Before the origin counts as the origin.
        let earliest = if expected == 3 {
            origin
        } else {
            origin + ms(500)
        };
        assert_eq!(wheel.next_deadline(), Some(earliest));
        // Same `now` as the last advance: they are still due.
        assert_eq!(advance_to(&mut wheel, now), expected);
        assert_eq!(woken(&count), expected);
        assert_eq!(wheel.next_deadline(), None);
    }

    #[test]
    fn timers_filed_after_a_long_gap_without_advance_fire_on_time() {
        // The run loop does not advance an empty wheel, so its time can lag
        // far behind the deadlines filed next.
        let origin = Instant::now();
        let mut wheel = Wheel::new(origin);
        let (count, waker) = counter();
        let late = origin + ms(3_600_000);
        for offset in BOUNDARIES_MS {
            wheel.insert(late + ms(offset), waker.clone());
        }
        let mut fired = 0;
        for offset in BOUNDARIES_MS {
            // Never early: one tick before, this deadline has not fired.
            if offset > 0 {
                fired += advance_to(&mut wheel, late + ms(offset - 1));
                assert_eq!(woken(&count), fired);
            }
            fired += advance_to(&mut wheel, late + ms(offset));
            let due = BOUNDARIES_MS.iter().filter(|&&due| due <= offset).count();
            assert_eq!(woken(&count), due, "at +{offset} ms");
        }
        assert_eq!(fired, BOUNDARIES_MS.len());
        assert_eq!(wheel.pending(), 0);
    }

    #[test]
    fn now_before_origin_fires_nothing() {
        let Some(origin) = Instant::now().checked_add(Duration::from_secs(10)) else {
            return;
        };
        let mut wheel = Wheel::new(origin);
        let (_count, waker) = counter();
        wheel.insert(origin - ms(5_000), waker);
        assert_eq!(advance_to(&mut wheel, origin - ms(6_000)), 0);
        assert_eq!(advance_to(&mut wheel, origin), 1);
    }

    #[test]
    fn far_future_deadlines_re_file_and_never_fire_early() {
        const DAY_MS: u64 = 86_400_000;
        let origin = Instant::now();
        let mut wheel = Wheel::new(origin);
        let (count, waker) = counter();
        let five_years = origin + ms(5 * 365 * DAY_MS + 12_345);
        let two_years = origin + ms(2 * 365 * DAY_MS + 7);
        wheel.insert(five_years, waker.clone());
        wheel.insert(two_years, waker.clone());
        let mut now = origin;
        let mut fired = 0;
        while now < five_years - ms(1) {
            now = (now + ms(DAY_MS)).min(five_years - ms(1));
            fired += advance_to(&mut wheel, now);
            assert_eq!(fired, usize::from(now >= two_years));
            let next = wheel.next_deadline().expect("a timer is pending");
            assert!(next > now && next <= if fired == 0 { two_years } else { five_years });
        }
        assert_eq!(wheel.next_deadline(), Some(five_years));
        assert_eq!(advance_to(&mut wheel, five_years), 1);
        assert_eq!(woken(&count), 2);

        // One jump over many top-level slots fires only what is due.
        let mut wheel = Wheel::new(origin);
        wheel.insert(two_years, waker.clone());
        wheel.insert(five_years, waker.clone());
        assert_eq!(advance_to(&mut wheel, origin + ms(3 * 365 * DAY_MS)), 1);
        assert_eq!(advance_to(&mut wheel, five_years - ms(1)), 0);
        assert_eq!(advance_to(&mut wheel, five_years), 1);
    }

    #[test]
    fn random_far_deadlines_with_big_jumps_fire_exactly_when_due() {
        const TOTAL: usize = 2_000;
        let year = Duration::from_secs(365 * 86_400);
        let origin = Instant::now();
        let mut wheel = Wheel::new(origin);
        let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
        let (count, waker) = counter();
        let mut deadline_ticks = Vec::with_capacity(TOTAL);
        for _ in 0..TOTAL {
            let since = Duration::from_nanos(rng.below((6 * year).as_nanos() as u64));
            wheel.insert(origin + since, waker.clone());
            deadline_ticks.push(since.as_nanos().div_ceil(1_000_000));
        }
        let (mut fired, removed) = (vec![false; TOTAL], vec![false; TOTAL]);
        let mut now_tick: u128 = 0;
        while wheel.pending() > 0 {
            // Steps from a millisecond to a year, crossing the horizon often.
            let bits = rng.below(36) + 1;
            now_tick += u128::from(rng.below(1 << bits));
            let fired_now = advance_to(&mut wheel, origin + ms(now_tick as u64));
            let mut newly = 0;
            for (id, &tick) in deadline_ticks.iter().enumerate() {
                if !fired[id] && tick <= now_tick {
                    fired[id] = true;
                    newly += 1;
                }
            }
            assert_eq!(fired_now, newly);
            // Never late and never after the earliest deadline; exact when the
            // earliest timer cannot be one filed at the horizon.
            let earliest = check_not_late(now_tick, &deadline_ticks, &fired, &removed);
            if let Some(earliest) = earliest {
                let next = wheel.next_deadline().expect("a timer is pending");
                assert!(next > origin + ms(now_tick as u64));
                assert!(next <= origin + ms(earliest as u64));
                if earliest - now_tick < 1 << (SLOT_BITS * 5) {
                    assert_eq!(next, origin + ms(earliest as u64));
                }
            }
        }
        assert_eq!(woken(&count), TOTAL);
        assert_eq!(wheel.next_deadline(), None);
    }

    #[test]
    fn unreachable_deadlines_saturate_without_panicking() {
        let origin = Instant::now();
        let mut wheel = Wheel::new(origin);
        let (count, waker) = counter();
        // Far enough that its tick saturates at u64::MAX, if Instant allows.
        let Some(far) = origin.checked_add(Duration::from_secs(u64::MAX / 4)) else {
            return;
        };
        let key = wheel.insert(far, waker);
        assert!(wheel.next_deadline().is_some_and(|next| next > origin));
        assert_eq!(advance_to(&mut wheel, far), 0);
        assert_eq!(advance_to(&mut wheel, origin + ms(u64::MAX)), 0);
        assert!(wheel.next_deadline().is_some());
        assert!(!wheel.is_fired(key));
        assert!(wheel.remove(key));
        assert_eq!(woken(&count), 0);
    }
}
