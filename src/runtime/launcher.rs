//! The multi-core launcher: one thread per core, each with its own ring,
//! run queue and timers, optionally pinned to its CPU.
//!
//! Every core builds its runtime before any runs user code; if one cannot
//! (io_uring refused, out of memory), none starts and the error is returned.
//! The cores share nothing: each runs its own copy of the future the caller
//! makes for it, and typically binds its own `SO_REUSEPORT` listener so the
//! kernel spreads connections across cores.

use std::fmt;
use std::future::Future;
use std::io;
use std::sync::{mpsc, Arc, OnceLock};

use super::counters::Published;
use super::Builder;
use crate::executor::Handle;
use crate::sync::shutdown::Shutdown;
use crate::sys::affinity::{allowed_cpus, pin_to, remember_process_cpus};

/// Names one core of a launch: `0..cores()`. A lone [`Runtime`](crate::Runtime)
/// is core 0 of a launch of 1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CoreId(usize);

impl CoreId {
    /// The core with this index (checked when used: a `spawn_on` to a core
    /// the launch does not have panics).
    pub fn new(index: usize) -> CoreId {
        CoreId(index)
    }

    /// The core's index, from 0.
    pub fn index(self) -> usize {
        self.0
    }
}

/// The cores of one launch, as other cores reach them: every core's
/// handle, filled in before any core runs user code.
pub(crate) struct Launch {
    /// Each core's handle, and the slot it publishes its counters to.
    cores: Vec<OnceLock<(Handle, Arc<Published>)>>,
    shutdown: Shutdown,
}

impl Launch {
    pub(crate) fn new(cores: usize, shutdown: Shutdown) -> Arc<Launch> {
        Arc::new(Launch {
            cores: (0..cores).map(|_| OnceLock::new()).collect(),
            shutdown,
        })
    }

    /// A launch of one core, `handle`'s.
    pub(crate) fn alone(
        handle: Handle,
        published: Arc<Published>,
        shutdown: Shutdown,
    ) -> Arc<Launch> {
        let launch = Launch::new(1, shutdown);
        launch.join(CoreId(0), handle, published);
        launch
    }

    fn join(&self, core: CoreId, handle: Handle, published: Arc<Published>) {
        assert!(
            self.cores[core.0].set((handle, published)).is_ok(),
            "one runtime per core"
        );
    }

    /// The launch's shutdown token.
    pub(crate) fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }

    /// The cores in the launch.
    pub(crate) fn len(&self) -> usize {
        self.cores.len()
    }

    /// The handle of `core`.
    ///
    /// # Panics
    ///
    /// When the launch has no such core.
    pub(crate) fn core(&self, core: CoreId) -> &Handle {
        let cores = self.cores.len();
        self.cores
            .get(core.0)
            .unwrap_or_else(|| panic!("{core} is not in this launch of {cores}"))
            .get()
            .map(|(handle, _)| handle)
            .expect("every core joins its launch before any runs user code")
    }

    /// Every core's counters slot, in core order.
    pub(crate) fn published(&self) -> impl Iterator<Item = &Published> {
        self.cores
            .iter()
            .filter_map(|core| core.get().map(|(_, published)| &**published))
    }
}

impl fmt::Display for CoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "core {}", self.0)
    }
}

/// Runs `make(core)` to completion on each of `cores` threads, each with a
/// runtime built from `builder`; returns the outputs in core order.
pub(super) fn run<F, Fut>(builder: &Builder, cores: usize, make: F) -> io::Result<Vec<Fut::Output>>
where
    F: Fn(CoreId) -> Fut + Sync,
    Fut: Future,
    Fut::Output: Send,
{
    let cpus = if builder.pin_cores {
        let cpus = allowed_cpus()?;
        // For the threads the pinned cores start later (the blocking
        // pool's), which must not inherit one core's CPU.
        remember_process_cpus(&cpus);
        cpus
    } else {
        Vec::new()
    };
    let (built_tx, built_rx) = mpsc::channel::<io::Result<()>>();
    // One token for every core; only the first core listens for signals,
    // so that one signal triggers once.
    let token = builder.shutdown.clone().unwrap_or_default();
    let launch = Launch::new(cores, token.clone());
    std::thread::scope(|scope| {
        let mut handles = Vec::with_capacity(cores);
        // Each core waits for the go (`true`) or the abort (`false`, or the
        // sender gone) after building its runtime.
        let mut go = Vec::with_capacity(cores);
        for index in 0..cores {
            let (go_tx, go_rx) = mpsc::channel::<bool>();
            let (built_tx, make, launch) = (built_tx.clone(), &make, launch.clone());
            let mut builder = builder.clone();
            builder.shutdown = Some(token.clone());
            builder.shutdown_on_signals &= index == 0;
            let cpu = (!cpus.is_empty()).then(|| cpus[index % cpus.len()]);
            let handle = std::thread::Builder::new()
                .name(format!("corering-{index}"))
                .spawn_scoped(scope, move || {
                    let built = cpu.map_or(Ok(()), pin_to).and_then(|()| builder.build());
                    let runtime = match built {
                        Ok(runtime) => {
                            launch.join(
                                CoreId(index),
                                runtime.core.executor.handle(),
                                runtime.core.accounting.published.clone(),
                            );
                            runtime.core.place_in(launch, CoreId(index));
                            let _ = built_tx.send(Ok(()));
                            runtime
                        }
                        Err(error) => {
                            let _ = built_tx.send(Err(error));
                            return None;
                        }
                    };
                    if !go_rx.recv().unwrap_or(false) {
                        return None;
                    }
                    Some(runtime.block_on(make(CoreId(index))))
                })?;
            handles.push(handle);
            go.push(go_tx);
        }
        drop(built_tx);
        let mut first_error = None;
        for built in built_rx.iter().take(cores) {
            if let Err(error) = built {
                first_error.get_or_insert(error);
            }
        }
        for go in go {
            let _ = go.send(first_error.is_none());
        }
        let outputs: Vec<Option<Fut::Output>> = handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect();
        match first_error {
            Some(error) => Err(error),
            None => Ok(outputs
                .into_iter()
                .map(|output| output.expect("every core ran"))
                .collect()),
        }
    })
}
