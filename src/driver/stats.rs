//! Counters of what the driver did, readable through `corering::stats()`.

/// Operation counters of one core's driver.
///
/// Every operation whose SQE was pushed ends in exactly one of `completed`
/// (its future took the final result), `cancelled` (its future was dropped
/// first; the state was freed on the final CQE) or `abandoned` (still in
/// flight when the runtime's shutdown deadline passed; its state was leaked
/// rather than freed under the kernel). So at any time
/// `submitted == completed + cancelled + abandoned + in_flight`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Operations whose SQE was pushed.
    pub submitted: u64,
    /// Operations whose future took the final result.
    pub completed: u64,
    /// Operations whose future was dropped before taking its result.
    pub cancelled: u64,
    /// Operations leaked at shutdown because the kernel never completed them.
    pub abandoned: u64,
    /// Operations whose final result has not been taken or freed yet.
    pub in_flight: u64,
    /// Slots of the in-flight table in use.
    pub slots_in_use: u64,
    /// `ASYNC_CANCEL` requests queued for dropped futures.
    pub cancel_requests: u64,
    /// Cancellations sent again because they found nothing while their
    /// target had not completed (they raced the target's submission).
    pub cancel_retries: u64,
    /// Operations submitted again after a transient failure (`EINTR`,
    /// `EAGAIN`) that did nothing; each submission counts in `submitted`.
    pub retries: u64,
    /// Times a push found the submission queue full (or others already
    /// waiting for room) and queued its SQEs for the next enter.
    pub sq_full: u64,
    /// Calls to `io_uring_enter` (none from inside a push).
    pub enters: u64,
    /// `MSG_RING`s this core sent to wake another core.
    pub msg_ring_sent: u64,
    /// `MSG_RING`s this core sent that the kernel could not post (the
    /// target ring had gone or its CQ was full).
    pub msg_ring_failed: u64,
    /// Parks of this core ended by another core's `MSG_RING`.
    pub msg_ring_wakes: u64,
    /// Parks of this core ended by a write to its eventfd (a wake from a
    /// thread without a ring, or with `MSG_RING` off).
    pub eventfd_wakes: u64,
    /// CQEs reaped: over `enters`, the completions each enter brings.
    pub cqes: u64,
    /// Times the completion queue was seen overflowed (CQEs kept by the kernel).
    pub cq_overflows: u64,
    /// Times `io_uring_enter` answered `EBUSY` or `EAGAIN` and the driver reaped and retried.
    pub enter_busy: u64,
    /// Timers in the wheel (pending, or fired and not yet observed).
    pub timers: u64,
    /// Panics caught in user code run outside a task poll (a waker's
    /// `wake`, the drop of a buffer, a waker or a future's leftovers): each
    /// was reported by the panic hook, and the core went on.
    pub callback_panics: u64,
    /// Faults injected (builds with the `fault-injection` feature only;
    /// always 0 otherwise).
    pub faults_injected: u64,
    /// CQEs whose slot was gone or reused (never delivered).
    pub stale_completions: u64,
}
