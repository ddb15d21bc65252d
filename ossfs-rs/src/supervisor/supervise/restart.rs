//! The supervision loop: wait for the worker, learn how it ended, and
//! start the next one on the same connection.
//!
//! A worker's end means (exit codes in `protocol`): 0, the session ended
//! (unmounted), so the supervisor cleans up and exits; `EXIT_HANDOFF`
//! while an upgrade runs, so the new binary starts at once; anything else
//! (a signal, a panic, the OOM killer) is a death, logged with its cause
//! and followed by a new worker. A worker killed from outside (SIGKILL,
//! SIGTERM... by an operator, a test, a container runtime) is replaced at
//! once, however young: it did not die of itself. Only a crash loop backs
//! off ([`CrashLoop`], [`backoff`]): a run of workers that die young *on
//! their own* (a non-zero exit such as a panic, a fault signal such as
//! SIGSEGV or SIGABRT, or a SIGKILL while the kernel's OOM-kill count
//! moved), so a worker that cannot live does not spin the machine
//! ([`counts_toward_a_loop`]). A worker that
//! cannot even start is retried with the same backoff while the mount
//! exists; a new binary that cannot start during an upgrade is replaced
//! by the previous one at once.
//!
//! Imports: [`super`] (the supervisor), the supervisor's `protocol` (exit
//! codes), [`super::watch`] (waiting for an adopted worker) and `sys`
//! (the OOM-kill count).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use super::watch::wait_pid_exit;
use super::{Supervisor, WorkerProc, lock};
use crate::supervisor::protocol::EXIT_HANDOFF;

/// A worker that lived less than this counts as dying young.
const YOUNG: Duration = Duration::from_secs(1);
/// Young deaths on their own in a row before restarts are delayed.
const CRASH_LOOP: u32 = 3;
/// Longest wait between restarts of a worker that keeps dying.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// The wait before restarting a worker after `young_deaths` quick deaths
/// in a row: 100 ms doubling up to [`MAX_BACKOFF`].
fn backoff(young_deaths: u32) -> Duration {
    Duration::from_millis(50u64 << young_deaths.clamp(1, 10)).min(MAX_BACKOFF)
}

/// How a worker ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Death {
    /// It exited with this status.
    Exited(i32),
    /// A signal ended it.
    Signaled(i32),
    /// Not known (an adopted worker that is not our child).
    Unknown,
}

/// Signals a process gets from its own fault (or raises itself: abort).
const FAULT_SIGNALS: [i32; 8] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGABRT,
    libc::SIGSYS,
    libc::SIGTRAP,
    libc::SIGXCPU,
];

/// Whether a worker's `death` says it died on its own, and so counts
/// toward a crash loop when it was young: a non-zero exit (an error, a
/// panic), a fault signal, a SIGKILL while the OOM killer killed
/// (`oom_killed`: the kernel's count moved during its life), or an end we
/// could not learn. Any other signal came from outside (`kill -9` by an
/// operator or a test, SIGTERM from a runtime): the worker is replaced at
/// once however young it was.
fn counts_toward_a_loop(death: Death, oom_killed: bool) -> bool {
    match death {
        Death::Exited(code) => code != 0,
        Death::Signaled(sig) if sig == libc::SIGKILL => oom_killed,
        Death::Signaled(sig) => FAULT_SIGNALS.contains(&sig),
        Death::Unknown => true,
    }
}

/// The crash-loop rule: how many workers in a row died young on their
/// own, and so how long to wait before the next start.
#[derive(Debug, Default)]
struct CrashLoop {
    young_deaths: u32,
}

impl CrashLoop {
    /// A worker died after `lived`, on its own (`own`, see
    /// [`counts_toward_a_loop`]) or killed from outside: the wait before
    /// the next one (`None`: start it at once). A worker that lived
    /// [`YOUNG`] or longer ends the run; one killed from outside neither
    /// counts nor ends it.
    fn died(&mut self, lived: Duration, own: bool) -> Option<Duration> {
        if lived >= YOUNG {
            self.young_deaths = 0;
        } else if own {
            self.young_deaths = self.young_deaths.saturating_add(1);
        } else {
            return None;
        }
        (self.young_deaths >= CRASH_LOOP).then(|| backoff(self.young_deaths))
    }

    /// A worker could not start: it counts as dying young, and the next
    /// try always waits.
    fn start_failed(&mut self) -> Duration {
        self.young_deaths = self.young_deaths.saturating_add(1);
        backoff(self.young_deaths)
    }
}

impl Supervisor {
    /// Wait for the worker to end; returns how it ended and a description.
    fn wait(worker: WorkerProc) -> (Death, String) {
        match worker {
            WorkerProc::Child(mut c) => match c.wait() {
                Ok(status) => {
                    use std::os::unix::process::ExitStatusExt;
                    let what = match (status.code(), status.signal()) {
                        (_, Some(sig)) => format!(
                            "killed by signal {sig} ({})",
                            nix::sys::signal::Signal::try_from(sig)
                                .map(|s| s.as_str())
                                .unwrap_or("?")
                        ),
                        (Some(code), _) => format!("exited with status {code}"),
                        _ => "ended".to_string(),
                    };
                    let death = match (status.code(), status.signal()) {
                        (Some(code), _) => Death::Exited(code),
                        (_, Some(sig)) => Death::Signaled(sig),
                        _ => Death::Unknown,
                    };
                    (death, what)
                }
                Err(e) => (Death::Unknown, format!("cannot be waited for: {e}")),
            },
            WorkerProc::Adopted(pid) => {
                wait_pid_exit(pid);
                // Still our child after a supervisor re-exec: reap it and
                // learn how it ended.
                let mut status = 0;
                // SAFETY: waitpid on a pid with a valid status pointer.
                let rc = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
                if rc == pid as libc::pid_t {
                    if libc::WIFEXITED(status) {
                        let code = libc::WEXITSTATUS(status);
                        return (Death::Exited(code), format!("exited with status {code}"));
                    }
                    if libc::WIFSIGNALED(status) {
                        let sig = libc::WTERMSIG(status);
                        return (Death::Signaled(sig), format!("killed by signal {sig}"));
                    }
                }
                (
                    Death::Unknown,
                    "exited (adopted worker: status unknown)".to_string(),
                )
            }
        }
    }

    /// The supervision loop; returns when the mount is gone.
    pub(super) fn supervise(self: Arc<Self>, mut worker: WorkerProc) {
        let mut deaths = CrashLoop::default();
        let mut started = Instant::now();
        let mut oom_at_start = crate::sys::oom::oom_kills();
        loop {
            let pid = worker.pid();
            let (death, what) = Self::wait(worker);
            let upgrading = lock(&self.upgrade).binary.is_some();
            if death == Death::Exited(0) {
                info!(worker = pid, "the mount is gone; supervisor exits");
                break;
            }
            if death == Death::Exited(EXIT_HANDOFF) && upgrading {
                info!(worker = pid, "worker handed over for the upgrade");
            } else {
                let lived = started.elapsed();
                let oom_killed = crate::sys::oom::oom_kills() != oom_at_start;
                let delay = deaths.died(lived, counts_toward_a_loop(death, oom_killed));
                {
                    let mut info = lock(&self.info);
                    info.worker_restarts += 1;
                    info.last_restart_reason = Some(format!(
                        "worker {pid} {what} after {:.1}s",
                        lived.as_secs_f64()
                    ));
                }
                self.save_info();
                error!(worker = pid, cause = %what, lived_s = lived.as_secs_f64(), "worker died; starting a new one on the same connection");
                if let Some(delay) = delay {
                    warn!(
                        delay_ms = delay.as_millis() as u64,
                        young_deaths = deaths.young_deaths,
                        "worker keeps dying young; backing off"
                    );
                    std::thread::sleep(delay);
                }
            }
            let mut reverted = None;
            worker = loop {
                started = Instant::now();
                oom_at_start = crate::sys::oom::oom_kills();
                match self.start_worker(false) {
                    Ok(w) => break w,
                    Err(e) if upgrading && reverted.is_none() => {
                        // The new binary passed its preflight but cannot
                        // serve: go back to the one that did, at once.
                        let previous = lock(&self.upgrade).previous.clone();
                        if let Some(previous) = previous {
                            error!(error = %e, previous = %previous.display(), "the upgraded worker cannot start; starting the previous binary again");
                            *lock(&self.binary) = previous;
                        }
                        reverted = Some(e);
                    }
                    Err(e) => {
                        let delay = deaths.start_failed();
                        error!(error = %e, delay_ms = delay.as_millis() as u64, "cannot start a worker; retrying");
                        {
                            let mut info = lock(&self.info);
                            info.last_restart_reason = Some(e.clone());
                        }
                        self.save_info();
                        if !self.still_mounted() {
                            info!("the mount is gone; supervisor exits");
                            self.finish_upgrade(Err("the mount is gone".into()));
                            self.cleanup();
                            return;
                        }
                        std::thread::sleep(delay);
                    }
                }
            };
            if upgrading {
                let binary = lock(&self.binary).clone();
                if let Some(e) = reverted {
                    self.finish_upgrade(Err(format!(
                        "the new worker could not start ({e}); worker {} runs {} again",
                        worker.pid(),
                        binary.display()
                    )));
                    continue;
                }
                {
                    let mut info = lock(&self.info);
                    info.upgrades += 1;
                }
                self.save_info();
                self.finish_upgrade(Ok(format!(
                    "worker {} now runs {}",
                    worker.pid(),
                    binary.display()
                )));
            }
        }
        self.finish_upgrade(Err("the mount is gone".into()));
        self.cleanup();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUICK: Duration = Duration::from_millis(10);
    const LONG: Duration = Duration::from_secs(5);

    #[test]
    fn backoff_doubles_from_100ms_up_to_its_cap() {
        assert_eq!(backoff(0), Duration::from_millis(100));
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(3), Duration::from_millis(400));
        assert_eq!(backoff(7), Duration::from_millis(6400));
        assert_eq!(backoff(8), MAX_BACKOFF);
        assert_eq!(backoff(11), MAX_BACKOFF);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
        for n in 1..40 {
            assert!(backoff(n) >= backoff(n - 1), "backoff shrank at {n}");
            assert!(backoff(n) <= MAX_BACKOFF);
        }
    }

    #[test]
    fn occasional_deaths_restart_at_once() {
        let mut deaths = CrashLoop::default();
        for _ in 0..10 {
            assert_eq!(deaths.died(LONG, true), None);
        }
        // Two young deaths are not yet a loop; a long life ends the run.
        assert_eq!(deaths.died(QUICK, true), None);
        assert_eq!(deaths.died(QUICK, true), None);
        assert_eq!(deaths.died(YOUNG, true), None);
        assert_eq!(deaths.young_deaths, 0);
        assert_eq!(deaths.died(QUICK, true), None);
    }

    #[test]
    fn a_crash_loop_backs_off_until_a_worker_lives() {
        let mut deaths = CrashLoop::default();
        assert_eq!(deaths.died(QUICK, true), None);
        assert_eq!(deaths.died(QUICK, true), None);
        assert_eq!(deaths.died(QUICK, true), Some(backoff(CRASH_LOOP)));
        assert_eq!(deaths.died(QUICK, true), Some(Duration::from_millis(800)));
        for _ in 0..20 {
            deaths.died(QUICK, true);
        }
        assert_eq!(deaths.died(QUICK, true), Some(MAX_BACKOFF));
        assert_eq!(deaths.died(LONG, true), None);
        assert_eq!(deaths.died(QUICK, true), None);
    }

    #[test]
    fn a_worker_that_cannot_start_always_waits() {
        let mut deaths = CrashLoop::default();
        assert_eq!(deaths.start_failed(), Duration::from_millis(100));
        assert_eq!(deaths.start_failed(), Duration::from_millis(200));
        // The failed starts count toward the loop of the next deaths.
        assert_eq!(deaths.died(QUICK, true), Some(backoff(3)));
    }

    #[test]
    fn workers_killed_from_outside_restart_at_once_however_young() {
        let mut deaths = CrashLoop::default();
        for _ in 0..50 {
            assert_eq!(deaths.died(QUICK, false), None);
        }
        assert_eq!(deaths.young_deaths, 0);
        // Kills from outside neither count toward a loop nor end one.
        assert_eq!(deaths.died(QUICK, true), None);
        assert_eq!(deaths.died(QUICK, true), None);
        assert_eq!(deaths.died(QUICK, false), None);
        assert_eq!(deaths.young_deaths, 2);
        assert_eq!(deaths.died(QUICK, true), Some(backoff(CRASH_LOOP)));
        assert_eq!(deaths.died(QUICK, false), None);
        assert_eq!(deaths.died(LONG, true), None);
        assert_eq!(deaths.young_deaths, 0);
    }

    #[test]
    fn a_death_counts_when_the_worker_ended_itself() {
        // Errors, panics (101) and fault signals: the worker's own doing.
        for death in [
            Death::Exited(1),
            Death::Exited(101),
            Death::Signaled(libc::SIGSEGV),
            Death::Signaled(libc::SIGABRT),
            Death::Signaled(libc::SIGBUS),
            Death::Unknown,
        ] {
            assert!(counts_toward_a_loop(death, false), "{death:?}");
        }
        // Sent from outside: kill -9, a runtime's SIGTERM, a hangup.
        for sig in [libc::SIGKILL, libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            assert!(!counts_toward_a_loop(Death::Signaled(sig), false), "{sig}");
        }
        // A SIGKILL while the OOM killer killed is the worker's size.
        assert!(counts_toward_a_loop(Death::Signaled(libc::SIGKILL), true));
        assert!(!counts_toward_a_loop(Death::Signaled(libc::SIGTERM), true));
        // Exit 0 (unmounted) is no death; never a loop.
        assert!(!counts_toward_a_loop(Death::Exited(0), false));
    }
}
