//! The mount half of `ossfs-rs demo`: the same embedded endpoint, mounted
//! with FUSE at a temporary directory and used with plain `std::fs`.
//!
//! The mount is served in-process (a fuser session on a background thread)
//! so the demo needs no second process and cleans up on every path: the
//! session is unmounted when the guard drops, even after a failed step.
//! File operations run on a blocking thread, never on the async runtime
//! that serves the filesystem's requests.
//!
//! Imports: `fs` (the settings), `fuse` (the session's filesystem) and
//! `store`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use fuser::{Config, MountOption};

use crate::fs::FsConfig;
use crate::store::{ListRequest, ObjectStore};

/// Why the mount tour failed.
#[derive(Debug, thiserror::Error)]
pub enum MountTourError {
    #[error(
        "cannot mount with FUSE at {path}: {source} (the mount step needs /dev/fuse and root or fusermount3; pass --no-mount to skip it)"
    )]
    Mount {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot build the filesystem: {0}")]
    Setup(String),
    #[error("{what} through the mount failed: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("through the mount: {0}")]
    Check(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> MountTourError {
    let what = what.into();
    move |source| MountTourError::Io { what, source }
}

/// Mount `store` at a fresh temporary directory, exercise it with std::fs,
/// print what it saw, then unmount. `prefix` is the key prefix mounted.
pub async fn tour(
    store: Arc<dyn ObjectStore>,
    prefix: &str,
    out: &mut (dyn Write + Send),
) -> Result<(), MountTourError> {
    let dir = tempfile::Builder::new()
        .prefix("ossfs-rs-demo-")
        .tempdir()
        .map_err(io("creating the mount point"))?;
    let mountpoint = dir.path().join("mnt");
    let staging = dir.path().join("staging");
    std::fs::create_dir(&mountpoint).map_err(io("creating the mount point"))?;
    let fs_config = FsConfig {
        prefix: prefix.to_string(),
        staging_dir: staging,
        ..FsConfig::default()
    };
    let fs = crate::fuse::new(store.clone(), fs_config, tokio::runtime::Handle::current())
        .map_err(|e| MountTourError::Setup(e.to_string()))?;
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("ossfs-rs-demo".into()),
        MountOption::Subtype("ossfs-rs".into()),
    ];
    config.n_threads = Some(4);
    let session =
        fuser::Session::new(fs, &mountpoint, &config).map_err(|source| MountTourError::Mount {
            path: mountpoint.display().to_string(),
            source,
        })?;
    let background = session.spawn().map_err(|source| MountTourError::Mount {
        path: mountpoint.display().to_string(),
        source,
    })?;
    let _ = writeln!(
        out,
        "mounted the bucket at {} (FUSE, in this process)",
        mountpoint.display()
    );

    let mp = mountpoint.clone();
    let steps = tokio::task::spawn_blocking(move || file_steps(&mp));
    let result = match steps.await {
        Ok(r) => r,
        Err(e) => Err(MountTourError::Check(format!(
            "the file steps panicked: {e}"
        ))),
    };
    // Unmount before reporting, so a failure never leaves a mount behind.
    let unmounted = tokio::task::spawn_blocking(move || background.umount_and_join()).await;
    let lines = result?;
    for line in lines {
        let _ = writeln!(out, "  [ok] {line}");
    }
    match unmounted {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(io("unmounting")(e)),
        Err(e) => return Err(MountTourError::Check(format!("unmount panicked: {e}"))),
    }
    let _ = writeln!(out, "unmounted {}", mountpoint.display());

    // What the bucket holds now: the files are plain objects.
    let listing = store
        .list_page(
            &ListRequest {
                prefix: prefix.to_string(),
                ..Default::default()
            },
            None,
        )
        .await
        .map_err(|e| MountTourError::Check(format!("listing the bucket after unmount: {e}")))?;
    let _ = writeln!(out, "the bucket now holds these objects under {prefix:?}:");
    for o in &listing.objects {
        let _ = writeln!(out, "  {:>9} bytes  {}", o.size, o.key);
    }
    let expected = format!("{prefix}notes/greeting.txt");
    if !listing.objects.iter().any(|o| o.key == expected) {
        return Err(MountTourError::Check(format!(
            "{expected} is not in the bucket after unmount"
        )));
    }
    Ok(())
}

/// The std::fs part; returns one line per step.
fn file_steps(mp: &Path) -> Result<Vec<String>, MountTourError> {
    let mut lines = Vec::new();
    let mut step = |line: String, started: Instant| {
        lines.push(format!(
            "{line:<60} {:>8.1} ms",
            started.elapsed().as_secs_f64() * 1000.0
        ));
    };
    let p = |rel: &str| -> PathBuf { mp.join(rel) };

    let t = Instant::now();
    std::fs::create_dir(p("notes")).map_err(io("mkdir notes"))?;
    let text = b"Hello from a FUSE mount of the embedded endpoint.\n";
    std::fs::write(p("notes/hello.txt"), text).map_err(io("writing notes/hello.txt"))?;
    step("mkdir notes, write notes/hello.txt".into(), t);

    let t = Instant::now();
    let big: Vec<u8> = (0..3 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(p("data.bin"), &big).map_err(io("writing data.bin"))?;
    step(format!("write data.bin ({} bytes)", big.len()), t);

    let t = Instant::now();
    let mut names: Vec<String> = std::fs::read_dir(mp)
        .map_err(io("listing the mount"))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()
        .map_err(io("listing the mount"))?;
    names.sort();
    if names != ["data.bin", "notes"] {
        return Err(MountTourError::Check(format!(
            "ls shows {names:?}, expected [data.bin, notes]"
        )));
    }
    step(format!("ls: {}", names.join(", ")), t);

    let t = Instant::now();
    std::fs::rename(p("notes/hello.txt"), p("notes/greeting.txt"))
        .map_err(io("renaming notes/hello.txt"))?;
    let back = std::fs::read(p("notes/greeting.txt")).map_err(io("reading notes/greeting.txt"))?;
    if back != text {
        return Err(MountTourError::Check(
            "notes/greeting.txt does not read back what was written".into(),
        ));
    }
    if p("notes/hello.txt").exists() {
        return Err(MountTourError::Check(
            "notes/hello.txt still exists after the rename".into(),
        ));
    }
    step("rename to notes/greeting.txt, read it back".into(), t);

    let t = Instant::now();
    let back = std::fs::read(p("data.bin")).map_err(io("reading data.bin"))?;
    if back != big {
        return Err(MountTourError::Check(
            "data.bin does not read back what was written".into(),
        ));
    }
    step("read data.bin back, content matches".into(), t);
    Ok(lines)
}
