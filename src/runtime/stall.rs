//! Stall reports: a core that runs user code for longer than a threshold
//! without coming back to its loop is reported, once per stall, by one
//! watchdog thread of the process.
//!
//! Each core with reports on publishes its progress in one word that only
//! it writes (a relaxed store, no read-modify-write): odd while it runs
//! (tasks, the main future, the tick's bookkeeping), even while it is
//! parked in the kernel, and bumped by each tick. The watchdog samples
//! every core's word every quarter of the smallest threshold (at most
//! every 100 ms): an odd word unchanged for a threshold is a stall, reported
//! with the time since the watchdog first saw that word, so the duration
//! is at least the threshold and short of the truth by at most one sample
//! period. A core stuck in one poll is the usual culprit; the report is
//! made while the stall goes on, so a core that never comes back is still
//! reported. Reports run on the watchdog thread.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::CoreId;

/// What reports a stall: the builder's `on_stall` callback.
pub(crate) type Report = Arc<dyn Fn(&Stall) + Send + Sync>;

/// A core held by user code past the threshold (see
/// [`Builder::on_stall`](crate::Builder::on_stall)).
#[derive(Clone, Debug)]
pub struct Stall {
    core: CoreId,
    duration: Duration,
}

impl Stall {
    /// The core that is held.
    pub fn core(&self) -> CoreId {
        self.core
    }

    /// How long it has been held so far: at least the threshold.
    pub fn duration(&self) -> Duration {
        self.duration
    }
}

/// One core's progress word and its index in its launch.
pub(crate) struct Progress {
    word: AtomicU64,
    core: AtomicUsize,
}

impl Progress {
    /// Called by the core's loop at the start of each tick.
    #[inline]
    pub(crate) fn tick(&self) {
        let word = self.word.load(Ordering::Relaxed);
        self.word.store(
            if word % 2 == 1 { word + 2 } else { word + 1 },
            Ordering::Relaxed,
        );
    }

    /// Called just before the core parks in the kernel (the word was odd:
    /// even now), and when the park ends (odd again).
    #[inline]
    pub(crate) fn flip(&self) {
        let word = self.word.load(Ordering::Relaxed);
        self.word.store(word + 1, Ordering::Relaxed);
    }

    /// Records the core's place in its launch.
    pub(crate) fn place(&self, core: CoreId) {
        self.core.store(core.index(), Ordering::Relaxed);
    }
}

/// A watched core.
struct Watched {
    progress: Weak<Progress>,
    threshold: Duration,
    report: Report,
    /// The word last seen, when it was first seen, and whether its stall
    /// was reported.
    seen: u64,
    since: Instant,
    reported: bool,
}

impl fmt::Debug for Watched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watched")
            .field("threshold", &self.threshold)
            .finish_non_exhaustive()
    }
}

/// The cores the watchdog watches; the thread starts with the first.
static WATCHED: Mutex<Vec<Watched>> = Mutex::new(Vec::new());
static WATCHDOG: AtomicBool = AtomicBool::new(false);

/// Starts watching a new core; returns the progress word its loop
/// publishes to. The core is forgotten once the word is dropped (with its
/// runtime).
pub(crate) fn watch(threshold: Duration, report: Report) -> std::io::Result<Arc<Progress>> {
    let progress = Arc::new(Progress {
        word: AtomicU64::new(1),
        core: AtomicUsize::new(0),
    });
    WATCHED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .push(Watched {
            progress: Arc::downgrade(&progress),
            threshold,
            report,
            seen: 1,
            since: Instant::now(),
            reported: false,
        });
    if !WATCHDOG.swap(true, Ordering::AcqRel) {
        if let Err(error) = std::thread::Builder::new()
            .name("corering-watchdog".into())
            .spawn(watchdog)
        {
            WATCHDOG.store(false, Ordering::Release);
            return Err(error);
        }
    }
    Ok(progress)
}

/// The watchdog thread: samples every watched core, reports stalls.
fn watchdog() {
    let mut stalls = Vec::new();
    loop {
        let period = {
            let mut watched = WATCHED
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            watched.retain(|core| core.progress.strong_count() > 0);
            let now = Instant::now();
            for core in watched.iter_mut() {
                let Some(progress) = core.progress.upgrade() else {
                    continue;
                };
                let word = progress.word.load(Ordering::Relaxed);
                if word != core.seen {
                    (core.seen, core.since, core.reported) = (word, now, false);
                    continue;
                }
                let held = now.duration_since(core.since);
                if word % 2 == 1 && !core.reported && held >= core.threshold {
                    core.reported = true;
                    let stall = Stall {
                        core: CoreId::new(progress.core.load(Ordering::Relaxed)),
                        duration: held,
                    };
                    stalls.push((core.report.clone(), stall));
                }
            }
            watched
                .iter()
                .map(|core| core.threshold / 4)
                .min()
                .unwrap_or(Duration::from_millis(100))
                .clamp(Duration::from_millis(1), Duration::from_millis(100))
        };
        // Reports are user code: run outside the lock, and one that panics
        // does not end the watchdog.
        for (report, stall) in stalls.drain(..) {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| report(&stall)));
        }
        std::thread::sleep(period);
    }
}
