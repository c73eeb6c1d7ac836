//! Ring setup failures give the documented error, never a panic.
//!
//! The seccomp test re-runs this test binary as a child process that
//! installs a filter refusing `io_uring_setup` before building a runtime, so
//! the filter never touches the test harness itself.

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

/// Runs this test binary again as a child that runs only `test`, with
/// `mode` in its environment, and checks that it passed.
fn run_child(test: &str, mode: &str) {
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, mode)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child {mode} failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("CHILD-CHECKED"),
        "child {mode} did not run: {stdout}"
    );
}

#[test]
fn seccomp_blocked_io_uring_gives_the_documented_error() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return; // the child runs `seccomp_child` only
    }
    run_child("seccomp_child", "setup");
}

/// A filter that lets `io_uring_setup` through but refuses `io_uring_enter`
/// or `io_uring_register` is found while the runtime is built, with an
/// error that names the refused call, instead of a panic at the first tick.
#[test]
fn seccomp_refusing_enter_or_register_fails_the_build_with_the_call_named() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    run_child("seccomp_child", "enter");
    run_child("seccomp_child", "register");
}

#[test]
fn seccomp_child() {
    let Some(mode) = std::env::var_os(CHILD_ENV) else {
        return; // only meaningful inside the child process
    };
    match mode.to_str().unwrap() {
        "setup" => {
            refuse(libc::SYS_io_uring_setup);
            let error = corering::Runtime::new().expect_err("io_uring_setup is refused");
            assert_eq!(error.kind(), std::io::ErrorKind::PermissionDenied);
            let message = error.to_string();
            assert!(message.contains("seccomp"), "{message}");
            assert!(message.contains("kernel.io_uring_disabled"), "{message}");
            assert!(message.contains("os error 1"), "{message}");
            // The same error through the builder.
            let error = corering::Runtime::builder().entries(8).build().unwrap_err();
            assert_eq!(error.kind(), std::io::ErrorKind::PermissionDenied);
        }
        call @ ("enter" | "register") => {
            let syscall = if call == "enter" {
                libc::SYS_io_uring_enter
            } else {
                libc::SYS_io_uring_register
            };
            refuse(syscall);
            let error = corering::Runtime::new().expect_err("the ring cannot be used");
            assert_eq!(error.kind(), std::io::ErrorKind::PermissionDenied);
            let message = error.to_string();
            assert!(message.contains(&format!("io_uring_{call}")), "{message}");
            assert!(message.contains("seccomp"), "{message}");
            // And `start` panics with that message, not another.
            let panic = std::panic::catch_unwind(|| corering::start(async {})).unwrap_err();
            let panic = panic.downcast_ref::<String>().unwrap();
            assert!(panic.contains(&format!("io_uring_{call}")), "{panic}");
        }
        other => panic!("unknown child mode {other}"),
    }
    println!("CHILD-CHECKED");
}
