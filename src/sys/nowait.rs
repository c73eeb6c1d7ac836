//! The system calls of the epoll backend's readiness paths, each returning
//! what the same operation's CQE would carry: the count or descriptor, or
//! `-errno`. An operation's CQE mapping then reads either backend's result
//! the same way (`op/`).
//!
//! The calls on sockets never wait (`MSG_DONTWAIT`, or a non-blocking
//! descriptor); `preadv2` and `pwritev2` take `RWF_NOWAIT` when asked; the
//! rest (files, paths) may block and run on the blocking pool.
//!
//! # Safety
//!
//! Every function is `unsafe`: its pointers must point at live memory of
//! the size given (written only where the call writes), valid for the
//! whole call, as the matching SQE's would.

/// The CQE-style result of a libc call that returned `value`.
#[inline]
fn res(value: isize) -> i32 {
    if value >= 0 {
        value as i32
    } else {
        -std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO)
    }
}

/// Declares wrappers `pub(crate) unsafe fn $name($args) -> i32` around
/// `$call`.
macro_rules! calls {
    ($( $(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) = $call:expr; )*) => {$(
        $(#[$doc])*
        #[inline]
        pub(crate) unsafe fn $name($($arg: $ty),*) -> i32 {
            // SAFETY: the caller keeps the pointers valid (module docs).
            res(unsafe { $call } as isize)
        }
    )*};
}

calls! {
    /// `recv(2)` that never waits.
    fn recv(fd: i32, buf: *mut u8, len: usize) =
        libc::recv(fd, buf.cast(), len, libc::MSG_DONTWAIT);
    /// `recv(2)` with `MSG_PEEK` that never waits: whether data (or the
    /// end of the stream) is there, taking none.
    fn peek(fd: i32, buf: *mut u8, len: usize) =
        libc::recv(fd, buf.cast(), len, libc::MSG_DONTWAIT | libc::MSG_PEEK);
    /// `send(2)` that never waits and never raises `SIGPIPE`.
    fn send(fd: i32, buf: *const u8, len: usize) =
        libc::send(fd, buf.cast(), len, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL);
    /// `recvmsg(2)` that never waits.
    fn recvmsg(fd: i32, msg: *mut libc::msghdr) =
        libc::recvmsg(fd, msg, libc::MSG_DONTWAIT);
    /// `sendmsg(2)` that never waits and never raises `SIGPIPE`.
    fn sendmsg(fd: i32, msg: *const libc::msghdr) =
        libc::sendmsg(fd, msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL);
    /// `accept4(2)`: the new descriptor close-on-exec and non-blocking.
    /// `fd` must be non-blocking (see [`set_nonblocking`]).
    fn accept(fd: i32, addr: *mut libc::sockaddr, len: *mut libc::socklen_t) =
        libc::accept4(fd, addr, len, libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK);
    /// `connect(2)` on a non-blocking socket: `-EINPROGRESS` until the
    /// socket turns writable, then [`socket_error`] says how it went.
    fn connect(fd: i32, addr: *const libc::sockaddr, len: libc::socklen_t) =
        libc::connect(fd, addr, len);
    /// `preadv2(2)`; `offset` -1 reads at the current position;
    /// `RWF_NOWAIT` in `flags` makes it `-EAGAIN` rather than wait.
    fn preadv2(fd: i32, iov: *const libc::iovec, count: i32, offset: i64, flags: i32) =
        libc::preadv2(fd, iov, count, offset, flags);
    /// `pwritev2(2)`, as [`preadv2`].
    fn pwritev2(fd: i32, iov: *const libc::iovec, count: i32, offset: i64, flags: i32) =
        libc::pwritev2(fd, iov, count, offset, flags);
    /// `fsync(2)`.
    fn fsync(fd: i32) = libc::fsync(fd);
    /// `fdatasync(2)`.
    fn fdatasync(fd: i32) = libc::fdatasync(fd);
    /// `fallocate(2)`.
    fn fallocate(fd: i32, mode: i32, offset: i64, len: i64) =
        libc::fallocate(fd, mode, offset, len);
    /// `ftruncate(2)`.
    fn ftruncate(fd: i32, len: i64) = libc::ftruncate(fd, len);
    /// `openat2(2)` with `how` (the layout of `struct open_how`).
    fn openat2(dir: i32, path: *const libc::c_char, how: *const libc::open_how) =
        libc::syscall(libc::SYS_openat2, dir, path, how, std::mem::size_of::<libc::open_how>());
    /// `statx(2)`.
    fn statx(dir: i32, path: *const libc::c_char, flags: i32, mask: u32, buf: *mut libc::statx) =
        libc::statx(dir, path, flags, mask, buf);
    /// `unlinkat(2)`.
    fn unlinkat(dir: i32, path: *const libc::c_char, flags: i32) =
        libc::unlinkat(dir, path, flags);
    /// `renameat(2)`.
    fn renameat(from_dir: i32, from: *const libc::c_char, to_dir: i32, to: *const libc::c_char) =
        libc::renameat(from_dir, from, to_dir, to);
    /// `mkdirat(2)`.
    fn mkdirat(dir: i32, path: *const libc::c_char, mode: libc::mode_t) =
        libc::mkdirat(dir, path, mode);
    /// `symlinkat(2)`.
    fn symlinkat(target: *const libc::c_char, dir: i32, link: *const libc::c_char) =
        libc::symlinkat(target, dir, link);
    /// `linkat(2)`.
    fn linkat(from_dir: i32, from: *const libc::c_char, to_dir: i32, to: *const libc::c_char) =
        libc::linkat(from_dir, from, to_dir, to, 0);
    /// `splice(2)`; a null offset uses the descriptor's position.
    fn splice(from: i32, from_offset: *mut i64, to: i32, to_offset: *mut i64, len: usize, flags: u32) =
        libc::splice(from, from_offset, to, to_offset, len, flags);
    /// `shutdown(2)`.
    fn shutdown(fd: i32, how: i32) = libc::shutdown(fd, how);
    /// `close(2)`, never retried (see `sys/mod.rs`).
    fn close(fd: i32) = libc::close(fd);
}

/// The outcome of a non-blocking `connect` that said `EINPROGRESS`, once
/// the socket turned writable: 0, or `-errno` (`SO_ERROR`).
pub(crate) fn socket_error(fd: i32) -> i32 {
    let mut error: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `error` and `len` are live locals of the sizes given.
    let result = res(unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut error as *mut libc::c_int).cast(),
            &mut len,
        )
    } as isize);
    if result < 0 {
        result
    } else {
        -error
    }
}

/// Makes `fd` non-blocking (`O_NONBLOCK`), for the calls that have no
/// per-call flag (`accept4`, `connect`). 0 or `-errno`.
pub(crate) fn set_nonblocking(fd: i32) -> i32 {
    // SAFETY: plain integers.
    let flags = res(unsafe { libc::fcntl(fd, libc::F_GETFL) } as isize);
    if flags < 0 || flags & libc::O_NONBLOCK != 0 {
        return flags.min(0);
    }
    // SAFETY: plain integers.
    res(unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } as isize)
}
