//! fsck: a clean vault passes with no finding, and each kind of change at
//! rest (made directly in SQLite or the files of a stopped vault, each on a
//! fresh copy) is found and named at its place.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use evault_vault::{
    AuditOnCommit, Finding, FindingKind, FsckOptions, FsckReport, PutOutcome, PutRequest, Vault,
    VaultConfig, VaultError, fsck_data_dir,
};
use evault_verify::{AuditEvent, Outcome};

const ORIGIN: &str = "test.example/fsck";
/// Records in the seed: more than two full level-0 tiles.
const RECORDS: u64 = 600;
/// Payloads above this many bytes go to blob files.
const INLINE_MAX: usize = 64;

fn config(dir: &Path) -> VaultConfig {
    let mut c = VaultConfig::new(dir);
    // Never the user's state directory.
    c.state_dir = Some(dir.join("state"));
    c.origin = Some(ORIGIN.into());
    c.checkpoint_interval = Duration::from_millis(20);
    c.inline_max = INLINE_MAX;
    c
}

fn audit_event(i: u64) -> AuditOnCommit {
    let time = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    Box::new(move |o: &PutOutcome| AuditEvent {
        id: String::new(),
        leaf_index: 0,
        time,
        request_id: format!("req-{i}"),
        principal: "sa:test".into(),
        key_id: None,
        auth_method: "service-account".into(),
        protocol: "http".into(),
        operation: "evidence.put".into(),
        resource: format!("/api/v1/evidence/{}", o.record.id),
        outcome: if i % 10 == 3 {
            Outcome::Denied
        } else {
            Outcome::Success
        },
        status: 201,
        client: "127.0.0.1:1".into(),
        params_digest: "0".repeat(64),
        reason: None,
    })
}

/// What the tamper cases need to know about the seed.
struct Seed {
    dir: tempfile::TempDir,
    /// Leaf indexes of blob payloads.
    blobs: Vec<u64>,
    /// Checkpoint sizes stored.
    checkpoints: Vec<u64>,
}

/// A stopped vault: `RECORDS` records with labels (every 50th a blob, every
/// 7th with an idempotency key), each with its audit event, checkpoints
/// along the way.
async fn seed() -> Seed {
    let dir = tempfile::tempdir().unwrap();
    let v = Vault::open(config(dir.path())).await.unwrap();
    let mut blobs = Vec::new();
    for i in 0..RECORDS {
        if i == 100 || i == 300 {
            v.evidence_log()
                .wait_for_checkpoint(i, Duration::from_secs(10))
                .await
                .unwrap();
        }
        let body = if i % 50 == 7 {
            blobs.push(i);
            format!("blob {i} ").repeat(20).into_bytes()
        } else {
            format!("record {i}").into_bytes()
        };
        assert_eq!(body.len() > INLINE_MAX, i % 50 == 7);
        let mut up = v.upload();
        up.write(&body).await.unwrap();
        let labels = BTreeMap::from([
            ("n".to_string(), (i % 7).to_string()),
            ("team".to_string(), "qa".to_string()),
        ]);
        let out = v
            .put(PutRequest {
                content_type: "text/plain".into(),
                labels,
                payload: up.finish().await.unwrap(),
                principal: "sa:test".into(),
                idempotency_key: (i % 7 == 0).then(|| format!("key-{i}")),
                audit: Some(audit_event(i)),
            })
            .await
            .unwrap();
        assert_eq!(out.record.leaf_index, i);
    }
    v.shutdown().await.unwrap();
    let db = evault_vault::SqliteStore::raw_connection(&dir.path().join("evault.db")).unwrap();
    let checkpoints: Vec<u64> = db
        .prepare("SELECT size FROM checkpoints ORDER BY size")
        .unwrap()
        .query_map([], |r| r.get::<_, i64>(0))
        .unwrap()
        .map(|s| s.unwrap() as u64)
        .collect();
    Seed {
        dir,
        blobs,
        checkpoints,
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// Every file under `dir` and its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.insert(e.path(), std::fs::read(e.path()).unwrap());
            }
        }
    }
    out
}

fn fsck(dir: &Path) -> FsckReport {
    fsck_data_dir(dir, &FsckOptions::default(), &|_, _| {}, &|| false).unwrap()
}

fn db(dir: &Path) -> rusqlite::Connection {
    evault_vault::SqliteStore::raw_connection(&dir.join("evault.db")).unwrap()
}

/// Flips the low bit of byte `at` of a BLOB or TEXT column in one row.
fn flip(dir: &Path, table: &str, column: &str, key: &str, at: usize) {
    use rusqlite::types::Value;
    let db = db(dir);
    let v: Value = db
        .query_row(
            &format!("SELECT {column} FROM {table} WHERE {key}"),
            [],
            |r| r.get(0),
        )
        .unwrap();
    let changed = match v {
        Value::Blob(mut b) => {
            b[at] ^= 1;
            Value::Blob(b)
        }
        Value::Text(t) => {
            let mut b = t.into_bytes();
            b[at] ^= 1;
            Value::Text(String::from_utf8(b).unwrap())
        }
        other => panic!("{other:?}"),
    };
    let n = db
        .execute(
            &format!("UPDATE {table} SET {column} = ?1 WHERE {key}"),
            [changed],
        )
        .unwrap();
    assert_eq!(n, 1);
}

/// The findings of `kind`, after checking the report is not clean.
fn found(report: &FsckReport, kind: FindingKind) -> Vec<&Finding> {
    assert!(!report.clean, "{report:#?}");
    assert!(report.complete);
    report.findings.iter().filter(|f| f.kind == kind).collect()
}

fn show(report: &FsckReport) -> String {
    report.findings.iter().map(|f| format!("  {f}\n")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_vault_passes_and_every_change_is_found_at_its_place() {
    let seed = seed().await;
    let src = seed.dir.path();
    assert!(
        seed.checkpoints.len() >= 3,
        "several checkpoints: {:?}",
        seed.checkpoints
    );
    assert_eq!(*seed.checkpoints.last().unwrap(), RECORDS);

    // Clean: no finding, everything covered, nothing written.
    let before = snapshot(src);
    let calls = AtomicU64::new(0);
    let last = std::sync::Mutex::new((0, 0));
    let report = fsck_data_dir(
        src,
        &FsckOptions::default(),
        &|done, total| {
            calls.fetch_add(1, Ordering::SeqCst);
            *last.lock().unwrap() = (done, total);
        },
        &|| false,
    )
    .unwrap();
    assert!(report.clean, "findings:\n{}", show(&report));
    assert_eq!(report.total_findings, 0);
    assert!(report.complete);
    assert_eq!(snapshot(src), before, "fsck wrote to the data directory");
    let (done, total) = *last.lock().unwrap();
    assert_eq!(done, total);
    assert!(calls.load(Ordering::SeqCst) > 2);
    let ev = &report.logs[0];
    assert_eq!((ev.log, ev.size, ev.leaves), ("evidence", RECORDS, RECORDS));
    assert_eq!(ev.origin, ORIGIN);
    assert_eq!(ev.checkpoints, seed.checkpoints.len() as u64);
    assert_eq!(ev.latest_checkpoint, RECORDS);
    assert_eq!(ev.blobs, seed.blobs.len() as u64);
    assert_eq!(ev.inline_payloads, RECORDS - seed.blobs.len() as u64);
    assert_eq!(ev.label_entries, 2 * RECORDS);
    // 2 full and 1 partial level-0 tiles, 1 partial level-1 tile.
    assert_eq!(ev.tiles, 4);
    let au = &report.logs[1];
    assert_eq!(au.log, "audit");
    assert_eq!(au.origin, format!("{ORIGIN}/audit"));
    assert!(au.size >= RECORDS && au.leaves == au.size, "{au:?}");
    assert!(au.checkpoints >= 2);
    // The JSON report names kinds in snake case.
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["clean"], true);
    assert_eq!(json["logs"][1]["log"], "audit");

    let fresh = || {
        let d = tempfile::tempdir().unwrap();
        copy_tree(src, d.path());
        d
    };

    // A leaf: one byte of record 300's leaf data.
    {
        let d = fresh();
        flip(d.path(), "records", "leaf_data", "leaf_index = 300", 20);
        let r = fsck(d.path());
        let rec = found(&r, FindingKind::Record);
        assert!(
            rec.iter()
                .any(|f| f.leaf_index == Some(300) && f.log == "evidence"),
            "{}",
            show(&r)
        );
        let lh = found(&r, FindingKind::LeafHash);
        assert_eq!(lh.len(), 1, "{}", show(&r));
        assert_eq!(lh[0].leaf_index, Some(300));
        assert_eq!(lh[0].tile.as_deref(), Some("tile/0/001"));
        // Only those two: the tiles above and later checkpoints follow.
        assert_eq!(r.total_findings, 2, "{}", show(&r));
        assert!(r.logs[0].consequential > 0);
    }

    // A record field: the submitter of record 42 (not in the leaf's
    // columns any more).
    {
        let d = fresh();
        flip(d.path(), "records", "ingested_by", "leaf_index = 42", 3);
        let r = fsck(d.path());
        let rec = found(&r, FindingKind::Record);
        assert_eq!(rec.len(), 1, "{}", show(&r));
        assert_eq!(rec[0].leaf_index, Some(42));
        assert!(rec[0].expected.as_deref().unwrap().contains("ingested_by"));
        assert!(rec[0].found.as_deref().unwrap().contains("sa:test"));
    }

    // A tile: one byte in slot 5 of the full level-0 tile 0. The tile no
    // longer hashes to its node above, so the tile is what changed.
    {
        let d = fresh();
        flip(
            d.path(),
            "tiles",
            "data",
            "level = 0 AND idx = 0",
            5 * 32 + 1,
        );
        let r = fsck(d.path());
        let t = found(&r, FindingKind::Tile);
        assert!(
            t.iter()
                .any(|f| f.tile.as_deref() == Some("tile/0/000") && f.leaf_index == Some(5)),
            "{}",
            show(&r)
        );
        assert!(found(&r, FindingKind::LeafHash).is_empty(), "{}", show(&r));
        assert!(found(&r, FindingKind::CheckpointRoot).is_empty());
    }

    // A full tile's inner levels, which proofs read in place of its row:
    // the node of leaves 8 and 9. Nothing else differs.
    {
        let d = fresh();
        flip(d.path(), "tiles", "inner", "level = 0 AND idx = 0", 4 * 32);
        let r = fsck(d.path());
        let t = found(&r, FindingKind::Tile);
        assert_eq!(t.len(), 1, "{}", show(&r));
        assert_eq!(t[0].tile.as_deref(), Some("tile/0/000"));
        assert!(t[0].detail.contains("inner levels"), "{}", show(&r));
        assert!(found(&r, FindingKind::LeafHash).is_empty(), "{}", show(&r));
        assert!(found(&r, FindingKind::CheckpointRoot).is_empty());
    }

    // A higher-level tile: the partial level-1 tile's first hash.
    {
        let d = fresh();
        flip(d.path(), "tiles", "data", "level = 1 AND idx = 0", 0);
        let r = fsck(d.path());
        let t = found(&r, FindingKind::Tile);
        assert!(
            t.iter()
                .any(|f| f.tile.as_deref() == Some("tile/1/000.p/2")),
            "{}",
            show(&r)
        );
    }

    // An inline payload.
    {
        let d = fresh();
        flip(d.path(), "records", "payload", "leaf_index = 11", 0);
        let r = fsck(d.path());
        let p = found(&r, FindingKind::Payload);
        assert_eq!(p.len(), 1, "{}", show(&r));
        assert_eq!(p[0].leaf_index, Some(11));
        assert_eq!(p[0].blob.as_ref().unwrap().len(), 64);
        assert_ne!(p[0].expected, p[0].found);
    }

    // A blob file.
    {
        let d = fresh();
        let leaf = seed.blobs[2];
        let sha: Vec<u8> = db(d.path())
            .query_row(
                "SELECT sha256 FROM records WHERE leaf_index = ?1",
                [leaf as i64],
                |r| r.get(0),
            )
            .unwrap();
        let h: String = sha.iter().map(|b| format!("{b:02x}")).collect();
        let path = d
            .path()
            .join("blobs")
            .join(&h[0..2])
            .join(&h[2..4])
            .join(&h);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[10] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let r = fsck(d.path());
        let b = found(&r, FindingKind::Blob);
        assert_eq!(b.len(), 1, "{}", show(&r));
        assert_eq!(
            (b[0].leaf_index, b[0].blob.as_deref()),
            (Some(leaf), Some(&*h))
        );
        // A missing blob too.
        std::fs::remove_file(&path).unwrap();
        let r = fsck(d.path());
        assert_eq!(
            found(&r, FindingKind::Blob)[0].found.as_deref(),
            Some("no readable file")
        );
    }

    // A checkpoint's signature.
    {
        let d = fresh();
        let size = seed.checkpoints[1];
        let db = db(d.path());
        let note: String = db
            .query_row(
                "SELECT note FROM checkpoints WHERE size = ?1",
                [size as i64],
                |r| r.get(0),
            )
            .unwrap();
        let mut b = note.into_bytes();
        let at = b.len() - 4;
        b[at] ^= 1;
        db.execute(
            "UPDATE checkpoints SET note = ?1 WHERE size = ?2",
            rusqlite::params![String::from_utf8(b).unwrap(), size as i64],
        )
        .unwrap();
        let r = fsck(d.path());
        let c = found(&r, FindingKind::Checkpoint);
        assert_eq!(c.len(), 1, "{}", show(&r));
        assert_eq!(c[0].checkpoint_size, Some(size));
        assert_eq!(r.total_findings, 1, "{}", show(&r));
    }

    // A checkpoint's root, validly signed with the log's key (the key was
    // stolen): not the root of the stored leaves, and not consistent with
    // the next checkpoint.
    {
        let d = fresh();
        let size = seed.checkpoints[1];
        let key = std::fs::read_to_string(d.path().join("log.key")).unwrap();
        let signer = evault_note::Ed25519Signer::from_signer_key(key.trim()).unwrap();
        let text = evault_note::Checkpoint::new(ORIGIN, size, [7u8; 32]).to_text();
        let note = evault_note::sign(&text, &[&signer]).unwrap();
        db(d.path())
            .execute(
                "UPDATE checkpoints SET note = ?1 WHERE size = ?2",
                rusqlite::params![note, size as i64],
            )
            .unwrap();
        let r = fsck(d.path());
        let c = found(&r, FindingKind::CheckpointRoot);
        assert_eq!(c.len(), 1, "{}", show(&r));
        assert_eq!(c[0].checkpoint_size, Some(size));
        assert_eq!(c[0].found.as_deref(), Some(&*"07".repeat(32)));
        let c = found(&r, FindingKind::CheckpointConsistency);
        assert!(
            c.iter().any(|f| f.checkpoint_size == Some(size)),
            "{}",
            show(&r)
        );
    }

    // Index entries: a label entry moved to another record, a dedup key
    // changed, an entry past the log.
    {
        let d = fresh();
        let db = db(d.path());
        // The label index's foreign key would refuse an entry past the log.
        db.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
        // Record 10 has n=3; record 12 has n=5.
        assert_eq!(
            db.execute(
                "UPDATE label_runs SET leaf_index = 12 WHERE key = 'n' AND leaf_index = 10",
                [],
            )
            .unwrap(),
            1
        );
        db.execute(
            "INSERT INTO label_runs (run, level, key, value, leaf_index) \
             SELECT run, level, 'n', '1', 100000 FROM index_runs ORDER BY run LIMIT 1",
            [],
        )
        .unwrap();
        drop(db);
        flip(d.path(), "records", "dedup_key", "leaf_index = 20", 0);
        let r = fsck(d.path());
        let ix = found(&r, FindingKind::Index);
        let at = |leaf: u64, index: &str| {
            ix.iter()
                .any(|f| f.leaf_index == Some(leaf) && f.index.as_deref() == Some(index))
        };
        assert!(at(10, "record_labels"), "{}", show(&r));
        assert!(at(12, "record_labels"), "{}", show(&r));
        assert!(at(100000, "record_labels"), "{}", show(&r));
        assert!(at(20, "dedup_key"), "{}", show(&r));
        // Leaf 20 twice: its dedup key is not the one its fields give, and
        // the follower's dedup index (written from the key as it was) does
        // not lead to the row under the key it holds now.
        let dedup: Vec<_> = ix
            .iter()
            .filter(|f| f.leaf_index == Some(20) && f.index.as_deref() == Some("dedup_key"))
            .collect();
        assert_eq!(dedup.len(), 2, "{}", show(&r));
        // The entry for leaf 100000 also lies outside its run's leaves.
        assert!(
            ix.iter().any(|f| f.index.as_deref() == Some("index_runs")
                && f.found.as_deref().is_some_and(|s| s.contains("label_runs"))),
            "{}",
            show(&r)
        );
        assert_eq!(ix.len(), 6, "{}", show(&r));
    }

    // The index follower's indexes: a digest entry gone, entries for rows
    // the follower has not reached (its cursor moved back), and a cursor
    // past the log.
    {
        let d = fresh();
        let conn = db(d.path());
        conn.execute("DELETE FROM sha256_runs WHERE leaf_index = 40", [])
            .unwrap();
        conn.execute("UPDATE index_state SET evidence_through = 590", [])
            .unwrap();
        drop(conn);
        let r = fsck(d.path());
        let ix = found(&r, FindingKind::Index);
        let at = |leaf: u64, index: &str| {
            ix.iter()
                .any(|f| f.leaf_index == Some(leaf) && f.index.as_deref() == Some(index))
        };
        assert!(at(40, "records_by_sha256"), "{}", show(&r));
        for leaf in 590..600 {
            assert!(at(leaf, "records_by_sha256"), "{leaf}: {}", show(&r));
            assert!(at(leaf, "record_labels"), "{leaf}: {}", show(&r));
            assert!(at(leaf, "records_by_dedup"), "{leaf}: {}", show(&r));
        }
        // And the runs, which still reach leaf 600, past the cursor.
        let runs = |f: &&&Finding| f.index.as_deref() == Some("index_runs");
        assert_eq!(ix.iter().filter(runs).count(), 1, "{}", show(&r));
        assert!(
            ix.iter()
                .all(|f| f.leaf_index == Some(40) || f.leaf_index >= Some(590) || runs(&f)),
            "{}",
            show(&r)
        );

        let d = fresh();
        db(d.path())
            .execute("UPDATE index_state SET evidence_through = 700", [])
            .unwrap();
        let r = fsck(d.path());
        let ix = found(&r, FindingKind::Index);
        // The cursor past the log, and past the runs' last leaf.
        assert_eq!(ix.len(), 2, "{}", show(&r));
        assert_eq!(ix[0].index.as_deref(), Some("index_state"));
        assert_eq!(ix[1].index.as_deref(), Some("index_runs"));
        assert_eq!(ix[0].found.as_deref(), Some("700"));
    }

    // An audit event's column.
    {
        let d = fresh();
        flip(d.path(), "audit_events", "principal", "leaf_index = 77", 0);
        let r = fsck(d.path());
        let a = found(&r, FindingKind::AuditEvent);
        assert_eq!(a.len(), 1, "{}", show(&r));
        assert_eq!((a[0].log, a[0].leaf_index), ("audit", Some(77)));
        assert_eq!(r.total_findings, 1, "{}", show(&r));
    }

    // A tile and a row stored beyond the tree.
    {
        let d = fresh();
        let db = db(d.path());
        db.execute(
            "INSERT INTO tiles (id, level, idx, data) VALUES (7, 0, 7, zeroblob(64))",
            [],
        )
        .unwrap();
        db.execute(
            "INSERT INTO records SELECT 5000, id || 'x', content_type, sha256, size, \
             ingested_at_ms, ingested_by, NULL, randomblob(32), leaf_data, payload, labels, \
             NULL FROM records WHERE leaf_index = 0",
            [],
        )
        .unwrap();
        drop(db);
        let r = fsck(d.path());
        let t = found(&r, FindingKind::Tile);
        assert_eq!(t.len(), 1, "{}", show(&r));
        assert_eq!(t[0].tile.as_deref(), Some("tile/0/007"));
        let rows = found(&r, FindingKind::LeafRow);
        assert_eq!(rows.len(), 1, "{}", show(&r));
        assert_eq!(rows[0].leaf_index, Some(5000));
    }

    // A missing row below the tree size.
    {
        let d = fresh();
        let db = db(d.path());
        db.execute("DELETE FROM label_runs WHERE leaf_index = 33", [])
            .unwrap();
        db.execute("DELETE FROM records WHERE leaf_index = 33", [])
            .unwrap();
        drop(db);
        let r = fsck(d.path());
        let rows = found(&r, FindingKind::LeafRow);
        assert_eq!(rows.len(), 1, "{}", show(&r));
        assert_eq!(rows[0].leaf_index, Some(33));
        assert!(found(&r, FindingKind::LeafHash).is_empty(), "{}", show(&r));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn findings_are_bounded_per_kind_and_counted() {
    let seed = seed().await;
    let db = db(seed.dir.path());
    // 20 changed inline payloads.
    db.execute(
        "UPDATE records SET payload = X'00' WHERE leaf_index < 40 AND payload IS NOT NULL \
         AND leaf_index % 2 = 0",
        [],
    )
    .unwrap();
    drop(db);
    let opts = FsckOptions {
        max_findings_per_kind: 5,
        ..FsckOptions::default()
    };
    let r = fsck_data_dir(seed.dir.path(), &opts, &|_, _| {}, &|| false).unwrap();
    let payload = r
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::Payload)
        .count();
    assert_eq!(payload, 5);
    assert_eq!(r.omitted.get(&FindingKind::Payload), Some(&15));
    assert_eq!(r.total_findings, 20);
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["omitted"]["payload"], 15);
    assert_eq!(json["findings"][0]["kind"], "payload");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_vault_is_refused_offline_and_checked_online() {
    let dir = tempfile::tempdir().unwrap();
    let v = Vault::open(config(dir.path())).await.unwrap();
    for i in 0..300u64 {
        let mut up = v.upload();
        up.write(format!("r{i}").as_bytes()).await.unwrap();
        v.put(PutRequest {
            content_type: "text/plain".into(),
            labels: Default::default(),
            payload: up.finish().await.unwrap(),
            principal: "sa:test".into(),
            idempotency_key: None,
            audit: Some(audit_event(i)),
        })
        .await
        .unwrap();
    }
    match fsck_data_dir(dir.path(), &FsckOptions::default(), &|_, _| {}, &|| false) {
        Err(VaultError::Unavailable(why)) => assert!(why.contains("in use"), "{why}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Online, while it keeps taking records.
    let v2 = v.clone();
    let writer = tokio::spawn(async move {
        for i in 0..200u64 {
            let mut up = v2.upload();
            up.write(format!("late {i}").as_bytes()).await.unwrap();
            v2.put(PutRequest {
                content_type: "text/plain".into(),
                labels: Default::default(),
                payload: up.finish().await.unwrap(),
                principal: "sa:test".into(),
                idempotency_key: None,
                audit: Some(audit_event(i)),
            })
            .await
            .unwrap();
        }
    });
    let v3 = v.clone();
    let report = tokio::task::spawn_blocking(move || {
        v3.fsck(&FsckOptions::default(), &|_, _| {}, &|| false)
    })
    .await
    .unwrap()
    .unwrap();
    writer.await.unwrap();
    assert!(report.clean, "findings:\n{}", show(&report));
    assert!(report.logs[0].size >= 300);

    // Cancelled at once: incomplete, not clean.
    let v4 = v.clone();
    let report =
        tokio::task::spawn_blocking(move || v4.fsck(&FsckOptions::default(), &|_, _| {}, &|| true))
            .await
            .unwrap()
            .unwrap();
    assert!(!report.complete && !report.clean);
    v.shutdown().await.unwrap();
    // The data directory's lock goes with the last handle.
    drop(v);

    // Stopped: offline, clean.
    let r = fsck(dir.path());
    assert!(r.clean, "findings:\n{}", show(&r));
    let sizes: HashMap<&str, u64> = r.logs.iter().map(|l| (l.log, l.size)).collect();
    assert_eq!(sizes["evidence"], 500);
}

/// Whether the long tests run: they take minutes, so a plain `cargo test`
/// skips them, loudly; `.ci/run` sets `EVAULT_LONG_TESTS=1`.
fn long_tests_enabled(test: &str) -> bool {
    use std::io::Write;
    if std::env::var_os("EVAULT_LONG_TESTS").is_some_and(|v| !v.is_empty() && v != "0") {
        return true;
    }
    // Straight to stderr: the harness captures eprintln!, and a skip
    // nobody sees is a skip nobody fixes.
    let _ = writeln!(
        std::io::stderr(),
        "\n!!!! SKIPPED: {test} takes minutes; run it with \
         EVAULT_LONG_TESTS=1 cargo test -p evault-vault --test fsck (.ci/run does).\n"
    );
    false
}

/// A clean vault of 1,000,000 records (`EVAULT_FSCK_RECORDS` to change)
/// passes, and the run's rate is printed beside raw SHA-256 over the same
/// leaf bytes, measured in the same run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_records_pass() {
    use std::io::Write;
    if !long_tests_enabled("a_million_records_pass") {
        return;
    }
    let records: u64 = std::env::var("EVAULT_FSCK_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.checkpoint_interval = Duration::from_millis(500);
    let v = Vault::open(c).await.unwrap();
    let started = std::time::Instant::now();
    const UNIT: u64 = 4096;
    let mut pending = std::collections::VecDeque::new();
    let mut next = 0u64;
    while next < records {
        let n = UNIT.min(records - next);
        let unit: Vec<evault_vault::StreamRecord> = (next..next + n)
            .map(|i| evault_vault::StreamRecord {
                content_type: "text/plain".into(),
                labels: BTreeMap::from([("n".to_string(), (i % 100).to_string())]),
                payload: format!("record {i}").into_bytes(),
                idempotency_key: None,
            })
            .collect();
        pending.push_back(v.submit("sa:load", unit).await.unwrap());
        // A few units in flight keep the sequencer's batches full.
        if pending.len() >= 4 {
            let out = pending.pop_front().unwrap().outcomes().await.unwrap();
            assert!(out.iter().all(|o| o.is_ok()));
        }
        next += n;
    }
    for s in pending {
        assert!(s.outcomes().await.unwrap().iter().all(|o| o.is_ok()));
    }
    v.shutdown().await.unwrap();
    drop(v);
    let load = started.elapsed();

    let started = std::time::Instant::now();
    let report = fsck(dir.path());
    let took = started.elapsed();
    assert!(report.clean, "findings:\n{}", show(&report));
    assert_eq!(report.logs[0].leaves, records);
    assert_eq!(report.logs[0].label_entries, records);

    // Raw SHA-256 (RFC 6962 leaf hashes) over the same leaf bytes.
    let leaves: Vec<Vec<u8>> = db(dir.path())
        .prepare("SELECT leaf_data FROM records ORDER BY leaf_index")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|l| l.unwrap())
        .collect();
    let bytes: usize = leaves.iter().map(Vec::len).sum();
    let started = std::time::Instant::now();
    let mut acc = 0u8;
    for l in &leaves {
        acc ^= evault_merkle::leaf_hash(l)[0];
    }
    let raw = started.elapsed();
    std::hint::black_box(acc);
    let rate = |n: u64, d: Duration| n as f64 / d.as_secs_f64();
    let _ = writeln!(
        std::io::stderr(),
        "fsck of {records} records (+{} audit events, {} checkpoints; loaded in {:.1} s): \
         {:.1} s, {:.0} records/s; raw SHA-256 over the same {} leaf bytes: {:.3} s, {:.0} \
         leaves/s ({:.0}x faster)",
        report.logs.get(1).map_or(0, |l| l.leaves),
        report.logs[0].checkpoints,
        load.as_secs_f64(),
        took.as_secs_f64(),
        rate(records, took),
        bytes,
        raw.as_secs_f64(),
        rate(records, raw),
        took.as_secs_f64() / raw.as_secs_f64()
    );
}
