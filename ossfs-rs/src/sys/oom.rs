//! The kernel's count of OOM kills (`oom_kill` in `/proc/vmstat`, Linux
//! 4.13 and later): a supervisor reads it when a worker starts and when it
//! dies, to tell a SIGKILL from the OOM killer (a worker that cannot live,
//! which may loop) from one sent by an operator.
//!
//! Imports: std only.

/// The number of processes the OOM killer has killed since boot (`None`:
/// the kernel does not say).
pub fn oom_kills() -> Option<u64> {
    parse_vmstat(&std::fs::read_to_string("/proc/vmstat").ok()?)
}

fn parse_vmstat(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_oom_kill_line_only() {
        let text = "nr_free_pages 12\noom_kill_x 9\noom_kill 3\npgfault 7\n";
        assert_eq!(parse_vmstat(text), Some(3));
        assert_eq!(parse_vmstat("pgfault 7\n"), None);
        assert_eq!(parse_vmstat("oom_kill many\n"), None);
        // This kernel has the counter.
        assert!(oom_kills().is_some());
    }
}
