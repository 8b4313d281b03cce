//! The audit trail's JSON-lines mirror: every committed event, as the API
//! returns it (with `leaf_index`), one per line, appended to
//! `<dir>/audit-YYYYMMDD.jsonl` (the UTC date of the event's `time`) and
//! fsync'd. Files are mode 0600 in a 0700 directory.
//!
//! A copy for log shippers and `grep`, not the record: the Merkle log is.
//! The mirror is a follower of the audit log: it reads committed events
//! from the store in log order, from a durable cursor (the next leaf index,
//! kept in the store's meta table under a key naming the mirror directory,
//! and moved only after the lines it covers are fsync'd). After a crash it resumes from the cursor; lines written past
//! the cursor before the crash are found at start and not written again,
//! and a torn last line is cut off, so every committed event is in the
//! mirror exactly once. It writes (and fsyncs) at most every 200 ms,
//! whatever was committed meanwhile, so it never competes with every group
//! commit for the disk; failures are logged and counted
//! (`evault_audit_mirror_errors_total`), retried, and never reach a caller.

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions, Permissions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use evault_store::{AuditQuery, Store};
use tokio::sync::watch;

use crate::error::{Result, VaultError};
use crate::health::{Board, Component};
use crate::sequencer::TreeHead;

/// Least time between two writes (each followed by an fsync): the mirror
/// lags the log by at most about this much.
const MIN_INTERVAL: Duration = Duration::from_millis(200);
/// Events read from the store per page (the store's page limit).
const PAGE: u32 = 1000;
/// Prefix of the store meta key that holds a mirror directory's cursor.
const CURSOR_KEY: &str = "audit_mirror_cursor:";

/// The mirror of one audit log, at its cursor.
pub(crate) struct Mirror {
    dir: PathBuf,
    store: Arc<dyn Store>,
    /// The next leaf index to mirror.
    next: u64,
    /// The store meta key of the cursor.
    cursor_key: String,
    /// Events at or past the cursor already in the files (written before a
    /// crash, before the cursor moved past them): skipped once.
    present: HashSet<u64>,
    /// The file of the latest date written, kept open.
    open: Option<(String, File)>,
    /// Where a mirror that falls behind says why, until it catches up.
    health: Arc<Board>,
}

impl Mirror {
    /// Creates (or tightens to 0700) the mirror directory, reads the
    /// cursor, and repairs what a crash may have left: a torn last line is
    /// cut off, and events already written past the cursor are noted.
    pub fn open(dir: PathBuf, store: Arc<dyn Store>, health: Arc<Board>) -> Result<Mirror> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        std::fs::set_permissions(&dir, Permissions::from_mode(0o700))?;
        let dir = dir.canonicalize()?;
        let cursor_key = format!("{CURSOR_KEY}{}", dir.display());
        let next = read_cursor(&*store, &cursor_key)?;
        let mut present = HashSet::new();
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let is_day_file = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("audit-") && n.ends_with(".jsonl"));
            if is_day_file {
                present.extend(repair_tail(&path, next)?);
            }
        }
        if !present.is_empty() {
            tracing::info!(
                "audit mirror {}: {} event(s) past the cursor ({next}) were written before a \
                 restart; they are not written again",
                dir.display(),
                present.len()
            );
        }
        Ok(Mirror {
            dir,
            store,
            next,
            cursor_key,
            present,
            open: None,
            health,
        })
    }

    /// Follows the audit log's `heads` until they close (the sequencer
    /// ended), then catches up with the last head and ends.
    pub async fn follow(mut self, mut heads: watch::Receiver<TreeHead>) {
        let mut last_write: Option<Instant> = None;
        loop {
            let mut closed = false;
            while heads.borrow_and_update().size <= self.next {
                if heads.changed().await.is_err() {
                    closed = true;
                    break;
                }
            }
            let target = heads.borrow().size;
            if closed && target <= self.next {
                return;
            }
            if !closed && let Some(t) = last_write {
                // What commits meanwhile goes out with this write.
                tokio::time::sleep(MIN_INTERVAL.saturating_sub(t.elapsed())).await;
            }
            let target = heads.borrow().size.max(target);
            last_write = Some(Instant::now());
            let joined = tokio::task::spawn_blocking(move || {
                // A panic is a failed attempt like any other: retried.
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    self.catch_up(target)
                }))
                .unwrap_or_else(|_| {
                    Err(VaultError::Unavailable(
                        "the audit mirror panicked while writing".into(),
                    ))
                });
                (self, r)
            })
            .await;
            let result;
            (self, result) = match joined {
                Ok(done) => done,
                Err(e) => {
                    metrics::counter!("evault_audit_mirror_errors_total").increment(1);
                    tracing::error!("the audit mirror stopped: {e}");
                    return;
                }
            };
            if let Err(e) = &result {
                self.health.set(
                    Component::AuditMirror,
                    e.is_storage_full(),
                    format!("events from {} on are not mirrored yet: {e}", self.next),
                );
            } else {
                self.health.clear(Component::AuditMirror);
            }
            if let Err(e) = result {
                metrics::counter!("evault_audit_mirror_errors_total").increment(1);
                tracing::error!(
                    "audit mirror in {}: events from {} on are not mirrored yet (retrying): {e}",
                    self.dir.display(),
                    self.next
                );
                // Reopen next time rather than append after a torn line
                // through a handle in an unknown state.
                self.open = None;
                if closed {
                    return;
                }
            }
        }
    }

    /// Mirrors every committed event below `target`, a page at a time,
    /// moving the cursor after each page is durable.
    fn catch_up(&mut self, target: u64) -> Result<()> {
        while self.next < target {
            let page = self.store.list_audit(&AuditQuery {
                after_index: self.next.checked_sub(1),
                limit: PAGE,
                ..AuditQuery::default()
            })?;
            let mut by_day: BTreeMap<String, Vec<u8>> = BTreeMap::new();
            let mut next = self.next;
            for row in page.items.iter().take_while(|r| r.leaf_index < target) {
                if row.leaf_index != next {
                    return Err(VaultError::Inconsistent(format!(
                        "audit event {next} is missing from the store (found {})",
                        row.leaf_index
                    )));
                }
                next += 1;
                if self.present.remove(&row.leaf_index) {
                    continue;
                }
                let event = crate::audit::from_row(row)?;
                let buf = by_day.entry(day_of(&event.time)).or_default();
                serde_json::to_writer(&mut *buf, &event).map_err(std::io::Error::other)?;
                buf.push(b'\n');
            }
            if next == self.next {
                return Err(VaultError::Inconsistent(format!(
                    "audit event {next} is missing from the store"
                )));
            }
            for (day, lines) in by_day {
                let file = self.file(&day)?;
                file.write_all(&lines)?;
                file.sync_data()?;
            }
            self.store.set_meta(&self.cursor_key, &next.to_string())?;
            self.next = next;
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

/// The cursor stored under `key`: 0 when there is none yet.
fn read_cursor(store: &dyn Store, key: &str) -> Result<u64> {
    match store.get_meta(key)? {
        None => Ok(0),
        Some(text) => text.parse().map_err(|_| {
            VaultError::Inconsistent(format!(
                "the audit mirror cursor {key:?} does not hold a leaf index ({text:?})"
            ))
        }),
    }
}

/// Cuts a torn last line off `path`, and returns the leaf indexes of the
/// lines at the end of the file that are at or past `cursor` (the file is
/// in leaf order, so they form its tail; it is read backwards only as far
/// as they go).
fn repair_tail(path: &Path, cursor: u64) -> std::io::Result<Vec<u64>> {
    let mut f = OpenOptions::new().read(true).write(true).open(path)?;
    let mut len = f.metadata()?.len();
    let mut window: u64 = 64 * 1024;
    let mut found = Vec::new();
    let mut torn_checked = false;
    loop {
        let start = len.saturating_sub(window);
        let mut buf = vec![0; (len - start) as usize];
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut buf)?;
        if !torn_checked {
            torn_checked = true;
            if buf.last().is_some_and(|&b| b != b'\n') {
                // A line the crash cut short: its event is past the cursor
                // (the cursor moves only after a whole page is fsync'd).
                let keep = buf.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
                if keep == 0 && start > 0 {
                    window = window.saturating_mul(2);
                    torn_checked = false;
                    continue;
                }
                len = start + keep as u64;
                f.set_len(len)?;
                f.sync_data()?;
                buf.truncate(keep);
                tracing::warn!("audit mirror {}: cut off a torn last line", path.display());
            }
        }
        // Skip the first, possibly partial, line unless the window starts
        // the file.
        let body = if start == 0 {
            &buf[..]
        } else {
            match buf.iter().position(|&b| b == b'\n') {
                Some(p) => &buf[p + 1..],
                None => &buf[..0],
            }
        };
        found.clear();
        let mut boundary = false;
        for line in body.split(|&b| b == b'\n').rev().filter(|l| !l.is_empty()) {
            match leaf_index_of(line) {
                Some(i) if i >= cursor => found.push(i),
                _ => {
                    boundary = true;
                    break;
                }
            }
        }
        if boundary || start == 0 {
            return Ok(found);
        }
        window = window.saturating_mul(2);
    }
}

/// The `leaf_index` member of one mirror line.
fn leaf_index_of(line: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Line {
        leaf_index: u64,
    }
    serde_json::from_slice::<Line>(line)
        .ok()
        .map(|l| l.leaf_index)
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

    fn lines(indexes: std::ops::Range<u64>) -> String {
        indexes
            .map(|i| format!("{{\"leaf_index\":{i},\"pad\":\"{}\"}}\n", "x".repeat(50)))
            .collect()
    }

    #[test]
    fn repair_tail_finds_lines_past_the_cursor_and_cuts_a_torn_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit-20261129.jsonl");
        // Enough lines that the backwards scan needs several windows.
        let mut text = lines(0..5000);
        let whole = text.len() as u64;
        text.push_str("{\"leaf_index\":5000,\"pa");
        std::fs::write(&path, &text).unwrap();
        let mut found = repair_tail(&path, 3000).unwrap();
        found.sort();
        assert_eq!(found, (3000..5000).collect::<Vec<_>>());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), whole);
        // A cursor past everything: nothing present, nothing cut.
        assert!(repair_tail(&path, 5000).unwrap().is_empty());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), whole);
        // A cursor at 0: the whole file.
        assert_eq!(repair_tail(&path, 0).unwrap().len(), 5000);
        // A file that is one torn line.
        let torn = dir.path().join("audit-20261130.jsonl");
        std::fs::write(&torn, "{\"leaf_in").unwrap();
        assert!(repair_tail(&torn, 0).unwrap().is_empty());
        assert_eq!(std::fs::metadata(&torn).unwrap().len(), 0);
    }
}
