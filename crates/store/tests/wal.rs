//! The write-ahead log stays bounded: a steady stream of commits of
//! large inline payloads never grows the `-wal` file past the bound in the
//! crate README, however much is written. Deterministic in bytes: one
//! connection, no concurrent reader pinning old frames.

mod common;

use common::{Trees, append_both, audit_row, fresh, row};
use evault_store::{EvidenceRow, Payload};

/// The bound stated in the README: `journal_size_limit` plus what one
/// commit past the auto-checkpoint threshold may add.
const WAL_BOUND: u64 = 20 * 1024 * 1024;

/// Commits `commits` batches of one record with an inline payload of
/// `payload` bytes and one audit event; returns the peak and final size of
/// the WAL file.
fn load(commits: u64, payload: usize) -> (u64, u64, u64) {
    let (_dir, path, store) = fresh();
    let wal = path.with_file_name("evault.db-wal");
    let mut trees = Trees::new();
    let mut peak = 0;
    let mut written = 0;
    for i in 0..commits {
        let mut r: EvidenceRow = row(i);
        r.payload = Payload::Inline(vec![(i % 251) as u8; payload]);
        r.size = payload as u64;
        append_both(&store, &mut trees, &[r], &[audit_row(i)]).unwrap();
        written += payload as u64;
        peak = peak.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
    }
    let last = std::fs::metadata(&wal).map_or(0, |m| m.len());
    (written, peak, last)
}

#[test]
fn the_wal_stays_bounded_under_large_inline_payloads() {
    // The load of the report: ~130 commits, 7.7 MB of payloads.
    let (written, peak, last) = load(130, 59_000);
    eprintln!("wal: {written} payload bytes in 130 commits: peak {peak} B, final {last} B");
    assert!(peak <= WAL_BOUND, "WAL peaked at {peak} B > {WAL_BOUND} B");
    // Ten times as much: the bound does not depend on the volume.
    let (written, peak, last) = load(1300, 59_000);
    eprintln!("wal: {written} payload bytes in 1300 commits: peak {peak} B, final {last} B");
    assert!(peak <= WAL_BOUND, "WAL peaked at {peak} B > {WAL_BOUND} B");
}
