//! Importing evidence bundles of another vault: a verified mirror that
//! keeps the records' origin, leaf indexes and checkpoint (each record
//! proven again offline with the other log's key alone), never a leaf of
//! this vault's own log; refused whole when it does not verify, is this
//! vault's own, or is a fork of what the mirror holds; read only with a
//! scope over everything; and as the `import_bundle` task with its input.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use evault_note::{Ed25519Verifier, Verifiers};
use evault_vault::{
    BundleSelection, PutRequest, Reader, TaskState, Vault, VaultConfig, VaultError,
};

fn config(dir: &Path, origin: &str) -> VaultConfig {
    let mut c = VaultConfig::new(dir);
    c.state_dir = Some(dir.join("state"));
    c.origin = Some(origin.into());
    c.checkpoint_interval = Duration::from_millis(20);
    c.inline_max = 64;
    c
}

async fn put(v: &Vault, body: &[u8], team: &str) {
    let mut up = v.upload();
    up.write(body).await.unwrap();
    let payload = up.finish().await.unwrap();
    v.put(PutRequest {
        content_type: "application/json".into(),
        labels: [("team".to_string(), team.to_string())].into(),
        payload,
        principal: "sa:ci".into(),
        idempotency_key: None,
        audit: None,
    })
    .await
    .unwrap();
}

/// A vault at `dir` holding `n` records (`prefix` makes them its own),
/// checkpointed.
async fn filled(dir: &Path, origin: &str, n: u64, prefix: &str) -> Vault {
    let v = Vault::open(config(dir, origin)).await.unwrap();
    for i in 0..n {
        // Some payloads above `inline_max`: blobs travel too.
        let body = format!(
            "{{\"{prefix}\":{i},\"pad\":\"{}\"}}",
            "x".repeat(i as usize * 7)
        );
        put(&v, body.as_bytes(), if i % 2 == 0 { "a" } else { "b" }).await;
    }
    v.evidence_log()
        .wait_for_checkpoint(n, Duration::from_secs(30))
        .await
        .unwrap();
    v
}

async fn export(v: &Vault, out: PathBuf, selection: BundleSelection) {
    let v = v.clone();
    tokio::task::spawn_blocking(move || {
        v.export_bundle(
            &Reader::all("auditor"),
            &selection,
            &out,
            &|_, _| {},
            &|| false,
        )
    })
    .await
    .unwrap()
    .unwrap();
}

async fn import(
    v: &Vault,
    bundle: &Path,
    key: &str,
) -> Result<evault_vault::ImportSummary, VaultError> {
    let (v, bundle, key) = (v.clone(), bundle.to_path_buf(), key.to_string());
    tokio::task::spawn_blocking(move || {
        v.import_bundle("sa:admin", &bundle, &key, &|_, _| {}, &|| false)
    })
    .await
    .unwrap()
}

fn with_payloads() -> BundleSelection {
    BundleSelection {
        payloads: true,
        ..BundleSelection::default()
    }
}

const A: &str = "a.example/vault";
const B: &str = "b.example/vault";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_mirror_keeps_origin_indexes_and_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let a = filled(&dir.path().join("a"), A, 40, "a").await;
    let a_key = a.evidence_log().verifier_key();
    let bundle = dir.path().join("a.evb");
    export(&a, bundle.clone(), with_payloads()).await;
    let b = Vault::open(config(&dir.path().join("b"), B)).await.unwrap();

    let s = import(&b, &bundle, &a_key).await.unwrap();
    assert_eq!((s.origin.as_str(), s.tree_size, s.records), (A, 40, 40));
    assert_eq!(
        (s.records_new, s.payloads_new, s.checkpoint_new),
        (40, 40, true)
    );
    // Never a leaf of B's own log.
    assert_eq!(b.evidence_log().head().size, 0);

    let all = Reader::all("auditor");
    let logs = b.mirrored_logs(&all).await.unwrap();
    assert_eq!(logs.len(), 1);
    assert_eq!((logs[0].origin.as_str(), logs[0].records), (A, 40));
    assert_eq!(logs[0].latest.tree_size, 40);
    assert_eq!(logs[0].latest.imported_by, "sa:admin");
    let page = b.mirrored_records(&all, A, Some(9), 5).await.unwrap();
    assert_eq!(
        page.iter().map(|r| r.leaf_index).collect::<Vec<_>>(),
        [10, 11, 12, 13, 14]
    );
    for i in [10, 11, 12, 13, 14] {
        let original = a.get(&all, &page[(i - 10) as usize].id).await.unwrap();
        assert_eq!(
            page[(i - 10) as usize],
            original,
            "the record as A logged it"
        );
    }

    // Each record proven again, offline, with A's key alone.
    let verifiers = Verifiers::new()
        .with(Ed25519Verifier::from_verifier_key(&a_key).unwrap())
        .unwrap();
    for i in [0, 17, 39] {
        let proof = b.mirrored_proof(&all, A, i).await.unwrap();
        let v = proof.verify(&verifiers, Some(A)).unwrap();
        assert_eq!((v.origin.as_str(), v.tree_size, v.leaf_index), (A, 40, i));
        let (record, data) = b.mirrored_payload(&all, A, i).await.unwrap();
        assert_eq!(record, proof.record);
        let body = format!("{{\"a\":{i},\"pad\":\"{}\"}}", "x".repeat(i as usize * 7));
        assert_eq!(data, body.as_bytes());
    }
    // B's own key does not verify them: they are A's.
    let b_verifiers = Verifiers::new()
        .with(Ed25519Verifier::from_verifier_key(&b.evidence_log().verifier_key()).unwrap())
        .unwrap();
    assert!(
        b.mirrored_proof(&all, A, 0)
            .await
            .unwrap()
            .verify(&b_verifiers, None)
            .is_err()
    );

    // Unknown records and logs.
    assert!(matches!(
        b.mirrored_proof(&all, A, 40).await,
        Err(VaultError::NotFound(_))
    ));
    assert!(
        b.mirrored_records(&all, "nobody", None, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // A reader with its own scope sees no mirror.
    let own = Reader::own("sa:ci");
    assert!(b.mirrored_logs(&own).await.unwrap().is_empty());
    assert!(matches!(
        b.mirrored_records(&own, A, None, 10).await,
        Err(VaultError::Hidden { .. })
    ));
    assert!(matches!(
        b.mirrored_proof(&own, A, 0).await,
        Err(VaultError::Hidden { .. })
    ));
    assert!(matches!(
        b.mirrored_payload(&own, A, 0).await,
        Err(VaultError::Hidden { .. })
    ));

    // A grows; a newer bundle adds only what is new.
    for i in 40..50 {
        put(&a, format!("{{\"a\":{i}}}").as_bytes(), "a").await;
    }
    a.evidence_log()
        .wait_for_checkpoint(50, Duration::from_secs(30))
        .await
        .unwrap();
    let newer = dir.path().join("a2.evb");
    export(&a, newer.clone(), BundleSelection::default()).await;
    let s = import(&b, &newer, &a_key).await.unwrap();
    assert_eq!(
        (s.tree_size, s.records, s.records_new, s.payloads_new),
        (50, 50, 10, 0)
    );
    let logs = b.mirrored_logs(&all).await.unwrap();
    assert_eq!(
        (
            logs[0].records,
            logs[0].checkpoints,
            logs[0].latest.tree_size
        ),
        (50, 2, 50)
    );
    // Without payloads in the bundle, a new record has none here.
    assert!(matches!(
        b.mirrored_payload(&all, A, 45).await,
        Err(VaultError::NotFound(m)) if m.contains("carried no payloads")
    ));
    // The same bundle again: nothing new.
    let s = import(&b, &newer, &a_key).await.unwrap();
    assert_eq!((s.records_new, s.checkpoint_new), (0, false));
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_imports_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let a = filled(&dir.path().join("a"), A, 12, "a").await;
    let a_key = a.evidence_log().verifier_key();
    let bundle = dir.path().join("a.evb");
    export(&a, bundle.clone(), with_payloads()).await;
    let b = filled(&dir.path().join("b"), B, 3, "b").await;
    let b_key = b.evidence_log().verifier_key();
    let all = Reader::all("auditor");
    let nothing = |b: &Vault| {
        let b = b.clone();
        async move {
            b.mirrored_logs(&Reader::all("auditor"))
                .await
                .unwrap()
                .is_empty()
        }
    };

    // The wrong key: does not verify.
    let e = import(&b, &bundle, &b_key).await.unwrap_err();
    assert!(
        matches!(&e, VaultError::Invalid(m) if m.contains("does not verify") && m.contains("not signed by")),
        "{e}"
    );
    // Not a key at all.
    let e = import(&b, &bundle, "not a key").await.unwrap_err();
    assert!(
        matches!(&e, VaultError::Invalid(m) if m.contains("log key")),
        "{e}"
    );
    // A damaged file.
    let mut bytes = std::fs::read(&bundle).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    let damaged = dir.path().join("damaged.evb");
    std::fs::write(&damaged, &bytes).unwrap();
    let e = import(&b, &damaged, &a_key).await.unwrap_err();
    assert!(matches!(&e, VaultError::Invalid(_)), "{e}");
    // B's own bundle.
    let own = dir.path().join("b.evb");
    export(&b, own.clone(), BundleSelection::default()).await;
    let e = import(&b, &own, &b_key).await.unwrap_err();
    assert!(
        matches!(&e, VaultError::Invalid(m) if m.contains("own log")),
        "{e}"
    );
    assert!(nothing(&b).await);

    // A fork: another vault with A's key and origin signs another tree of
    // the same size. Once A's bundle is mirrored, the fork's is refused.
    import(&b, &bundle, &a_key).await.unwrap();
    a.shutdown().await.unwrap();
    drop(a);
    let fork_dir = dir.path().join("fork");
    std::fs::create_dir_all(&fork_dir).unwrap();
    let mut c = config(&fork_dir, A);
    c.key_file = Some(dir.path().join("a").join("log.key"));
    let fork = Vault::open(c).await.unwrap();
    assert_eq!(fork.evidence_log().verifier_key(), a_key);
    for i in 0..12 {
        put(&fork, format!("{{\"fork\":{i}}}").as_bytes(), "a").await;
    }
    fork.evidence_log()
        .wait_for_checkpoint(12, Duration::from_secs(30))
        .await
        .unwrap();
    let forked = dir.path().join("fork.evb");
    export(&fork, forked.clone(), BundleSelection::default()).await;
    let e = import(&b, &forked, &a_key).await.unwrap_err();
    assert!(
        matches!(&e, VaultError::Conflict(m) if m.contains("fork") && m.contains("size 12")),
        "{e}"
    );
    // What was held is unchanged.
    let logs = b.mirrored_logs(&all).await.unwrap();
    assert_eq!((logs[0].records, logs[0].checkpoints), (12, 1));
    let (_, data) = b.mirrored_payload(&all, A, 3).await.unwrap();
    assert!(data.starts_with(b"{\"a\":3"));
    fork.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

/// Polls the task until it has ended.
async fn ended(v: &Vault, id: &str) -> evault_vault::TaskInfo {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let t = v.task(&Reader::all("admin"), id).await.unwrap();
        if t.state.is_final() {
            return t;
        }
        assert!(Instant::now() < deadline, "task never ended: {t:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Stages `path` as a task input, as the server does with an upload.
async fn staged(v: &Vault, path: &Path) -> evault_vault::StagedPayload {
    let mut up = v.upload_task_input();
    up.write(&std::fs::read(path).unwrap()).await.unwrap();
    up.finish().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_import_bundle_task_takes_the_bundle_as_its_input() {
    let dir = tempfile::tempdir().unwrap();
    let a = filled(&dir.path().join("a"), A, 20, "a").await;
    let a_key = a.evidence_log().verifier_key();
    let bundle = dir.path().join("a.evb");
    export(&a, bundle.clone(), with_payloads()).await;
    let b_dir = dir.path().join("b");
    let b = Vault::open(config(&b_dir, B)).await.unwrap();
    let admin = Reader::all("sa:admin");
    let params = serde_json::json!({ "key": a_key });

    // Without its input, with bad params, or an input to a kind that takes
    // none: refused, nothing stored.
    let e = b
        .create_task(&admin, "import_bundle", params.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, VaultError::Invalid(m) if m.contains("started with its input file")),
        "{e}"
    );
    let e = b
        .create_task_with_input(
            &admin,
            "import_bundle",
            serde_json::json!({"key": "nope"}),
            staged(&b, &bundle).await,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&e, VaultError::Invalid(m) if m.contains("log key")),
        "{e}"
    );
    let e = b
        .create_task_with_input(
            &admin,
            "import_bundle",
            serde_json::json!({}),
            staged(&b, &bundle).await,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&e, VaultError::Invalid(m) if m.contains("missing field `key`") || m.contains("needs the bundle's log key")),
        "{e}"
    );
    let e = b
        .create_task_with_input(
            &admin,
            "export_bundle",
            serde_json::json!({}),
            staged(&b, &bundle).await,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&e, VaultError::Invalid(m) if m.contains("takes no input file")),
        "{e}"
    );
    let tasks_dir = b_dir.join("tasks");
    let leftovers = || {
        std::fs::read_dir(&tasks_dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    assert!(leftovers().is_empty(), "{:?}", leftovers());

    // The task: it imports, reports, and its input is gone when it ends.
    let t = b
        .create_task_with_input(
            &admin,
            "import_bundle",
            params.clone(),
            staged(&b, &bundle).await,
        )
        .await
        .unwrap();
    let t = ended(&b, &t.id).await;
    assert_eq!(t.state, TaskState::Succeeded, "{t:?}");
    let summary = t.summary.unwrap();
    assert_eq!(summary["origin"], A);
    assert_eq!(summary["records_new"], 20);
    assert_eq!(summary["payloads_new"], 20);
    assert!(leftovers().is_empty(), "{:?}", leftovers());
    assert_eq!(b.mirrored_logs(&admin).await.unwrap()[0].records, 20);

    // A failing import fails the task, with the reason; no input is left.
    let t = b
        .create_task_with_input(
            &admin,
            "import_bundle",
            serde_json::json!({ "key": b.evidence_log().verifier_key() }),
            staged(&b, &bundle).await,
        )
        .await
        .unwrap();
    let t = ended(&b, &t.id).await;
    assert_eq!(t.state, TaskState::Failed);
    assert!(t.error.unwrap().contains("does not verify"));
    assert!(leftovers().is_empty(), "{:?}", leftovers());
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
