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

#[cfg(test)]
mod tests {
    use super::*;

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
