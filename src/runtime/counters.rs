//! Per-core counters that any core of a launch can read: where each core's
//! time went (running or parked), what it ran, and its ring's counters
//! ([`Stats`]).
//!
//! Each core keeps its own counts in plain cells and publishes a copy
//! into its slot of the launch (under a mutex only it writes and readers
//! take briefly) every [`PUBLISH_TICKS`] ticks, and before a park when the
//! last publication is [`PUBLISH_PERIOD`] old. Another core thus reads
//! values at most a period old while the core runs; a core that parks
//! within a period of its last publication shows the work since only when
//! it wakes (at most a period of work). The calling core's own are always
//! current: [`core_stats`] publishes them first. A park is timed by two
//! clock readings around the blocking enter, the one before also deciding
//! the publication; nothing else reads a clock. Publishing at every park
//! measured 3% on the nop round trip (one park per operation), hence the
//! period.

use std::cell::Cell;
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::context::{self, Core};
use super::CoreId;
use crate::driver::Stats;

/// A family of the ring's counters: name, type, help, and the field.
type OpsFamily = (&'static str, &'static str, &'static str, fn(&Stats) -> u64);

/// A busy core publishes every this many ticks.
pub(crate) const PUBLISH_TICKS: u64 = 256;

/// A parking core publishes when its last publication is this old.
pub(crate) const PUBLISH_PERIOD: Duration = Duration::from_millis(1);

/// One core's counters, as last published.
#[derive(Clone, Debug, Default)]
pub struct CoreStats {
    /// The core these are of.
    pub core: CoreId,
    /// Time the core ran since it started: not parked in the kernel.
    pub busy: Duration,
    /// Time the core spent parked, waiting for completions, wakes or
    /// timers.
    pub parked: Duration,
    /// Turns of the core's loop.
    pub ticks: u64,
    /// Task polls.
    pub tasks_polled: u64,
    /// The ring's counters: enters, CQEs, wakes by `MSG_RING` and by
    /// eventfd, and the operations'.
    pub ops: Stats,
}

impl CoreStats {
    /// Completions each `io_uring_enter` brought, on average.
    pub fn completions_per_enter(&self) -> f64 {
        if self.ops.enters == 0 {
            return 0.0;
        }
        self.ops.cqes as f64 / self.ops.enters as f64
    }

    /// The counters of `cores` in the Prometheus text exposition format
    /// (version 0.0.4), one sample per core labelled `core="N"`.
    pub fn render_prometheus(cores: &[CoreStats]) -> String {
        let mut text = String::new();
        let mut family = |name: &str, kind: &str, help: &str, value: &dyn Fn(&CoreStats) -> f64| {
            let _ = writeln!(text, "# HELP corering_{name} {help}");
            let _ = writeln!(text, "# TYPE corering_{name} {kind}");
            for core in cores {
                let _ = writeln!(
                    text,
                    "corering_{name}{{core=\"{}\"}} {}",
                    core.core.index(),
                    value(core)
                );
            }
        };
        family(
            "busy_seconds_total",
            "counter",
            "Time the core ran, not parked.",
            &|core| core.busy.as_secs_f64(),
        );
        family(
            "parked_seconds_total",
            "counter",
            "Time the core was parked in the kernel.",
            &|core| core.parked.as_secs_f64(),
        );
        family(
            "ticks_total",
            "counter",
            "Turns of the core's loop.",
            &|core| core.ticks as f64,
        );
        family("tasks_polled_total", "counter", "Task polls.", &|core| {
            core.tasks_polled as f64
        });
        family(
            "completions_per_enter",
            "gauge",
            "CQEs per io_uring_enter, on average.",
            &|core| core.completions_per_enter(),
        );
        let ops: [OpsFamily; 22] = [
            (
                "ring_enters_total",
                "counter",
                "Calls to io_uring_enter.",
                |s| s.enters,
            ),
            ("cqes_total", "counter", "CQEs reaped.", |s| s.cqes),
            (
                "wakes_msg_ring_total",
                "counter",
                "Parks ended by another core's MSG_RING.",
                |s| s.msg_ring_wakes,
            ),
            (
                "wakes_eventfd_total",
                "counter",
                "Parks ended by a write to the core's eventfd.",
                |s| s.eventfd_wakes,
            ),
            (
                "msg_ring_sent_total",
                "counter",
                "MSG_RINGs sent to wake other cores.",
                |s| s.msg_ring_sent,
            ),
            (
                "msg_ring_failed_total",
                "counter",
                "MSG_RINGs the kernel could not post.",
                |s| s.msg_ring_failed,
            ),
            (
                "ops_submitted_total",
                "counter",
                "Operations whose SQE was pushed.",
                |s| s.submitted,
            ),
            (
                "ops_completed_total",
                "counter",
                "Operations whose result was taken.",
                |s| s.completed,
            ),
            (
                "ops_cancelled_total",
                "counter",
                "Operations dropped before their result.",
                |s| s.cancelled,
            ),
            (
                "ops_abandoned_total",
                "counter",
                "Operations leaked at shutdown.",
                |s| s.abandoned,
            ),
            (
                "ops_in_flight",
                "gauge",
                "Operations not yet finished.",
                |s| s.in_flight,
            ),
            (
                "slots_in_use",
                "gauge",
                "Slots of the in-flight table in use.",
                |s| s.slots_in_use,
            ),
            (
                "cancel_requests_total",
                "counter",
                "ASYNC_CANCELs queued.",
                |s| s.cancel_requests,
            ),
            (
                "cancel_retries_total",
                "counter",
                "Cancellations sent again.",
                |s| s.cancel_retries,
            ),
            (
                "retries_total",
                "counter",
                "Operations resubmitted after a transient failure.",
                |s| s.retries,
            ),
            (
                "sq_full_total",
                "counter",
                "Pushes that found the submission queue full.",
                |s| s.sq_full,
            ),
            (
                "cq_overflows_total",
                "counter",
                "Times the completion queue was seen overflowed.",
                |s| s.cq_overflows,
            ),
            (
                "enter_busy_total",
                "counter",
                "io_uring_enter answers of EBUSY or EAGAIN.",
                |s| s.enter_busy,
            ),
            ("timers", "gauge", "Timers in the wheel.", |s| s.timers),
            (
                "callback_panics_total",
                "counter",
                "Panics caught outside task polls.",
                |s| s.callback_panics,
            ),
            (
                "faults_injected_total",
                "counter",
                "Faults injected (fault-injection builds).",
                |s| s.faults_injected,
            ),
            (
                "stale_completions_total",
                "counter",
                "CQEs whose slot was gone or reused.",
                |s| s.stale_completions,
            ),
        ];
        for (name, kind, help, field) in ops {
            family(name, kind, help, &|core| field(&core.ops) as f64);
        }
        text
    }
}

/// The counters of every core of the current launch (one for a lone
/// runtime), in core order; the calling core's are current, the others'
/// as they last published them (see the module docs).
///
/// # Panics
///
/// Outside a corering runtime.
pub fn core_stats() -> Vec<CoreStats> {
    context::with_core(|core| {
        publish(core, Instant::now());
        let launch = core.place.borrow().0.clone();
        launch
            .published()
            .enumerate()
            .map(|(index, slot)| CoreStats {
                // A core that has not published yet has an empty slot.
                core: CoreId::new(index),
                ..slot.read()
            })
            .collect()
    })
}

/// A core's slot in its launch.
#[derive(Default)]
pub(crate) struct Published(Mutex<CoreStats>);

impl Published {
    fn read(&self) -> CoreStats {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// What a core counts between publications, on its own thread.
pub(crate) struct Accounting {
    started: Instant,
    parked: Cell<Duration>,
    ticks: Cell<u64>,
    polled: Cell<u64>,
    /// When the core last published.
    published_at: Cell<Instant>,
    /// The slot this core publishes to.
    pub(crate) published: Arc<Published>,
}

impl Accounting {
    pub(crate) fn new() -> Accounting {
        let now = Instant::now();
        Accounting {
            started: now,
            // The first park publishes.
            published_at: Cell::new(now.checked_sub(PUBLISH_PERIOD).unwrap_or(now)),
            parked: Cell::new(Duration::ZERO),
            ticks: Cell::new(0),
            polled: Cell::new(0),
            published: Arc::default(),
        }
    }

    /// One tick that polled `polled` tasks; says whether it is time to
    /// publish.
    #[inline]
    pub(crate) fn ticked(&self, polled: usize) -> bool {
        let ticks = self.ticks.get() + 1;
        self.ticks.set(ticks);
        self.polled.set(self.polled.get() + polled as u64);
        ticks.is_multiple_of(PUBLISH_TICKS)
    }

    /// Whether a core about to park at `now` publishes first.
    #[inline]
    pub(crate) fn publish_due(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.published_at.get()) >= PUBLISH_PERIOD
    }

    /// A park of `parked`.
    pub(crate) fn parked(&self, parked: Duration) {
        self.parked.set(self.parked.get() + parked);
    }
}

/// Publishes `core`'s counters into its slot, as of `now`. The driver
/// must not be borrowed.
pub(crate) fn publish(core: &Core, now: Instant) {
    let accounting = &core.accounting;
    accounting.published_at.set(now);
    let parked = accounting.parked.get();
    let stats = CoreStats {
        core: core.place.borrow().1,
        busy: now
            .saturating_duration_since(accounting.started)
            .saturating_sub(parked),
        parked,
        ticks: accounting.ticks.get(),
        tasks_polled: accounting.polled.get(),
        ops: core.stats(),
    };
    *accounting
        .published
        .0
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = stats;
}
