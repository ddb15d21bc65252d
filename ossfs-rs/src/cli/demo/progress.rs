//! The demo's progress lines: one line per step with how long it took and,
//! for bulk steps, how fast; flushed at once so a slow step shows where the
//! tour is.
//!
//! Imports: std only.

use std::io::Write;
use std::time::Duration;

/// Print one line and flush it.
pub fn say(out: &mut (dyn Write + Send), args: std::fmt::Arguments<'_>) {
    let _ = writeln!(out, "{args}");
    let _ = out.flush();
}

/// The `[ok]` line of a finished step: what it did, how long it took and,
/// given the `bytes` it moved, how fast.
pub fn report(out: &mut (dyn Write + Send), what: &str, elapsed: Duration, bytes: Option<u64>) {
    let ms = elapsed.as_secs_f64() * 1000.0;
    match bytes {
        Some(b) if elapsed > Duration::ZERO => {
            let mbps = b as f64 / 1e6 / elapsed.as_secs_f64();
            say(
                out,
                format_args!("  [ok] {what:<64} {ms:>9.1} ms {mbps:>9.1} MB/s"),
            );
        }
        _ => say(out, format_args!("  [ok] {what:<64} {ms:>9.1} ms")),
    }
}
