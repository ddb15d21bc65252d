//! The `ossfs-rs` binary: everything lives in the library; see [`ossfs_rs::cli`].

/// fuser's request buffers are pre-faulted (see `ossfs_rs::sys::prefault`), so
/// a worker killed while the kernel copies a request to it never turns
/// that request into an EIO.
#[global_allocator]
static ALLOCATOR: ossfs_rs::sys::prefault::PrefaultAllocator =
    ossfs_rs::sys::prefault::PrefaultAllocator;

fn main() -> std::process::ExitCode {
    ossfs_rs::sys::heap::tune();
    ossfs_rs::cli::run()
}
