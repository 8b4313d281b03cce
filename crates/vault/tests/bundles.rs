//! Exporting evidence bundles from a real vault: 10,000 records with
//! progress, verified offline by the verify crate alone; a cancelled or
//! failed export leaves no file; a reader with `Own` scope exports only
//! its own records; payloads (inline and blobs) travel and verify.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use evault_note::{Ed25519Verifier, Verifiers};
use evault_vault::{
    BundleSelection, BundleSummary, PutRequest, Reader, Vault, VaultConfig, VaultError,
};
use evault_verify::evb::{self, NoPayloadSink, ReadLimits};

#[macro_use]
mod drivers;

const ORIGIN: &str = "test.example/vault";

fn config(dir: &Path) -> VaultConfig {
    let mut c = VaultConfig::new(dir);
    c.store = drivers::store();
    c.state_dir = Some(dir.join("state"));
    c.origin = Some(ORIGIN.into());
    c.checkpoint_interval = Duration::from_millis(20);
    c.inline_max = 1024;
    c
}

async fn put(v: &Vault, body: Vec<u8>, labels: &[(&str, &str)], principal: &str) -> u64 {
    let mut up = v.upload();
    up.write(&body).await.unwrap();
    let payload = up.finish().await.unwrap();
    v.put(PutRequest {
        content_type: "application/json".into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        payload,
        principal: principal.into(),
        idempotency_key: None,
        audit: None,
    })
    .await
    .unwrap()
    .record
    .leaf_index
}

fn verifiers(v: &Vault) -> Verifiers {
    let key = Ed25519Verifier::from_verifier_key(&v.evidence_log().verifier_key()).unwrap();
    Verifiers::new().with(key).unwrap()
}

/// Runs an export on a blocking thread, as a task runner would.
async fn export(
    v: &Vault,
    reader: Reader,
    selection: BundleSelection,
    out: PathBuf,
    progress: Arc<dyn Fn(u64, u64) + Send + Sync>,
    cancelled: Arc<dyn Fn() -> bool + Send + Sync>,
) -> Result<BundleSummary, VaultError> {
    let v = v.clone();
    tokio::task::spawn_blocking(move || {
        v.export_bundle(&reader, &selection, &out, &*progress, &*cancelled)
    })
    .await
    .unwrap()
}

/// Reads and verifies a bundle file with nothing but the verify crate.
fn verify_file(path: &Path, verifiers: &Verifiers) -> evb::BundleReport {
    let file = std::fs::File::open(path).unwrap();
    let bundle = evb::read_bundle(file, &ReadLimits::default(), &mut NoPayloadSink).unwrap();
    evb::verify_bundle(&bundle, verifiers, Some(ORIGIN), None)
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

on_every_store! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ten_thousand_records_export_verify_and_cancel() {
        let dir = tempfile::tempdir().unwrap();
        let v = Vault::open(config(&dir.path().join("data"))).await.unwrap();
        const N: u64 = 10_000;
        for chunk in 0..N / 500 {
            let mut tasks = Vec::new();
            for i in chunk * 500..(chunk + 1) * 500 {
                let v = v.clone();
                tasks.push(tokio::spawn(async move {
                    let n = (i % 3).to_string();
                    put(
                        &v,
                        format!("{{\"i\":{i}}}").into_bytes(),
                        &[("n", &n)],
                        "sa:ci",
                    )
                    .await
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        }
        v.evidence_log()
            .wait_for_checkpoint(N, Duration::from_secs(30))
            .await
            .unwrap();
        let out_dir = dir.path().join("exports");
        std::fs::create_dir(&out_dir).unwrap();

        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let summary = export(
            &v,
            Reader::all("auditor"),
            BundleSelection::default(),
            out_dir.join("all.evb"),
            Arc::new(move |done, total| s.lock().unwrap().push((done, total))),
            Arc::new(|| false),
        )
        .await
        .unwrap();
        assert_eq!(summary.records, N);
        assert!(summary.tree_size >= N);
        assert_eq!(summary.payloads, 0);
        assert_eq!(
            summary.bytes,
            std::fs::metadata(out_dir.join("all.evb")).unwrap().len()
        );
        let seen = seen.lock().unwrap().clone();
        assert!(seen.len() >= 100, "progress reported {} times", seen.len());
        assert!(seen.iter().all(|&(_, t)| t == N));
        assert!(
            seen.windows(2).all(|w| w[0].0 <= w[1].0),
            "progress only grows"
        );
        assert_eq!(seen.last(), Some(&(N, N)));
        assert!(
            seen.iter().any(|&(d, _)| d > 0 && d < N),
            "intermediate progress"
        );

        let report = verify_file(&out_dir.join("all.evb"), &verifiers(&v));
        assert!(report.verified, "{:#?}", report.failures);
        assert_eq!(report.entries.len() as u64, N);
        assert!(report.entries.iter().all(|e| e.ok));
        assert_eq!(names(&out_dir), ["all.evb"]);

        // Cancelled mid-export (once a third is proven): an error, no file,
        // no temporary left behind.
        let stop = Arc::new(AtomicBool::new(false));
        let (s1, s2) = (stop.clone(), stop.clone());
        let last = Arc::new(Mutex::new(0));
        let l = last.clone();
        let err = export(
            &v,
            Reader::all("auditor"),
            BundleSelection::default(),
            out_dir.join("cancelled.evb"),
            Arc::new(move |done, _| {
                *l.lock().unwrap() = done;
                if done >= N / 3 {
                    s1.store(true, Ordering::SeqCst);
                }
            }),
            Arc::new(move || s2.load(Ordering::SeqCst)),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, VaultError::Cancelled), "{err}");
        let stopped_at = *last.lock().unwrap();
        assert!(
            (N / 3..N / 3 + 200).contains(&stopped_at),
            "stopped within a few hundred records, at {stopped_at}"
        );
        assert_eq!(names(&out_dir), ["all.evb"]);

        // Cancelled before it starts, over an existing file: left as it was.
        let before = std::fs::read(out_dir.join("all.evb")).unwrap();
        let err = export(
            &v,
            Reader::all("auditor"),
            BundleSelection::default(),
            out_dir.join("all.evb"),
            Arc::new(|_, _| {}),
            Arc::new(|| true),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, VaultError::Cancelled));
        assert_eq!(std::fs::read(out_dir.join("all.evb")).unwrap(), before);
        assert_eq!(names(&out_dir), ["all.evb"]);

        // The same selection again gives the same bytes (nothing new was
        // checkpointed since).
        let again = export(
            &v,
            Reader::all("auditor"),
            BundleSelection::default(),
            out_dir.join("again.evb"),
            Arc::new(|_, _| {}),
            Arc::new(|| false),
        )
        .await
        .unwrap();
        assert_eq!(again.manifest_sha256, summary.manifest_sha256);
        assert_eq!(std::fs::read(out_dir.join("again.evb")).unwrap(), before);
    }
}

on_every_store! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn own_scope_selection_and_payloads() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let v = Vault::open(config(&data)).await.unwrap();
        let mut mine = Vec::new();
        for i in 0..40u64 {
            let who = if i.is_multiple_of(4) { "sa:a" } else { "sa:b" };
            // Every fifth payload is above inline_max: a blob file.
            let size = if i.is_multiple_of(5) { 4000 } else { 20 };
            let body = format!("{i:0size$}").into_bytes();
            let team = if i.is_multiple_of(2) { "red" } else { "blue" };
            let leaf = put(&v, body, &[("team", team)], who).await;
            if who == "sa:a" {
                mine.push(leaf);
            }
        }
        v.evidence_log()
            .wait_for_checkpoint(40, Duration::from_secs(10))
            .await
            .unwrap();
        let keys = verifiers(&v);
        let none = || -> Arc<dyn Fn(u64, u64) + Send + Sync> { Arc::new(|_, _| {}) };
        let never = || -> Arc<dyn Fn() -> bool + Send + Sync> { Arc::new(|| false) };

        // An ingester that may read only its own records exports only those.
        let sel = BundleSelection {
            payloads: true,
            ..BundleSelection::default()
        };
        let out = dir.path().join("own.evb");
        let s = export(&v, Reader::own("sa:a"), sel, out.clone(), none(), never())
            .await
            .unwrap();
        assert_eq!(s.records, mine.len() as u64);
        let report = verify_file(&out, &keys);
        assert!(report.verified, "{:#?}", report.failures);
        let leaves: Vec<u64> = report
            .entries
            .iter()
            .map(|e| e.leaf_index.unwrap())
            .collect();
        assert_eq!(leaves, mine);
        let bundle = evb::read_bundle(
            std::fs::File::open(&out).unwrap(),
            &ReadLimits::default(),
            &mut NoPayloadSink,
        )
        .unwrap();
        assert_eq!(
            bundle.manifest.selection.ingested_by.as_deref(),
            Some("sa:a")
        );
        assert_eq!(bundle.payloads.len(), mine.len());
        assert!(
            bundle.payloads.iter().any(|p| p.size == 4000),
            "a blob travelled"
        );

        // Labels, a leaf range and a time window, for everyone.
        let sel = BundleSelection {
            leaf_from: Some(10),
            leaf_to: Some(30),
            labels: BTreeMap::from([("team".to_string(), "red".to_string())]),
            since_ms: Some(0),
            until_ms: Some(253_402_300_799_999),
            payloads: false,
            ..BundleSelection::default()
        };
        let out = dir.path().join("red.evb");
        export(
            &v,
            Reader::all("auditor"),
            sel,
            out.clone(),
            none(),
            never(),
        )
        .await
        .unwrap();
        let report = verify_file(&out, &keys);
        assert!(report.verified, "{:#?}", report.failures);
        let leaves: Vec<u64> = report
            .entries
            .iter()
            .map(|e| e.leaf_index.unwrap())
            .collect();
        assert_eq!(leaves, (10..30).step_by(2).collect::<Vec<_>>());

        // A bad selection is refused before anything is written.
        let bad = BundleSelection {
            leaf_from: Some(9),
            leaf_to: Some(3),
            ..BundleSelection::default()
        };
        let err = export(
            &v,
            Reader::all("x"),
            bad,
            dir.path().join("bad.evb"),
            none(),
            never(),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, VaultError::Invalid(_)), "{err}");
        assert!(!dir.path().join("bad.evb").exists());

        // A blob changed at rest: the export fails as an integrity failure and
        // leaves no file.
        let blob = std::fs::read_dir(data.join("blobs"))
            .unwrap()
            .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
            .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
            .map(|f| f.unwrap().path())
            .find(|p| p.is_file())
            .expect("a blob");
        let mut bytes = std::fs::read(&blob).unwrap();
        bytes[0] ^= 1;
        std::fs::write(&blob, bytes).unwrap();
        let sel = BundleSelection {
            payloads: true,
            ..BundleSelection::default()
        };
        let err = export(
            &v,
            Reader::all("x"),
            sel,
            dir.path().join("t.evb"),
            none(),
            never(),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(
                err,
                VaultError::Corrupt {
                    what: "payload",
                    ..
                }
            ),
            "{err}"
        );
        assert!(!dir.path().join("t.evb").exists());
        let leftovers: Vec<_> = names(dir.path())
            .into_iter()
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}
