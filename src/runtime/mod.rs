//! The runtime of one core: `Runtime`, its `Builder`, and the run loop.
//!
//! # The run loop (one tick)
//!
//! 1. Move tasks woken from other threads out of the inbox.
//! 2. Poll the `block_on` future if woken, then up to `tasks_per_tick` ready
//!    tasks, in wake order.
//! 3. Queue closes of dropped descriptors on the ring.
//! 4. With a timer pending, read the clock once: fire the due timers (their
//!    tasks become ready) and measure the time left to the next one.
//! 5. Enter the ring once: submit everything pushed and reap. With work
//!    still ready, do not wait; otherwise park until a completion, a
//!    cross-thread wake or the next timer deadline.
//! 6. Wake every task whose operation is done and drop the states of
//!    cancelled operations, with the driver released.

mod backend;
mod blocking;
mod config;
pub(crate) mod context;
mod counters;
mod launcher;
mod remote_spawn;
mod stall;
pub(crate) mod wheel;

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::os::fd::RawFd;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

pub use backend::Backend;
use backend::Choice;
pub(crate) use blocking::POOL;
use config::Config;
pub(crate) use context::defer_close;
use context::{Core, Enter, Io};
use counters::Accounting;
pub use counters::{core_stats, CoreStats};
pub use launcher::CoreId;
use launcher::Launch;
pub use remote_spawn::{cores, current_core, spawn_blocking, spawn_on, RemoteHandle};
pub use stall::Stall;

use crate::driver::epoll::Reactor;
use crate::driver::{Abandoned, Driver, DriverConfig, Stats, Wait};
use crate::executor::{self, Executor, Job, JoinHandle};
use crate::runtime::wheel::Wheel;
use crate::signal::{self, Signal, SignalKind};
use crate::sync::shutdown::Shutdown;
use crate::sys::eventfd::EventFd;

/// Whether this thread is running a corering core (inside `block_on`, or
/// its shutdown).
pub(crate) fn on_core() -> bool {
    context::is_inside()
}

/// Runs `future` to completion on a new one-core runtime on this thread.
///
/// # Panics
///
/// When the runtime cannot be created (the message says why, e.g. io_uring
/// blocked by seccomp), or when called inside a runtime.
///
/// # Examples
///
/// ```
/// let sum = corering::start(async { 1 + 2 });
/// assert_eq!(sum, 3);
/// ```
pub fn start<F: Future>(future: F) -> F::Output {
    let runtime = Runtime::new().unwrap_or_else(|error| panic!("corering::start: {error}"));
    runtime.block_on(future)
}

/// Spawns a task on the current core.
///
/// The task starts on the core's next turn and runs until it completes,
/// panics or is aborted; its output is delivered through the returned
/// [`JoinHandle`]. Dropping the handle detaches the task.
///
/// # Panics
///
/// When called outside a corering runtime.
///
/// # Examples
///
/// ```
/// corering::start(async {
///     let handle = corering::spawn(async { "done" });
///     assert_eq!(handle.await.unwrap(), "done");
/// });
/// ```
#[inline]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    context::with_core(|core| core.executor.spawn(future))
}

/// The backend of the runtime running on this thread (see [`Backend`]).
///
/// # Panics
///
/// Outside a corering runtime.
pub fn backend() -> Backend {
    context::with_core(Core::backend)
}

/// The counters of the runtime running on this thread.
///
/// # Panics
///
/// Outside a corering runtime.
pub fn stats() -> Stats {
    context::with_core(Core::stats)
}

/// Configures and builds a [`Runtime`], or launches one per core
/// ([`run_on_cores`](Builder::run_on_cores)).
#[derive(Clone, Debug, Default)]
pub struct Builder {
    config: Config,
    /// Cores for `run_on_cores`; `None`: every CPU this process may use.
    cores: Option<usize>,
    pin_cores: bool,
    /// The blocking pool's cap and keep-alive, when set.
    blocking_threads: Option<usize>,
    blocking_keep_alive: Option<Duration>,
    /// The launch's shutdown token, when the caller gave one.
    shutdown: Option<Shutdown>,
    /// Trigger the token on `SIGINT` and `SIGTERM`.
    shutdown_on_signals: bool,
    /// Stall reports, when asked for.
    on_stall: Option<OnStall>,
}

/// The builder's stall threshold and report.
#[derive(Clone)]
struct OnStall {
    threshold: Duration,
    report: stall::Report,
}

impl std::fmt::Debug for OnStall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnStall")
            .field("threshold", &self.threshold)
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// Submission queue entries (default 256; at least 2, since a linked
    /// pair goes out in one submission). The completion queue gets twice
    /// as many. The kernel rounds up to a power of two.
    pub fn entries(mut self, entries: u32) -> Builder {
        self.config.entries = entries;
        self
    }

    /// Uses a kernel thread to poll the submission queue, sleeping after
    /// `idle` without work. Excludes `DEFER_TASKRUN`.
    pub fn sqpoll(mut self, idle: Duration) -> Builder {
        self.config.sqpoll_idle = Some(idle);
        self
    }

    /// Operations in flight at once (default 65,536, at most 2^30 - 4);
    /// more wait for a slot.
    pub fn slots_max(mut self, slots_max: usize) -> Builder {
        self.config.slots_max = slots_max;
        self
    }

    /// Parks for a batch: a core with nothing to run waits until `count`
    /// completions have arrived, or `max_delay` after the first one
    /// (`IORING_ENTER_EXT_ARG` with `min_wait_usec`, Linux 6.12), instead
    /// of waking on the first. Fewer, fuller wake-ups for workloads that
    /// keep many operations in flight, such as a storage engine's reads;
    /// each completion may wait up to `max_delay` longer. Off by default,
    /// and ignored by kernels without the feature.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let runtime = corering::Runtime::builder()
    ///     .batch_wait(8, Duration::from_micros(50))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(runtime.block_on(async { 1 + 1 }), 2);
    /// ```
    pub fn batch_wait(mut self, count: u32, max_delay: Duration) -> Builder {
        self.config.batch_wait = Some((count.max(1), max_delay));
        self
    }

    /// Injects the faults `faults` describes into this runtime's ring (the
    /// test-only `fault-injection` feature): failed and short operations,
    /// late completions, a full SQ and a busy ring, all from a seed.
    #[cfg(feature = "fault-injection")]
    pub fn fault_injection(mut self, faults: crate::Faults) -> Builder {
        self.config.faults = Some(faults);
        self
    }

    /// Task polls between two visits to the ring (default 256).
    pub fn tasks_per_tick(mut self, tasks_per_tick: usize) -> Builder {
        self.config.tasks_per_tick = tasks_per_tick;
        self
    }

    /// How long dropping the runtime waits for cancelled operations to
    /// complete before leaking their memory (default 1 s).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Builder {
        self.config.shutdown_timeout = timeout;
        self
    }

    /// Entries of the ring's table of direct (registered) descriptors
    /// (default 1,024; 0 for none). Connections accepted with
    /// [`TcpListener::accept_direct`](crate::net::TcpListener::accept_direct)
    /// take an entry while the table has room.
    pub fn direct_fds(mut self, entries: u32) -> Builder {
        self.config.direct_fds = entries;
        self
    }

    /// Cores (threads, each with its own ring) for
    /// [`run_on_cores`](Self::run_on_cores). Default: one per CPU this
    /// process may run on.
    pub fn cores(mut self, cores: usize) -> Builder {
        self.cores = Some(cores);
        self
    }

    /// The most threads the process's blocking pool (for
    /// [`spawn_blocking`]) runs at once; more jobs
    /// wait for one to finish. Default 512. The pool is one per process:
    /// the last runtime built with this set decides.
    pub fn blocking_threads(mut self, threads: usize) -> Builder {
        self.blocking_threads = Some(threads);
        self
    }

    /// How long a thread of the blocking pool waits for a job before it
    /// leaves. Default 10 s. Process-wide, as
    /// [`blocking_threads`](Self::blocking_threads).
    pub fn blocking_keep_alive(mut self, keep_alive: Duration) -> Builder {
        self.blocking_keep_alive = Some(keep_alive);
        self
    }

    /// Runs on `backend`, whatever `CORERING_BACKEND` says (by default,
    /// the environment decides: `auto`, `io_uring` or `epoll`; `auto`, the
    /// default, takes io_uring unless the kernel refuses rings, and then
    /// epoll, once for the whole process).
    ///
    /// Forced to [`Backend::IoUring`] where the kernel refuses rings,
    /// [`build`](Self::build) fails with the cause. On [`Backend::Epoll`],
    /// the io_uring-only features (buffer rings, registered buffers, direct
    /// descriptors, zero-copy sends, linked turns) say `Unsupported` or
    /// fall back, as the README's table lists.
    pub fn backend(mut self, backend: Backend) -> Builder {
        self.config.backend = Some(backend);
        self
    }

    /// Wakes other cores with `IORING_OP_MSG_RING` where the kernel has it
    /// (the default), or, with `false`, always through their eventfd. Also
    /// set by `CORERING_MSG_RING=0` in the environment.
    pub fn msg_ring(mut self, msg_ring: bool) -> Builder {
        self.config.msg_ring = msg_ring;
        self
    }

    /// Pins core `i` of [`run_on_cores`](Self::run_on_cores) to the `i`-th
    /// CPU this process may run on (wrapping around). Default: not pinned.
    pub fn pin_cores(mut self, pin: bool) -> Builder {
        self.pin_cores = pin;
        self
    }

    /// The shutdown token of what this builder builds (its launch, or its
    /// lone runtime), in place of a new one: keep a clone to trigger the
    /// shutdown from any thread. [`shutdown::token`](crate::shutdown::token)
    /// returns it on every core.
    pub fn shutdown(mut self, token: Shutdown) -> Builder {
        self.shutdown = Some(token);
        self
    }

    /// Triggers the shutdown token on `SIGINT` or `SIGTERM`, and forces it
    /// on a second one (default off). The handlers are installed when the
    /// runtime is built (for a launch, by its first core), so a signal
    /// that comes after never takes the default action of ending the
    /// process.
    pub fn shutdown_on_signals(mut self, on: bool) -> Builder {
        self.shutdown_on_signals = on;
        self
    }

    /// Reports, with `report` on a watchdog thread, each time user code
    /// holds a core for longer than `threshold` without coming back to the
    /// core's loop (a poll that blocks or spins), once per stall and while
    /// it lasts (default off). See [`Stall`].
    ///
    /// With it on, each core stores one word per tick and two per park;
    /// the watchdog wakes every quarter of the threshold (at most every
    /// 100 ms, at least every 1 ms).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let runtime = corering::Runtime::builder()
    ///     .on_stall(Duration::from_millis(100), |stall| {
    ///         eprintln!("{} held for {:?}", stall.core(), stall.duration())
    ///     })
    ///     .build()
    ///     .unwrap();
    /// # drop(runtime);
    /// ```
    pub fn on_stall(
        mut self,
        threshold: Duration,
        report: impl Fn(&Stall) + Send + Sync + 'static,
    ) -> Builder {
        self.on_stall = Some(OnStall {
            threshold,
            report: Arc::new(report),
        });
        self
    }

    /// Starts one thread per core, each with its own runtime built from
    /// this configuration, runs `make(core)` to completion on each, and
    /// returns their outputs in core order.
    ///
    /// Cores share nothing: typically each binds its own listener with
    /// [`TcpListener::bind_reuse_port`](crate::net::TcpListener::bind_reuse_port),
    /// so the kernel spreads connections across them.
    ///
    /// # Errors
    ///
    /// When a thread cannot start or a core cannot set up its ring or be
    /// pinned; then no core runs `make`.
    ///
    /// # Panics
    ///
    /// When a core's future panics (the panic is resumed here after every
    /// core has finished), or when `cores` was set to 0.
    ///
    /// # Examples
    ///
    /// ```
    /// let cores = corering::Runtime::builder()
    ///     .cores(2)
    ///     .run_on_cores(|core| async move { core.index() * 10 })
    ///     .unwrap();
    /// assert_eq!(cores, [0, 10]);
    /// ```
    pub fn run_on_cores<F, Fut>(self, make: F) -> io::Result<Vec<Fut::Output>>
    where
        F: Fn(CoreId) -> Fut + Sync,
        Fut: Future,
        Fut::Output: Send,
    {
        let cores = match self.cores {
            Some(cores) => cores,
            None => std::thread::available_parallelism()?.get(),
        };
        assert!(cores >= 1, "run_on_cores needs at least one core");
        launcher::run(&self, cores, make)
    }

    /// Sets up the ring and builds the runtime.
    ///
    /// # Errors
    ///
    /// When io_uring cannot be set up; the error names the cause and the fix
    /// (`PermissionDenied`: blocked by seccomp or `kernel.io_uring_disabled`;
    /// `Unsupported`: a kernel without io_uring or too old).
    pub fn build(self) -> io::Result<Runtime> {
        let config = self.config;
        config.check()?;
        blocking::POOL.configure(self.blocking_threads, self.blocking_keep_alive);
        let executor = Executor::new(EventFd::new()?, config.task_cache_bytes);
        let io = set_up_io(&config, &executor)?;
        if let Io::Ring(driver) = &io {
            executor.set_ring_fd(driver.borrow().ring_fd());
            executor::set_ring_hook(msg_ring_from_here);
        }
        let token = self.shutdown.unwrap_or_default();
        if self.shutdown_on_signals {
            let interrupt = signal::signal(SignalKind::interrupt())?;
            let terminate = signal::signal(SignalKind::terminate())?;
            drop(executor.spawn(trigger_on_signals([interrupt, terminate], token.clone())));
        }
        let progress = match self.on_stall {
            Some(OnStall { threshold, report }) => Some(stall::watch(threshold, report)?),
            None => None,
        };
        let accounting = Accounting::new();
        let place = (
            Launch::alone(executor.handle(), accounting.published.clone(), token),
            CoreId::new(0),
        );
        let core = Box::new(Core {
            io,
            timers: Wheel::new(Instant::now()).into(),
            executor,
            closes: Default::default(),
            place: place.into(),
            progress,
            accounting,
            config,
        });
        context::register(&core);
        Ok(Runtime {
            core,
            shut_down: false,
            _not_send: PhantomData,
        })
    }
}

/// Sets up the backend `config` asks for (see `backend.rs`).
fn set_up_io(config: &Config, executor: &Executor) -> io::Result<Io> {
    let choice = match config.backend {
        Some(backend) => Choice::Only(backend),
        None => Choice::from_env()?,
    };
    // The first `auto` runtimes (a launch's cores, built at once) decide
    // one at a time: the first one's outcome is every other's.
    let _deciding = (choice == Choice::Auto).then(backend::deciding);
    let backend = match choice {
        Choice::Only(backend) => backend,
        Choice::Auto => backend::decided().unwrap_or(Backend::IoUring),
    };
    if backend == Backend::Epoll {
        let reactor = Reactor::new(executor.doorbell_fd())?;
        if choice == Choice::Auto {
            backend::decide(Backend::Epoll);
        }
        return Ok(Io::Epoll(reactor.into()));
    }
    let ring = Driver::new(
        &DriverConfig {
            entries: config.entries,
            sqpoll_idle: config.sqpoll_idle,
            slots_max: config.slots_max,
            direct_fds: config.direct_fds,
            batch_wait: config.batch_wait,
            msg_ring: config.msg_ring,
            #[cfg(feature = "fault-injection")]
            faults: config.faults,
        },
        executor.doorbell_fd(),
    );
    match ring {
        Ok(driver) => {
            if choice == Choice::Auto {
                backend::decide(Backend::IoUring);
            }
            Ok(Io::Ring(driver.into()))
        }
        // Refused outright: epoll, for this runtime and every later `auto`
        // one, unless another runtime of the process (a core of the same
        // launch, built at the same moment) got a ring first, which this
        // one must match.
        Err(error) if choice == Choice::Auto && backend::refused(&error) => {
            backend::decide(Backend::Epoll);
            if backend::decided() != Some(Backend::Epoll) {
                return Err(error);
            }
            let reactor = Reactor::new(executor.doorbell_fd())?;
            Ok(Io::Epoll(reactor.into()))
        }
        Err(error) => Err(error),
    }
}

/// The current launch's shutdown token.
pub(crate) fn shutdown_token() -> Shutdown {
    context::with_core(|core| core.place.borrow().0.shutdown().clone())
}

/// Triggers `token` on each delivery of either signal: the first starts
/// the shutdown, the second forces it.
async fn trigger_on_signals(mut signals: [Signal; 2], token: Shutdown) {
    loop {
        std::future::poll_fn(|cx| {
            let ready = signals
                .iter_mut()
                .any(|signal| signal.poll_recv(cx).is_ready());
            if ready {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
        token.trigger();
    }
}

/// One core: a ring, a task queue and a timer wheel, driven by `block_on` on
/// the thread that owns it.
///
/// Dropping the runtime drops its tasks, cancels every operation still in
/// flight and waits (at most the shutdown timeout) for the kernel to finish
/// with their memory before the ring closes.
pub struct Runtime {
    /// Boxed so the address the thread-local context points to is stable.
    core: Box<Core>,
    shut_down: bool,
    /// Tasks are `!Send` and live on this thread.
    _not_send: PhantomData<Rc<()>>,
}

/// Buffers the run loop reuses every tick.
#[derive(Default)]
struct Scratch {
    wakers: Vec<Waker>,
    graveyard: Vec<Box<dyn Abandoned>>,
    jobs: Vec<Job>,
}

impl Scratch {
    /// Drops the states of finished cancelled operations and any wakers
    /// left, each inside the containment of a task poll: buffers and
    /// wakers are user code, and one that panics must not cost the others
    /// their drop.
    fn drop_leftovers(&mut self, executor: &Executor) {
        for state in self.graveyard.drain(..) {
            executor.contain(|| drop(state));
        }
        for waker in self.wakers.drain(..) {
            executor.contain(|| drop(waker));
        }
    }
}

impl Runtime {
    /// A runtime with the default configuration.
    ///
    /// # Errors
    ///
    /// As [`Builder::build`].
    pub fn new() -> io::Result<Runtime> {
        Builder::default().build()
    }

    /// A builder to configure a runtime.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Runs `future` to completion, driving the core's tasks and I/O.
    ///
    /// # Panics
    ///
    /// When called from inside a runtime (a task must not block its core).
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        assert!(
            !context::is_inside(),
            "block_on called from inside a corering runtime"
        );
        let core = &*self.core;
        let _enter = Enter::new(core);
        let mut future = pin!(future);
        let waker = core.executor.main_waker();
        let mut cx = Context::from_waker(&waker);
        core.executor.wake_main();
        let mut scratch = Scratch::default();
        loop {
            if core.executor.take_main_woken() {
                if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                    // A wake of another core the future sent on its way
                    // out may be a `MSG_RING` still in the SQ: send it now,
                    // since nothing may drive this ring for a while.
                    if let Some(driver) = core.ring() {
                        driver.borrow_mut().submit_queued();
                    }
                    return output;
                }
            }
            tick(core, &mut scratch);
        }
    }

    /// The backend this runtime runs on.
    pub fn backend(&self) -> Backend {
        self.core.backend()
    }

    /// The driver's counters.
    pub fn stats(&self) -> Stats {
        self.core.stats()
    }

    /// Drops every task, cancels every operation in flight and reaps until
    /// none is left (or the shutdown timeout passes, leaking what remains),
    /// then returns the final counters. Dropping the runtime does the same.
    pub fn shutdown(mut self) -> Stats {
        self.shut_down_now()
    }

    fn shut_down_now(&mut self) -> Stats {
        if self.shut_down {
            return self.stats();
        }
        self.shut_down = true;
        let core = &*self.core;
        let _enter = Enter::new(core);
        let mut scratch = Scratch::default();
        core.executor.shutdown();
        if let Some(driver) = core.ring() {
            driver.borrow_mut().cancel_all();
        }
        let deadline = Instant::now() + core.config.shutdown_timeout;
        loop {
            queue_closes(core);
            let left = deadline.saturating_duration_since(Instant::now());
            // The tasks are gone and the executor closed: their wakes
            // queue nothing.
            let mut ready = |token| core.executor.schedule(token as usize);
            match &core.io {
                Io::Ring(driver) => {
                    let mut driver = driver.borrow_mut();
                    driver.release_untaken();
                    if driver.is_idle() && core.closes.borrow().is_empty() {
                        break;
                    }
                    if left.is_zero() {
                        driver.leak_in_flight();
                        break;
                    }
                    driver.enter(Wait::For(Some(left)), &mut ready);
                    driver.take_ready(&mut ready, &mut scratch.wakers, &mut scratch.graveyard);
                }
                Io::Epoll(reactor) => {
                    let mut reactor = reactor.borrow_mut();
                    if reactor.is_idle() && core.closes.borrow().is_empty() {
                        break;
                    }
                    if left.is_zero() {
                        reactor.leak_in_flight();
                        break;
                    }
                    // Jobs of dropped futures wake the core when done.
                    reactor.turn(Wait::For(Some(left)), &mut ready);
                    reactor.take_ready(&mut scratch.wakers, &mut scratch.graveyard);
                }
            }
            scratch.drop_leftovers(&core.executor);
        }
        // The last word for cores that read this one's counters later.
        counters::publish(core, Instant::now());
        self.stats()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shut_down_now();
        let leaked = match &self.core.io {
            Io::Ring(driver) => driver.borrow().leaked(),
            Io::Epoll(reactor) => reactor.borrow().leaked(),
        };
        context::unregister(&self.core, leaked);
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut f = f.debug_struct("Runtime");
        f.field("backend", &self.backend());
        if let Some(driver) = self.core.ring() {
            f.field("flags", &driver.borrow().flags());
        }
        f.field("stats", &self.stats()).finish()
    }
}

/// One turn of the run loop (see the module docs).
fn tick(core: &Core, scratch: &mut Scratch) {
    if let Some(progress) = &core.progress {
        progress.tick();
    }
    let executor = &core.executor;
    executor.drain_inbox(&mut scratch.jobs);
    for job in scratch.jobs.drain(..) {
        // A job sent by another core (a remote spawn): it catches its own
        // user code's panics; contained all the same.
        executor.contain(job);
    }
    let polled = executor.run(core.config.tasks_per_tick);
    if core.accounting.ticked(polled) {
        counters::publish(core, Instant::now());
    }

    queue_closes(core);
    // One clock reading per tick, and none while no timer is pending: it
    // fires the due timers and bounds the park.
    let mut until_timer = None;
    {
        let mut timers = core.timers.borrow_mut();
        if timers.pending() > 0 {
            let now = Instant::now();
            timers.advance(now, &mut scratch.wakers);
            until_timer = timers
                .next_deadline()
                .map(|deadline| deadline.saturating_duration_since(now));
        }
    }
    for waker in scratch.wakers.drain(..) {
        executor.wake(waker);
    }
    let ready = executor.is_ready() || executor.is_main_woken();
    let mut wait = match until_timer {
        _ if ready => Wait::No,
        None => Wait::For(None),
        Some(left) if left.is_zero() => Wait::No,
        Some(left) => Wait::For(Some(left)),
    };
    // Parked from here: a wake from another thread rings (see
    // `executor::remote`), unless one came in since the check above.
    if let Wait::For(_) = wait {
        if !executor.park() {
            wait = Wait::No;
        }
    }
    // Published before blocking when the last publication is a period
    // old (see `counters`), with the clock reading that times the park.
    let parks = matches!(wait, Wait::For(_));
    let parked = parks.then(Instant::now);
    if let Some(now) = parked {
        if core.accounting.publish_due(now) {
            counters::publish(core, now);
        }
    }
    {
        executor.compact();
        let mut ready = |token| executor.schedule(token as usize);
        if let (true, Some(progress)) = (parks, &core.progress) {
            progress.flip();
        }
        match &core.io {
            Io::Ring(driver) => {
                let mut driver = driver.borrow_mut();
                driver.enter(wait, &mut ready);
                driver.take_ready(&mut ready, &mut scratch.wakers, &mut scratch.graveyard);
            }
            Io::Epoll(reactor) => {
                let mut reactor = reactor.borrow_mut();
                reactor.turn(wait, &mut ready);
                reactor.take_ready(&mut scratch.wakers, &mut scratch.graveyard);
            }
        }
        if let (true, Some(progress)) = (parks, &core.progress) {
            progress.flip();
        }
        if let Some(parked) = parked {
            core.accounting.parked(parked.elapsed());
        }
    }
    executor.unpark();
    executor.release_yielded();
    for waker in scratch.wakers.drain(..) {
        executor.wake(waker);
    }
    scratch.drop_leftovers(executor);
}

/// The executor's way to wake another core from this thread: a `MSG_RING`
/// pushed on this core's ring and submitted at once, with whatever else
/// the tick queued so far. Waiting for the tick's end would leave the
/// target parked while this core runs on: a producer that sends a burst
/// in one poll then fills the channel before its consumer wakes, and the
/// two take turns instead of running side by side (one-way messages per
/// second fell to a third in the A/B). False off a core, on a ring
/// without `MSG_RING`, or with the driver in use (the caller writes the
/// target's eventfd then).
fn msg_ring_from_here(target: RawFd) -> bool {
    context::try_with_core(|core| {
        let Some(Ok(mut driver)) = core.ring().map(RefCell::try_borrow_mut) else {
            return false;
        };
        if !driver.can_msg_ring() {
            return false;
        }
        driver.msg_ring(target);
        driver.submit_queued();
        true
    })
    .unwrap_or(false)
}

/// Moves descriptors waiting to be closed onto the ring, as many as there
/// are free slots.
fn queue_closes(core: &Core) {
    if core.closes.borrow().is_empty() {
        return;
    }
    // Taken out of the cell, so that a close deferred while the driver
    // pushes (a late completion reaped to make room in the SQ) lands in the
    // emptied list: no borrow of it is held across the push.
    let mut closes = core.closes.take();
    match &core.io {
        Io::Ring(driver) => {
            let mut driver = driver.borrow_mut();
            closes.retain(|&target| !driver.push_close(target));
        }
        // A close never waits on epoll: made here, each descriptor taken
        // out of the set first.
        Io::Epoll(reactor) => {
            let mut reactor = reactor.borrow_mut();
            for target in closes.drain(..) {
                close_now(&mut reactor, target);
            }
        }
    }
    let mut list = core.closes.borrow_mut();
    closes.append(&mut list);
    *list = closes;
}

/// Closes `target` on the epoll backend: out of the epoll set, then
/// `close(2)` (a direct descriptor cannot exist there).
pub(crate) fn close_now(reactor: &mut Reactor, target: crate::driver::Target) {
    let crate::driver::Target::Fd(fd) = target else {
        unreachable!("the epoll backend has no direct descriptors");
    };
    reactor.forget(fd);
    // SAFETY: the last handle of `fd` was dropped; nothing uses it after.
    unsafe { crate::sys::file::close(fd) };
}
