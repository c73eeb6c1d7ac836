//! Ring setup failures give the documented error, never a panic.
//!
//! Each seccomp test re-runs this test binary as a child process that runs
//! only that test, which installs a filter refusing one io_uring call before
//! building a runtime, so the filter never touches the test harness itself.

use std::process::Command;

const CHILD_ENV: &str = "CORERING_SECCOMP_CHILD";

/// Installs a seccomp filter: `syscall` fails with `EPERM`, every other
/// syscall is allowed.
fn refuse(syscall: libc::c_long) {
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;
    let arch = if cfg!(target_arch = "x86_64") {
        AUDIT_ARCH_X86_64
    } else {
        AUDIT_ARCH_AARCH64
    };
    let statement = |code: u16, k: u32| libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let jump_eq = |k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    };
    let load = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    let ret = (libc::BPF_RET | libc::BPF_K) as u16;
    let mut program = [
        statement(load, 4), // seccomp_data.arch
        jump_eq(arch, 1, 0),
        statement(ret, libc::SECCOMP_RET_ALLOW),
        statement(load, 0), // seccomp_data.nr
        jump_eq(syscall as u32, 0, 1),
        statement(ret, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
        statement(ret, libc::SECCOMP_RET_ALLOW),
    ];
    let filter = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_mut_ptr(),
    };
    // SAFETY: plain prctl calls; `filter` points at `program`, both alive
    // for the duration of the call (the kernel copies the program).
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        assert_eq!(
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &filter as *const _
            ),
            0,
            "installing the seccomp filter: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// The line a child prints once every check passed, followed by the test's
/// name and the error the runtime gave.
const CHILD_CHECKED: &str = "CHILD-CHECKED";

/// A raw io_uring call, and its errno (0 for success): `io_uring_setup` of
/// a one-entry ring, which succeeds unless refused; `io_uring_enter` and
/// `io_uring_register` on descriptor -1, which the kernel itself refuses
/// (`EBADF`, `EINVAL`) without reading any argument, a filter with `EPERM`.
fn raw_call_errno(syscall: libc::c_long) -> i32 {
    let result = if syscall == libc::SYS_io_uring_setup {
        let mut params = [0u64; 15]; // struct io_uring_params, 120 bytes
                                     // SAFETY: `params` is a zeroed `io_uring_params` the kernel fills.
        let fd = unsafe { libc::syscall(syscall, 1u32, params.as_mut_ptr()) };
        if fd >= 0 {
            // SAFETY: the ring descriptor was just created, and is ours.
            unsafe { libc::close(fd as i32) };
        }
        fd
    } else {
        // SAFETY: descriptor -1 and null pointers: the kernel refuses the
        // call before it reads any argument.
        unsafe { libc::syscall(syscall, -1, 0, 0, 0, 0, 0) }
    };
    if result >= 0 {
        0
    } else {
        std::io::Error::last_os_error().raw_os_error().unwrap()
    }
}

/// Runs `check` in a child process: this test binary again, running only
/// `test`, which installs a filter refusing `syscall` and then calls
/// `check`, which returns the runtime's error. In the parent, asserts that
/// the child exited successfully after running that one test to its end.
///
/// The child proves the filter is what refuses the call: the raw call gets
/// through before the filter is installed and `EPERM` after, so a kernel
/// that refuses io_uring on its own, or a filter that is not installed,
/// fails the test instead of passing it.
fn in_child(test: &str, syscall: libc::c_long, check: fn() -> std::io::Error) {
    if let Some(child) = std::env::var_os(CHILD_ENV) {
        assert_eq!(child.to_str(), Some(test), "a child runs its own test only");
        let unfiltered = raw_call_errno(syscall);
        if syscall == libc::SYS_io_uring_setup {
            assert_eq!(unfiltered, 0, "io_uring_setup works before the filter");
        } else {
            assert_ne!(unfiltered, libc::EPERM, "the kernel's own answer");
        }
        refuse(syscall);
        assert_eq!(raw_call_errno(syscall), libc::EPERM, "the filter refuses");
        let error = check();
        println!("{CHILD_CHECKED} {test}: {error}");
        return;
    }
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, test)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(0),
        "child {test} failed: {stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("running 1 test") && stdout.contains("test result: ok. 1 passed"),
        "child {test} did not run its test: {stdout}"
    );
    let checked = stdout
        .lines()
        .find_map(|line| Some(line.split_once(&format!("{CHILD_CHECKED} {test}: "))?.1))
        .unwrap_or_else(|| panic!("child {test} did not finish its checks: {stdout}"));
    assert!(checked.contains("seccomp"), "{checked}");
}

#[test]
fn seccomp_blocked_io_uring_gives_the_documented_error() {
    in_child(
        "seccomp_blocked_io_uring_gives_the_documented_error",
        libc::SYS_io_uring_setup,
        || {
            let error = corering::Runtime::new().expect_err("io_uring_setup is refused");
            assert_eq!(error.kind(), std::io::ErrorKind::PermissionDenied);
            let message = error.to_string();
            assert!(message.contains("io_uring_setup"), "{message}");
            assert!(message.contains("seccomp"), "{message}");
            assert!(message.contains("kernel.io_uring_disabled"), "{message}");
            assert!(message.contains("os error 1"), "{message}");
            // The same error through the builder.
            let again = corering::Runtime::builder().entries(8).build().unwrap_err();
            assert_eq!(again.kind(), std::io::ErrorKind::PermissionDenied);
            assert_eq!(again.to_string(), message);
            error
        },
    );
}

/// A filter that lets `io_uring_setup` through but refuses `io_uring_enter`
/// or `io_uring_register` is found while the runtime is built, with an
/// error that names the refused call, instead of a panic at the first tick.
fn refused_call_is_named(call: &str) -> std::io::Error {
    let error = corering::Runtime::new().expect_err("the ring cannot be used");
    assert_eq!(error.kind(), std::io::ErrorKind::PermissionDenied);
    let message = error.to_string();
    assert!(
        message.contains(&format!("io_uring_{call} failed")),
        "{message}"
    );
    assert!(message.contains("seccomp"), "{message}");
    assert!(message.contains("os error 1"), "{message}");
    // And `start` panics with that message, not another.
    let panic = std::panic::catch_unwind(|| corering::start(async {})).unwrap_err();
    let panic = panic.downcast_ref::<String>().unwrap();
    assert!(panic.contains(&message), "{panic}");
    error
}

#[test]
fn seccomp_refusing_enter_fails_the_build_with_the_call_named() {
    in_child(
        "seccomp_refusing_enter_fails_the_build_with_the_call_named",
        libc::SYS_io_uring_enter,
        || refused_call_is_named("enter"),
    );
}

#[test]
fn seccomp_refusing_register_fails_the_build_with_the_call_named() {
    in_child(
        "seccomp_refusing_register_fails_the_build_with_the_call_named",
        libc::SYS_io_uring_register,
        || refused_call_is_named("register"),
    );
}
