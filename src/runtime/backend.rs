//! Which backend a core runs on, and how that is decided: once per process.
//!
//! `CORERING_BACKEND` in the environment says `auto` (the default),
//! `io_uring` or `epoll`; [`Builder::backend`](crate::Builder::backend)
//! overrides it. With `auto`, the first runtime built tries io_uring and
//! falls back to epoll only when the kernel refuses to set up a ring
//! (`EPERM`: a seccomp filter or `kernel.io_uring_disabled`; `ENOSYS`: no
//! io_uring); any other failure (`ENOMEM`, a locked-memory limit, a bad
//! configuration, a ring that sets up but whose `io_uring_enter` is
//! refused) stays an error that says what to fix. The outcome is kept for
//! the process: every later `auto` runtime, every core of a launch among
//! them, runs on the same backend.

use std::io;
use std::sync::atomic::{AtomicU8, Ordering};

/// How a core does its I/O.
///
/// # Examples
///
/// ```
/// use corering::{Backend, Runtime};
///
/// let runtime = Runtime::builder().backend(Backend::Epoll).build().unwrap();
/// assert_eq!(runtime.backend(), Backend::Epoll);
/// assert_eq!(runtime.block_on(async { 6 * 7 }), 42);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// One io_uring per core: operations complete in the kernel (the
    /// default where the kernel allows it).
    IoUring,
    /// One epoll instance per core: operations make their system call
    /// when their descriptor is ready, and files go to the blocking pool.
    /// For hosts where io_uring is refused (container runtimes' default
    /// seccomp profiles, `kernel.io_uring_disabled`); io_uring-only
    /// features say `Unsupported` (see the README's table).
    Epoll,
}

/// `io_uring` or `epoll`, as `CORERING_BACKEND` spells them.
impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::IoUring => "io_uring",
            Backend::Epoll => "epoll",
        })
    }
}

/// What a runtime is to run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Choice {
    /// io_uring, or epoll when the kernel refuses rings.
    Auto,
    /// This one, or an error.
    Only(Backend),
}

/// The environment variable that chooses.
pub(crate) const VARIABLE: &str = "CORERING_BACKEND";

impl Choice {
    /// What `CORERING_BACKEND` says (`auto` when unset).
    ///
    /// # Errors
    ///
    /// `InvalidInput` for any other value, naming the three accepted.
    pub(crate) fn from_env() -> io::Result<Choice> {
        let Some(value) = std::env::var_os(VARIABLE) else {
            return Ok(Choice::Auto);
        };
        match value.to_str() {
            Some("auto") | Some("") => Ok(Choice::Auto),
            Some("io_uring") | Some("io-uring") | Some("uring") => {
                Ok(Choice::Only(Backend::IoUring))
            }
            Some("epoll") => Ok(Choice::Only(Backend::Epoll)),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{VARIABLE}={value:?}: expected auto, io_uring or epoll"),
            )),
        }
    }
}

/// The process's `auto` outcome: 0 until the first `auto` runtime is
/// built, then 1 (io_uring) or 2 (epoll).
static AUTO: AtomicU8 = AtomicU8::new(0);

/// The backend an `auto` runtime takes when one was built before.
pub(crate) fn decided() -> Option<Backend> {
    match AUTO.load(Ordering::Acquire) {
        1 => Some(Backend::IoUring),
        2 => Some(Backend::Epoll),
        _ => None,
    }
}

/// Held while an `auto` runtime sets up, until the process has decided:
/// the first `auto` runtimes take turns, so only one tries and decides.
/// `None` once decided (no lock taken after that).
pub(crate) fn deciding() -> Option<std::sync::MutexGuard<'static, ()>> {
    static DECIDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    if decided().is_some() {
        return None;
    }
    // Nothing panics while it is held but a setup, whose panic is a bug.
    Some(
        DECIDING
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()),
    )
}

/// Keeps `backend` as the process's `auto` outcome (the first one kept
/// stays).
pub(crate) fn decide(backend: Backend) {
    let code = match backend {
        Backend::IoUring => 1,
        Backend::Epoll => 2,
    };
    let _ = AUTO.compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire);
}

/// Whether `error`, from setting up a ring, means the kernel refuses
/// io_uring outright (`auto` falls back then).
pub(crate) fn refused(error: &io::Error) -> bool {
    crate::sys::ring::setup_errno(error)
        .is_some_and(|errno| errno == libc::EPERM || errno == libc::ENOSYS)
}
