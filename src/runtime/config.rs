//! Every limit of a core in one place, with its default.

use std::io;
use std::time::Duration;

use crate::driver::SLOTS_LIMIT;

/// The limits one core runs with. Set through [`Builder`](crate::Builder).
#[derive(Clone, Debug)]
pub(crate) struct Config {
    /// Submission queue entries; the completion queue gets twice as many.
    /// Default 256; at least 2, room for a linked pair.
    pub(crate) entries: u32,
    /// Idle time after which the SQ polling thread sleeps; `None` (the
    /// default) means no SQPOLL thread.
    pub(crate) sqpoll_idle: Option<Duration>,
    /// Operations in flight at once; an operation beyond it waits for a free
    /// slot. Default 65,536.
    pub(crate) slots_max: usize,
    /// Task polls between two visits to the ring, so neither I/O nor any
    /// task starves. Default 256.
    pub(crate) tasks_per_tick: usize,
    /// How long dropping a runtime waits for cancelled operations to
    /// complete before leaking their memory. Default 1 s.
    pub(crate) shutdown_timeout: Duration,
    /// Entries of the ring's table of direct (registered) descriptors, for
    /// `accept_direct`; 0 registers none. Default 1,024.
    pub(crate) direct_fds: u32,
    /// A parked core waits for this many completions, or this long after
    /// the first; `None` (the default) wakes on the first.
    pub(crate) batch_wait: Option<(u32, Duration)>,
    /// Whether another core wakes this one with `MSG_RING` where the kernel
    /// has it; `false` keeps to the eventfd. Default `true`; also set by
    /// `CORERING_MSG_RING=0`.
    pub(crate) msg_ring: bool,
    /// Bytes of freed task allocations (up to 1 KiB each) a core keeps for
    /// later spawns instead of giving them back to the allocator. Default
    /// 64 KiB; debug builds keep none (see `executor::cache`).
    pub(crate) task_cache_bytes: usize,
    /// The backend, when the builder forces one; `None`: the environment
    /// decides (`CORERING_BACKEND`, see `backend.rs`).
    pub(crate) backend: Option<super::Backend>,
    /// Faults the driver injects (tests only). Default none.
    #[cfg(feature = "fault-injection")]
    pub(crate) faults: Option<crate::Faults>,
}

impl Config {
    /// Refuses limits no runtime can work with, saying which and why.
    pub(crate) fn check(&self) -> io::Result<()> {
        let refuse = |message: &str| Err(io::Error::new(io::ErrorKind::InvalidInput, message));
        if self.entries < 2 {
            return refuse(
                "entries must be at least 2: a linked pair takes two submission entries",
            );
        }
        if self.slots_max == 0 || self.slots_max > SLOTS_LIMIT {
            return refuse("slots_max must be from 1 to 2^30 - 4");
        }
        if self.tasks_per_tick == 0 {
            return refuse("tasks_per_tick must be at least 1");
        }
        Ok(())
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            entries: 256,
            sqpoll_idle: None,
            slots_max: 65_536,
            tasks_per_tick: 256,
            shutdown_timeout: Duration::from_secs(1),
            direct_fds: 1024,
            batch_wait: None,
            msg_ring: std::env::var_os("CORERING_MSG_RING").is_none_or(|value| value != "0"),
            task_cache_bytes: 64 * 1024,
            backend: None,
            #[cfg(feature = "fault-injection")]
            faults: None,
        }
    }
}
