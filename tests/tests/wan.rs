//! The WAN profile, end to end: a daemon-mode mount (`ossfs-rs mount`)
//! whose store is reached through the delay proxy at 20 ms one way and
//! 1 MiB/s up (`LinkProfile::wan_uplink`), as from an office uplink or a
//! node in another cloud.
//!
//! A large `write` + `fsync` + `close` over that link must land whole: the
//! object's SHA-256 in the store (read directly, not through the proxy)
//! matches what was written. Before the transport timed out on lack of
//! progress, every part (10 MiB, five in flight on a shared 1 MiB/s link)
//! ran into the 30 s bound on the whole request, every retry too, and the
//! fsync failed with EIO.
//!
//! The write's time is printed, not asserted (timings belong to `bench/`);
//! a generous deadline turns a hang into a failure.
//!
//! **Needs root and `/dev/fuse`** (CI runs as root).

use std::fs::OpenOptions;
use std::io::Write;
use std::time::{Duration, Instant};

use e2e::delay_proxy::{DelayProxy, LinkProfile};
use e2e::mount::{Bucket, Mount, shared_garage};
use sha2::{Digest, Sha256};

const MIB: usize = 1024 * 1024;

/// The delay proxy with the WAN profile, on a runtime of its own.
fn wan() -> e2e::Hosted<DelayProxy> {
    e2e::hosted(
        "delay proxy",
        DelayProxy::start(shared_garage().s3_addr(), LinkProfile::wan_uplink()),
    )
}

/// `len` bytes that do not compress or repeat.
fn data(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn a_large_write_over_a_slow_uplink_lands_whole() {
    let link = wan();
    let m = Mount::builder(shared_garage(), "wan-upload")
        .option(&format!("url={}", link.proxy.endpoint()))
        .mount();
    let len = 32 * MIB;
    let bytes = data(len);
    let want = hex::encode(Sha256::digest(&bytes));
    let path = m.join("big");
    let started = Instant::now();
    // As `dd bs=1M conv=fsync`: write, fsync, close, each checked.
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        for chunk in bytes.chunks(MIB) {
            f.write_all(chunk)?;
        }
        f.sync_all()?;
        drop(f);
        Ok(())
    });
    // 32 MiB at 1 MiB/s is about 35 s; far past that is a hang.
    let deadline = started + Duration::from_secs(100);
    while !writer.is_finished() {
        assert!(
            Instant::now() < deadline,
            "the write did not finish within 100 s over a 1 MiB/s uplink"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let wrote = writer
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the writer panicked")));
    eprintln!(
        "wan-upload: 32 MiB written and fsynced in {:?}",
        started.elapsed()
    );
    if let Err(e) = wrote {
        panic!(
            "write/fsync/close over the slow uplink failed: {e} (errno {:?})\n{}",
            e.raw_os_error(),
            m.log_tail()
        );
    }
    let bucket = Bucket::garage();
    let (size, got) = bucket.object_sha256(&format!("{}big", m.prefix()));
    assert_eq!(size, len as u64, "the object's size in the store");
    assert_eq!(got, want, "the object's SHA-256 in the store");
}
