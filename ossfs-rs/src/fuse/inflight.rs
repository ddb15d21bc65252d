//! The in-flight table: the `unique` of every request a worker is serving,
//! in memory that outlives the worker.
//!
//! A small file in the mount's state directory (on tmpfs under `/run`),
//! mapped shared by each worker. Slots are atomics: a request takes a free
//! slot by compare-and-swap and clears it when answered, so the table
//! costs two atomic operations per request and no lock. When a worker dies,
//! its slots still hold the requests it had read and not answered; on a
//! kernel without FUSE_NOTIFY_RESEND the next worker ends each of them with
//! EIO ([`InFlight::take_stale`]), so no caller waits forever. On kernels
//! with resend the kernel requeues them itself and the slots are only
//! cleared. A full table (more than [`SLOTS`] requests at once) leaves the
//! extra requests unrecorded: they are still resent, only the no-resend
//! fallback cannot see them.
//!
//! Imports: nothing of the crate; std and external crates only.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

/// Requests recorded at once.
pub const SLOTS: usize = 4096;
const BYTES: usize = SLOTS * 8;

/// A shared mapping of [`SLOTS`] request ids (0 = free).
#[derive(Debug)]
pub struct InFlight {
    base: NonNull<AtomicU64>,
}

// SAFETY: the mapping is only accessed through atomics and lives as long
// as the value (unmapped in Drop).
unsafe impl Send for InFlight {}
// SAFETY: as above; every access is an atomic operation.
unsafe impl Sync for InFlight {}

impl InFlight {
    /// Create (or reset) the table at `path`, mode 0600.
    pub fn create(path: &Path) -> io::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)?;
        file.set_len(BYTES as u64)?;
        Self::map(&file)
    }

    /// Map the existing table at `path`.
    pub fn open(path: &Path) -> io::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)?;
        if file.metadata()?.len() < BYTES as u64 {
            file.set_len(BYTES as u64)?;
        }
        Self::map(&file)
    }

    fn map(file: &std::fs::File) -> io::Result<Self> {
        // SAFETY: a fresh shared mapping of a file at least BYTES long; the
        // pointer is checked, and only ever used as AtomicU64 slots.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                BYTES,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(ptr.cast::<AtomicU64>())
            .ok_or_else(|| io::Error::other("mmap returned a null mapping"))?;
        Ok(Self { base })
    }

    fn slots(&self) -> &[AtomicU64] {
        // SAFETY: the mapping holds SLOTS naturally aligned u64s (page
        // aligned base) for as long as self lives.
        unsafe { std::slice::from_raw_parts(self.base.as_ptr(), SLOTS) }
    }

    /// Record `unique`; returns its slot, or `None` when the table is full.
    pub fn enter(&self, unique: u64) -> Option<usize> {
        if unique == 0 {
            return None;
        }
        let slots = self.slots();
        // Start at a spot derived from the id so threads rarely collide.
        let start = (unique as usize).wrapping_mul(0x9E37_79B9) % SLOTS;
        (0..SLOTS).map(|i| (start + i) % SLOTS).find(|&i| {
            slots[i]
                .compare_exchange(0, unique, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        })
    }

    /// The request in `slot` was answered.
    pub fn leave(&self, slot: usize) {
        if let Some(s) = self.slots().get(slot) {
            s.store(0, Ordering::Release);
        }
    }

    /// Requests recorded now.
    pub fn count(&self) -> usize {
        self.slots()
            .iter()
            .filter(|s| s.load(Ordering::Acquire) != 0)
            .count()
    }

    /// Take every recorded request (those a dead worker left), clearing
    /// the table.
    pub fn take_stale(&self) -> Vec<u64> {
        self.slots()
            .iter()
            .map(|s| s.swap(0, Ordering::AcqRel))
            .filter(|&u| u != 0)
            .collect()
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `map`.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), BYTES);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_survive_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inflight");
        let a = InFlight::create(&path).unwrap();
        let s1 = a.enter(11).unwrap();
        let s2 = a.enter(12).unwrap();
        assert_ne!(s1, s2);
        a.enter(13).unwrap();
        a.leave(s2);
        assert_eq!(a.count(), 2);
        drop(a); // the worker dies
        let b = InFlight::open(&path).unwrap();
        let mut stale = b.take_stale();
        stale.sort();
        assert_eq!(stale, vec![11, 13]);
        assert_eq!(b.count(), 0);
    }

    #[test]
    fn a_full_table_refuses_quietly() {
        let dir = tempfile::tempdir().unwrap();
        let t = InFlight::create(&dir.path().join("t")).unwrap();
        for u in 1..=SLOTS as u64 {
            assert!(t.enter(u).is_some());
        }
        assert!(t.enter(SLOTS as u64 + 1).is_none());
    }
}
