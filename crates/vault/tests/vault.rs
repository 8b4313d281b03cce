//! The vault end to end on a real SQLite store in a temp dir.

#[macro_use]
mod drivers;

use std::collections::BTreeMap;
use std::time::Duration;

use evault_merkle::verify_consistency;
use evault_note::{Checkpoint, Ed25519Signer, Verifiers, sign};
use evault_store::{LogId, LogStore, SqliteStore, StoredCheckpoint};
use evault_vault::{PayloadData, PutOutcome, PutRequest, Reader, Vault, VaultConfig, VaultError};
use evault_verify::open_checkpoint;

fn config(dir: &std::path::Path) -> VaultConfig {
    let mut c = VaultConfig::new(dir);
    c.store = drivers::store();
    // Never the user's state directory.
    c.state_dir = Some(dir.join("state"));
    c.origin = Some("test.example/vault".into());
    c.checkpoint_interval = Duration::from_millis(20);
    c.inline_max = 1024;
    c
}

async fn put(v: &Vault, body: &[u8], labels: &[(&str, &str)], idem: Option<&str>) -> PutOutcome {
    try_put(v, body, labels, idem).await.expect("put")
}

async fn try_put(
    v: &Vault,
    body: &[u8],
    labels: &[(&str, &str)],
    idem: Option<&str>,
) -> Result<PutOutcome, VaultError> {
    let mut up = v.upload();
    for chunk in body.chunks(700) {
        up.write(chunk).await?;
    }
    let payload = up.finish().await?;
    v.put(PutRequest {
        content_type: "application/json".into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        payload,
        principal: "sa:test".into(),
        idempotency_key: idem.map(str::to_string),
        audit: None,
    })
    .await
}

on_every_store! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn put_prove_verify_offline() {
        let dir = tempfile::tempdir().unwrap();
        let v = Vault::open(config(dir.path())).await.unwrap();
        let out = put(&v, br#"{"tests":42}"#, &[("build", "7")], None).await;
        assert!(!out.duplicate && !out.replayed);
        assert_eq!(out.record.leaf_index, 0);
        assert_eq!(
            v.get(&Reader::all("test"), &out.record.id).await.unwrap(),
            out.record
        );

        v.evidence_log()
            .wait_for_checkpoint(1, Duration::from_secs(5))
            .await
            .unwrap();
        let bundle = v
            .evidence_log()
            .inclusion(&Reader::all("test"), &out.record.id, None)
            .await
            .map(|p| p.into_evidence().unwrap())
            .unwrap();
        // Offline: only the verifier key text and the bundle.
        let key =
            evault_note::Ed25519Verifier::from_verifier_key(&v.evidence_log().verifier_key()).unwrap();
        let verifiers = Verifiers::new().with(key).unwrap();
        let ok = bundle
            .verify(&verifiers, Some("test.example/vault"))
            .unwrap();
        assert_eq!(ok.leaf_index, 0);
    }
}

on_every_store! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn duplicates_and_idempotent_retries() {
        let dir = tempfile::tempdir().unwrap();
        let v = Vault::open(config(dir.path())).await.unwrap();
        let first = put(&v, b"same", &[("a", "1")], None).await;
        let again = put(&v, b"same", &[("a", "1")], None).await;
        assert!(again.duplicate);
        assert_eq!(again.record.id, first.record.id);
        // Other labels: a new record.
        let other = put(&v, b"same", &[("a", "2")], None).await;
        assert_ne!(other.record.id, first.record.id);

        let a = put(&v, b"payload-x", &[], Some("retry-1")).await;
        let b = put(&v, b"payload-y", &[], Some("retry-1")).await;
        assert!(b.replayed);
        assert_eq!(a.record, b.record);
        assert_eq!(v.evidence_log().head().size, 3);

        // Concurrent identical submissions land in one batch: one leaf.
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let v = v.clone();
            tasks.push(tokio::spawn(
                async move { put(&v, b"burst", &[], None).await },
            ));
        }
        let mut ids = std::collections::HashSet::new();
        for t in tasks {
            ids.insert(t.await.unwrap().record.id);
        }
        assert_eq!(ids.len(), 1);
        assert_eq!(v.evidence_log().head().size, 4);
    }
}

on_every_store! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_get_consecutive_indexes_and_consistent_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let v = Vault::open(config(dir.path())).await.unwrap();
        let mut tasks = Vec::new();
        for c in 0..16 {
            let v = v.clone();
            tasks.push(tokio::spawn(async move {
                let mut idx = Vec::new();
                for i in 0..625 {
                    let body = format!("client {c} record {i}");
                    idx.push(
                        put(&v, body.as_bytes(), &[("client", &c.to_string())], None)
                            .await
                            .record
                            .leaf_index,
                    );
                    if i % 100 == 0 {
                        tokio::time::sleep(Duration::from_millis(25)).await;
                    }
                }
                idx
            }));
        }
        let mut all: Vec<u64> = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all.sort_unstable();
        assert_eq!(all, (0..10_000).collect::<Vec<u64>>());
        v.evidence_log()
            .wait_for_checkpoint(10_000, Duration::from_secs(10))
            .await
            .unwrap();

        let cps = v.evidence_log().list_checkpoints(None, 1000).await.unwrap();
        assert!(
            cps.len() >= 2,
            "expected several checkpoints, got {}",
            cps.len()
        );
        let opened: Vec<Checkpoint> = cps
            .iter()
            .map(|c| {
                open_checkpoint(&c.note, &v.evidence_log().verifiers(), None)
                    .unwrap()
                    .0
            })
            .collect();
        // The log starts with a signed empty checkpoint; every tree extends the
        // empty one, and RFC 9162 has no proof for it, so pairs start at size 1.
        assert_eq!(opened[0].size, 0);
        assert_eq!(opened[0].root_hash, evault_merkle::EMPTY_ROOT);
        let opened: Vec<Checkpoint> = opened.into_iter().filter(|c| c.size > 0).collect();
        assert!(
            opened.len() >= 5,
            "want several non-empty checkpoints, got {}",
            opened.len()
        );
        // Each checkpoint against the next and against the last: since
        // consistency is transitive, that proves every pair (checking all
        // n²/2 pairs costs minutes once there are hundreds of checkpoints).
        let mut pairs = 0;
        let last = opened.last().unwrap();
        for (i, a) in opened.iter().enumerate() {
            for b in [opened.get(i + 1), Some(last)].into_iter().flatten() {
                let p = v.evidence_log().consistency(a.size, b.size).await.unwrap();
                verify_consistency(a.size, b.size, &p.proof, &a.root_hash, &b.root_hash).unwrap();
                pairs += 1;
            }
        }
        eprintln!(
            "{} checkpoints, {pairs} consistency pairs verified",
            opened.len()
        );
        // Label listing sees exactly one client's records, paged.
        let mut q = evault_store::ListQuery {
            labels: vec![("client".into(), "3".into())],
            limit: 50,
            ..Default::default()
        };
        let mut seen = 0;
        loop {
            let page = v.list(&Reader::all("test"), q.clone()).await.unwrap();
            seen += page.items.len();
            assert!(page.items.iter().all(|e| e.labels["client"] == "3"));
            match page.next {
                Some(n) => q.after_index = Some(n),
                None => break,
            }
        }
        assert_eq!(seen, 625);
    }
}

on_every_store! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn restart_keeps_everything_and_continues_the_same_log() {
        let dir = tempfile::tempdir().unwrap();
        let (first, key, cp1) = {
            let v = Vault::open(config(dir.path())).await.unwrap();
            for i in 0..300 {
                put(&v, format!("r{i}").as_bytes(), &[], None).await;
            }
            let big = vec![b'z'; 5000];
            let out = put(&v, &big, &[], None).await;
            v.evidence_log()
                .wait_for_checkpoint(301, Duration::from_secs(5))
                .await
                .unwrap();
            let cp = v.evidence_log().latest_checkpoint().await.unwrap();
            let key = v.evidence_log().verifier_key();
            v.shutdown().await.unwrap();
            (out.record, key, cp)
        };
        let v = Vault::open(config(dir.path())).await.unwrap();
        assert_eq!(v.evidence_log().verifier_key(), key);
        assert_eq!(v.evidence_log().head().size, 301);
        assert_eq!(v.get(&Reader::all("test"), &first.id).await.unwrap(), first);
        match v.payload(&Reader::all("test"), &first.id).await.unwrap().1 {
            PayloadData::File(mut blob) => {
                assert_eq!(blob.len(), 5000);
                let path = blob.path().to_path_buf();
                let mut read = Vec::new();
                while let Some(chunk) = blob.next_chunk().await.unwrap() {
                    read.extend(chunk);
                }
                assert_eq!(read, vec![b'z'; 5000]);
                // One byte changed at rest: the reader refuses at the end rather
                // than hand out the last chunk.
                let mut bytes = std::fs::read(&path).unwrap();
                bytes[4321] ^= 1;
                std::fs::write(&path, &bytes).unwrap();
                let PayloadData::File(mut blob) =
                    v.payload(&Reader::all("test"), &first.id).await.unwrap().1
                else {
                    panic!("still a blob")
                };
                let mut served = 0;
                let err = loop {
                    match blob.next_chunk().await {
                        Ok(Some(c)) => served += c.len(),
                        Ok(None) => panic!("a changed blob was read to its end"),
                        Err(e) => break e,
                    }
                };
                assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
                assert!(served < 5000, "served {served} of 5000 bytes");
                bytes[4321] ^= 1;
                std::fs::write(&path, &bytes).unwrap();
            }
            PayloadData::Inline(_) => panic!("a 5000-byte payload must be a blob (inline max 1024)"),
        }
        for i in 0..50 {
            put(&v, format!("after {i}").as_bytes(), &[], None).await;
        }
        v.evidence_log()
            .wait_for_checkpoint(351, Duration::from_secs(5))
            .await
            .unwrap();
        let cp2 = v.evidence_log().latest_checkpoint().await.unwrap();
        let (c1, _) = open_checkpoint(&cp1.note, &v.evidence_log().verifiers(), None).unwrap();
        let (c2, _) = open_checkpoint(&cp2.note, &v.evidence_log().verifiers(), None).unwrap();
        let p = v
            .evidence_log()
            .consistency(c1.size, c2.size)
            .await
            .unwrap();
        verify_consistency(c1.size, c2.size, &p.proof, &c1.root_hash, &c2.root_hash).unwrap();

        // A second vault on a data directory in use is refused.
        assert!(matches!(
            Vault::open(config(dir.path())).await,
            Err(VaultError::Unavailable(_))
        ));
        v.shutdown().await.unwrap();
        drop(v);

        // Another origin for the same data directory is refused.
        let mut other = config(dir.path());
        other.origin = Some("elsewhere.example/log".into());
        assert!(matches!(
            Vault::open(other).await,
            Err(VaultError::Inconsistent(_))
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_to_start_on_a_checkpoint_the_tree_does_not_match() {
    let dir = tempfile::tempdir().unwrap();
    {
        let v = Vault::open(config(dir.path())).await.unwrap();
        for i in 0..10 {
            put(&v, format!("r{i}").as_bytes(), &[], None).await;
        }
        v.evidence_log()
            .wait_for_checkpoint(10, Duration::from_secs(5))
            .await
            .unwrap();
        v.shutdown().await.unwrap();
    }
    // Forge a checkpoint with the log's own key but a root the tree lacks.
    let key_text = std::fs::read_to_string(dir.path().join("log.key")).unwrap();
    let signer = Ed25519Signer::from_signer_key(key_text.trim()).unwrap();
    let store = SqliteStore::open(&dir.path().join("evault.db")).unwrap();
    // A checkpoint beyond the stored tree: what a database restored from an
    // older backup looks like next to the checkpoints already published.
    let forged = Checkpoint::new("test.example/vault", 11, [7; 32]).to_text();
    let note = sign(&forged, &[&signer]).unwrap();
    store
        .put_checkpoint(
            LogId::Evidence,
            &StoredCheckpoint {
                size: 11,
                note,
                created_at_ms: 0,
            },
        )
        .unwrap();
    drop(store);
    let err = Vault::open(config(dir.path()))
        .await
        .err()
        .expect("must refuse");
    assert!(
        matches!(err, VaultError::Inconsistent(ref m) if m.contains("size 11")),
        "{err}"
    );

    // A lost key with existing history is refused too, not silently replaced.
    let dir2 = tempfile::tempdir().unwrap();
    {
        let v = Vault::open(config(dir2.path())).await.unwrap();
        put(&v, b"x", &[], None).await;
        v.shutdown().await.unwrap();
    }
    std::fs::remove_file(dir2.path().join("log.key")).unwrap();
    assert!(matches!(
        Vault::open(config(dir2.path())).await,
        Err(VaultError::Inconsistent(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.max_upload = 100;
    let v = Vault::open(c).await.unwrap();
    assert!(matches!(
        try_put(&v, &[0; 101], &[], None).await,
        Err(VaultError::TooLarge { .. })
    ));
    assert!(matches!(
        try_put(&v, b"x", &[("bad key", "v")], None).await,
        Err(VaultError::Invalid(_))
    ));
    assert!(matches!(
        try_put(&v, b"x", &[], Some("has space")).await,
        Err(VaultError::Invalid(_))
    ));
    let mut up = v.upload();
    up.write(b"x").await.unwrap();
    let payload = up.finish().await.unwrap();
    let bad_ct = v
        .put(PutRequest {
            content_type: "not a mime type".into(),
            labels: BTreeMap::new(),
            payload,
            principal: "sa:test".into(),
            idempotency_key: None,
            audit: None,
        })
        .await;
    assert!(matches!(bad_ct, Err(VaultError::Invalid(_))));
    assert_eq!(v.evidence_log().head().size, 0);
    let store = SqliteStore::open(&dir.path().join("evault.db")).unwrap();
    assert_eq!(store.tree_size(LogId::Evidence).unwrap(), 0);
}
