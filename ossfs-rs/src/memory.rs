//! The global memory budget for data buffers (`-o memory_limit=`).
//!
//! Prefetched parts, cached blocks and upload parts are the daemon's only
//! large allocations; each takes a [`Reservation`] of its size from one
//! [`MemoryBudget`] before it is allocated and gives it back when dropped
//! (RAII, so an aborted task or an error path cannot leak budget). Two ways
//! to reserve, for two kinds of users:
//!
//! - [`MemoryBudget::try_reserve`] never waits: the prefetcher uses it for
//!   read-ahead, and simply reads ahead less when the budget is spent (that
//!   is its backpressure), and the block cache evicts instead.
//! - [`MemoryBudget::reserve`] waits until enough is free: uploads use it
//!   for their part buffers, so many writers share the budget instead of
//!   exceeding it. A request larger than the whole budget is clamped to the
//!   budget (it then runs alone), so it cannot wait forever.
//!
//! [`MemoryBudget::reserve_forced`] is for the bytes a reader is waiting
//! for right now: they are counted but never refused, so a full budget
//! slows read-ahead down without ever failing a read.
//!
//! Accounting is one atomic counter; waiters park on a tokio `Notify`
//! that every release wakes. Cancel safe: dropping a pending `reserve`
//! future reserves nothing.
//!
//! Imports: nothing of the crate; std and external crates only.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;

/// The default budget: 512 MiB.
pub const DEFAULT_MEMORY_LIMIT: u64 = 512 * 1024 * 1024;

#[derive(Debug)]
struct Inner {
    limit: u64,
    used: AtomicU64,
    freed: Notify,
}

/// A shared byte budget. Cloning shares it.
#[derive(Clone, Debug)]
pub struct MemoryBudget {
    inner: Arc<Inner>,
}

/// Bytes held from a [`MemoryBudget`] until dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Option<Arc<Inner>>,
    bytes: u64,
}

impl Reservation {
    /// How many bytes this reservation holds.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// A reservation of nothing, from no budget.
    pub fn none() -> Self {
        Self {
            budget: None,
            bytes: 0,
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(inner) = self.budget.take()
            && self.bytes > 0
        {
            inner.used.fetch_sub(self.bytes, Ordering::AcqRel);
            inner.freed.notify_waiters();
        }
    }
}

impl MemoryBudget {
    /// A budget of `limit` bytes (0 means 1 byte: nothing large fits).
    pub fn new(limit: u64) -> Self {
        Self {
            inner: Arc::new(Inner {
                limit: limit.max(1),
                used: AtomicU64::new(0),
                freed: Notify::new(),
            }),
        }
    }

    /// The budget's size.
    pub fn limit(&self) -> u64 {
        self.inner.limit
    }

    /// Bytes reserved now.
    pub fn used(&self) -> u64 {
        self.inner.used.load(Ordering::Acquire)
    }

    fn grant(&self, bytes: u64) -> Reservation {
        Reservation {
            budget: Some(self.inner.clone()),
            bytes,
        }
    }

    /// Reserve `bytes` if they fit now, else `None`.
    pub fn try_reserve(&self, bytes: u64) -> Option<Reservation> {
        let limit = self.inner.limit;
        self.inner
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= limit)
            })
            .ok()
            .map(|_| self.grant(bytes))
    }

    /// Reserve `bytes` even over the limit (bytes a reader waits for).
    pub fn reserve_forced(&self, bytes: u64) -> Reservation {
        self.inner.used.fetch_add(bytes, Ordering::AcqRel);
        self.grant(bytes)
    }

    /// Reserve `bytes` (clamped to the limit), waiting until they fit.
    pub async fn reserve(&self, bytes: u64) -> Reservation {
        let bytes = bytes.min(self.inner.limit);
        loop {
            // Register before trying, so a release between the failed try
            // and the wait is not missed.
            let freed = self.inner.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if let Some(r) = self.try_reserve(bytes) {
                return r;
            }
            freed.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn reservations_are_returned_on_drop() {
        let b = MemoryBudget::new(100);
        let r1 = b.try_reserve(60);
        assert!(r1.is_some());
        assert!(b.try_reserve(50).is_none(), "60 + 50 exceeds 100");
        let r2 = b.try_reserve(40);
        assert_eq!(b.used(), 100);
        drop(r1);
        assert_eq!(b.used(), 40);
        drop(r2);
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn forced_reservations_go_over_and_block_others() {
        let b = MemoryBudget::new(100);
        let f = b.reserve_forced(150);
        assert_eq!(b.used(), 150);
        assert!(b.try_reserve(1).is_none());
        drop(f);
        assert!(b.try_reserve(100).is_some());
    }

    #[tokio::test]
    async fn reserve_waits_for_a_release_and_clamps() {
        let b = MemoryBudget::new(100);
        let held = b.try_reserve(80);
        let b2 = b.clone();
        let waiter = tokio::spawn(async move { b2.reserve(50).await.bytes() });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "50 does not fit beside 80");
        drop(held);
        let got = tokio::time::timeout(Duration::from_secs(5), waiter).await;
        assert!(matches!(got, Ok(Ok(50))), "{got:?}");
        // Larger than the whole budget: clamped, granted when empty.
        let big = tokio::time::timeout(Duration::from_secs(5), b.reserve(1000)).await;
        assert_eq!(big.map(|r| r.bytes()).ok(), Some(100));
    }
}
