//! Facts about the recording machine that go into the file's metadata:
//! host name, kernel release, boot id and the clock anchors that turn
//! monotonic timestamps into wall-clock time.

use deeptcp_format::ClockAnchor;

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

pub fn hostname() -> String {
    read_trimmed("/proc/sys/kernel/hostname")
}

pub fn kernel_release() -> String {
    read_trimmed("/proc/sys/kernel/osrelease")
}

pub fn boot_id() -> String {
    read_trimmed("/proc/sys/kernel/random/boot_id")
}

fn clock_ns(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; clock ids used here always exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec.saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec)
}

/// CLOCK_MONOTONIC is what `bpf_ktime_get_ns` returns. Sample realtime on
/// both sides of it and keep the tightest of a few tries.
pub fn clock_anchor() -> ClockAnchor {
    let mut best = (i64::MAX, ClockAnchor::default());
    for _ in 0..5 {
        let r0 = clock_ns(libc::CLOCK_REALTIME);
        let m = clock_ns(libc::CLOCK_MONOTONIC);
        let r1 = clock_ns(libc::CLOCK_REALTIME);
        let width = r1 - r0;
        if width < best.0 {
            best = (
                width,
                ClockAnchor {
                    realtime_ns: r0 + width / 2,
                    monotonic_ns: m,
                },
            );
        }
    }
    best.1
}

pub fn monotonic_ns() -> i64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// Seconds since the Unix epoch, now.
pub fn unix_secs() -> i64 {
    clock_ns(libc::CLOCK_REALTIME).div_euclid(1_000_000_000)
}

#[cfg(test)]
mod tests {
    #[test]
    fn anchor_is_consistent_with_now() {
        let a = super::clock_anchor();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64;
        let wall = a.wall_ns(super::monotonic_ns());
        assert!((now - wall).abs() < 50_000_000, "anchor off by {} ns", now - wall);
    }
}
