//! `backfill_releases` over an inventory of 1,000 releases: the exact
//! status of every item (some already present, some with bad checksums,
//! some named by digest only), the records written and the tree's growth;
//! a re-run that changes nothing; a dry run that writes nothing; CSV and
//! JSON inventories giving the same report; paths that escape the backfill
//! directory refused; a bundle logged beside its artifact.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use evault_store::ListQuery;
use evault_vault::backfill::{
    BACKFILL_TYPE, DIGEST_LABEL, InventoryFormat, ItemStatus, Report, SIGSTORE_BUNDLE_TYPE,
    VERSION_LABEL,
};
use evault_vault::{PayloadData, PutRequest, Reader, TaskInfo, TaskState, Vault, VaultConfig};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

const ORIGIN: &str = "test.example/backfill";
const RELEASES: usize = 1000;
const BY: &str = "sa:release";

fn config(dir: &Path, files: &Path) -> VaultConfig {
    let mut c = VaultConfig::new(dir);
    c.state_dir = Some(dir.join("state"));
    c.origin = Some(ORIGIN.into());
    c.checkpoint_interval = Duration::from_millis(20);
    c.backfill_dir = Some(files.to_path_buf());
    c
}

fn hex(b: &[u8]) -> String {
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

/// What release `i` is in the generated inventory.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// Logged before the backfill by the task's principal itself.
    Present,
    /// Logged before the backfill only in ways that do not count: a
    /// backfill record by `sa:legacy` (not readable by the task's
    /// principal) and a `text/plain` record with the same labels by the
    /// task's principal. Backfilled.
    Foreign,
    /// The inventory's digest is not the file's.
    BadChecksum,
    /// Named by digest only: no file to hash.
    DigestOnly,
    /// A file and its right digest.
    Good,
}

fn kind(i: usize) -> Kind {
    match (i % 10, i % 20, i % 50) {
        (0, 0, _) => Kind::Foreign,
        (0, _, _) => Kind::Present,
        (_, 7, _) => Kind::BadChecksum,
        (_, _, 3) => Kind::DigestOnly,
        _ => Kind::Good,
    }
}

struct Release {
    version: String,
    date: String,
    path: Option<String>,
    /// As the inventory gives it.
    sha256: String,
    /// The artifact's real digest.
    real: String,
    notes: Option<String>,
}

/// 1,000 releases, one artifact each, their files under `files`.
fn releases(files: &Path) -> Vec<Release> {
    (0..RELEASES)
        .map(|i| {
            let version = format!("1.{}.{}", i / 100, i % 100);
            let rel = format!("v{version}/app-{i}.tar.gz");
            let body = format!("artifact of release {version}\n").repeat(1 + i % 7);
            let real = hex(&Sha256::digest(body.as_bytes()));
            let k = kind(i);
            let path = if k == Kind::DigestOnly {
                None
            } else {
                let p = files.join(&rel);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(&p, &body).unwrap();
                Some(rel)
            };
            let sha256 = if k == Kind::BadChecksum {
                hex(&Sha256::digest(format!("not {i}").as_bytes()))
            } else {
                real.clone()
            };
            Release {
                version,
                date: if i % 2 == 0 {
                    format!("20{:02}-{:02}-{:02}", 10 + i % 15, 1 + i % 12, 1 + i % 28)
                } else {
                    format!(
                        "2019-{:02}-{:02}T10:{:02}:00Z",
                        1 + i % 12,
                        1 + i % 28,
                        i % 60
                    )
                },
                path,
                sha256,
                real,
                notes: (i % 3 == 0).then(|| format!("release {i}, \"quoted\", with a comma")),
            }
        })
        .collect()
}

fn csv(rs: &[Release]) -> Vec<u8> {
    let mut s = String::from("version,release_date,artifact,sha256,bundle,notes\n");
    for r in rs {
        let notes = r
            .notes
            .as_ref()
            .map(|n| format!("\"{}\"", n.replace('"', "\"\"")))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "{},{},{},{},,{}",
            r.version,
            r.date,
            r.path.as_deref().unwrap_or(""),
            r.sha256,
            notes
        );
    }
    s.into_bytes()
}

fn json_inventory(rs: &[Release]) -> Vec<u8> {
    let v: Vec<Value> = rs
        .iter()
        .map(|r| {
            let mut artifact = json!({ "sha256": r.sha256 });
            if let Some(p) = &r.path {
                artifact["path"] = json!(p);
            }
            let mut release = json!({
                "version": r.version,
                "release_date": r.date,
                "artifacts": [artifact],
            });
            if let Some(n) = &r.notes {
                release["notes"] = json!(n);
            }
            release
        })
        .collect();
    serde_json::to_vec(&v).unwrap()
}

async fn put_labelled(
    v: &Vault,
    content_type: &str,
    principal: &str,
    version: &str,
    sha256: &str,
) -> String {
    let mut up = v.upload();
    up.write(format!("{{\"legacy\":\"{version}\"}}").as_bytes())
        .await
        .unwrap();
    v.put(PutRequest {
        content_type: content_type.into(),
        labels: BTreeMap::from([
            (VERSION_LABEL.to_string(), version.to_string()),
            (DIGEST_LABEL.to_string(), sha256.to_string()),
        ]),
        payload: up.finish().await.unwrap(),
        principal: principal.into(),
        idempotency_key: None,
        audit: None,
    })
    .await
    .unwrap()
    .record
    .id
}

/// Starts a backfill of `inventory` as `BY` (reading its own records, as
/// an ingester does).
async fn start_backfill(
    v: &Vault,
    inventory: &[u8],
    format: InventoryFormat,
    dry_run: bool,
) -> TaskInfo {
    let mut up = v.upload_task_input();
    up.write(inventory).await.unwrap();
    let input = up.finish().await.unwrap();
    v.create_task_with_input(
        &Reader::own(BY),
        "backfill_releases",
        json!({ "format": format.as_str(), "dry_run": dry_run }),
        input,
    )
    .await
    .unwrap()
}

/// Polls task `id` until `done` holds (a test fails, never hangs).
async fn wait_until(v: &Vault, id: &str, done: impl Fn(&TaskInfo) -> bool) -> TaskInfo {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let t = v.task(&Reader::own(BY), id).await.unwrap();
        if done(&t) {
            return t;
        }
        assert!(Instant::now() < deadline, "task never got there: {t:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Waits for task `id` to end; its report if it succeeded.
async fn finished(v: &Vault, id: &str) -> (TaskInfo, Option<Report>) {
    let info = wait_until(v, id, |t| t.state.is_final()).await;
    if info.state != TaskState::Succeeded {
        return (info, None);
    }
    let (_, mut f) = v.task_result(&Reader::own(BY), id).await.unwrap();
    let mut text = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut f, &mut text)
        .await
        .unwrap();
    let report: Report = serde_json::from_slice(&text).unwrap();
    (info, Some(report))
}

/// Runs a backfill to its end: the task, and its report if it succeeded.
async fn backfill(
    v: &Vault,
    inventory: &[u8],
    format: InventoryFormat,
    dry_run: bool,
) -> (TaskInfo, Option<Report>) {
    let task = start_backfill(v, inventory, format, dry_run).await;
    finished(v, &task.id).await
}

fn counts(report: &Report) -> BTreeMap<&str, u64> {
    report
        .counts
        .iter()
        .map(|(k, n)| (k.as_str(), *n))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// Files (not directories) under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

async fn records_of_type(v: &Vault, content_type: &str) -> Vec<evault_verify::Evidence> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = v
            .list(
                &Reader::all("auditor"),
                ListQuery {
                    content_type: Some(content_type.into()),
                    after_index: after,
                    limit: 1000,
                    ..ListQuery::default()
                },
            )
            .await
            .unwrap();
        out.extend(page.items);
        match page.next {
            Some(n) => after = Some(n),
            None => return out,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_releases_exact_statuses_rerun_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    let rs = releases(&files);
    let v = Vault::open(config(&dir.path().join("vault"), &files))
        .await
        .unwrap();

    // 50 already logged by the backfiller; 50 others logged by someone
    // else, and labelled alike in another content type, which do not count.
    let mut present: BTreeMap<usize, String> = BTreeMap::new();
    let mut foreign = Vec::new();
    for (i, r) in rs.iter().enumerate() {
        match kind(i) {
            Kind::Present => {
                let id = put_labelled(&v, BACKFILL_TYPE, BY, &r.version, &r.real).await;
                present.insert(i, id);
            }
            Kind::Foreign => {
                foreign
                    .push(put_labelled(&v, BACKFILL_TYPE, "sa:legacy", &r.version, &r.real).await);
                foreign.push(put_labelled(&v, "text/plain", BY, &r.version, &r.real).await);
            }
            _ => {}
        }
    }
    assert_eq!((present.len(), foreign.len()), (50, 100));
    let before = v.evidence_log().head().size;
    assert_eq!(before, 150);

    let (info, report) = backfill(&v, &csv(&rs), InventoryFormat::Csv, false).await;
    let report = report.unwrap_or_else(|| panic!("backfill failed: {info:?}"));
    assert!(!report.dry_run);
    assert_eq!(report.items.len(), RELEASES);
    assert_eq!((info.done, info.total), (1000, Some(1000)));
    assert_eq!(
        counts(&report),
        BTreeMap::from([("already-present", 50), ("backfilled", 900), ("error", 50)])
    );
    assert_eq!(info.summary.as_ref().unwrap()["counts"]["backfilled"], 900);

    // Every item, exactly.
    let mut written = BTreeMap::new();
    for (i, (r, item)) in rs.iter().zip(&report.items).enumerate() {
        assert_eq!(item.version, r.version, "item {i}");
        assert_eq!(item.artifact, r.path, "item {i}");
        match kind(i) {
            Kind::Present => {
                assert_eq!(
                    item.status,
                    ItemStatus::AlreadyPresent,
                    "item {i}: {item:?}"
                );
                assert_eq!(item.sha256.as_deref(), Some(r.real.as_str()));
                assert!(item.checksum_verified);
                assert_eq!(item.record_id.as_ref(), Some(&present[&i]), "item {i}");
                assert_eq!(item.verification_status, None);
            }
            Kind::BadChecksum => {
                assert_eq!(item.status, ItemStatus::Error, "item {i}: {item:?}");
                let reason = item.reason.as_deref().unwrap();
                assert_eq!(
                    reason,
                    format!(
                        "item {i}: checksum mismatch: the inventory says sha256 {}, the file {:?} hashes to {}",
                        r.sha256,
                        r.path.as_deref().unwrap(),
                        r.real
                    )
                );
                assert!(!item.checksum_verified);
                assert_eq!(item.record_id, None);
            }
            Kind::Foreign | Kind::DigestOnly | Kind::Good => {
                assert_eq!(item.status, ItemStatus::Backfilled, "item {i}: {item:?}");
                assert_eq!(item.sha256.as_deref(), Some(r.real.as_str()));
                assert_eq!(
                    item.checksum_verified,
                    kind(i) != Kind::DigestOnly,
                    "item {i}"
                );
                assert_eq!(item.verification_status.as_deref(), Some("backfilled"));
                assert_eq!(item.reason, None);
                let id = item.record_id.clone().unwrap();
                assert!(!foreign.contains(&id), "item {i}");
                written.insert(id, i);
            }
        }
    }
    assert_eq!(written.len(), 900);

    // The tree grew by exactly the records written, each one as documented.
    assert_eq!(v.evidence_log().head().size, before + 900);
    let all = records_of_type(&v, BACKFILL_TYPE).await;
    assert_eq!(all.len(), 1000);
    let records: Vec<_> = all
        .into_iter()
        .filter(|r| !present.values().any(|id| *id == r.id) && !foreign.contains(&r.id))
        .collect();
    assert_eq!(records.len(), 900);
    for rec in &records {
        let i = written[&rec.id];
        let r = &rs[i];
        assert_eq!(rec.ingested_by, BY);
        assert_eq!(
            rec.labels,
            BTreeMap::from([
                (DIGEST_LABEL.to_string(), r.real.clone()),
                (VERSION_LABEL.to_string(), r.version.clone()),
            ])
        );
        assert!(
            rec.idempotency_key
                .as_deref()
                .unwrap()
                .starts_with("evault-backfill-v1:")
        );
    }
    // One payload in full: canonical JSON (sorted members, no spaces).
    let sample = records.iter().find(|r| written[&r.id] == 3).unwrap();
    let (_, data) = v
        .payload(&Reader::all("auditor"), &sample.id)
        .await
        .unwrap();
    let PayloadData::Inline(bytes) = data else {
        panic!("a backfill record is inline")
    };
    let payload: Value = serde_json::from_slice(&bytes).unwrap();
    let backfill_date = payload["backfill_date"].as_str().unwrap().to_string();
    let expect = json!({
        "v": "evault/release-backfill/v1",
        "version": rs[3].version,
        "artifact": null,
        "sha256": rs[3].real,
        "original_release_date": rs[3].date,
        "backfill_date": backfill_date,
        "backfill_identity": BY,
        "verification_status": "backfilled",
        "checksum_verified": false,
        "notes": rs[3].notes,
    });
    assert_eq!(payload, expect);
    assert_eq!(bytes, serde_jcs::to_vec(&expect).unwrap());
    assert!(backfill_date.starts_with("20") && backfill_date.ends_with('Z'));

    // A re-run (JSON this time) changes nothing: the same errors, every
    // other item present, the tree as it was.
    let size = v.evidence_log().head().size;
    let (info2, again) = backfill(&v, &json_inventory(&rs), InventoryFormat::Json, false).await;
    let again = again.unwrap_or_else(|| panic!("re-run failed: {info2:?}"));
    assert_eq!(
        counts(&again),
        BTreeMap::from([("already-present", 950), ("error", 50)])
    );
    for (i, (first, second)) in report.items.iter().zip(&again.items).enumerate() {
        match first.status {
            ItemStatus::Error => assert_eq!(first, second, "item {i}"),
            ItemStatus::Backfilled => {
                assert_eq!(second.status, ItemStatus::AlreadyPresent, "item {i}");
                assert_eq!(second.record_id, first.record_id, "item {i}");
            }
            _ => assert_eq!(first, second, "item {i}"),
        }
    }
    assert_eq!(v.evidence_log().head().size, size);
    assert_eq!(records_of_type(&v, BACKFILL_TYPE).await.len(), 1000);
    v.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_writes_nothing_and_csv_equals_json() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    let rs = releases(&files);
    let data = dir.path().join("vault");
    let v = Vault::open(config(&data, &files)).await.unwrap();

    let (info, from_csv) = backfill(&v, &csv(&rs), InventoryFormat::Csv, true).await;
    let from_csv = from_csv.unwrap_or_else(|| panic!("dry run failed: {info:?}"));
    let (_, from_json) = backfill(&v, &json_inventory(&rs), InventoryFormat::Json, true).await;
    assert_eq!(from_csv, from_json.unwrap());
    assert!(from_csv.dry_run);
    assert_eq!(
        counts(&from_csv),
        BTreeMap::from([("dry-run", 950), ("error", 50)])
    );
    for (i, item) in from_csv.items.iter().enumerate() {
        let want = if kind(i) == Kind::BadChecksum {
            ItemStatus::Error
        } else {
            ItemStatus::DryRun
        };
        assert_eq!(item.status, want, "item {i}");
        assert_eq!(item.record_id, None);
    }

    // Nothing in the log, no blob.
    assert_eq!(v.evidence_log().head().size, 0);
    assert!(records_of_type(&v, BACKFILL_TYPE).await.is_empty());
    assert_eq!(files_under(&data.join("blobs")), Vec::<PathBuf>::new());
    v.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_stay_under_the_backfill_directory() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    std::fs::create_dir_all(files.join("sub")).unwrap();
    std::fs::write(files.join("sub/in.bin"), b"inside").unwrap();
    std::fs::write(dir.path().join("secret.bin"), b"outside").unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret.bin"), files.join("sub/link.bin")).unwrap();
    std::os::unix::fs::symlink(dir.path(), files.join("up")).unwrap();
    let v = Vault::open(config(&dir.path().join("vault"), &files))
        .await
        .unwrap();

    // `..` and absolute paths: the inventory itself is refused, naming
    // the line.
    for bad in ["../secret.bin", "sub/../../secret.bin", "/etc/passwd"] {
        let text =
            format!("version,release_date,artifact,sha256,bundle,notes\n1,2024-01-01,{bad},,,\n");
        let e = evault_vault::backfill::parse_inventory(text.as_bytes(), InventoryFormat::Csv)
            .unwrap_err();
        assert!(e.starts_with("CSV line 2: artifact path"), "{bad}: {e}");
        let (info, report) = backfill(&v, text.as_bytes(), InventoryFormat::Csv, false).await;
        assert_eq!(info.state, TaskState::Failed, "{bad}");
        assert!(report.is_none());
        assert!(info.error.unwrap().starts_with("CSV line 2:"));
    }

    // Symbolic links out of the directory: that item is an error; a file
    // inside is read.
    let text = "version,release_date,artifact,sha256,bundle,notes\n\
                1,2024-01-01,sub/link.bin,,,\n\
                2,2024-01-01,up/secret.bin,,,\n\
                3,2024-01-01,sub/in.bin,,,\n\
                4,2024-01-01,missing.bin,,,\n";
    let (info, report) = backfill(&v, text.as_bytes(), InventoryFormat::Csv, false).await;
    let report = report.unwrap_or_else(|| panic!("{info:?}"));
    let statuses: Vec<_> = report.items.iter().map(|i| i.status).collect();
    assert_eq!(
        statuses,
        [
            ItemStatus::Error,
            ItemStatus::Error,
            ItemStatus::Backfilled,
            ItemStatus::Error
        ]
    );
    for i in [0, 1] {
        let reason = report.items[i].reason.as_deref().unwrap();
        assert!(
            reason.ends_with("resolves outside the backfill directory"),
            "{reason}"
        );
        assert_eq!(report.items[i].sha256, None);
    }
    assert!(
        report.items[3]
            .reason
            .as_deref()
            .unwrap()
            .contains("cannot be opened")
    );
    assert_eq!(
        report.items[2].sha256.as_deref(),
        Some(hex(&Sha256::digest(b"inside")).as_str())
    );
    assert_eq!(v.evidence_log().head().size, 1);
    v.shutdown().await.unwrap();

    // Without a backfill directory, paths are refused and digests are
    // fine.
    let mut c = config(&dir.path().join("vault2"), &files);
    c.backfill_dir = None;
    let v = Vault::open(c).await.unwrap();
    let digest = hex(&Sha256::digest(b"inside"));
    let text = format!(
        "version,release_date,artifact,sha256,bundle,notes\n\
         1,2024-01-01,sub/in.bin,,,\n\
         2,2024-01-01,,{digest},,\n"
    );
    let (_, report) = backfill(&v, text.as_bytes(), InventoryFormat::Csv, false).await;
    let report = report.unwrap();
    assert_eq!(report.items[0].status, ItemStatus::Error);
    assert!(
        report.items[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("backfill_dir")
    );
    assert_eq!(report.items[1].status, ItemStatus::Backfilled);
    assert!(!report.items[1].checksum_verified);
    v.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_is_logged_beside_its_artifact() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("a.txt"), b"artifact a\n").unwrap();
    // Not a bundle that verifies (whether or not the vault verifies
    // Sigstore bundles on ingest): its verification is `unknown`.
    std::fs::write(
        files.join("a.txt.sigstore.json"),
        br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}"#,
    )
    .unwrap();
    let v = Vault::open(config(&dir.path().join("vault"), &files))
        .await
        .unwrap();
    let text = "version,release_date,artifact,sha256,bundle,notes\n\
                9.9.9,2024-01-01,a.txt,,a.txt.sigstore.json,\n";
    let (info, report) = backfill(&v, text.as_bytes(), InventoryFormat::Csv, false).await;
    let report = report.unwrap_or_else(|| panic!("{info:?}"));
    let item = &report.items[0];
    let digest = hex(&Sha256::digest(b"artifact a\n"));
    match item.status {
        ItemStatus::Backfilled => {
            assert_eq!(item.verification_status.as_deref(), Some("unknown"));
            let bundles = records_of_type(&v, SIGSTORE_BUNDLE_TYPE).await;
            assert_eq!(bundles.len(), 1);
            assert_eq!(bundles[0].labels[VERSION_LABEL], "9.9.9");
            assert_eq!(bundles[0].labels[DIGEST_LABEL], digest);
            assert_eq!(v.evidence_log().head().size, 2);
        }
        // A Sigstore policy may refuse an unverified bundle: then nothing
        // of the item is logged.
        _ => {
            assert_eq!(item.status, ItemStatus::Error, "{item:?}");
            assert!(
                item.reason
                    .as_deref()
                    .unwrap()
                    .contains("Sigstore bundle was refused")
            );
            assert!(records_of_type(&v, BACKFILL_TYPE).await.is_empty());
        }
    }
    // The bundle record does not count as the artifact's backfill record;
    // the re-run finds the backfill record itself.
    let (_, again) = backfill(&v, text.as_bytes(), InventoryFormat::Csv, false).await;
    let again = again.unwrap();
    if item.status == ItemStatus::Backfilled {
        assert_eq!(again.items[0].status, ItemStatus::AlreadyPresent);
        assert_eq!(again.items[0].record_id, item.record_id);
        assert_eq!(v.evidence_log().head().size, 2);
    }
    v.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_the_backfill_where_it_stopped() {
    const N: usize = 6000;
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    let mut inventory = String::from("version,release_date,artifact,sha256,bundle,notes\n");
    for i in 0..N {
        std::fs::write(files.join(format!("r{i}.bin")), format!("release {i}")).unwrap();
        let _ = writeln!(inventory, "{i}.0,2020-01-01,r{i}.bin,,,");
    }
    let data = dir.path().join("vault");
    let v = Vault::open(config(&data, &files)).await.unwrap();
    let task = start_backfill(&v, inventory.as_bytes(), InventoryFormat::Csv, false).await;
    // Stopped part way: after its first chunks, long before its end.
    let seen = wait_until(&v, &task.id, |t| t.done >= 128 || t.state.is_final()).await;
    v.shutdown().await.unwrap();
    drop(v);
    assert_eq!(seen.state, TaskState::Running, "{seen:?}");

    let v = Vault::open(config(&data, &files)).await.unwrap();
    let (info, report) = finished(&v, &task.id).await;
    let report = report.unwrap_or_else(|| panic!("not resumed: {info:?}"));
    // Every item written exactly once, by this task: the ones before the
    // restart kept in its journal, the rest after it.
    assert_eq!(counts(&report), BTreeMap::from([("backfilled", N as u64)]));
    assert_eq!(v.evidence_log().head().size, N as u64);
    assert_eq!(records_of_type(&v, BACKFILL_TYPE).await.len(), N);
    let events = v
        .audit_list(
            &Reader::all("auditor"),
            evault_store::AuditQuery {
                limit: 1000,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let reasons: Vec<_> = events
        .items
        .iter()
        .filter(|e| e.request_id == task.id)
        .map(|e| (e.operation.as_str(), e.reason.as_deref()))
        .collect();
    assert!(
        reasons.contains(&("task.pending", Some("resuming after a restart"))),
        "{reasons:?}"
    );
    v.shutdown().await.unwrap();
}

fn sigstore_testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/sigstore")
}

/// A bundle that verifies makes the artifact's record `original`; one
/// that does not (a corrupted proof, or a bundle of another artifact),
/// `unknown`. The bundles are logged as their own records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_bundle_makes_the_record_original() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    let data = sigstore_testdata();
    let read = |p: &str| {
        std::fs::read(data.join(p))
            .unwrap_or_else(|e| panic!("{p}: testdata missing ({e}); see testdata/README.md"))
    };
    std::fs::write(files.join("a.txt"), read("a.txt")).unwrap();
    std::fs::write(
        files.join("good.json"),
        read("happy-path-v0.3/bundle.sigstore.json"),
    )
    .unwrap();
    std::fs::write(
        files.join("bad.json"),
        read("invalid-inclusion-proof_fail/bundle.sigstore.json"),
    )
    .unwrap();
    std::fs::write(files.join("other.txt"), b"another artifact").unwrap();
    let mut c = config(&dir.path().join("vault"), &files);
    c.sigstore = evault_vault::sigstore::SigstoreConfig {
        trusted_roots: evault_vault::sigstore::TrustRoots::load(&[data.join("trusted_root.json")])
            .unwrap(),
        policies: Vec::new(),
    };
    let v = Vault::open(c).await.unwrap();
    let text = "version,release_date,artifact,sha256,bundle,notes\n\
                1.0,2024-01-01,a.txt,,good.json,\n\
                1.1,2024-01-01,a.txt,,bad.json,\n\
                1.2,2024-01-01,other.txt,,good.json,\n";
    let (info, report) = backfill(&v, text.as_bytes(), InventoryFormat::Csv, false).await;
    let report = report.unwrap_or_else(|| panic!("{info:?}"));
    let got: Vec<_> = report
        .items
        .iter()
        .map(|i| (i.status, i.verification_status.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            (ItemStatus::Backfilled, Some("original")),
            (ItemStatus::Backfilled, Some("unknown")),
            (ItemStatus::Backfilled, Some("unknown")),
        ],
        "{report:?}"
    );
    // Each logged with its own mediaType.
    let bundles: Vec<_> = v
        .list(
            &Reader::all("auditor"),
            ListQuery {
                limit: 1000,
                ..ListQuery::default()
            },
        )
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|r| r.content_type != BACKFILL_TYPE)
        .collect();
    // Written concurrently: by version, not in leaf order.
    let by_version: BTreeMap<_, _> = bundles
        .iter()
        .map(|b| {
            (
                b.labels[VERSION_LABEL].as_str(),
                (
                    b.labels["evault.sigstore.status"].as_str(),
                    b.content_type.as_str(),
                ),
            )
        })
        .collect();
    let v3 = "application/vnd.dev.sigstore.bundle+json;version=0.3";
    let v2 = "application/vnd.dev.sigstore.bundle+json;version=0.2";
    assert_eq!(
        by_version,
        BTreeMap::from([
            ("1.0", ("verified", v3)),
            ("1.1", ("failed", v2)),
            ("1.2", ("failed", v3)),
        ])
    );
    assert_eq!(v.evidence_log().head().size, 6);
    v.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_of_a_failed_item_is_processed_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("a.bin"), b"artifact").unwrap();
    let digest = hex(&Sha256::digest(b"artifact"));
    let v = Vault::open(config(&dir.path().join("vault"), &files))
        .await
        .unwrap();
    // The first fails (its bundle is missing), the second is the same
    // version and digest: logged; the third is then a duplicate.
    let text = format!(
        "version,release_date,artifact,sha256,bundle,notes\n\
         2.0.0,2024-01-01,a.bin,,missing.json,\n\
         2.0.0,2024-01-01,a.bin,{digest},,\n\
         2.0.0,2024-01-01,,{digest},,\n"
    );
    for dry_run in [true, false] {
        let (info, report) = backfill(&v, text.as_bytes(), InventoryFormat::Csv, dry_run).await;
        let report = report.unwrap_or_else(|| panic!("{info:?}"));
        let statuses: Vec<_> = report.items.iter().map(|i| i.status).collect();
        let second = if dry_run {
            ItemStatus::DryRun
        } else {
            ItemStatus::Backfilled
        };
        assert_eq!(
            statuses,
            [ItemStatus::Error, second, ItemStatus::AlreadyPresent],
            "dry run {dry_run}"
        );
        assert!(
            report.items[0]
                .reason
                .as_deref()
                .unwrap()
                .starts_with("item 0: bundle \"missing.json\""),
            "{:?}",
            report.items[0].reason
        );
        assert_eq!(
            report.items[2].reason.as_deref(),
            Some("listed earlier in the inventory")
        );
        assert_eq!(report.items[2].record_id, None);
    }
    assert_eq!(records_of_type(&v, BACKFILL_TYPE).await.len(), 1);
    v.shutdown().await.unwrap();
}
