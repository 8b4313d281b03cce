//! Converting a store written by an older release (`evault migrate`, or
//! `evault serve` at start), beside what copying and hashing the same
//! database file costs in the same run.
//!
//! Workload: `EVAULT_BENCH_RECORDS` (default 1,000,000) records as the
//! vault's `fill` writes them (64-byte inline payloads, ~330-byte leaf
//! data, two labels, an idempotency key on every fifth), each with one
//! audit event (~400-byte leaf), appended in batches of 10,000 with their
//! tiles and a checkpoint per batch, all indexed; the store is closed and
//! rewritten as schema 7 (`evault_store::testing::rewrite_as_schema`:
//! before stored inner tile levels, the index follower and the index
//! database, so every step of the conversion runs).
//!
//! Timed, on that schema-7 database: the fingerprint (every leaf, tile and
//! checkpoint hashed, as `evault migrate` reads it before and after), the
//! conversion (`SqliteStore::open_with_progress`, each step timed), and
//! the fingerprint again. Baselines in the same run, on the same file:
//! `std::fs::copy` of the database plus an `fsync` (each byte read and
//! written once), and a raw SHA-256 of the file's bytes.
//!
//! `EVAULT_BENCH_DIR` (default the system temp dir) is where the databases
//! go: about 1.5 KB per record, twice.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use evault_merkle::leaf_hash;
use evault_merkle::tiles::TileBuilder;
use evault_store::prelude::*;
use evault_store::{
    AppendBatch, AuditBatch, AuditRow, EvidenceRow, LogId, MigrationStep, Payload, SqliteStore,
    StoredCheckpoint,
};
use sha2::{Digest, Sha256};

const BATCH: u64 = 10_000;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn record(i: u64) -> EvidenceRow {
    let mut r = evault_store::testing::row(i);
    let pad = "x".repeat(260);
    r.leaf_data = format!("{{\"leaf\":{i},\"pad\":\"{pad}\"}}").into_bytes();
    r.payload = Payload::Inline(vec![(i % 251) as u8; 64]);
    r.size = 64;
    r.labels = BTreeMap::from([
        ("case".to_owned(), format!("case-{}", i % 1000)),
        ("source".to_owned(), format!("src-{}", i % 7)),
    ]);
    r
}

fn event(i: u64) -> AuditRow {
    let mut e = evault_store::testing::audit_row(i);
    let pad = "y".repeat(340);
    e.leaf_data = format!("{{\"audit\":{i},\"pad\":\"{pad}\"}}").into_bytes();
    e
}

fn fill(path: &Path, n: u64) {
    let store = SqliteStore::open(path).expect("open");
    let (mut evidence, mut audit) = (TileBuilder::new(), TileBuilder::new());
    let mut at = 0;
    while at < n {
        let end = (at + BATCH).min(n);
        let rows: Vec<EvidenceRow> = (at..end).map(record).collect();
        let events: Vec<AuditRow> = (at..end).map(event).collect();
        let leaves: Vec<_> = rows.iter().map(|r| leaf_hash(&r.leaf_data)).collect();
        let audit_leaves: Vec<_> = events.iter().map(|e| leaf_hash(&e.leaf_data)).collect();
        let tiles = evidence.append(&leaves);
        let audit_tiles = audit.append(&audit_leaves);
        store
            .append(&AppendBatch {
                old_size: at,
                records: &rows,
                tiles: &tiles,
                audit: Some(AuditBatch {
                    old_size: at,
                    events: &events,
                    tiles: &audit_tiles,
                }),
            })
            .expect("append");
        for log in [LogId::Evidence, LogId::Audit] {
            store
                .put_checkpoint(
                    log,
                    &StoredCheckpoint {
                        size: end,
                        note: format!("bench.example/{log}\n{end}\nroot\n\n— sig\n"),
                        created_at_ms: 1,
                    },
                )
                .expect("checkpoint");
        }
        at = end;
    }
    while store.indexed_through().expect("cursor") < n {
        store.index_evidence(n, 65_536).expect("index");
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken.
    let n = env_u64("EVAULT_BENCH_RECORDS", 1_000_000);
    let base = std::env::var_os("EVAULT_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(base).expect("bench dir");
    let path = dir.path().join("evault.db");

    let t = Instant::now();
    fill(&path, n);
    eprintln!("filled {n} records in {:.1} s", secs(t.elapsed()));
    evault_store::testing::rewrite_as_schema(&path, 7).expect("rewrite as schema 7");
    let bytes = std::fs::metadata(&path).expect("size").len();
    let mib = bytes as f64 / (1 << 20) as f64;

    // Baselines first, so both they and the conversion read from the same
    // page cache state (the file was just written).
    let copy_to = dir.path().join("copy.db");
    let t = Instant::now();
    std::fs::copy(&path, &copy_to).expect("copy");
    std::fs::File::open(&copy_to)
        .and_then(|f| f.sync_all())
        .expect("fsync");
    let copy = t.elapsed();
    std::fs::remove_file(&copy_to).expect("rm copy");

    let t = Instant::now();
    let mut hash = Sha256::new();
    let mut f = std::fs::File::open(&path).expect("open db");
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let k = f.read(&mut buf).expect("read");
        if k == 0 {
            break;
        }
        hash.update(&buf[..k]);
    }
    let _ = hash.finalize();
    let sha = t.elapsed();

    let t = Instant::now();
    let before = SqliteStore::fingerprint(&path).expect("fingerprint");
    let fp_before = t.elapsed();
    assert_eq!(before.schema_version, 7);

    let steps: Mutex<Vec<(MigrationStep, Instant)>> = Mutex::new(Vec::new());
    let t = Instant::now();
    let store = SqliteStore::open_with_progress(&path, &|p| {
        let mut s = steps.lock().expect("steps");
        if s.last().map(|(step, _)| *step) != Some(p.step) {
            s.push((p.step, Instant::now()));
        }
    })
    .expect("convert");
    let converted = t.elapsed();
    let end = Instant::now();
    drop(store);

    let t = Instant::now();
    let after = SqliteStore::fingerprint(&path).expect("fingerprint");
    let fp_after = t.elapsed();
    assert_eq!(
        (&after.evidence, &after.audit),
        (&before.evidence, &before.audit),
        "the conversion changed a log"
    );
    assert!(!after.needs_migration());

    println!(
        "convert a schema-7 store of {n} records (+{n} audit events), {mib:.0} MiB database file"
    );
    println!("| what | s | ratio to copy |");
    println!("|---|---|---|");
    let row = |what: &str, d: Duration| {
        println!("| {what} | {:.2} | {:.2} |", secs(d), secs(d) / secs(copy));
    };
    row("baseline: copy the file + fsync", copy);
    row("baseline: SHA-256 of the file", sha);
    row("fingerprint before", fp_before);
    row("conversion (open_with_progress)", converted);
    let steps = steps.into_inner().expect("steps");
    // Each step from its first report to the next step's. The log tables'
    // step reports at its start (its SQL runs next, then the inner levels,
    // inside its transaction) and again once committed, so the stretch
    // before that second report holds the commit.
    for (i, (step, at)) in steps.iter().enumerate() {
        let until = steps.get(i + 1).map_or(end, |(_, t)| *t);
        if steps[..i].iter().any(|(s, _)| s == step) {
            continue;
        }
        let then = match steps.get(i + 1) {
            Some((next, _)) if steps[..i].iter().any(|(s, _)| s == next) => {
                format!(", then the commit of \"{next}\"")
            }
            _ => String::new(),
        };
        row(&format!("  step: {step}{then}"), until - *at);
    }
    row("fingerprint after", fp_after);
    println!(
        "RESULT migrate records={n} mib={mib:.0} copy_s={:.2} sha_s={:.2} convert_s={:.2} \
         fingerprint_s={:.2}",
        secs(copy),
        secs(sha),
        secs(converted),
        secs(fp_before)
    );
}
