//! What an SQE names: a descriptor of the process, or an entry of the
//! ring's table of direct descriptors.

use std::os::fd::RawFd;

/// What an operation names: a file descriptor, or an entry of the ring's
/// table of registered ("direct") descriptors, which the kernel looks up
/// without touching the process's descriptor table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Fd(RawFd),
    Fixed(u32),
}

/// Builds an SQE for `$target` (a [`Target`]): `$build` runs with `$t` bound
/// to `types::Fd` or `types::Fixed`, the two forms every opcode takes.
macro_rules! with_target {
    ($target:expr, |$t:ident| $build:expr) => {
        match $target {
            $crate::driver::Target::Fd(fd) => {
                let $t = io_uring::types::Fd(fd);
                $build
            }
            $crate::driver::Target::Fixed(index) => {
                let $t = io_uring::types::Fixed(index);
                $build
            }
        }
    };
}
pub(crate) use with_target;
