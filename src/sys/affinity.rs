//! The CPUs a thread may run on (`sched_getaffinity(2)`), and pinning the
//! calling thread to one of them, for the launcher's one thread per core.

use std::io;
use std::mem::size_of;

/// The CPUs this process may run on, in order.
pub(crate) fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: an all-zero `cpu_set_t` is an empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a plain bit set the kernel fills; its size is passed.
    unsafe { syscall!(sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set)) }?;
    let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is below CPU_SETSIZE, the set's size.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect();
    Ok(cpus)
}

/// Pins the calling thread to `cpu`, which must be below `CPU_SETSIZE` (as
/// every CPU from [`allowed_cpus`] is).
pub(crate) fn pin_to(cpu: usize) -> io::Result<()> {
    assert!(cpu < libc::CPU_SETSIZE as usize, "CPU {cpu} out of range");
    // SAFETY: an all-zero `cpu_set_t` is an empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is below CPU_SETSIZE, the set's size (asserted above).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a plain bit set the kernel reads; its size is passed.
    unsafe { syscall!(sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set)) }?;
    Ok(())
}
