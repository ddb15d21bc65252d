//! What one restart-journal record costs: serialising it, applying it to
//! the journal's mirror and one `write(2)`, measured over 100,000 records
//! appended to a journal in the directory given (default: the system temp
//! dir). Run by `bench/restart`, which puts the figure in
//! docs/benchmarks.md next to the whole-workload overheads.

use ossfs_rs::fs::journal::{Answer, JournalOp, JournalSink};
use ossfs_rs::supervisor::journal::FileJournal;

fn main() -> std::io::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let path = dir.join(format!("journal-cost-{}", std::process::id()));
    let journal = FileJournal::open(&path)?.journal;
    let n: u64 = 100_000;
    let started = std::time::Instant::now();
    for unique in 0..n {
        journal.record(&JournalOp::Answer {
            unique,
            answer: Answer::Done,
        });
    }
    let per = started.elapsed().as_nanos() / u128::from(n);
    drop(journal);
    let _ = std::fs::remove_file(&path);
    println!("{per}");
    Ok(())
}
