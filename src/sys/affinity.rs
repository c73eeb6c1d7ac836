//! The CPUs a thread may run on (`sched_getaffinity(2)`), and pinning the
//! calling thread to one of them, for the launcher's one thread per core.

use std::io;
use std::mem::size_of;
use std::sync::OnceLock;

/// The CPUs the process could run on before the launcher pinned its core
/// threads (see [`remember_process_cpus`]).
static PROCESS_CPUS: OnceLock<Vec<usize>> = OnceLock::new();

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

/// Records `cpus`, read before any core thread was pinned, as the CPUs of
/// the process; the first record stands.
pub(crate) fn remember_process_cpus(cpus: &[usize]) {
    let _ = PROCESS_CPUS.set(cpus.to_vec());
}

/// Lets the calling thread run on every CPU of the process again: a thread
/// started by a pinned core thread (the blocking pool's) inherits its one
/// CPU, and would compete with that core for it. Nothing when no launch
/// pinned anything.
pub(crate) fn unpin() -> io::Result<()> {
    let Some(cpus) = PROCESS_CPUS.get() else {
        return Ok(());
    };
    // SAFETY: an all-zero `cpu_set_t` is an empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus.iter().filter(|&&cpu| cpu < libc::CPU_SETSIZE as usize) {
        // SAFETY: `cpu` is below CPU_SETSIZE, the set's size.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: `set` is a plain bit set the kernel reads; its size is passed.
    unsafe { syscall!(sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set)) }?;
    Ok(())
}
