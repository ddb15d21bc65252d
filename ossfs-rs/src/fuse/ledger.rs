//! The requests a worker has in flight, and the answers it must not forget.
//!
//! A worker can die with requests read from `/dev/fuse` but not answered,
//! and an upgrade deliberately stops a worker with requests unanswered.
//! The [`Ledger`] is what the FUSE adapter consults for every request:
//!
//! - It counts requests in flight, so a draining worker (live upgrade)
//!   knows when the last one is answered, and refuses new ones *without
//!   answering them*: the next worker gets them back from the kernel
//!   (FUSE_NOTIFY_RESEND), so none fails.
//! - It writes each request's `unique` into the shared in-flight table
//!   ([`super::inflight`]), so that on a kernel without resend the next
//!   worker can end the orphaned requests with EIO instead of leaving the
//!   callers hanging.
//! - It remembers, through the journal, the answers of non-idempotent
//!   requests, so a resent one (bit 63 of `unique` set) gets the answer its
//!   first attempt earned ([`Ledger::replayed`]).
//!
//! Imports: `fs` and `fuse::inflight` of the crate, besides std and external
//! crates.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::inflight::InFlight;
use crate::fs::journal::{Answer, JournalOp, JournalSink};

/// Set by the kernel in the `unique` of a request it resends.
pub const RESEND_BIT: u64 = 1 << 63;

/// Whether `unique` marks a resent request.
pub fn is_resent(unique: u64) -> bool {
    unique & RESEND_BIT != 0
}

/// Requests in flight and remembered answers of one worker.
#[derive(Debug, Default)]
pub struct Ledger {
    journal: Option<Arc<dyn JournalSink>>,
    answers: Mutex<BTreeMap<u64, Answer>>,
    inflight: Option<InFlight>,
    running: AtomicUsize,
    draining: AtomicBool,
}

impl Ledger {
    /// A ledger that only counts (no supervisor: tests, the demo).
    pub fn standalone() -> Self {
        Self::default()
    }

    /// A supervised worker's ledger: answers go to `journal`, `answers`
    /// are those the journal already held, in-flight requests are written
    /// to `inflight`.
    pub fn supervised(
        journal: Arc<dyn JournalSink>,
        answers: BTreeMap<u64, Answer>,
        inflight: InFlight,
    ) -> Self {
        Self {
            journal: Some(journal),
            answers: Mutex::new(answers),
            inflight: Some(inflight),
            running: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
        }
    }

    /// Start serving a request. `None` when the worker is draining: the
    /// caller must then neither serve nor answer it (the next worker will).
    pub fn begin(self: &Arc<Self>, unique: u64) -> Option<Ticket> {
        if self.draining.load(Ordering::Acquire) {
            return self.refuse(unique);
        }
        self.running.fetch_add(1, Ordering::AcqRel);
        // Checked again: a drain that started in between must see either
        // this request counted or refused, never neither.
        if self.draining.load(Ordering::Acquire) {
            self.running.fetch_sub(1, Ordering::AcqRel);
            return self.refuse(unique);
        }
        let slot = self.inflight.as_ref().and_then(|t| t.enter(unique));
        Some(Ticket {
            ledger: self.clone(),
            slot,
        })
    }

    /// A request refused while draining stays in the in-flight table (its
    /// slot is never cleared), so that on a kernel without resend the next
    /// worker ends it with EIO instead of leaving it unanswered forever.
    fn refuse(&self, unique: u64) -> Option<Ticket> {
        if let Some(t) = &self.inflight {
            t.enter(unique);
        }
        None
    }

    /// Stop taking requests; those in flight still finish.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Requests being served now.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::Acquire)
    }

    /// The answer the first attempt of a resent request earned, if it got
    /// as far as earning one.
    pub fn replayed(&self, unique: u64) -> Option<Answer> {
        if !is_resent(unique) {
            return None;
        }
        let answers = self.answers.lock().ok()?;
        answers.get(&(unique & !RESEND_BIT)).copied()
    }

    /// Remember the answer of a non-idempotent request before it is sent.
    pub fn remember(&self, unique: u64, answer: Answer) {
        if let Some(j) = &self.journal {
            j.record(&JournalOp::Answer {
                unique: unique & !RESEND_BIT,
                answer,
            });
        }
    }
}

/// One request being served; dropping it ends the request's bookkeeping.
#[derive(Debug)]
pub struct Ticket {
    ledger: Arc<Ledger>,
    slot: Option<usize>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let (Some(slot), Some(table)) = (self.slot, self.ledger.inflight.as_ref()) {
            table.leave(slot);
        }
        self.ledger.running.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draining_refuses_new_requests_and_counts_the_rest() {
        let l = Arc::new(Ledger::standalone());
        let a = l.begin(1);
        assert!(a.is_some());
        assert_eq!(l.running(), 1);
        l.drain();
        assert!(l.begin(2).is_none());
        assert_eq!(l.running(), 1);
        drop(a);
        assert_eq!(l.running(), 0);
    }

    #[test]
    fn only_resent_requests_get_replayed_answers() {
        #[derive(Debug)]
        struct Null;
        impl JournalSink for Null {
            fn record(&self, _op: &JournalOp) {}
        }
        let dir = tempfile::tempdir().unwrap();
        let table = InFlight::create(&dir.path().join("inflight")).unwrap();
        let mut answers = BTreeMap::new();
        answers.insert(7, Answer::Done);
        let l = Ledger::supervised(Arc::new(Null), answers, table);
        assert_eq!(l.replayed(7), None);
        assert_eq!(l.replayed(7 | RESEND_BIT), Some(Answer::Done));
        assert_eq!(l.replayed(8 | RESEND_BIT), None);
    }
}
