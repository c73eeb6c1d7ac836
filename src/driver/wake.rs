//! Whom a slot wakes: an opaque token the caller computed, or a waker.
//!
//! The driver knows nothing of tasks. Its caller (the runtime) gives each
//! poll a [`Wake`]: the poll's waker and, when that waker is one the caller
//! can wake cheaply by number (one of its own core's tasks), that number.
//! A slot stores the token instead of a cloned waker, so the common path
//! from submission to completion to the next poll touches no reference
//! count; on completion the driver hands the tokens back to the caller
//! (see `Driver::enter`) and collects the other wakers to be woken once it
//! is released.

use std::task::Waker;

/// Whom to wake when a slot's operation completes.
pub(crate) enum Waiter {
    /// The caller's token. Storing it takes no reference: a token whose
    /// task has gone wakes nobody or, reused, wakes a newer task spuriously.
    Token(u32),
    /// Any other waker (a `block_on` future, a combinator's own waker).
    Waker(Waker),
}

/// How the caller turns a waker into its token: asked only when a waiter
/// is stored, so a poll that completes costs nothing.
pub(crate) trait Tokens {
    /// The token of `waker`, when it is one the caller can wake by number.
    fn token_of(&self, waker: &Waker) -> Option<u32>;
}

/// A caller whose answer is known up front (tests, and wakers with no
/// token).
impl Tokens for Option<u32> {
    fn token_of(&self, _waker: &Waker) -> Option<u32> {
        *self
    }
}

/// The waker an operation is polled with, and how to find its token.
/// Generic over the caller's `Tokens`, so that it is two words and the
/// token's computation inlines where it is needed.
pub(crate) struct Wake<'a, T: Tokens + ?Sized> {
    pub(crate) waker: &'a Waker,
    pub(crate) tokens: &'a T,
}

impl<T: Tokens + ?Sized> Clone for Wake<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: Tokens + ?Sized> Copy for Wake<'_, T> {}

impl<T: Tokens + ?Sized> Wake<'_, T> {
    /// The waker's token, if it has one.
    #[inline]
    pub(crate) fn token(self) -> Option<u32> {
        self.tokens.token_of(self.waker)
    }

    /// The waiter to store: the token when there is one, a clone of the
    /// waker otherwise.
    #[inline]
    pub(crate) fn waiter(self) -> Waiter {
        match self.token() {
            Some(token) => Waiter::Token(token),
            None => Waiter::Waker(self.waker.clone()),
        }
    }

    /// Stores this waiter in `stored` unless it already wakes the same
    /// task, so a task that polls twice stays one waiter.
    #[inline]
    pub(crate) fn store(self, stored: &mut Option<Waiter>) {
        let same = match (&*stored, self.token()) {
            (Some(Waiter::Token(stored)), Some(token)) => *stored == token,
            (Some(Waiter::Waker(stored)), None) => stored.will_wake(self.waker),
            _ => false,
        };
        if !same {
            *stored = Some(self.waiter());
        }
    }
}

/// Hands a completed slot's waiter on: a token to `ready`, a waker to
/// `wakers` (woken after the driver is released).
#[inline]
pub(crate) fn hand_on(
    waiter: Option<Waiter>,
    ready: &mut impl FnMut(u32),
    wakers: &mut Vec<Waker>,
) {
    match waiter {
        Some(Waiter::Token(token)) => ready(token),
        Some(Waiter::Waker(waker)) => wakers.push(waker),
        None => {}
    }
}

/// Where an operation's waiter sits in [`SlotWaiters`], so that polling
/// again while it waits updates that entry instead of adding one. Kept by
/// the operation; `Default` is "not waiting".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SlotTicket {
    /// The list's round (see `SlotWaiters::round`) and index + 1; 0: none.
    packed: u64,
}

/// The waiters of operations that found every slot in use. One entry per
/// waiting operation: an operation polled again in the same round updates
/// its own entry (see [`SlotTicket`]), so the list is bounded by the
/// operations waiting, never by how often they are polled.
#[derive(Default)]
pub(crate) struct SlotWaiters {
    list: Vec<Waiter>,
    /// Bumped each time the list is emptied, so an old ticket names nothing.
    round: u32,
}

impl SlotWaiters {
    /// Stores `wake` for the operation holding `ticket`.
    pub(crate) fn wait<T: Tokens + ?Sized>(&mut self, wake: Wake<'_, T>, ticket: &mut SlotTicket) {
        let round = u64::from(self.round) << 32;
        if ticket.packed & !u64::from(u32::MAX) == round && ticket.packed != 0 {
            let index = (ticket.packed as u32 - 1) as usize;
            if let Some(waiter) = self.list.get_mut(index) {
                let mut stored = Some(std::mem::replace(waiter, Waiter::Token(0)));
                wake.store(&mut stored);
                *waiter = stored.expect("store keeps or replaces the waiter");
                return;
            }
        }
        self.list.push(wake.waiter());
        *ticket = SlotTicket {
            packed: round | self.list.len() as u64,
        };
    }

    /// Waiters stored.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.list.len()
    }

    /// Hands every waiter on (tokens to `ready`, wakers to `wakers`) and
    /// starts a new round.
    pub(crate) fn wake_all(&mut self, ready: &mut impl FnMut(u32), wakers: &mut Vec<Waker>) {
        if self.list.is_empty() {
            return;
        }
        for waiter in self.list.drain(..) {
            hand_on(Some(waiter), ready, wakers);
        }
        self.round = self.round.wrapping_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    struct Count(AtomicUsize);

    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn an_operation_polled_again_stays_one_waiter() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut waiters = SlotWaiters::default();
        let (mut first, mut second) = (SlotTicket::default(), SlotTicket::default());
        for _ in 0..1000 {
            let by_token = Wake {
                waker: &waker,
                tokens: &Some(7),
            };
            waiters.wait(by_token, &mut first);
            let by_waker = Wake {
                waker: &waker,
                tokens: &None,
            };
            waiters.wait(by_waker, &mut second);
        }
        assert_eq!(waiters.len(), 2, "1,000 polls of two operations");
        let (mut tokens, mut wakers) = (Vec::new(), Vec::new());
        waiters.wake_all(&mut |token| tokens.push(token), &mut wakers);
        assert_eq!((tokens, wakers.len(), waiters.len()), (vec![7], 1, 0));
        wakers.into_iter().for_each(Waker::wake);
        assert_eq!(count.0.load(Ordering::Relaxed), 1);
        // A ticket from the last round names nothing now.
        let wake = Wake {
            waker: &waker,
            tokens: &Some(9),
        };
        waiters.wait(wake, &mut first);
        waiters.wait(wake, &mut second);
        assert_eq!(waiters.len(), 2);
        // A new token for the same operation replaces its entry.
        let moved = Wake {
            waker: &waker,
            tokens: &Some(10),
        };
        waiters.wait(moved, &mut first);
        let mut tokens = Vec::new();
        waiters.wake_all(&mut |token| tokens.push(token), &mut Vec::new());
        assert_eq!(tokens, vec![10, 9]);
    }
}
