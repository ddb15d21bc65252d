//! Running a child process with a deadline, so no test can hang on one.
//!
//! `std::process` has no timeout: the child's output is read on two
//! threads (so a full pipe cannot block it) while this thread polls for
//! its exit, and the child is killed when the deadline passes.

use std::io::{self, Read};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Run `cmd` with a deadline. `Ok(None)` when it was killed for taking too long.
pub fn run(mut cmd: Command, timeout: Duration) -> io::Result<Option<Output>> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    let readers = [
        child
            .stdout
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    ]
    .map(|r| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let [out, err] = readers.map(|h| h.join().unwrap_or_default());
    Ok(status.map(|status| Output {
        status,
        stdout: out,
        stderr: err,
    }))
}

/// The pids of every process now (the numeric entries of /proc).
pub fn pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The parent of process `pid` (0 when it is gone).
pub fn parent_of(pid: u32) -> u32 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // "pid (comm) state ppid ...": comm may hold spaces.
            let rest = s.get(s.rfind(')')? + 2..)?;
            rest.split(' ').nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

/// The NUL-separated command line of process `pid` (empty when it is gone
/// or a zombie).
pub fn cmdline(pid: u32) -> Vec<u8> {
    std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default()
}

/// The arguments of process `pid`, program first.
pub fn args_of(pid: u32) -> Vec<Vec<u8>> {
    cmdline(pid)
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_from_proc() {
        let me = std::process::id();
        assert!(pids().contains(&me));
        assert_eq!(parent_of(me), std::os::unix::process::parent_id());
        assert!(!args_of(me).is_empty());
        assert_eq!(parent_of(u32::MAX), 0);
    }

    #[test]
    fn run_kills_on_timeout() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        assert!(run(cmd, Duration::from_millis(200)).unwrap().is_none());
        let mut cmd = Command::new("echo");
        cmd.arg("hi");
        let out = run(cmd, Duration::from_secs(5)).unwrap().unwrap();
        assert_eq!(out.stdout, b"hi\n");
    }
}
