//! The audit trail's JSON-lines mirror: every committed event, as the API
//! returns it (with `leaf_index`), one per line, appended to
//! `<dir>/audit-YYYYMMDD.jsonl` (the UTC date of the event's `time`) and
//! fsync'd. Files are mode 0600 in a 0700 directory.
//!
//! A copy for log shippers and `grep`, not the record: the Merkle log is.
//! It runs on its own thread behind a bounded channel, so the sequencer
//! only waits for it when the channel is full; it writes (and fsyncs) at
//! most every 200 ms, whatever was committed meanwhile; failures are logged and
//! counted (`evault_audit_mirror_errors_total`), never returned to a caller.
//! After a crash the mirror may lack the last events the log committed.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use evault_verify::AuditEvent;
use tokio::sync::mpsc;

use crate::error::Result;

/// Batches of events waiting for the mirror before the sequencer waits.
pub(crate) const QUEUE: usize = 1024;
/// Least time between two writes (each followed by an fsync): the mirror
/// lags the log by at most about this much.
const MIN_INTERVAL: Duration = Duration::from_millis(200);

/// Creates (or tightens to 0700) the mirror directory and starts the mirror
/// thread. It ends when the returned sender (the sequencer's) is dropped,
/// after writing what is queued.
pub(crate) fn start(dir: PathBuf) -> Result<mpsc::Sender<Vec<AuditEvent>>> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    std::fs::set_permissions(&dir, Permissions::from_mode(0o700))?;
    let (tx, mut rx) = mpsc::channel::<Vec<AuditEvent>>(QUEUE);
    let mut mirror = Mirror { dir, open: None };
    std::thread::Builder::new()
        .name("evault-audit-mirror".into())
        .spawn(move || {
            let mut last_write: Option<Instant> = None;
            while let Some(mut events) = rx.blocking_recv() {
                // At most one write and fsync per interval: what arrives
                // meanwhile waits in the queue and goes out with the next
                // one, so the mirror never competes with every group commit
                // for the disk (the Merkle log is already durable).
                if let Some(wait) = last_write.map(|t| MIN_INTERVAL.saturating_sub(t.elapsed())) {
                    std::thread::sleep(wait);
                }
                while let Ok(more) = rx.try_recv() {
                    events.extend(more);
                }
                last_write = Some(Instant::now());
                if let Err(e) = mirror.write(&events) {
                    metrics::counter!("evault_audit_mirror_errors_total").increment(1);
                    tracing::error!(
                        "audit mirror in {}: {} event(s) not mirrored: {e}",
                        mirror.dir.display(),
                        events.len()
                    );
                    // Reopen next time rather than append after a torn line
                    // through a handle in an unknown state.
                    mirror.open = None;
                }
            }
        })?;
    Ok(tx)
}

struct Mirror {
    dir: PathBuf,
    /// The file of the latest date written, kept open.
    open: Option<(String, File)>,
}

impl Mirror {
    /// Appends `events` to their days' files and fsyncs each file touched.
    fn write(&mut self, events: &[AuditEvent]) -> std::io::Result<()> {
        let mut by_day: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for e in events {
            let buf = by_day.entry(day_of(&e.time)).or_default();
            serde_json::to_writer(&mut *buf, e)?;
            buf.push(b'\n');
        }
        for (day, lines) in by_day {
            let file = self.file(&day)?;
            file.write_all(&lines)?;
            file.sync_data()?;
        }
        Ok(())
    }

    /// The open file for `day`, opening (creating, 0600) it if needed.
    fn file(&mut self, day: &str) -> std::io::Result<&mut File> {
        if self.open.as_ref().is_none_or(|(d, _)| d != day) {
            let path = self.dir.join(format!("audit-{day}.jsonl"));
            let existed = path.exists();
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&path)?;
            // The mode above is filtered by the umask and ignored for an
            // existing file; set it explicitly.
            file.set_permissions(Permissions::from_mode(0o600))?;
            if !existed {
                sync_dir(&self.dir)?;
            }
            self.open = Some((day.to_string(), file));
        }
        match &mut self.open {
            Some((_, f)) => Ok(f),
            None => Err(std::io::Error::other("mirror file vanished")),
        }
    }
}

/// Makes a new file's directory entry durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// `YYYYMMDD` of an RFC 3339 UTC time (checked before the event was
/// logged); `undated` for anything else.
fn day_of(time: &str) -> String {
    let b = time.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    if digits(0..4)
        && b.get(4) == Some(&b'-')
        && digits(5..7)
        && b.get(7) == Some(&b'-')
        && digits(8..10)
    {
        format!("{}{}{}", &time[0..4], &time[5..7], &time[8..10])
    } else {
        "undated".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_of_time() {
        assert_eq!(day_of("2026-11-23T23:59:59.999Z"), "20261123");
        assert_eq!(day_of("2027-01-01T00:00:00.000Z"), "20270101");
        assert_eq!(day_of("20261123"), "undated");
        assert_eq!(day_of("é"), "undated");
    }
}
