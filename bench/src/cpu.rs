//! CPU time spent by processes and threads, from /proc (nanoseconds, per thread, from
//! `schedstat`): a steadier measure than wall time on a shared machine, and the one that says
//! which side a cost lands on.

use std::path::Path;

/// CPU time so far of the threads of `pid` whose name `keep` accepts, in nanoseconds.
/// Threads that ended are not counted, so measure over spans in which none ends.
pub fn cpu_ns(pid: u32, keep: impl Fn(&str) -> bool) -> u64 {
    let tasks = Path::new("/proc").join(pid.to_string()).join("task");
    let Ok(entries) = std::fs::read_dir(tasks) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            std::fs::read_to_string(e.path().join("comm")).is_ok_and(|name| keep(name.trim()))
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// This process (the harness and the client side), all threads.
pub fn own_ns() -> u64 {
    cpu_ns(std::process::id(), |_| true)
}

/// A baseline server process ([`crate::baseline::BaselineServer`]), all threads, as for the
/// server under test.
pub fn baseline_ns(pid: u32) -> u64 {
    cpu_ns(pid, |_| true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cpu_time_grows() {
        let before = own_ns();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(own_ns() > before);
    }
}
