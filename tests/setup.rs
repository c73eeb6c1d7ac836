//! Ring setup failures give the documented error, never a panic.
//!
//! Each seccomp test re-runs this test binary as a child process that runs
//! only that test, which installs a filter refusing one io_uring call before
//! building a runtime, so the filter never touches the test harness itself.

use std::process::Command;

mod common;

use common::seccomp::refuse;

const CHILD_ENV: &str = "CORERING_SECCOMP_CHILD";

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
    in_child_with(test, Some(syscall), None, check);
}

/// [`in_child`], with the filter optional and `CORERING_BACKEND` set to
/// `backend` in the child (unset when `None`, as on a new machine).
fn in_child_with(
    test: &str,
    refused: Option<libc::c_long>,
    backend: Option<&str>,
    check: fn() -> std::io::Error,
) {
    if let Some(child) = std::env::var_os(CHILD_ENV) {
        let Some(syscall) = refused else {
            let error = check();
            println!("{CHILD_CHECKED} {test}: {error}");
            return;
        };
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
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, test);
    // The child's runtimes choose as a new process's do: `auto` unless
    // the test says otherwise.
    match backend {
        Some(backend) => command.env("CORERING_BACKEND", backend),
        None => command.env_remove("CORERING_BACKEND"),
    };
    let output = command.output().unwrap();
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
    if refused.is_some() {
        assert!(checked.contains("seccomp"), "{checked}");
    }
}

/// The error a runtime forced onto io_uring gets where setup is refused:
/// the cause, and the way out.
fn forced_io_uring_error(error: std::io::Error) -> std::io::Error {
    assert_eq!(error.kind(), std::io::ErrorKind::PermissionDenied);
    let message = error.to_string();
    assert!(message.contains("io_uring_setup failed"), "{message}");
    assert!(message.contains("seccomp"), "{message}");
    assert!(message.contains("CORERING_BACKEND"), "{message}");
    error
}

/// With the backend on `auto` (the default), a process whose seccomp
/// filter refuses `io_uring_setup` runs on epoll: a runtime serves a TCP
/// round trip there, every later runtime is on epoll too, and one forced
/// onto io_uring fails with the cause named.
#[test]
fn auto_runs_on_epoll_where_io_uring_setup_is_refused() {
    in_child(
        "auto_runs_on_epoll_where_io_uring_setup_is_refused",
        libc::SYS_io_uring_setup,
        || {
            let runtime = corering::Runtime::new().expect("auto falls back to epoll");
            assert_eq!(runtime.backend(), corering::Backend::Epoll);
            let echoed = runtime.block_on(async {
                use corering::net::{TcpListener, TcpStream};
                let listener = TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = listener.local_addr().unwrap();
                let server = corering::spawn(async move {
                    let (stream, _) = listener.accept().await.unwrap();
                    let (read, buf) = stream.read(Vec::with_capacity(16)).await;
                    read.unwrap();
                    stream.write_all(buf).await.0.unwrap();
                });
                let client = TcpStream::connect(addr).await.unwrap();
                client.write_all(b"ping".to_vec()).await.0.unwrap();
                let (read, buf) = client.read(Vec::with_capacity(16)).await;
                read.unwrap();
                server.await.unwrap();
                buf
            });
            assert_eq!(echoed, b"ping");
            let cores = corering::Runtime::builder()
                .cores(2)
                .run_on_cores(|_| async { corering::stats().submitted })
                .unwrap();
            assert_eq!(cores.len(), 2);
            assert_eq!(
                corering::Runtime::new().unwrap().backend(),
                corering::Backend::Epoll
            );
            forced_io_uring_error(
                corering::Runtime::builder()
                    .backend(corering::Backend::IoUring)
                    .build()
                    .unwrap_err(),
            )
        },
    );
}

/// `CORERING_BACKEND=io_uring` where setup is refused: the error, not a
/// fallback.
#[test]
fn forced_io_uring_where_refused_is_an_error() {
    in_child_with(
        "forced_io_uring_where_refused_is_an_error",
        Some(libc::SYS_io_uring_setup),
        Some("io_uring"),
        || forced_io_uring_error(corering::Runtime::new().unwrap_err()),
    );
}

/// `auto` takes io_uring where the kernel allows it.
#[test]
fn auto_takes_io_uring_where_it_works() {
    in_child_with("auto_takes_io_uring_where_it_works", None, None, || {
        let runtime = corering::Runtime::new().unwrap();
        assert_eq!(runtime.backend(), corering::Backend::IoUring);
        let epoll = corering::Runtime::builder()
            .backend(corering::Backend::Epoll)
            .build()
            .unwrap();
        assert_eq!(epoll.backend(), corering::Backend::Epoll);
        // A later `auto` runtime takes the process's first outcome.
        assert_eq!(
            corering::Runtime::new().unwrap().backend(),
            corering::Backend::IoUring
        );
        std::io::Error::other("auto took io_uring")
    });
}

#[test]
fn the_environment_chooses_epoll_or_is_refused_by_name() {
    let test = "the_environment_chooses_epoll_or_is_refused_by_name";
    in_child_with(test, None, Some("epoll"), || {
        assert_eq!(
            corering::Runtime::new().unwrap().backend(),
            corering::Backend::Epoll
        );
        let forced = corering::Runtime::builder()
            .backend(corering::Backend::IoUring)
            .build()
            .unwrap();
        assert_eq!(
            forced.backend(),
            corering::Backend::IoUring,
            "the builder overrides"
        );
        std::io::Error::other("epoll as told")
    });
}

#[test]
fn a_bad_backend_in_the_environment_is_refused_by_name() {
    let test = "a_bad_backend_in_the_environment_is_refused_by_name";
    in_child_with(test, None, Some("kqueue"), || {
        let error = corering::Runtime::new().unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
        let message = error.to_string();
        assert!(
            message.contains("CORERING_BACKEND") && message.contains("kqueue"),
            "{message}"
        );
        error
    });
}

#[test]
fn seccomp_blocked_io_uring_gives_the_documented_error() {
    in_child(
        "seccomp_blocked_io_uring_gives_the_documented_error",
        libc::SYS_io_uring_setup,
        || {
            let error = corering::Runtime::builder()
                .backend(corering::Backend::IoUring)
                .build()
                .expect_err("io_uring_setup is refused");
            assert_eq!(error.kind(), std::io::ErrorKind::PermissionDenied);
            let message = error.to_string();
            assert!(message.contains("io_uring_setup"), "{message}");
            assert!(message.contains("seccomp"), "{message}");
            assert!(message.contains("kernel.io_uring_disabled"), "{message}");
            assert!(message.contains("os error 1"), "{message}");
            assert!(message.contains("CORERING_BACKEND"), "{message}");
            // The same error with the environment forcing io_uring.
            let again = corering::Runtime::builder()
                .entries(8)
                .backend(corering::Backend::IoUring)
                .build()
                .unwrap_err();
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

/// The first runtimes of the process are a launch's cores, built at once
/// under the filter: every core falls back to epoll (none sees the
/// refusal as an error because another decided first).
#[test]
fn a_launch_under_the_filter_runs_every_core_on_epoll() {
    in_child(
        "a_launch_under_the_filter_runs_every_core_on_epoll",
        libc::SYS_io_uring_setup,
        || {
            let backends = corering::Runtime::builder()
                .cores(8)
                .run_on_cores(|_| async { corering::backend() })
                .expect("every core falls back");
            assert_eq!(backends, [corering::Backend::Epoll; 8]);
            forced_io_uring_error(
                corering::Runtime::builder()
                    .backend(corering::Backend::IoUring)
                    .build()
                    .unwrap_err(),
            )
        },
    );
}
