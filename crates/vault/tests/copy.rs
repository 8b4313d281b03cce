//! `copy::copy_stopped_vault` with what the command's round trip
//! (`crates/cli/tests/pg.rs`) does not hold: a mirrored log imported from
//! another vault's bundles at two sizes, and a witness cosignature. Both
//! reach PostgreSQL and come back to SQLite as they were.

use std::path::Path;
use std::time::Duration;

use evault_store::prelude::*;
use evault_store::testing::postgres::TestDb;
use evault_store::{Cosignature, LogId, SqliteStore};
use evault_vault::copy::{CopyReport, copy_stopped_vault};
use evault_vault::{BundleSelection, PutRequest, Reader, StoreLocation, Vault, VaultConfig};

const A: &str = "a.example/vault";
const B: &str = "b.example/vault";

fn config(dir: &Path, origin: &str) -> VaultConfig {
    let mut c = VaultConfig::new(dir);
    c.state_dir = Some(dir.join("state"));
    c.origin = Some(origin.into());
    c.checkpoint_interval = Duration::from_millis(20);
    c.inline_max = 64;
    c
}

/// Puts `n` records numbered from `first` and waits for their checkpoint.
async fn put(v: &Vault, first: u64, n: u64) {
    for i in first..first + n {
        let mut up = v.upload();
        // Some above `inline_max`: blob files.
        let body = format!("{{\"i\":{i},\"pad\":\"{}\"}}", "x".repeat(i as usize * 5));
        up.write(body.as_bytes()).await.unwrap();
        let payload = up.finish().await.unwrap();
        v.put(PutRequest {
            content_type: "application/json".into(),
            labels: Default::default(),
            payload,
            principal: "sa:ci".into(),
            idempotency_key: None,
            audit: None,
        })
        .await
        .unwrap();
    }
    v.evidence_log()
        .wait_for_checkpoint(first + n, Duration::from_secs(30))
        .await
        .unwrap();
}

/// Exports all of `from` and imports it into `into` as a mirror.
async fn mirror(from: &Vault, into: &Vault, bundle: &Path) {
    let (from, into, bundle) = (from.clone(), into.clone(), bundle.to_path_buf());
    tokio::task::spawn_blocking(move || {
        let selection = BundleSelection {
            payloads: true,
            ..BundleSelection::default()
        };
        from.export_bundle(
            &Reader::all("auditor"),
            &selection,
            &bundle,
            &|_, _| {},
            &|| false,
        )
        .unwrap();
        let key = from.evidence_log().verifier_key();
        into.import_bundle("sa:admin", &bundle, &key, &|_, _| {}, &|| false)
            .unwrap();
    })
    .await
    .unwrap();
}

async fn copy(dir: &Path, from: StoreLocation, to: StoreLocation) -> CopyReport {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || copy_stopped_vault(&dir, &from, &to, &|_, _, _| {}))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("copy: {e}"))
}

/// Moves `evault.db` and `evault-index.db` (with their `-wal`/`-shm`) of
/// `dir` into `to`.
fn move_store(dir: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for name in ["evault.db", "evault-index.db"] {
        for suffix in ["", "-wal", "-shm"] {
            let file = format!("{name}{suffix}");
            if dir.join(&file).exists() {
                std::fs::rename(dir.join(&file), to.join(&file)).unwrap();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrors_and_cosignatures_move_to_postgres_and_back() {
    let Some(db) = TestDb::create("mirrors_and_cosignatures_move_to_postgres_and_back") else {
        return;
    };
    evault_store::postgres::migrate(db.url()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    let a = Vault::open(config(&a_dir, A)).await.unwrap();
    let b = Vault::open(config(&b_dir, B)).await.unwrap();
    put(&b, 0, 3).await;
    // A's records at two sizes: the mirror holds two checkpoints, each
    // proving the records imported with it.
    put(&a, 0, 20).await;
    mirror(&a, &b, &dir.path().join("a1.evb")).await;
    put(&a, 20, 10).await;
    mirror(&a, &b, &dir.path().join("a2.evb")).await;
    b.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
    // While B's data directory is held, nothing copies from it.
    let pg = StoreLocation::Postgres(db.url().to_string());
    let held = copy_stopped_vault(&b_dir, &StoreLocation::Sqlite, &pg, &|_, _, _| {});
    assert!(
        matches!(held, Err(evault_vault::VaultError::Unavailable(_))),
        "{held:?}"
    );
    drop((a, b));

    // A witness's cosignature of B's latest checkpoint, as the vault
    // stores one it verified.
    let cosigned = {
        let store = SqliteStore::open(&b_dir.join("evault.db")).unwrap();
        let size = store
            .latest_checkpoint(LogId::Evidence)
            .unwrap()
            .unwrap()
            .size;
        let line = Cosignature {
            witness: "w1".into(),
            key: "w1+01020304".into(),
            line: "— w1 AQIDBA==".into(),
            received_ms: 1_764_000_000_000,
        };
        store
            .cosignatures()
            .unwrap()
            .put_cosignatures(LogId::Evidence, size, std::slice::from_ref(&line))
            .unwrap();
        size
    };
    let original = SqliteStore::open_read_only(&b_dir.join("evault.db")).unwrap();
    let mirrors = original.mirrors().unwrap().mirror_logs().unwrap();
    assert_eq!(mirrors.len(), 1);
    assert_eq!((mirrors[0].records, mirrors[0].checkpoints), (30, 2));
    let cosignatures = original
        .cosignatures()
        .unwrap()
        .cosignatures_at(LogId::Evidence, cosigned)
        .unwrap();
    drop(original);
    let before = SqliteStore::fingerprint(&b_dir.join("evault.db")).unwrap();

    let there = copy(&b_dir, StoreLocation::Sqlite, pg.clone()).await;
    assert_eq!(there.evidence, 3);
    assert_eq!(there.mirror_records, 30);
    assert_eq!(there.cosignatures, 1);

    move_store(&b_dir, &dir.path().join("aside"));
    let back = copy(&b_dir, pg, StoreLocation::Sqlite).await;
    assert_eq!(
        (back.evidence, back.mirror_records, back.cosignatures),
        (3, 30, 1)
    );
    assert_eq!(
        SqliteStore::fingerprint(&b_dir.join("evault.db")).unwrap(),
        before
    );
    let copied = SqliteStore::open_read_only(&b_dir.join("evault.db")).unwrap();
    assert_eq!(copied.mirrors().unwrap().mirror_logs().unwrap(), mirrors);
    assert_eq!(
        copied
            .cosignatures()
            .unwrap()
            .cosignatures_at(LogId::Evidence, cosigned)
            .unwrap(),
        cosignatures
    );
    // The payloads the bundles carried came along.
    let m = copied.mirrors().unwrap();
    for r in m.mirror_records(A, None, 1000).unwrap() {
        assert!(
            m.mirror_payload(&r.sha256).unwrap().is_some(),
            "the payload of mirrored leaf {}",
            r.leaf_index
        );
    }
}
