//! How much memory the machine has, for refusing allocations that could
//! never be backed before asking the allocator.

/// The machine's RAM plus swap in bytes (`sysinfo(2)`), or `None` when the
/// kernel does not say.
///
/// With overcommit, the allocator may grant far more than this and the
/// process is killed when it touches the pages; no single buffer larger
/// than this can ever be filled.
pub(crate) fn total() -> Option<u64> {
    // SAFETY: an all-zero `sysinfo` is a valid value for the kernel to
    // overwrite.
    let mut info: libc::sysinfo = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a writable `sysinfo` for the call to fill.
    unsafe { syscall!(sysinfo(&mut info)) }.ok()?;
    let unit = u64::from(info.mem_unit.max(1));
    // The sizes are `c_ulong`s, 32 bits on 32-bit targets.
    #[allow(clippy::useless_conversion)]
    let units = u64::from(info.totalram).checked_add(u64::from(info.totalswap))?;
    units.checked_mul(unit)
}
