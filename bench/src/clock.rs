//! The monotonic clock every timestamp in this tool is read from.
//!
//! `CLOCK_MONOTONIC` is one clock for the whole host, so a send time written into a payload by one
//! process can be compared with the receive time read by another (`pub` and `sub` run separately),
//! and it never jumps with wall-clock adjustments.

/// Nanoseconds on the host's monotonic clock.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64).wrapping_mul(1_000_000_000).wrapping_add(ts.tv_nsec as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_clock_never_goes_back() {
        let a = mono_ns();
        let b = mono_ns();
        assert!(b >= a);
    }
}
