//! Verify on read: stored bytes changed behind a stopped vault's back are
//! refused when read ([`VaultError::Corrupt`]) or at start, never returned.

use std::path::Path;
use std::time::Duration;

use evault_merkle::tiles::{TileId, TilePath};
use evault_vault::{PutRequest, Reader, Vault, VaultConfig, VaultError};

fn config(dir: &Path) -> VaultConfig {
    let mut c = VaultConfig::new(dir);
    // Never the user's state directory.
    c.state_dir = Some(dir.join("state"));
    c.origin = Some("test.example/integrity".into());
    c.checkpoint_interval = Duration::from_millis(20);
    c.startup_sample = 0;
    c
}

/// A stopped vault of 260 records (one full level-0 tile), with a
/// checkpoint at 100 besides the final one; the record ids.
async fn seed(dir: &Path) -> Vec<String> {
    let v = Vault::open(config(dir)).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..260 {
        if i == 100 {
            v.evidence_log()
                .wait_for_checkpoint(100, Duration::from_secs(10))
                .await
                .unwrap();
        }
        let mut up = v.upload();
        up.write(format!("record {i}").as_bytes()).await.unwrap();
        let out = v
            .put(PutRequest {
                content_type: "text/plain".into(),
                labels: Default::default(),
                payload: up.finish().await.unwrap(),
                principal: "sa:test".into(),
                idempotency_key: None,
                audit: None,
            })
            .await
            .unwrap();
        ids.push(out.record.id);
    }
    v.shutdown().await.unwrap();
    ids
}

fn flip(dir: &Path, sql_select: &str, sql_update: &str, at: usize) {
    let db = evault_vault::SqliteStore::raw_connection(&dir.join("evault.db")).unwrap();
    let mut b: Vec<u8> = db
        .query_row(sql_select, [], |r| {
            let v: rusqlite::types::Value = r.get(0)?;
            Ok(match v {
                rusqlite::types::Value::Blob(b) => b,
                rusqlite::types::Value::Text(t) => t.into_bytes(),
                other => panic!("{other:?}"),
            })
        })
        .unwrap();
    b[at] ^= 1;
    let n = if sql_update.contains("note") {
        db.execute(sql_update, [String::from_utf8(b).unwrap()])
    } else {
        db.execute(sql_update, [b])
    };
    assert_eq!(n.unwrap(), 1);
}

fn corrupt<T: std::fmt::Debug>(r: Result<T, VaultError>, what: &str) {
    match r {
        Err(VaultError::Corrupt { what: w, .. }) if w == what => {}
        other => panic!("expected a {what} integrity failure, got {other:?}"),
    }
}

fn copy(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_bytes_are_refused_when_read() {
    let seed_dir = tempfile::tempdir().unwrap();
    let ids = seed(seed_dir.path()).await;
    let all = Reader::all("test");
    let fresh = || {
        let d = tempfile::tempdir().unwrap();
        copy(seed_dir.path(), d.path());
        d
    };

    // Intact: everything reads.
    {
        let d = fresh();
        let mut c = config(d.path());
        c.startup_sample = 1000;
        let v = Vault::open(c).await.unwrap();
        v.payload(&all, &ids[5]).await.unwrap();
        let log = v.evidence_log();
        log.tile(
            &all,
            TilePath::Entries {
                index: 0,
                width: 256,
            },
        )
        .await
        .unwrap();
        for (level, width) in [(0, 256), (0, 4), (1, 1)] {
            log.tile(
                &all,
                TilePath::Hashes(TileId {
                    level,
                    index: if width == 4 { 1 } else { 0 },
                    width,
                }),
            )
            .await
            .unwrap();
        }
        log.tile(
            &all,
            TilePath::Hashes(TileId {
                level: 0,
                index: 0,
                width: 17,
            }),
        )
        .await
        .unwrap();
        log.checkpoint_at(100).await.unwrap();
        log.list_checkpoints(None, 1000).await.unwrap();
        log.inclusion(&all, &ids[7], Some(100)).await.unwrap();
        v.shutdown().await.unwrap();
    }

    // An inline payload.
    {
        let d = fresh();
        flip(
            d.path(),
            "SELECT payload FROM records WHERE leaf_index = 5",
            "UPDATE records SET payload = ?1 WHERE leaf_index = 5",
            2,
        );
        let v = Vault::open(config(d.path())).await.unwrap();
        corrupt(v.payload(&all, &ids[5]).await, "payload");
        v.payload(&all, &ids[6]).await.unwrap();
        v.shutdown().await.unwrap();
    }

    // A leaf: the record, the listing, the entry bundle.
    {
        let d = fresh();
        flip(
            d.path(),
            "SELECT leaf_data FROM records WHERE leaf_index = 9",
            "UPDATE records SET leaf_data = ?1 WHERE leaf_index = 9",
            20,
        );
        let v = Vault::open(config(d.path())).await.unwrap();
        corrupt(v.get(&all, &ids[9]).await, "record");
        let page = evault_store::ListQuery {
            limit: 100,
            ..Default::default()
        };
        corrupt(v.list(&all, page).await, "record");
        corrupt(
            v.evidence_log()
                .tile(
                    &all,
                    TilePath::Entries {
                        index: 0,
                        width: 12,
                    },
                )
                .await,
            "entries",
        );
        v.shutdown().await.unwrap();
        drop(v); // releases the data directory's lock
        let mut c = config(d.path());
        c.startup_sample = 1000;
        let refused = Vault::open(c).await.err().expect("refused at start");
        assert!(refused.to_string().contains("evault fsck"), "{refused}");
    }

    // A hash in the full level-0 tile: the tile at any width, the proofs
    // through it.
    {
        let d = fresh();
        flip(
            d.path(),
            "SELECT data FROM tiles WHERE level = 0 AND idx = 0",
            "UPDATE tiles SET data = ?1 WHERE level = 0 AND idx = 0",
            10 * 32,
        );
        let v = Vault::open(config(d.path())).await.unwrap();
        let log = v.evidence_log();
        for width in [256, 3] {
            let tile = TileId {
                level: 0,
                index: 0,
                width,
            };
            corrupt(log.tile(&all, TilePath::Hashes(tile)).await, "tile");
        }
        corrupt(log.inclusion(&all, &ids[11], None).await, "proof");
        v.shutdown().await.unwrap();
    }

    // A node in the full level-0 tile's inner levels (leaves 8 and 9),
    // which proofs read in place of the row: the proof of leaf 11 through
    // it is refused, never served wrong; the tile itself still serves.
    {
        let d = fresh();
        flip(
            d.path(),
            "SELECT inner FROM tiles WHERE level = 0 AND idx = 0",
            "UPDATE tiles SET inner = ?1 WHERE level = 0 AND idx = 0",
            4 * 32,
        );
        let v = Vault::open(config(d.path())).await.unwrap();
        let log = v.evidence_log();
        corrupt(log.inclusion(&all, &ids[11], None).await, "proof");
        log.inclusion(&all, &ids[200], None).await.unwrap();
        let full = TileId {
            level: 0,
            index: 0,
            width: 256,
        };
        log.tile(&all, TilePath::Hashes(full)).await.unwrap();
        v.shutdown().await.unwrap();
    }

    // A hash in the partial one, on the right edge: the root check at start.
    {
        let d = fresh();
        flip(
            d.path(),
            "SELECT data FROM tiles WHERE level = 0 AND idx = 1",
            "UPDATE tiles SET data = ?1 WHERE level = 0 AND idx = 1",
            33,
        );
        let refused = Vault::open(config(d.path())).await.err().expect("refused");
        assert!(refused.to_string().contains("root"), "{refused}");
    }

    // An older checkpoint's signature: not served, listed or embedded.
    {
        let d = fresh();
        let db = evault_vault::SqliteStore::raw_connection(&d.path().join("evault.db")).unwrap();
        let note: String = db
            .query_row("SELECT note FROM checkpoints WHERE size = 100", [], |r| {
                r.get(0)
            })
            .unwrap();
        drop(db);
        let at = note.trim_end().len() - 3;
        flip(
            d.path(),
            "SELECT note FROM checkpoints WHERE size = 100",
            "UPDATE checkpoints SET note = ?1 WHERE size = 100",
            at,
        );
        let v = Vault::open(config(d.path())).await.unwrap();
        let log = v.evidence_log();
        corrupt(log.checkpoint_at(100).await, "checkpoint");
        corrupt(log.list_checkpoints(None, 1000).await, "checkpoint");
        corrupt(log.inclusion(&all, &ids[7], Some(100)).await, "checkpoint");
        log.latest_checkpoint().await.unwrap();
        v.shutdown().await.unwrap();
    }
}
