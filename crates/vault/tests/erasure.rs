//! Erasure (issue 18): erase an inline and a blob payload (and a record
//! sharing the blob's bytes); every inclusion and consistency proof, the
//! bundle exported before and one exported after, and fsck (online and
//! offline) still verify; the bytes are in no file under the data
//! directory; the payload answers Gone with its tombstone. A legal hold
//! blocks erasure and retention; a retention policy expires a payload on
//! schedule, audited.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use evault_note::{Ed25519Verifier, Verifiers};
use evault_store::Selector;
use evault_vault::erasure::{TOMBSTONE_TYPE, Tombstone};
use evault_vault::{
    AuditQuery, BundleSelection, FsckOptions, PayloadData, PutRequest, Reader, Vault, VaultConfig,
    VaultError, fsck_data_dir,
};
use evault_verify::evb::{self, NoPayloadSink, ReadLimits};
use evault_verify::open_checkpoint;

const ORIGIN: &str = "test.example/vault";
const INLINE_MARKER: &[u8] = b"INLINE-SECRET-3b1f8e2a";
const BLOB_MARKER: &[u8] = b"BLOB-SECRET-c94d70e5";

fn config(dir: &Path, retention: Duration) -> VaultConfig {
    let mut c = VaultConfig::new(dir);
    c.state_dir = Some(dir.join("state"));
    c.origin = Some(ORIGIN.into());
    c.checkpoint_interval = Duration::from_millis(20);
    c.inline_max = 1024;
    c.retention_interval = retention;
    c
}

async fn put(v: &Vault, body: &[u8], labels: &[(&str, &str)]) -> evault_verify::Evidence {
    let mut up = v.upload();
    up.write(body).await.unwrap();
    let payload = up.finish().await.unwrap();
    v.put(PutRequest {
        content_type: "application/json".into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        payload,
        principal: "sa:ci".into(),
        idempotency_key: None,
        audit: None,
    })
    .await
    .unwrap()
    .record
}

fn verifiers(v: &Vault) -> Verifiers {
    let key = Ed25519Verifier::from_verifier_key(&v.evidence_log().verifier_key()).unwrap();
    Verifiers::new().with(key).unwrap()
}

fn admin() -> Reader {
    Reader::all("admin")
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Every file under `dir`, recursively.
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// The files under `dir` holding `needle`.
fn holding(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut all = Vec::new();
    files(dir, &mut all);
    all.into_iter()
        .filter(|p| {
            // An unreadable file would hide the bytes: fail instead.
            let bytes = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            contains(&bytes, needle)
        })
        .collect()
}

async fn export(v: &Vault, out: &Path, payloads: bool) -> Result<(), VaultError> {
    let (v, out) = (v.clone(), out.to_path_buf());
    tokio::task::spawn_blocking(move || {
        let sel = BundleSelection {
            payloads,
            ..BundleSelection::default()
        };
        v.export_bundle(&admin(), &sel, &out, &|_, _| {}, &|| false)
            .map(|_| ())
    })
    .await
    .unwrap()
}

fn verify_bundle(path: &Path, verifiers: &Verifiers) -> evb::BundleReport {
    let file = std::fs::File::open(path).unwrap();
    let bundle = evb::read_bundle(file, &ReadLimits::default(), &mut NoPayloadSink).unwrap();
    evb::verify_bundle(&bundle, verifiers, Some(ORIGIN), None)
}

async fn read_payload(v: &Vault, id: &str) -> Result<Vec<u8>, VaultError> {
    let (_, data) = v.payload(&admin(), id).await?;
    Ok(match data {
        PayloadData::Inline(b) => b,
        PayloadData::File(mut f) => {
            let mut out = Vec::new();
            while let Some(chunk) = f.next_chunk().await.unwrap() {
                out.extend_from_slice(&chunk);
            }
            out
        }
    })
}

async fn inclusion_json(v: &Vault, id: &str, size: u64) -> String {
    let p = v
        .evidence_log()
        .inclusion(&admin(), id, Some(size))
        .await
        .unwrap();
    serde_json::to_string(&p).unwrap()
}

async fn fsck_online(v: &Vault) -> evault_vault::FsckReport {
    let v = v.clone();
    tokio::task::spawn_blocking(move || v.fsck(&FsckOptions::default(), &|_, _| {}, &|| false))
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_keeps_every_proof_and_removes_every_byte() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let exports = dir.path().join("exports");
    std::fs::create_dir(&exports).unwrap();
    let v = Vault::open(config(&data, Duration::ZERO)).await.unwrap();

    let inline_body = [b"{\"s\":\"".as_slice(), INLINE_MARKER, b"\"}"].concat();
    let blob_body = BLOB_MARKER.repeat(200); // 4 KB: a blob file
    let a = put(&v, &inline_body, &[("k", "a")]).await;
    let keep = put(&v, b"{\"keep\":1}", &[("k", "keep")]).await;
    let b = put(&v, &blob_body, &[("k", "b")]).await;
    // Same bytes, other labels: another record sharing b's blob.
    let b2 = put(&v, &blob_body, &[("k", "b2")]).await;
    assert_eq!(b.sha256, b2.sha256);
    let ids = [&a, &keep, &b, &b2].map(|r| r.id.clone());
    v.evidence_log()
        .wait_for_checkpoint(4, Duration::from_secs(10))
        .await
        .unwrap();
    let cp1 = v.evidence_log().latest_checkpoint().await.unwrap();
    let mut before = Vec::new();
    for id in &ids {
        before.push(inclusion_json(&v, id, cp1.size).await);
    }
    let bundle_before = exports.join("before.evb");
    export(&v, &bundle_before, true).await.unwrap();
    assert!(!holding(&data, INLINE_MARKER).is_empty());
    assert!(!holding(&data, BLOB_MARKER).is_empty());

    // Refusals first: no reason, over-long reason, unknown record.
    assert!(matches!(
        v.erase("admin", &a.id, "  ").await,
        Err(VaultError::Invalid(_))
    ));
    assert!(matches!(
        v.erase("admin", &a.id, &"x".repeat(5000)).await,
        Err(VaultError::Invalid(_))
    ));
    assert!(matches!(
        v.erase("admin", "0190b5a0-0000-7000-8000-000000000000", "r")
            .await,
        Err(VaultError::NotFound(_))
    ));

    let reason = "GDPR art. 17 request #4711";
    let erased_a = v.erase("admin", &a.id, reason).await.unwrap();
    assert_eq!(erased_a.len(), 1);
    assert_eq!(erased_a[0].id, a.id);
    let erased_b = v.erase("admin", &b.id, reason).await.unwrap();
    let mut sharers: Vec<_> = erased_b.iter().map(|e| e.id.clone()).collect();
    sharers.sort();
    let mut expected = vec![b.id.clone(), b2.id.clone()];
    expected.sort();
    assert_eq!(
        sharers, expected,
        "every record sharing the bytes is erased"
    );

    // Erased once; tombstones are not erasable.
    assert!(matches!(
        v.erase("admin", &b2.id, reason).await,
        Err(VaultError::Conflict(_))
    ));
    assert!(matches!(
        v.erase("admin", &erased_a[0].tombstone_id, reason).await,
        Err(VaultError::Conflict(_))
    ));

    // Payload reads are Gone, naming the tombstone; metadata still reads.
    for e in erased_a.iter().chain(&erased_b) {
        match read_payload(&v, &e.id).await {
            Err(VaultError::Gone { id, tombstone_id }) => {
                assert_eq!(id, e.id);
                assert_eq!(tombstone_id, e.tombstone_id);
            }
            other => panic!("payload of an erased record: {other:?}"),
        }
        let meta = v.get(&admin(), &e.id).await.unwrap();
        assert_eq!(meta.id, e.id);
        let info = v.erasure(&admin(), &e.id).await.unwrap().unwrap();
        assert_eq!(info.tombstone_id, e.tombstone_id);
        assert_eq!(info.basis, "request");
        assert_eq!(info.erased_by, "admin");
        // The tombstone names the record; the reason only by digest.
        let t = v.get(&admin(), &e.tombstone_id).await.unwrap();
        assert_eq!(t.content_type, TOMBSTONE_TYPE);
        assert_eq!(t.labels["evault.erases"], e.id);
        assert_eq!(t.labels["evault.erases.leaf"], e.leaf_index.to_string());
        let body = read_payload(&v, &e.tombstone_id).await.unwrap();
        assert!(!contains(&body, reason.as_bytes()));
        let t = Tombstone::parse(&body).unwrap();
        assert_eq!(t.erases.id, e.id);
        assert_eq!(t.erases.leaf_index, e.leaf_index);
        assert_eq!(t.basis, "request");
        assert_eq!(
            t.reason_sha256,
            evault_verify::evidence::hex(&<sha2::Sha256 as sha2::Digest>::digest(reason))
        );
    }
    assert_eq!(read_payload(&v, &keep.id).await.unwrap(), b"{\"keep\":1}");

    // Every proof at the old checkpoint is byte-identical and verifies;
    // the new checkpoint is consistent with the old one.
    let vs = verifiers(&v);
    let size = v
        .evidence_log()
        .wait_for_checkpoint(7, Duration::from_secs(10))
        .await
        .unwrap();
    for (id, old) in ids.iter().zip(&before) {
        assert_eq!(&inclusion_json(&v, id, cp1.size).await, old);
        for at in [cp1.size, size] {
            let p = v
                .evidence_log()
                .inclusion(&admin(), id, Some(at))
                .await
                .unwrap()
                .into_evidence()
                .unwrap();
            p.verify(&vs, Some(ORIGIN)).unwrap();
        }
    }
    let cp2 = v.evidence_log().checkpoint_at(size).await.unwrap();
    let (c1, _) = open_checkpoint(&cp1.note, &vs, Some(ORIGIN)).unwrap();
    let (c2, _) = open_checkpoint(&cp2.note, &vs, Some(ORIGIN)).unwrap();
    let proof = v
        .evidence_log()
        .consistency(c1.size, c2.size)
        .await
        .unwrap();
    evault_merkle::verify_consistency(c1.size, c2.size, &proof.proof, &c1.root_hash, &c2.root_hash)
        .unwrap();

    // The bundle exported before still verifies; one exported after
    // verifies, without payloads and with them: an erased payload goes
    // out as its tombstone, proven against the bundle's checkpoint.
    let r = verify_bundle(&bundle_before, &vs);
    assert!(r.verified, "{:?}", r.failures);
    assert_eq!(r.erased, 0);
    let bundle_after = exports.join("after.evb");
    export(&v, &bundle_after, false).await.unwrap();
    let r = verify_bundle(&bundle_after, &vs);
    assert!(r.verified, "{:?}", r.failures);
    assert_eq!((r.records, r.erased), (7, 0));
    let with_payloads = exports.join("after-with-payloads.evb");
    export(&v, &with_payloads, true).await.unwrap();
    let r = verify_bundle(&with_payloads, &vs);
    assert!(
        r.verified,
        "{:?} {:?}",
        r.failures,
        r.failed_records().collect::<Vec<_>>()
    );
    assert_eq!(r.records, 7);
    // a, b, b2 erased; keep and the three tombstones carry payloads.
    assert_eq!((r.erased, r.payloads), (3, 4));
    let mut erased_by: Vec<(String, String)> = r
        .entries
        .iter()
        .filter_map(|e| Some((e.id.clone()?, e.erased_by.clone()?)))
        .collect();
    erased_by.sort();
    let mut expected: Vec<(String, String)> = erased_a
        .iter()
        .chain(&erased_b)
        .map(|e| (e.id.clone(), e.tombstone_id.clone()))
        .collect();
    expected.sort();
    assert_eq!(erased_by, expected);
    let bytes = std::fs::read(&with_payloads).unwrap();
    let tar = zstd::decode_all(&bytes[..]).unwrap();
    assert!(!contains(&tar, INLINE_MARKER));
    assert!(!contains(&tar, BLOB_MARKER));
    let read = evb::read_bundle(&bytes[..], &ReadLimits::default(), &mut NoPayloadSink).unwrap();
    assert_eq!(read.manifest.erasures, 3);
    assert!(read.erasures.is_some());

    // fsck online: clean, erased records included.
    let report = fsck_online(&v).await;
    assert!(report.clean, "{:?}", report.findings);

    // The bytes are in no file under the data directory.
    assert_eq!(holding(&data, INLINE_MARKER), Vec::<PathBuf>::new());
    assert_eq!(holding(&data, BLOB_MARKER), Vec::<PathBuf>::new());
    assert!(
        !v.config()
            .data_dir
            .join("blobs")
            .join(&b.sha256[0..2])
            .join(&b.sha256[2..4])
            .join(&b.sha256)
            .exists()
    );

    v.shutdown().await.unwrap();
    drop(v);
    assert_eq!(holding(&data, INLINE_MARKER), Vec::<PathBuf>::new());
    assert_eq!(holding(&data, BLOB_MARKER), Vec::<PathBuf>::new());
    // fsck offline: clean.
    let report = fsck_data_dir(&data, &FsckOptions::default(), &|_, _| {}, &|| false).unwrap();
    assert!(report.clean, "{:?}", report.findings);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphan_blob_of_an_erased_payload_is_found_and_removed_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let v = Vault::open(config(&data, Duration::ZERO)).await.unwrap();
    let body = BLOB_MARKER.repeat(100);
    let r = put(&v, &body, &[]).await;
    let blob = data
        .join("blobs")
        .join(&r.sha256[0..2])
        .join(&r.sha256[2..4])
        .join(&r.sha256);
    assert!(blob.exists());
    v.erase("admin", &r.id, "test").await.unwrap();
    assert!(!blob.exists());
    // Uploading the erased bytes again as the same record (a duplicate)
    // does not bring the blob back; as a new record it does, for it.
    let again = put(&v, &body, &[]).await;
    assert_eq!(again.id, r.id);
    assert!(!blob.exists());
    let other = put(&v, &body, &[("new", "1")]).await;
    assert_ne!(other.id, r.id);
    assert!(blob.exists());
    assert_eq!(read_payload(&v, &other.id).await.unwrap(), body);
    v.erase("admin", &other.id, "test").await.unwrap();
    assert!(!blob.exists());
    v.shutdown().await.unwrap();
    drop(v);
    // A crash between the commit and the unlink leaves the file behind.
    std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
    std::fs::write(&blob, &body).unwrap();
    let report = fsck_data_dir(&data, &FsckOptions::default(), &|_, _| {}, &|| false).unwrap();
    assert!(!report.clean);
    assert!(
        report
            .findings
            .iter()
            .all(|f| f.kind == evault_vault::FindingKind::Erasure),
        "{:?}",
        report.findings
    );
    // The next start removes it.
    let v = Vault::open(config(&data, Duration::ZERO)).await.unwrap();
    assert!(!blob.exists());
    v.shutdown().await.unwrap();
    drop(v);
    let report = fsck_data_dir(&data, &FsckOptions::default(), &|_, _| {}, &|| false).unwrap();
    assert!(report.clean, "{:?}", report.findings);
}

async fn wait_gone(v: &Vault, id: &str, timeout: Duration) -> String {
    let until = Instant::now() + timeout;
    loop {
        match read_payload(v, id).await {
            Err(VaultError::Gone { tombstone_id, .. }) => return tombstone_id,
            Ok(_) if Instant::now() < until => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("{id} was not erased in time: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legal_hold_blocks_erasure_and_retention_expires_on_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let v = Vault::open(config(&data, Duration::from_millis(200)))
        .await
        .unwrap();
    let held = put(&v, b"{\"held\":1}", &[("case", "c-1")]).await;
    let free = put(&v, b"{\"free\":1}", &[("case", "c-2")]).await;

    let hold = v
        .create_hold(
            "admin",
            Selector {
                labels: BTreeMap::from([("case".to_owned(), "c-1".to_owned())]),
                content_type: None,
            },
            "litigation 2026-17",
        )
        .await
        .unwrap();
    match v.erase("admin", &held.id, "please").await {
        Err(VaultError::Conflict(why)) => assert!(why.contains(&hold.id), "{why}"),
        other => panic!("a held record was erased: {other:?}"),
    }
    assert!(matches!(
        v.create_hold("admin", Selector::default(), "").await,
        Err(VaultError::Invalid(_))
    ));

    // Nothing happens without a policy.
    assert!(read_payload(&v, &free.id).await.is_ok());
    let policy = v
        .create_retention(
            "admin",
            "short",
            Selector::default(),
            Duration::from_secs(1),
        )
        .await
        .unwrap();
    assert_eq!(v.retention_policies().await.unwrap().len(), 1);
    let tombstone_id = wait_gone(&v, &free.id, Duration::from_secs(30)).await;
    let t = Tombstone::parse(&read_payload(&v, &tombstone_id).await.unwrap()).unwrap();
    assert_eq!(t.basis, format!("retention:{}", policy.id));
    let info = v.erasure(&admin(), &free.id).await.unwrap().unwrap();
    assert_eq!(info.erased_by, "evault");

    // The held record survives sweeps; a finished sweep says it skipped it.
    let until = Instant::now() + Duration::from_secs(30);
    let summary = loop {
        let done = v
            .tasks(
                &admin(),
                evault_vault::TaskFilter {
                    state: Some(evault_vault::TaskState::Succeeded),
                    kind: Some("retention_sweep".into()),
                    before: None,
                    limit: 100,
                },
            )
            .await
            .unwrap();
        if let Some(s) = done.iter().filter_map(|t| t.summary.clone()).find(|s| {
            s["held_ids"]
                .as_array()
                .is_some_and(|h| h.iter().any(|x| x == held.id.as_str()))
        }) {
            break s;
        }
        assert!(Instant::now() < until, "no sweep reported the held record");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        !summary["erased_ids"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x == held.id.as_str())
    );
    assert!(read_payload(&v, &held.id).await.is_ok());

    // The retention erasure is audited, as `evault`.
    let page = v
        .audit_list(
            &admin(),
            AuditQuery {
                operation: Some("evidence.erase".into()),
                principal: Some("evault".into()),
                limit: 100,
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
    assert!(
        page.items
            .iter()
            .any(|e| e.resource == format!("/api/v1/evidence/{}", free.id)
                && e.reason.as_deref() == Some(&*format!("retention:{}", policy.id))),
        "{:?}",
        page.items
    );

    // Released, the next sweep expires it too.
    let released = v.release_hold("boss", &hold.id).await.unwrap();
    assert_eq!(released.released_by.as_deref(), Some("boss"));
    assert!(matches!(
        v.release_hold("boss", &hold.id).await,
        Err(VaultError::Conflict(_))
    ));
    wait_gone(&v, &held.id, Duration::from_secs(30)).await;

    v.delete_retention(&policy.id).await.unwrap();
    assert!(matches!(
        v.delete_retention(&policy.id).await,
        Err(VaultError::NotFound(_))
    ));
    let report = fsck_online(&v).await;
    assert!(report.clean, "{:?}", report.findings);
    v.shutdown().await.unwrap();
}

/// Erasure bookkeeping changed at rest: each change is an fsck finding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_erasures_are_fsck_findings() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let v = Vault::open(config(&data, Duration::ZERO)).await.unwrap();
    let erased = put(&v, b"{\"gone\":1}", &[("k", "1")]).await;
    let other = put(&v, b"{\"gone\":2}", &[("k", "2")]).await;
    let plain = put(&v, b"{\"kept\":3}", &[("k", "3")]).await;
    let e = v.erase("admin", &erased.id, "r").await.unwrap();
    v.erase("admin", &other.id, "r").await.unwrap();
    v.shutdown().await.unwrap();
    drop(v);
    let clean = fsck_data_dir(&data, &FsckOptions::default(), &|_, _| {}, &|| false).unwrap();
    assert!(clean.clean, "{:?}", clean.findings);

    let db = data.join("evault.db");
    let sql = |s: &str| {
        let c = evault_vault::SqliteStore::raw_connection(&db).unwrap();
        c.execute_batch(s).unwrap();
    };
    let findings = || {
        fsck_data_dir(&data, &FsckOptions::default(), &|_, _| {}, &|| false)
            .unwrap()
            .findings
    };
    // A payload cleared without a tombstone: found (no bytes anywhere).
    sql(&format!(
        "UPDATE records SET payload = NULL WHERE leaf_index = {}",
        plain.leaf_index
    ));
    let f = findings();
    assert!(
        f.iter()
            .any(|f| f.leaf_index == Some(plain.leaf_index) && !f.detail.is_empty()),
        "{f:?}"
    );
    // The erasure row deleted.
    sql(&format!(
        "DELETE FROM erasures WHERE leaf_index = {}",
        erased.leaf_index
    ));
    // The other record's tombstone pointer moved to a record that is not
    // its tombstone.
    sql(&format!(
        "UPDATE records SET erased_tombstone = {} WHERE leaf_index = {}",
        e[0].tombstone_leaf, other.leaf_index
    ));
    let f = findings();
    for leaf in [erased.leaf_index, other.leaf_index] {
        assert!(
            f.iter().any(|f| f.kind == evault_vault::FindingKind::Erasure
                && f.leaf_index == Some(leaf)),
            "leaf {leaf}: {f:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_with_an_erased_payload_waits_for_its_tombstone_and_is_not_imported() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The first growth is checkpointed at once, the next only after an
    // hour: the tombstone stays outside the latest checkpoint.
    let mut c = config(&data, Duration::ZERO);
    c.checkpoint_interval = Duration::from_secs(3600);
    let v = Vault::open(c).await.unwrap();
    let a = put(&v, INLINE_MARKER, &[("k", "a")]).await;
    v.evidence_log()
        .wait_for_checkpoint(1, Duration::from_secs(10))
        .await
        .unwrap();
    let erased = v.erase("admin", &a.id, "request").await.unwrap();
    assert_eq!(erased[0].tombstone_leaf, 1);
    let out = dir.path().join("early.evb");
    match export(&v, &out, true).await {
        Err(VaultError::Conflict(m)) => assert!(
            m.contains(&a.id) && m.contains("does not cover") && m.contains("retry shortly"),
            "{m}"
        ),
        other => panic!("an export before the tombstone's checkpoint: {other:?}"),
    }
    assert!(!out.exists());
    // Without payloads nothing waits: the record is under the checkpoint.
    export(&v, &out, false).await.unwrap();
    assert_eq!(verify_bundle(&out, &verifiers(&v)).records, 1);
    let key = v.evidence_log().verifier_key();
    v.shutdown().await.unwrap();
    drop(v);

    // Reopened with a short interval, the tombstone is checkpointed and
    // the export carries it.
    let v = Vault::open(config(&data, Duration::ZERO)).await.unwrap();
    v.evidence_log()
        .wait_for_checkpoint(2, Duration::from_secs(10))
        .await
        .unwrap();
    let out = dir.path().join("after.evb");
    export(&v, &out, true).await.unwrap();
    let r = verify_bundle(&out, &verifiers(&v));
    assert!(r.verified, "{:?}", r.failures);
    assert_eq!((r.records, r.payloads, r.erased), (2, 1, 1));
    assert_eq!(
        r.entries[0].erased_by.as_deref(),
        Some(erased[0].tombstone_id.as_str())
    );
    v.shutdown().await.unwrap();

    // Another vault refuses to mirror it, and stores nothing.
    let mut c = config(&dir.path().join("other"), Duration::ZERO);
    c.origin = Some("other.example/vault".into());
    let other = Vault::open(c).await.unwrap();
    let (o, path) = (other.clone(), out.clone());
    let e = tokio::task::spawn_blocking(move || {
        o.import_bundle("sa:admin", &path, &key, &|_, _| {}, &|| false)
    })
    .await
    .unwrap()
    .unwrap_err();
    assert!(
        matches!(&e, VaultError::Invalid(m) if m.contains("erased") && m.contains("not supported")),
        "{e}"
    );
    assert!(other.mirrored_logs(&admin()).await.unwrap().is_empty());
    other.shutdown().await.unwrap();
}
