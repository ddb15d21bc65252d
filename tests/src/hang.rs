//! A deadline for each live mount, so that a hang fails a test instead of
//! stalling the whole suite.
//!
//! A FUSE request that a daemon read but never answered blocks its caller
//! in the kernel, uninterruptibly: no test-level timeout can end that
//! thread, and `cargo test` would wait for it until CI's own limit. Each
//! [`crate::mount::Mount`] therefore holds a [`HangGuard`]. When the mount
//! is still alive after its deadline (`E2E_HANG_SECS`, default 480 s; `0`
//! turns the guard off), the guard:
//!
//! 1. prints what everything involved is waiting on: the state, kernel
//!    wait channel and kernel stack of every thread of the test process,
//!    its children, and every process whose command line names the mount
//!    point or its state, plus the daemon's log tail;
//! 2. aborts the FUSE connection (`/sys/fs/fuse/connections/N/abort`), so
//!    every blocked call returns ENOTCONN and the test fails with its own
//!    message.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use crate::process::{cmdline, parent_of, pids};

/// The deadline when `E2E_HANG_SECS` is not set.
const DEFAULT_DEADLINE: Duration = Duration::from_secs(480);

/// Aborts a mount's FUSE connection when it outlives its deadline; see the
/// module documentation. Dropping it (the mount ended) disarms it.
#[derive(Debug)]
pub struct HangGuard {
    disarm: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HangGuard {
    /// Watch `mountpoint` (whose daemon logs to `log`) from now on.
    pub fn new(mountpoint: &Path, log: &Path) -> HangGuard {
        let Some(deadline) = deadline() else {
            return HangGuard {
                disarm: None,
                thread: None,
            };
        };
        let (tx, rx) = mpsc::channel::<()>();
        let (mountpoint, log) = (mountpoint.to_path_buf(), log.to_path_buf());
        let thread = std::thread::Builder::new()
            .name("e2e-hang-guard".into())
            .spawn(move || {
                if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(deadline) {
                    expire(&mountpoint, &log, deadline);
                }
            })
            .ok();
        HangGuard {
            disarm: Some(tx),
            thread,
        }
    }
}

impl Drop for HangGuard {
    fn drop(&mut self) {
        drop(self.disarm.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn deadline() -> Option<Duration> {
    match std::env::var("E2E_HANG_SECS")
        .ok()
        .map(|v| v.parse::<u64>())
    {
        Some(Ok(0)) => None,
        Some(Ok(secs)) => Some(Duration::from_secs(secs)),
        _ => Some(DEFAULT_DEADLINE),
    }
}

fn expire(mountpoint: &Path, log: &Path, deadline: Duration) {
    let mut report = format!(
        "\n=== e2e hang guard: {} is still mounted after {deadline:?}: \
         something hangs. What each process waits on: ===\n",
        mountpoint.display()
    );
    for pid in involved(mountpoint) {
        describe_process(&mut report, pid);
    }
    let tail = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = tail.lines().collect();
    let _ = writeln!(
        report,
        "--- daemon log (last 60 lines) ---\n{}",
        lines[lines.len().saturating_sub(60)..].join("\n")
    );
    match abort_connection(mountpoint) {
        Ok(conn) => {
            let _ = writeln!(
                report,
                "=== aborted FUSE connection {conn}: blocked calls now fail with ENOTCONN ==="
            );
        }
        Err(e) => {
            let _ = writeln!(report, "=== cannot abort the FUSE connection: {e} ===");
        }
    }
    eprintln!("{report}");
}

/// This process, its descendants, and every process whose command line
/// mentions the mount point (the daemon, its workers, `status` calls).
fn involved(mountpoint: &Path) -> Vec<u32> {
    let me = std::process::id();
    let wanted = mountpoint.as_os_str().as_encoded_bytes();
    let all: Vec<(u32, u32, Vec<u8>)> = pids()
        .into_iter()
        .map(|pid| (pid, parent_of(pid), cmdline(pid)))
        .collect();
    let mut out = vec![me];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        for (pid, ppid, _) in &all {
            if *ppid == parent && !out.contains(pid) {
                out.push(*pid);
            }
        }
        i += 1;
    }
    for (pid, _, cmd) in &all {
        if !out.contains(pid) && cmd.windows(wanted.len()).any(|w| w == wanted) {
            out.push(*pid);
        }
    }
    out
}

fn describe_process(report: &mut String, pid: u32) {
    let cmd: String = String::from_utf8_lossy(&cmdline(pid))
        .replace('\0', " ")
        .chars()
        .take(200)
        .collect();
    let _ = writeln!(report, "--- pid {pid}: {cmd}");
    if cmd.contains("garage") {
        return; // the store: its threads idle in their event loop
    }
    let tasks: Vec<PathBuf> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    for task in tasks {
        let read = |f: &str| std::fs::read_to_string(task.join(f)).unwrap_or_default();
        let stat = read("stat");
        let state = stat
            .rfind(')')
            .and_then(|i| stat.get(i + 2..i + 3))
            .unwrap_or("?")
            .to_string();
        let wchan = read("wchan");
        let _ = writeln!(
            report,
            "  task {} ({}) state {state} wchan {}",
            task.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
            read("comm").trim(),
            wchan.trim()
        );
        // Where a thread sleeps in the kernel (root only), unless it is an
        // ordinary idle wait.
        if state == "D" || (state == "S" && !IDLE_WAITS.contains(&wchan.trim())) {
            // The system call it is in: number and arguments.
            let _ = writeln!(report, "      syscall {}", read("syscall").trim());
            for frame in read("stack").lines().take(12) {
                let _ = writeln!(report, "      {frame}");
            }
        }
    }
}

/// Kernel wait channels of idle threads (locks, timers, event loops), whose
/// stacks say nothing about a hang.
const IDLE_WAITS: &[&str] = &[
    "futex_do_wait",
    "do_epoll_wait",
    "ep_poll",
    "hrtimer_nanosleep",
    "do_sys_poll",
    "poll_schedule_timeout.constprop.0",
    "do_sigtimedwait.isra.0",
    "skb_wait_for_more_packets",
    "do_select",
    "pipe_read",
];

/// Abort the FUSE connection mounted at `mountpoint`; returns its number.
fn abort_connection(mountpoint: &Path) -> Result<u32, String> {
    let wanted = mountpoint.to_string_lossy();
    let info = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
    // Field 3 is "major:minor"; a FUSE connection's number is the minor.
    let conn = info
        .lines()
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .find(|f| {
            f.len() > 4 && ossfs_rs::sys::mountinfo::unescape_mountinfo(f[4]) == wanted.as_ref()
        })
        .and_then(|f| f[2].split(':').nth(1)?.parse::<u32>().ok())
        .ok_or_else(|| "the mount is not in /proc/self/mountinfo".to_string())?;
    let dir = Path::new("/sys/fs/fuse/connections");
    if !dir.join(conn.to_string()).exists() {
        let _ = std::process::Command::new("mount")
            .args(["-t", "fusectl", "fusectl"])
            .arg(dir)
            .status();
    }
    std::fs::write(dir.join(conn.to_string()).join("abort"), b"1")
        .map_err(|e| format!("{}/{conn}/abort: {e}", dir.display()))?;
    Ok(conn)
}
