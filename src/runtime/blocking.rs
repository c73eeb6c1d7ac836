//! The blocking pool: one per process, elastic, for work that would stall a
//! core (a blocking system call, name resolution, CPU-heavy code).
//!
//! A job goes into one FIFO under a mutex. A thread is started for it when
//! no thread is idle and fewer than the cap are running; an idle thread
//! waits on a condition variable and leaves once it has waited a whole
//! keep-alive without a job. The cap and the keep-alive are process-wide
//! (`Builder::blocking_threads`, `Builder::blocking_keep_alive`); a change
//! applies at once: idle threads over a lowered cap leave, and idle
//! threads measure their wait against the new keep-alive.
//!
//! The FIFO is unbounded by design: a job is the caller's closure and its
//! handle, and backpressure belongs to the caller (who awaits the handle).
//! Jobs never run on a core thread, and a job that panics does not take its
//! thread down: the panic is caught by the job itself (see `spawn_blocking`)
//! and the thread goes on.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The cap when none was configured.
pub(crate) const DEFAULT_THREADS: usize = 512;
/// The keep-alive when none was configured.
pub(crate) const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(10);

/// A job for the pool.
pub(crate) type Job = Box<dyn FnOnce() + Send>;

/// The pool of the process.
pub(crate) static POOL: Pool = Pool::new();

/// See the module docs.
pub(crate) struct Pool {
    queue: Mutex<Queue>,
    /// Signalled for each job pushed while a thread is idle.
    ready: Condvar,
    cap: AtomicUsize,
    keep_alive_nanos: AtomicU64,
}

struct Queue {
    jobs: VecDeque<Job>,
    /// Threads running (busy or idle).
    threads: usize,
    /// Threads waiting for a job.
    idle: usize,
}

impl Pool {
    const fn new() -> Pool {
        Pool {
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                threads: 0,
                idle: 0,
            }),
            ready: Condvar::new(),
            cap: AtomicUsize::new(DEFAULT_THREADS),
            keep_alive_nanos: AtomicU64::new(DEFAULT_KEEP_ALIVE.as_nanos() as u64),
        }
    }

    /// Sets the cap on threads (at least 1) and how long an idle thread
    /// waits before it leaves.
    pub(crate) fn configure(&self, cap: Option<usize>, keep_alive: Option<Duration>) {
        if let Some(cap) = cap {
            self.cap.store(cap.max(1), Ordering::Relaxed);
        }
        if let Some(keep_alive) = keep_alive {
            let nanos = u64::try_from(keep_alive.as_nanos()).unwrap_or(u64::MAX);
            self.keep_alive_nanos.store(nanos, Ordering::Relaxed);
        }
        if cap.is_some() || keep_alive.is_some() {
            // Idle threads look again: some may be over the cap now, or
            // past a shorter keep-alive.
            let _queue = self.lock();
            self.ready.notify_all();
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Jobs run outside the lock, so nothing panics while it is held.
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `job`, starting a thread for it when none is idle and the
    /// cap allows.
    pub(crate) fn execute(&'static self, job: Job) {
        let mut queue = self.lock();
        queue.jobs.push_back(job);
        if queue.idle > queue.jobs.len() - 1 {
            drop(queue);
            self.ready.notify_one();
            return;
        }
        if queue.threads >= self.cap.load(Ordering::Relaxed) {
            // Every thread is busy: the job waits for the first to finish.
            return;
        }
        queue.threads += 1;
        drop(queue);
        let started = std::thread::Builder::new()
            .name("corering-blocking".into())
            .spawn(move || self.work());
        if started.is_err() {
            // No thread could be made (out of memory or a thread limit):
            // the job waits for a running thread, or for the next job's
            // try; with none running, the next spawn tries again.
            self.lock().threads -= 1;
        }
    }

    /// A pool thread: runs jobs until it has waited a keep-alive for none,
    /// or finds more threads running than the cap allows (lowered since).
    fn work(&self) {
        // Started by a core thread, which may be pinned: run anywhere the
        // process may (best effort; pinned is slower, not wrong).
        let _ = crate::sys::affinity::unpin();
        let mut queue = self.lock();
        loop {
            if let Some(job) = queue.jobs.pop_front() {
                drop(queue);
                job();
                queue = self.lock();
                continue;
            }
            if queue.threads > self.cap.load(Ordering::Relaxed) {
                queue.threads -= 1;
                return;
            }
            let idle_since = Instant::now();
            queue.idle += 1;
            loop {
                let keep_alive =
                    Duration::from_nanos(self.keep_alive_nanos.load(Ordering::Relaxed));
                let Some(left) = keep_alive.checked_sub(idle_since.elapsed()) else {
                    break;
                };
                queue = self
                    .ready
                    .wait_timeout(queue, left)
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .0;
                if !queue.jobs.is_empty() || queue.threads > self.cap.load(Ordering::Relaxed) {
                    break;
                }
            }
            queue.idle -= 1;
            if queue.jobs.is_empty() {
                // Waited a whole keep-alive, or over the cap: leave.
                queue.threads -= 1;
                return;
            }
        }
    }
}
