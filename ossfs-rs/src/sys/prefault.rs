//! A global allocator that pre-faults fuser's request buffers.
//!
//! Each fuser thread reads requests into a zeroed 16 MiB + 4 KiB buffer,
//! which the system allocator maps lazily: its pages are faulted in by the
//! kernel the first time a large request (a 1 MiB WRITE) is copied into it.
//! If the worker is killed during that copy, the fault is refused for a
//! dying task, the copy fails, and the kernel ends the request with EIO
//! (`fuse_dev_do_read`) before FUSE_NOTIFY_RESEND can give it to the next
//! worker: a caller's `write` would fail although the mount survives.
//! Touching the part of the buffer a request can fill when it is allocated
//! makes those pages resident and writable, so the copy never faults and a
//! request taken by a dying worker is always resent. It costs the same
//! memory the first large request would have faulted in anyway.
//!
//! Blocks of several MiB (prefetched and upload parts) are also advised to
//! use transparent huge pages here, see [`super::heap`].
//!
//! Imports: `sys::heap` of the crate, besides std and external crates.

use std::alloc::{GlobalAlloc, Layout, System};

/// fuser's read buffer: `MAX_WRITE_SIZE` (16 MiB) plus one page.
const FUSER_READ_BUFFER: usize = 16 * 1024 * 1024 + 4096;
/// The part a request can fill: the largest write (`fuse::MAX_WRITE`) and
/// its headers.
const FILLED: usize = crate::sys::FUSE_MAX_REQUEST as usize + 2 * 4096;
const PAGE: usize = 4096;

/// The system allocator, pre-faulting fuser's read buffers.
pub struct PrefaultAllocator;

// SAFETY: every call is forwarded to `System`; `alloc_zeroed` only writes
// zeros (the value they already hold) inside the block it returns.
unsafe impl GlobalAlloc for PrefaultAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let ptr = unsafe { System.alloc(layout) };
        crate::sys::heap::advise_huge(ptr, layout.size());
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() && layout.size() == FUSER_READ_BUFFER {
            let mut off = 0;
            while off < FILLED.min(layout.size()) {
                // SAFETY: in bounds of the block just allocated; a volatile
                // write of the zero it holds, so it is not optimised away.
                unsafe { ptr.add(off).write_volatile(0) };
                off += PAGE;
            }
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_buffer_comes_back_zeroed_and_usable() {
        let layout = Layout::from_size_align(FUSER_READ_BUFFER, 8).unwrap();
        // SAFETY: a valid non-zero layout; freed below with the same layout.
        unsafe {
            let p = PrefaultAllocator.alloc_zeroed(layout);
            assert!(!p.is_null());
            assert!((0..FUSER_READ_BUFFER).step_by(997).all(|i| *p.add(i) == 0));
            p.add(FUSER_READ_BUFFER - 1).write(7);
            PrefaultAllocator.dealloc(p, layout);
        }
    }
}
