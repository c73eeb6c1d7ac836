//! io_uring setup: the best flags the running kernel accepts, the opcode
//! probe, and setup errors that say what went wrong and how to fix it.
//!
//! Flags are tried from the most capable set down, dropping what the kernel
//! refuses with `EINVAL`: `DEFER_TASKRUN` (completion work runs only when this
//! thread enters the ring, so it never interrupts user code; Linux 6.1)
//! needs `SINGLE_ISSUER` (6.0). `COOP_TASKRUN` (5.19) and `SUBMIT_ALL`
//! (5.18) are independent. SQPOLL, when asked for, excludes
//! `DEFER_TASKRUN`.

use std::io;
use std::time::Duration;

use io_uring::{opcode, IoUring, Probe};

/// What the ring was set up with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RingFlags {
    /// Only this thread submits (`IORING_SETUP_SINGLE_ISSUER`).
    pub(crate) single_issuer: bool,
    /// Completion work is deferred until this thread enters the ring.
    pub(crate) defer_taskrun: bool,
    /// The kernel does not interrupt this thread to run completion work.
    pub(crate) coop_taskrun: bool,
    /// A failing SQE does not stop the submission of the SQEs after it.
    pub(crate) submit_all: bool,
    /// A kernel thread polls the submission queue.
    pub(crate) sqpoll: bool,
}

/// The opcodes the driver and the operations of this crate submit.
const REQUIRED_OPCODES: &[(u8, &str)] = &[
    (opcode::Nop::CODE, "NOP"),
    (opcode::Read::CODE, "READ"),
    (opcode::Write::CODE, "WRITE"),
    (opcode::Readv::CODE, "READV"),
    (opcode::Writev::CODE, "WRITEV"),
    (opcode::Close::CODE, "CLOSE"),
    (opcode::AsyncCancel::CODE, "ASYNC_CANCEL"),
    (opcode::Accept::CODE, "ACCEPT"),
    (opcode::Connect::CODE, "CONNECT"),
    (opcode::Recv::CODE, "RECV"),
    (opcode::Send::CODE, "SEND"),
    (opcode::Shutdown::CODE, "SHUTDOWN"),
    (opcode::SendMsg::CODE, "SENDMSG"),
    (opcode::RecvMsg::CODE, "RECVMSG"),
];

/// Creates a ring with `entries` SQ entries and a CQ twice that size.
///
/// Returns the ring and the flags it got. Fails with an error naming the
/// cause and the fix when io_uring is unavailable, too old, or lacks an
/// opcode this crate submits.
pub(crate) fn create(
    entries: u32,
    sqpoll_idle: Option<Duration>,
) -> io::Result<(IoUring, RingFlags)> {
    assert!(entries >= 1, "a ring needs at least one SQ entry");
    let mut last_error = None;
    for flags in candidate_flags(sqpoll_idle.is_some()) {
        match try_create(entries, sqpoll_idle, flags) {
            Ok(ring) => {
                check_features(&ring)?;
                check_enter(&ring)?;
                return Ok((ring, flags));
            }
            Err(error) if error.raw_os_error() == Some(libc::EINVAL) => last_error = Some(error),
            Err(error) => return Err(explain_setup_error(error)),
        }
    }
    Err(explain_setup_error(
        last_error.expect("at least one flag set was tried"),
    ))
}

/// The flag sets to try, most capable first.
fn candidate_flags(sqpoll: bool) -> Vec<RingFlags> {
    let all = RingFlags {
        single_issuer: true,
        defer_taskrun: !sqpoll,
        coop_taskrun: !sqpoll,
        submit_all: true,
        sqpoll,
    };
    vec![
        all,
        RingFlags {
            defer_taskrun: false,
            ..all
        },
        RingFlags {
            defer_taskrun: false,
            single_issuer: false,
            ..all
        },
        RingFlags {
            defer_taskrun: false,
            single_issuer: false,
            coop_taskrun: false,
            ..all
        },
        RingFlags {
            sqpoll,
            ..RingFlags::default()
        },
    ]
}

fn try_create(
    entries: u32,
    sqpoll_idle: Option<Duration>,
    flags: RingFlags,
) -> io::Result<IoUring> {
    let mut builder = IoUring::builder();
    builder.setup_cqsize(entries.saturating_mul(2));
    if flags.single_issuer {
        builder.setup_single_issuer();
    }
    if flags.defer_taskrun {
        builder.setup_defer_taskrun();
    }
    if flags.coop_taskrun {
        builder.setup_coop_taskrun();
    }
    if flags.submit_all {
        builder.setup_submit_all();
    }
    if let Some(idle) = sqpoll_idle {
        builder.setup_sqpoll(u32::try_from(idle.as_millis()).unwrap_or(u32::MAX));
    }
    builder.build(entries)
}

/// Refuses kernels that lack what the driver relies on.
fn check_features(ring: &IoUring) -> io::Result<()> {
    let params = ring.params();
    if !params.is_feature_nodrop() || !params.is_feature_ext_arg() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "io_uring on this kernel lacks IORING_FEAT_NODROP or IORING_FEAT_EXT_ARG; \
             corering needs Linux 5.11 or newer",
        ));
    }
    let mut probe = Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|error| explain_call_error("io_uring_register", error))?;
    for &(code, name) in REQUIRED_OPCODES {
        if !probe.is_supported(code) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("io_uring on this kernel does not support IORING_OP_{name}"),
            ));
        }
    }
    Ok(())
}

/// Whether the kernel supports `opcode` on `ring` (a probe; false when the
/// probe itself is refused).
pub(crate) fn supports(ring: &IoUring, opcode: u8) -> bool {
    let mut probe = Probe::new();
    ring.submitter().register_probe(&mut probe).is_ok() && probe.is_supported(opcode)
}

/// Enters the new ring once, submitting and waiting for nothing: a filter
/// that allows `io_uring_setup` but refuses `io_uring_enter` shows here,
/// with an error that says so, rather than at the first tick.
fn check_enter(ring: &IoUring) -> io::Result<()> {
    match ring.submit() {
        Ok(_) => Ok(()),
        // Transient answers: the ring works.
        Err(error)
            if matches!(
                error.raw_os_error(),
                Some(libc::EINTR | libc::EAGAIN | libc::EBUSY)
            ) =>
        {
            Ok(())
        }
        Err(error) => Err(explain_call_error("io_uring_enter", error)),
    }
}

/// Turns a refused `io_uring_enter` or `io_uring_register` (on a ring that
/// was set up) into an error that names the call, the cause and the fix.
pub(crate) fn explain_call_error(call: &str, error: io::Error) -> io::Error {
    match error.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{call} failed ({error}): io_uring_setup was allowed but {call} is refused, \
                 typically by a seccomp filter (a container runtime's profile); run with a \
                 profile that allows io_uring_setup, io_uring_enter and io_uring_register"
            ),
        ),
        _ => io::Error::new(
            error.kind(),
            format!("{call} failed on a new ring: {error}"),
        ),
    }
}

/// Turns an `io_uring_setup` failure into an error that names the cause and
/// the fix. The message keeps the errno so it can still be told apart.
pub(crate) fn explain_setup_error(error: io::Error) -> io::Error {
    let (kind, why) = match error.raw_os_error() {
        Some(libc::EPERM) => (
            io::ErrorKind::PermissionDenied,
            "io_uring is blocked: either a seccomp filter refuses io_uring_setup (a container \
             runtime's default profile does; run with a profile that allows io_uring_setup, \
             io_uring_enter and io_uring_register) or the sysctl kernel.io_uring_disabled is set \
             (set it to 0, or to 1 and add this user to kernel.io_uring_group)",
        ),
        Some(libc::ENOSYS) => (
            io::ErrorKind::Unsupported,
            "this kernel has no io_uring (built without CONFIG_IO_URING, or older than 5.1); \
             corering needs Linux 5.11 or newer with io_uring enabled",
        ),
        Some(libc::ENOMEM) => (
            io::ErrorKind::OutOfMemory,
            "the kernel could not allocate the ring: on kernels before 5.12 rings count against \
             RLIMIT_MEMLOCK (raise `ulimit -l`), otherwise ask for fewer entries",
        ),
        Some(libc::EMFILE) | Some(libc::ENFILE) => (
            io::ErrorKind::Other,
            "no file descriptor is left for the ring (raise `ulimit -n`)",
        ),
        Some(libc::EINVAL) => (
            io::ErrorKind::InvalidInput,
            "the kernel rejected every ring configuration tried (entries must be at most 32768)",
        ),
        _ => (error.kind(), "unexpected error"),
    };
    let refused = matches!(error.raw_os_error(), Some(libc::EPERM) | Some(libc::ENOSYS));
    let instead = if refused {
        "; or let corering run on epoll instead (CORERING_BACKEND=auto, the default, or epoll)"
    } else {
        ""
    };
    io::Error::new(
        kind,
        SetupFailed {
            errno: error.raw_os_error(),
            message: format!("io_uring_setup failed ({error}): {why}{instead}"),
        },
    )
}

/// The error of a refused `io_uring_setup`: the message, and the errno
/// the backend's choice reads (`setup_errno`).
#[derive(Debug)]
struct SetupFailed {
    errno: Option<i32>,
    message: String,
}

impl std::fmt::Display for SetupFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SetupFailed {}

/// The errno of `io_uring_setup` when `error` is its failure (not that of
/// a later call on a ring that was set up).
pub(crate) fn setup_errno(error: &io::Error) -> Option<i32> {
    error.get_ref()?.downcast_ref::<SetupFailed>()?.errno
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eperm_names_seccomp_and_sysctl() {
        let error = explain_setup_error(io::Error::from_raw_os_error(libc::EPERM));
        assert_eq!(error.kind(), io::ErrorKind::PermissionDenied);
        let message = error.to_string();
        assert!(message.contains("seccomp"), "{message}");
        assert!(message.contains("kernel.io_uring_disabled"), "{message}");
    }

    #[test]
    fn enosys_names_the_kernel() {
        let error = explain_setup_error(io::Error::from_raw_os_error(libc::ENOSYS));
        assert_eq!(error.kind(), io::ErrorKind::Unsupported);
        assert!(error.to_string().contains("CONFIG_IO_URING"));
    }

    /// The running kernel's version, `(major, minor)`, from `uname(2)`.
    fn kernel_version() -> (u32, u32) {
        // SAFETY: an all-zero `utsname` is a valid value for the kernel to
        // overwrite.
        let mut names: libc::utsname = unsafe { std::mem::zeroed() };
        // SAFETY: `names` is a writable `utsname` for the call to fill.
        unsafe { syscall!(uname(&mut names)) }.unwrap();
        let release: Vec<u8> = names
            .release
            .iter()
            .take_while(|&&byte| byte != 0)
            .map(|&byte| byte as u8)
            .collect();
        parse_version(std::str::from_utf8(&release).unwrap())
    }

    /// `(major, minor)` of a kernel release such as `6.1.0-18-amd64`.
    fn parse_version(release: &str) -> (u32, u32) {
        let mut numbers = release.split(|c: char| !c.is_ascii_digit());
        let mut next = || numbers.next().and_then(|n| n.parse().ok());
        let major = next().unwrap_or_else(|| panic!("kernel release {release:?}"));
        (major, next().unwrap_or(0))
    }

    /// The flags `create` gets without SQPOLL on a mainline kernel of
    /// `version`, when each flag arrived: `SUBMIT_ALL` in 5.18,
    /// `COOP_TASKRUN` in 5.19, `SINGLE_ISSUER` in 6.0, `DEFER_TASKRUN` in
    /// 6.1. (A distribution kernel with flags backported gets more.)
    fn expected_flags(version: (u32, u32)) -> RingFlags {
        RingFlags {
            submit_all: version >= (5, 18),
            coop_taskrun: version >= (5, 19),
            single_issuer: version >= (6, 0),
            defer_taskrun: version >= (6, 1),
            sqpoll: false,
        }
    }

    #[test]
    fn kernel_versions_parse() {
        assert_eq!(parse_version("6.18.44-fc-v1098"), (6, 18));
        assert_eq!(parse_version("6.1.0-18-amd64"), (6, 1));
        assert_eq!(parse_version("5.15.0"), (5, 15));
        assert_eq!(parse_version("6.0"), (6, 0));
        assert_eq!(parse_version("6"), (6, 0));
        let all = expected_flags((6, 1));
        assert!(all.single_issuer && all.defer_taskrun && all.coop_taskrun && all.submit_all);
        // Each expected set is one the fallback tries, so `create` can get it.
        for version in [(5, 11), (5, 18), (5, 19), (6, 0), (6, 1), (6, 12)] {
            let expected = expected_flags(version);
            assert!(
                candidate_flags(false).contains(&expected),
                "{version:?}: {expected:?} is never tried"
            );
        }
    }

    #[test]
    fn best_flags_on_this_kernel() {
        let (ring, flags) = create(8, None).unwrap();
        assert_eq!(ring.params().sq_entries(), 8);
        assert_eq!(ring.params().cq_entries(), 16);
        let version = kernel_version();
        assert_eq!(
            flags,
            expected_flags(version),
            "the flags Linux {}.{} accepts",
            version.0,
            version.1
        );
    }
}
