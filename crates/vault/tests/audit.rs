//! The audit trail end to end on a real SQLite store in a temp dir: events
//! committed with puts and on their own, proofs verified offline with the
//! audit key, listing, restart and start-up checks, the JSON-lines mirror,
//! audit disabled, and a failed commit writing neither log.

#[macro_use]
mod drivers;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use evault_merkle::verify_consistency;
use evault_note::{Checkpoint, Ed25519Signer, Ed25519Verifier, Verifiers, sign};
use evault_store::{
    AppendBatch, AuditIndex, AuditQuery, AuditRow, EvidenceIndex, EvidenceRow, ListQuery, LogId,
    LogStore, Page, SqliteStore, Store, StoreError, StoredCheckpoint,
};
use evault_vault::{
    AuditOnCommit, Component, PutOutcome, PutRequest, Reader, StreamRecord, Vault, VaultConfig,
    VaultError,
};
use evault_verify::{AuditEvent, Outcome, open_checkpoint};

const ORIGIN: &str = "test.example/vault";
const AUDIT_ORIGIN: &str = "test.example/vault/audit";

fn config(dir: &Path) -> VaultConfig {
    let mut c = VaultConfig::new(dir);
    c.store = drivers::store();
    // Never the user's state directory.
    c.state_dir = Some(dir.join("state"));
    c.origin = Some(ORIGIN.into());
    c.checkpoint_interval = Duration::from_millis(20);
    c
}

fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// An event as the server starts one: everything but id and leaf index.
fn event(principal: &str, operation: &str, resource: &str) -> AuditEvent {
    AuditEvent {
        id: String::new(),
        leaf_index: 0,
        time: now(),
        request_id: uuid::Uuid::now_v7().to_string(),
        principal: principal.into(),
        key_id: Some("key-1".into()),
        auth_method: "service-account".into(),
        protocol: "http".into(),
        operation: operation.into(),
        resource: resource.into(),
        outcome: Outcome::Success,
        status: 200,
        client: "127.0.0.1:40000".into(),
        params_digest: "0".repeat(64),
        reason: None,
    }
}

/// The builder a server hands the vault: status and resource from the
/// outcome. Counts its calls in `calls`.
fn on_commit(principal: &str, calls: Option<Arc<AtomicUsize>>) -> AuditOnCommit {
    let base = event(principal, "evidence.put", "/api/v1/evidence");
    Box::new(move |o: &PutOutcome| {
        if let Some(c) = calls {
            c.fetch_add(1, Ordering::SeqCst);
        }
        AuditEvent {
            status: if o.duplicate { 200 } else { 201 },
            resource: format!("/api/v1/evidence/{}", o.record.id),
            reason: o.replayed.then(|| "replayed".to_string()),
            ..base
        }
    })
}

async fn put_as(
    v: &Vault,
    principal: &str,
    body: &[u8],
    idem: Option<&str>,
    audit: Option<AuditOnCommit>,
) -> Result<PutOutcome, VaultError> {
    let mut up = v.upload();
    up.write(body).await?;
    let payload = up.finish().await?;
    v.put(PutRequest {
        content_type: "application/json".into(),
        labels: Default::default(),
        payload,
        principal: principal.into(),
        idempotency_key: idem.map(str::to_string),
        audit,
    })
    .await
}

async fn put_audited(v: &Vault, body: &[u8], idem: Option<&str>) -> PutOutcome {
    put_as(v, "sa:ci", body, idem, Some(on_commit("sa:ci", None)))
        .await
        .expect("put")
}

async fn all_events(v: &Vault) -> Vec<AuditEvent> {
    let mut q = AuditQuery {
        limit: 1000,
        ..Default::default()
    };
    let mut out = Vec::new();
    loop {
        let Page { items, next } = v.audit_list(&Reader::all("test"), q.clone()).await.unwrap();
        out.extend(items);
        match next {
            Some(n) => q.after_index = Some(n),
            None => return out,
        }
    }
}

/// Waits for an audit checkpoint of at least `size` events, then checks
/// `event`'s inclusion proof against it offline.
async fn assert_proven(v: &Vault, event: &AuditEvent, size: u64, wait: Duration) {
    v.log(LogId::Audit)
        .unwrap()
        .wait_for_checkpoint(size, wait)
        .await
        .unwrap();
    v.audit_log()
        .unwrap()
        .inclusion(&Reader::all("test"), &event.id, None)
        .await
        .map(|p| p.into_audit().unwrap())
        .unwrap()
        .verify(&audit_verifiers(v), Some(AUDIT_ORIGIN))
        .unwrap();
}

fn audit_verifiers(v: &Vault) -> Verifiers {
    let key = Ed25519Verifier::from_verifier_key(&v.audit_log().map(|l| l.verifier_key()).unwrap())
        .unwrap();
    Verifiers::new().with(key).unwrap()
}

on_every_store! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_put_commits_its_event_and_the_event_proves_offline() {
        let dir = tempfile::tempdir().unwrap();
        let v = Vault::open(config(dir.path())).await.unwrap();
        let info = v.audit_log().map(|l| l.info()).unwrap();
        assert_eq!(info.origin, AUDIT_ORIGIN);
        assert_ne!(info.verifier_key, v.evidence_log().verifier_key());
        assert!(dir.path().join("audit.key").exists());

        let out = put_audited(&v, b"{\"a\":1}", None).await;
        // Durable with the record: visible as soon as the put returns.
        let events = all_events(&v).await;
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(e.leaf_index, 0);
        assert_eq!(uuid::Uuid::parse_str(&e.id).unwrap().get_version_num(), 7);
        assert_eq!(e.outcome, Outcome::Success);
        assert_eq!(e.status, 201);
        assert_eq!(e.resource, format!("/api/v1/evidence/{}", out.record.id));
        assert_eq!(e.principal, "sa:ci");
        assert_eq!(
            v.audit_event(&Reader::all("test"), &e.id).await.unwrap(),
            *e
        );
        assert_eq!(v.audit_log().map(|l| l.head()).unwrap().size, 1);

        v.log(LogId::Audit)
            .unwrap()
            .wait_for_checkpoint(1, Duration::from_secs(5))
            .await
            .unwrap();
        let bundle = v
            .audit_log()
            .unwrap()
            .inclusion(&Reader::all("test"), &e.id, None)
            .await
            .map(|p| p.into_audit().unwrap())
            .unwrap();
        assert_eq!(bundle.record, *e);
        // Offline: only the audit verifier key text and the bundle's JSON.
        let json = serde_json::to_string(&bundle).unwrap();
        let back: evault_verify::AuditProofBundle = serde_json::from_str(&json).unwrap();
        let ok = back
            .verify(&audit_verifiers(&v), Some(AUDIT_ORIGIN))
            .unwrap();
        assert_eq!((ok.leaf_index, ok.tree_size), (0, 1));
        // The evidence key does not sign audit checkpoints, nor the audit key
        // evidence ones.
        assert!(back.verify(&v.evidence_log().verifiers(), None).is_err());
        v.evidence_log()
            .wait_for_checkpoint(1, Duration::from_secs(5))
            .await
            .unwrap();
        let ev = v
            .evidence_log()
            .inclusion(&Reader::all("test"), &out.record.id, None)
            .await
            .map(|p| p.into_evidence().unwrap())
            .unwrap();
        assert!(ev.verify(&audit_verifiers(&v), None).is_err());
        assert!(
            ev.verify(&v.evidence_log().verifiers(), Some(ORIGIN))
                .is_ok()
        );

        // An unknown event, and one not yet in a checkpoint's tree size.
        assert!(matches!(
            v.audit_event(&Reader::all("test"), "nope").await,
            Err(VaultError::NotFound(_))
        ));
        assert!(matches!(
            v.audit_log()
                .unwrap()
                .inclusion(&Reader::all("test"), &e.id, Some(0))
                .await
                .map(|p| p.into_audit().unwrap()),
            Err(VaultError::NotFound(_))
        ));
    }
}

on_every_store! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn record_audit_logs_a_bare_event_with_the_callers_time() {
        let dir = tempfile::tempdir().unwrap();
        let v = Vault::open(config(dir.path())).await.unwrap();
        let mut e = event("anonymous", "log.checkpoint", "/api/v1/log/checkpoint");
        e.time = "2026-11-23T11:30:00.123Z".into();
        e.key_id = None;
        e.auth_method = "none".into();
        e.reason = Some("no credentials".into());
        e.id = "ignored".into();
        e.leaf_index = 99;
        v.record_audit(e.clone()).await.unwrap();
        let got = all_events(&v).await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].time, "2026-11-23T11:30:00.123Z");
        assert_eq!(got[0].leaf_index, 0);
        assert_ne!(got[0].id, "ignored");
        assert_eq!(
            AuditEvent {
                id: got[0].id.clone(),
                leaf_index: 0,
                ..e
            },
            got[0]
        );
        // No evidence was written by it.
        assert_eq!(v.evidence_log().head().size, 0);

        // Events that break the format are refused, and nothing is written.
        for bad in [
            AuditEvent {
                time: "2026-11-23T11:30:00Z".into(),
                ..event("a", "b", "c")
            },
            AuditEvent {
                params_digest: "xyz".into(),
                ..event("a", "b", "c")
            },
            AuditEvent {
                principal: String::new(),
                ..event("a", "b", "c")
            },
        ] {
            assert!(matches!(
                v.record_audit(bad).await,
                Err(VaultError::Invalid(_))
            ));
        }
        assert_eq!(v.audit_log().map(|l| l.head()).unwrap().size, 1);
    }
}

on_every_store! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn duplicates_and_replays_each_leave_their_own_event() {
        let dir = tempfile::tempdir().unwrap();
        let v = Vault::open(config(dir.path())).await.unwrap();
        let first = put_audited(&v, b"same", Some("k1")).await;
        let replay = put_audited(&v, b"other", Some("k1")).await;
        assert!(replay.replayed);
        let dup = put_audited(&v, b"same", None).await;
        assert!(dup.duplicate);
        // Concurrent identical puts: one leaf, but one event each, in one or
        // a few batches.
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let v = v.clone();
            tasks.push(tokio::spawn(async move {
                put_audited(&v, b"burst", None).await
            }));
        }
        let mut burst = Vec::new();
        for t in tasks {
            burst.push(t.await.unwrap());
        }
        assert_eq!(v.evidence_log().head().size, 2);
        let events = all_events(&v).await;
        assert_eq!(events.len(), 3 + 16);
        let indexes: Vec<u64> = events.iter().map(|e| e.leaf_index).collect();
        assert_eq!(indexes, (0..19).collect::<Vec<_>>());
        let ids: std::collections::HashSet<_> = events.iter().map(|e| &e.id).collect();
        assert_eq!(ids.len(), 19);
        let res = format!("/api/v1/evidence/{}", first.record.id);
        assert_eq!((events[0].status, &events[0].resource), (201, &res));
        assert_eq!(events[0].reason, None);
        assert_eq!(events[1].reason.as_deref(), Some("replayed"));
        assert_eq!(events[1].resource, res);
        assert_eq!((events[2].status, &events[2].resource), (200, &res));
        let new_burst = burst.iter().filter(|o| !o.duplicate).count();
        assert_eq!(new_burst, 1);
        assert_eq!(events[3..].iter().filter(|e| e.status == 201).count(), 1);
        assert_eq!(events[3..].iter().filter(|e| e.status == 200).count(), 15);
    }
}

on_every_store! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn audit_list_filters() {
        let dir = tempfile::tempdir().unwrap();
        let v = Vault::open(config(dir.path())).await.unwrap();
        let t0 = "2026-11-23T10:00:00.000Z";
        let t1 = "2026-11-23T11:00:00.000Z";
        for i in 0..30u32 {
            let mut e = event(
                ["alice", "bob", "anonymous"][i as usize % 3],
                ["evidence.get", "log.checkpoint"][i as usize % 2],
                "/x",
            );
            e.time = if i < 10 { t0 } else { t1 }.into();
            if i % 5 == 0 {
                e.outcome = Outcome::Denied;
                e.status = 403;
            }
            v.record_audit(e).await.unwrap();
        }
        put_audited(&v, b"x", None).await;
        let count = |q: AuditQuery| {
            let v = v.clone();
            async move {
                let page = v
                    .audit_list(&Reader::all("test"), AuditQuery { limit: 1000, ..q })
                    .await
                    .unwrap();
                assert!(
                    page.items
                        .windows(2)
                        .all(|w| w[0].leaf_index < w[1].leaf_index)
                );
                page.items
            }
        };
        let s = |x: &str| Some(x.to_string());
        assert_eq!(count(AuditQuery::default()).await.len(), 31);
        let alice = count(AuditQuery {
            principal: s("alice"),
            ..Default::default()
        })
        .await;
        assert_eq!(alice.len(), 10);
        assert!(alice.iter().all(|e| e.principal == "alice"));
        assert_eq!(
            count(AuditQuery {
                operation: s("evidence.put"),
                ..Default::default()
            })
            .await
            .len(),
            1
        );
        let denied = count(AuditQuery {
            outcome: s("denied"),
            ..Default::default()
        })
        .await;
        assert_eq!(denied.len(), 6);
        assert!(denied.iter().all(|e| e.outcome == Outcome::Denied));
        let ms = |t: &str| {
            humantime::parse_rfc3339(t)
                .unwrap()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64
        };
        let early = count(AuditQuery {
            since_ms: Some(ms(t0)),
            until_ms: Some(ms(t1)),
            ..Default::default()
        })
        .await;
        assert_eq!(early.len(), 10);
        assert_eq!(
            count(AuditQuery {
                principal: s("bob"),
                operation: s("log.checkpoint"),
                since_ms: Some(ms(t1)),
                until_ms: Some(ms(t1) + 1),
                ..Default::default()
            })
            .await
            .len(),
            3
        );
        // Paging: pages of 7 cover everything exactly once.
        let mut q = AuditQuery {
            limit: 7,
            ..Default::default()
        };
        let mut seen = Vec::new();
        loop {
            let page = v.audit_list(&Reader::all("test"), q.clone()).await.unwrap();
            seen.extend(page.items.iter().map(|e| e.leaf_index));
            match page.next {
                Some(n) => q.after_index = Some(n),
                None => break,
            }
        }
        assert_eq!(seen, (0..31).collect::<Vec<_>>());
    }
}

on_every_store! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn both_logs_survive_a_restart_and_audit_checkpoints_are_consistent() {
        let dir = tempfile::tempdir().unwrap();
        let (key, cp1, first) = {
            let v = Vault::open(config(dir.path())).await.unwrap();
            for i in 0..300 {
                put_audited(&v, format!("r{i}").as_bytes(), None).await;
            }
            v.record_audit(event("bob", "evidence.list", "/api/v1/evidence"))
                .await
                .unwrap();
            v.log(LogId::Audit)
                .unwrap()
                .wait_for_checkpoint(301, Duration::from_secs(5))
                .await
                .unwrap();
            let cp = v.audit_log().unwrap().latest_checkpoint().await.unwrap();
            let first = all_events(&v).await.remove(0);
            let key = v.audit_log().map(|l| l.verifier_key()).unwrap();
            v.shutdown().await.unwrap();
            (key, cp, first)
        };
        let v = Vault::open(config(dir.path())).await.unwrap();
        assert_eq!(v.audit_log().map(|l| l.verifier_key()).unwrap(), key);
        assert_eq!(v.audit_log().map(|l| l.head()).unwrap().size, 301);
        assert_eq!(v.evidence_log().head().size, 300);
        assert_eq!(
            v.audit_event(&Reader::all("test"), &first.id)
                .await
                .unwrap(),
            first
        );
        for i in 0..40 {
            put_audited(&v, format!("after {i}").as_bytes(), None).await;
        }
        v.log(LogId::Audit)
            .unwrap()
            .wait_for_checkpoint(341, Duration::from_secs(5))
            .await
            .unwrap();
        let cp2 = v.audit_log().unwrap().latest_checkpoint().await.unwrap();
        let verifiers = audit_verifiers(&v);
        let (c1, _) = open_checkpoint(&cp1.note, &verifiers, Some(AUDIT_ORIGIN)).unwrap();
        let (c2, _) = open_checkpoint(&cp2.note, &verifiers, Some(AUDIT_ORIGIN)).unwrap();
        assert_eq!((c1.size, c2.size), (301, 341));
        let p = v
            .audit_log()
            .unwrap()
            .consistency(c1.size, c2.size)
            .await
            .unwrap();
        verify_consistency(c1.size, c2.size, &p.proof, &c1.root_hash, &c2.root_hash).unwrap();
        // Every audit checkpoint is kept and consistent with the latest.
        let cps = v
            .audit_log()
            .unwrap()
            .list_checkpoints(None, 1000)
            .await
            .unwrap();
        assert_eq!(
            cps[0].size, 0,
            "a new audit log starts with a signed empty checkpoint"
        );
        for cp in cps.iter().filter(|c| c.size > 0) {
            let (c, _) = open_checkpoint(&cp.note, &verifiers, None).unwrap();
            assert_eq!(
                v.audit_log().unwrap().checkpoint_at(c.size).await.unwrap(),
                *cp
            );
            let p = v
                .audit_log()
                .unwrap()
                .consistency(c.size, c2.size)
                .await
                .unwrap();
            verify_consistency(c.size, c2.size, &p.proof, &c.root_hash, &c2.root_hash).unwrap();
        }
        assert!(matches!(
            v.audit_log().unwrap().consistency(0, 5).await,
            Err(VaultError::Invalid(_))
        ));
        assert!(matches!(
            v.audit_log().unwrap().consistency(5, 10_000).await,
            Err(VaultError::NotFound(_))
        ));
        // The old event still proves against the new checkpoint.
        let b = v
            .audit_log()
            .unwrap()
            .inclusion(&Reader::all("test"), &first.id, Some(c2.size))
            .await
            .map(|p| p.into_audit().unwrap())
            .unwrap();
        b.verify(&verifiers, Some(AUDIT_ORIGIN)).unwrap();
        v.shutdown().await.unwrap();
        drop(v);

        // Another audit origin for the same data directory is refused.
        let mut other = config(dir.path());
        other.audit.origin = Some("elsewhere.example/audit".into());
        assert!(matches!(
            Vault::open(other).await,
            Err(VaultError::Inconsistent(_))
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_checks_the_audit_log_too() {
    let dir = tempfile::tempdir().unwrap();
    {
        let v = Vault::open(config(dir.path())).await.unwrap();
        for i in 0..5 {
            put_audited(&v, format!("r{i}").as_bytes(), None).await;
        }
        v.log(LogId::Audit)
            .unwrap()
            .wait_for_checkpoint(5, Duration::from_secs(5))
            .await
            .unwrap();
        v.shutdown().await.unwrap();
    }
    // An audit checkpoint beyond the stored audit tree, signed with the
    // audit key: what a database restored from an older backup looks like.
    let key_text = std::fs::read_to_string(dir.path().join("audit.key")).unwrap();
    let signer = Ed25519Signer::from_signer_key(key_text.trim()).unwrap();
    let forged = sign(
        &Checkpoint::new(AUDIT_ORIGIN, 6, [7; 32]).to_text(),
        &[&signer],
    )
    .unwrap();
    let store = SqliteStore::open(&dir.path().join("evault.db")).unwrap();
    store
        .put_checkpoint(
            LogId::Audit,
            &StoredCheckpoint {
                size: 6,
                note: forged,
                created_at_ms: 0,
            },
        )
        .unwrap();
    drop(store);
    let err = Vault::open(config(dir.path()))
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(&err, VaultError::Inconsistent(m) if m.contains("audit") && m.contains("size 6")),
        "{err}"
    );
    // With audit disabled the evidence log still starts (the audit tables
    // are not consulted).
    let mut off = config(dir.path());
    off.audit.enabled = false;
    Vault::open(off).await.unwrap().shutdown().await.unwrap();

    // A lost audit key with audit history is refused, not replaced.
    let dir2 = tempfile::tempdir().unwrap();
    {
        let v = Vault::open(config(dir2.path())).await.unwrap();
        put_audited(&v, b"x", None).await;
        v.shutdown().await.unwrap();
    }
    std::fs::remove_file(dir2.path().join("audit.key")).unwrap();
    assert!(matches!(
        Vault::open(config(dir2.path())).await,
        Err(VaultError::Inconsistent(_))
    ));
    // The audit log cannot share the evidence log's origin or key.
    let dir3 = tempfile::tempdir().unwrap();
    let mut same = config(dir3.path());
    same.audit.origin = Some(ORIGIN.into());
    assert!(matches!(
        Vault::open(same).await,
        Err(VaultError::Invalid(_))
    ));
    let mut same = config(dir3.path());
    same.audit.key_file = Some(dir3.path().join("log.key"));
    assert!(matches!(
        Vault::open(same).await,
        Err(VaultError::Invalid(_))
    ));
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Lines of the mirror file, once it has `n` (the mirror is asynchronous).
async fn mirror_lines(path: &Path, n: usize) -> Vec<String> {
    for _ in 0..250 {
        if let Ok(text) = std::fs::read_to_string(path) {
            let lines: Vec<String> = text.lines().map(str::to_string).collect();
            if lines.len() >= n {
                return lines;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{} never got {n} lines", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mirror_writes_one_private_line_per_event() {
    let dir = tempfile::tempdir().unwrap();
    let v = Vault::open(config(dir.path())).await.unwrap();
    let mirror = dir.path().join("audit");
    assert_eq!(mode(&mirror), 0o700);
    for i in 0..5 {
        put_audited(&v, format!("m{i}").as_bytes(), None).await;
    }
    // Around midnight UTC: each event goes to its own day's file.
    let mut late = event("alice", "evidence.get", "/x");
    late.time = "2001-01-01T23:59:59.999Z".into();
    let mut early = event("alice", "evidence.get", "/y");
    early.time = "2001-01-02T00:00:00.000Z".into();
    v.record_audit(late).await.unwrap();
    v.record_audit(early).await.unwrap();

    // Each file holds exactly its day's events, in log order, as the API
    // returns them.
    let events = all_events(&v).await;
    assert_eq!(events.len(), 7);
    let mut by_file: std::collections::BTreeMap<String, Vec<&AuditEvent>> = Default::default();
    for e in &events {
        let file = format!("audit-{}.jsonl", e.time[..10].replace('-', ""));
        by_file.entry(file).or_default().push(e);
    }
    assert!(by_file.contains_key("audit-20010101.jsonl"));
    assert!(by_file.contains_key("audit-20010102.jsonl"));
    for (file, want) in &by_file {
        let lines = mirror_lines(&mirror.join(file), want.len()).await;
        assert_eq!(lines.len(), want.len(), "{file}");
        for (line, want) in lines.iter().zip(want) {
            assert!(line.contains("\"leaf_index\":"), "{line}");
            assert_eq!(&serde_json::from_str::<AuditEvent>(line).unwrap(), *want);
        }
        assert_eq!(mode(&mirror.join(file)), 0o600, "{file}");
    }
    assert_eq!(std::fs::read_dir(&mirror).unwrap().count(), by_file.len());
    v.shutdown().await.unwrap();
    drop(v);

    // mirror = false: events are logged, no file is written.
    let dir2 = tempfile::tempdir().unwrap();
    let mut c = config(dir2.path());
    c.audit.mirror = false;
    let v = Vault::open(c).await.unwrap();
    put_audited(&v, b"x", None).await;
    assert_eq!(all_events(&v).await.len(), 1);
    // Once stopped, every task (a mirror among them, were it on) is done.
    v.shutdown().await.unwrap();
    assert!(!dir2.path().join("audit").exists());

    // A custom mirror directory is created private.
    let dir3 = tempfile::tempdir().unwrap();
    let custom: PathBuf = dir3.path().join("elsewhere/mirror");
    let mut c = config(dir3.path());
    c.audit.mirror_dir = Some(custom.clone());
    let v = Vault::open(c).await.unwrap();
    put_audited(&v, b"x", None).await;
    let e = &all_events(&v).await[0];
    let file = custom.join(format!("audit-{}.jsonl", e.time[..10].replace('-', "")));
    assert_eq!(mirror_lines(&file, 1).await.len(), 1);
    assert_eq!(mode(&custom), 0o700);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_disabled_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.audit.enabled = false;
    let v = Vault::open(c).await.unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    put_as(
        &v,
        "sa:ci",
        b"x",
        None,
        Some(on_commit("sa:ci", Some(calls.clone()))),
    )
    .await
    .unwrap();
    v.record_audit(event("a", "b", "c")).await.unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "the builder is never called"
    );
    assert_eq!(v.evidence_log().head().size, 1);
    assert!(v.audit_log().map(|l| l.info()).is_none());
    assert!(v.audit_log().map(|l| l.verifier_key()).is_none());
    assert!(v.audit_log().map(|l| l.head()).is_none());
    assert!(matches!(
        v.audit_list(&Reader::all("test"), AuditQuery::default())
            .await,
        Err(VaultError::NotFound(_))
    ));
    // Every read of the audit log starts from `Vault::log`, which says so.
    assert!(matches!(v.log(LogId::Audit), Err(VaultError::NotFound(_))));
    v.shutdown().await.unwrap();
    drop(v);
    assert!(!dir.path().join("audit.key").exists());
    assert!(!dir.path().join("audit").exists());
    let store = SqliteStore::open(&dir.path().join("evault.db")).unwrap();
    assert_eq!(store.tree_size(LogId::Audit).unwrap(), 0);
    assert_eq!(store.latest_checkpoint(LogId::Audit).unwrap(), None);
    assert_eq!(store.get_meta("audit_origin").unwrap(), None);
}

/// A store whose appends fail on demand; everything else is SQLite's.
struct Flaky {
    inner: SqliteStore,
    fail: AtomicBool,
    /// Appends and checkpoints fail as on a full disk.
    full: AtomicBool,
    /// Appends commit, then report a failure (the in-memory trees of the
    /// sequencer would be behind the store).
    lie: AtomicBool,
    /// The index follower's batches fail (the label and digest indexes
    /// fall behind the log).
    index_fail: AtomicBool,
}

impl Flaky {
    fn new(dir: &Path) -> Flaky {
        Flaky {
            inner: SqliteStore::open(&dir.join("evault.db")).unwrap(),
            fail: AtomicBool::new(false),
            full: AtomicBool::new(false),
            lie: AtomicBool::new(false),
            index_fail: AtomicBool::new(false),
        }
    }
}

fn disk_full() -> StoreError {
    StoreError::Backend(Box::new(std::io::Error::from(
        std::io::ErrorKind::StorageFull,
    )))
}

impl LogStore for Flaky {
    fn tree_size(&self, log: LogId) -> Result<u64, StoreError> {
        self.inner.tree_size(log)
    }

    fn append(&self, batch: &AppendBatch<'_>) -> Result<(), StoreError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError::Backend("injected failure".into()));
        }
        if self.full.load(Ordering::SeqCst) {
            return Err(disk_full());
        }
        self.inner.append(batch)?;
        if self.lie.load(Ordering::SeqCst) {
            return Err(StoreError::Backend("fsync reported a failure".into()));
        }
        Ok(())
    }

    fn read_tiles(
        &self,
        log: LogId,
        tiles: &[evault_merkle::tiles::TileId],
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        self.inner.read_tiles(log, tiles)
    }

    fn read_tiles_with_inner(
        &self,
        log: LogId,
        tiles: &[evault_merkle::tiles::TileId],
    ) -> Result<Vec<(Vec<u8>, Option<Vec<u8>>)>, StoreError> {
        self.inner.read_tiles_with_inner(log, tiles)
    }

    fn record_by_index(&self, i: u64) -> Result<Option<EvidenceRow>, StoreError> {
        self.inner.record_by_index(i)
    }

    fn leaf_data_range(&self, s: u64, e: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        self.inner.leaf_data_range(s, e)
    }

    fn audit_by_index(&self, i: u64) -> Result<Option<AuditRow>, StoreError> {
        self.inner.audit_by_index(i)
    }

    fn put_checkpoint(&self, log: LogId, cp: &StoredCheckpoint) -> Result<(), StoreError> {
        if self.full.load(Ordering::SeqCst) {
            return Err(disk_full());
        }
        self.inner.put_checkpoint(log, cp)
    }

    fn latest_checkpoint(&self, log: LogId) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.inner.latest_checkpoint(log)
    }

    fn checkpoint_at(&self, log: LogId, s: u64) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.inner.checkpoint_at(log, s)
    }

    fn list_checkpoints(
        &self,
        log: LogId,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Vec<StoredCheckpoint>, StoreError> {
        self.inner.list_checkpoints(log, after, limit)
    }

    fn get_meta(&self, k: &str) -> Result<Option<String>, StoreError> {
        self.inner.get_meta(k)
    }

    fn meta_entries(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.inner.meta_entries()
    }

    fn set_meta(&self, k: &str, v: &str) -> Result<(), StoreError> {
        self.inner.set_meta(k, v)
    }

    fn scan_records(
        &self,
        start: u64,
        end: u64,
    ) -> Result<Vec<evault_store::Scanned<EvidenceRow>>, StoreError> {
        self.inner.scan_records(start, end)
    }

    fn scan_audit(
        &self,
        start: u64,
        end: u64,
    ) -> Result<Vec<evault_store::Scanned<AuditRow>>, StoreError> {
        self.inner.scan_audit(start, end)
    }

    fn leaf_rows(&self, log: LogId) -> Result<(u64, Option<u64>), StoreError> {
        self.inner.leaf_rows(log)
    }

    fn tile_keys(&self, log: LogId) -> Result<Vec<evault_store::StoredTileKey>, StoreError> {
        self.inner.tile_keys(log)
    }

    fn stored_tile(
        &self,
        log: LogId,
        level: u8,
        index: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.stored_tile(log, level, index)
    }
}

impl EvidenceIndex for Flaky {
    fn record_by_id(&self, id: &str) -> Result<Option<EvidenceRow>, StoreError> {
        self.inner.record_by_id(id)
    }

    fn record_by_dedup_key(&self, k: &[u8; 32]) -> Result<Option<EvidenceRow>, StoreError> {
        self.inner.record_by_dedup_key(k)
    }

    fn record_by_idempotency_key(
        &self,
        p: &str,
        k: &str,
    ) -> Result<Option<EvidenceRow>, StoreError> {
        self.inner.record_by_idempotency_key(p, k)
    }

    fn list(&self, q: &ListQuery) -> Result<Page<EvidenceRow>, StoreError> {
        self.inner.list(q)
    }

    fn analytics_summary(
        &self,
        q: &evault_store::AnalyticsQuery,
    ) -> Result<Vec<evault_store::AnalyticsGroup>, StoreError> {
        self.inner.analytics_summary(q)
    }

    fn evidence_stats(
        &self,
        q: &evault_store::StatsQuery,
    ) -> Result<evault_store::EvidenceStats, StoreError> {
        self.inner.evidence_stats(q)
    }

    fn label_index_len(&self) -> Result<u64, StoreError> {
        self.inner.label_index_len()
    }

    fn label_index_page(
        &self,
        after: Option<&evault_store::LabelEntry>,
        limit: u32,
    ) -> Result<Vec<evault_store::LabelEntry>, StoreError> {
        self.inner.label_index_page(after, limit)
    }

    fn label_entry_matches(&self, entry: &evault_store::LabelEntry) -> Result<bool, StoreError> {
        self.inner.label_entry_matches(entry)
    }

    fn index_layout(&self) -> Result<Vec<String>, StoreError> {
        self.inner.index_layout()
    }

    fn indexed_through(&self) -> Result<u64, StoreError> {
        self.inner.indexed_through()
    }

    fn index_evidence(&self, through: u64, max_rows: u64) -> Result<u64, StoreError> {
        if self.index_fail.load(Ordering::SeqCst) {
            return Err(StoreError::Backend("injected index failure".into()));
        }
        self.inner.index_evidence(through, max_rows)
    }
}

impl AuditIndex for Flaky {
    fn audit_by_id(&self, id: &str) -> Result<Option<AuditRow>, StoreError> {
        self.inner.audit_by_id(id)
    }

    fn list_audit(&self, q: &AuditQuery) -> Result<Page<AuditRow>, StoreError> {
        self.inner.list_audit(q)
    }

    fn audit_outcomes(
        &self,
        since_ms: i64,
        until_ms: i64,
        principal: Option<&str>,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        self.inner.audit_outcomes(since_ms, until_ms, principal)
    }
}

impl Store for Flaky {
    fn index_lookups(
        &self,
        log: LogId,
        start: u64,
        end: u64,
    ) -> Result<Vec<evault_store::IndexLookup>, StoreError> {
        self.inner.index_lookups(log, start, end)
    }

    fn compliance(&self) -> Option<&dyn evault_store::ComplianceStore> {
        self.inner.compliance()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_writes_neither_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Flaky::new(dir.path()));
    let v = Vault::with_store(config(dir.path()), store.clone())
        .await
        .unwrap();
    put_audited(&v, b"before", None).await;

    store.fail.store(true, Ordering::SeqCst);
    let err = put_as(&v, "sa:ci", b"lost", None, Some(on_commit("sa:ci", None)))
        .await
        .unwrap_err();
    assert!(matches!(err, VaultError::Unavailable(_)), "{err}");
    assert!(matches!(
        v.record_audit(event("a", "b", "c")).await,
        Err(VaultError::Unavailable(_))
    ));
    assert_eq!(store.tree_size(LogId::Evidence).unwrap(), 1);
    assert_eq!(store.tree_size(LogId::Audit).unwrap(), 1);
    assert_eq!(
        (
            v.evidence_log().head().size,
            v.audit_log().map(|l| l.head()).unwrap().size
        ),
        (1, 1)
    );
    assert_eq!(all_events(&v).await.len(), 1);

    // The vault carries on from the state before the failure.
    store.fail.store(false, Ordering::SeqCst);
    let out = put_audited(&v, b"lost", None).await;
    assert_eq!(out.record.leaf_index, 1);
    let events = all_events(&v).await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].leaf_index, 1);
    assert_proven(&v, &events[1], 2, Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_whose_event_is_invalid_is_not_committed() {
    let dir = tempfile::tempdir().unwrap();
    let v = Vault::open(config(dir.path())).await.unwrap();
    let bad: AuditOnCommit = Box::new(|_o: &PutOutcome| AuditEvent {
        time: "not a time".into(),
        ..event("sa:ci", "evidence.put", "/x")
    });
    let err = put_as(&v, "sa:ci", b"x", None, Some(bad))
        .await
        .unwrap_err();
    assert!(matches!(err, VaultError::Unavailable(_)), "{err}");
    assert_eq!(v.evidence_log().head().size, 0);
    assert_eq!(v.audit_log().map(|l| l.head()).unwrap().size, 0);
    // The same payload goes in afterwards as a new record, at index 0.
    let out = put_audited(&v, b"x", None).await;
    assert!(!out.duplicate);
    assert_eq!(out.record.leaf_index, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_audit_builder_fails_its_batch_only() {
    let dir = tempfile::tempdir().unwrap();
    let v = Vault::open(config(dir.path())).await.unwrap();
    put_audited(&v, b"before", None).await;
    let boom: AuditOnCommit = Box::new(|_o: &PutOutcome| panic!("builder bug"));
    let err = put_as(&v, "sa:ci", b"x", None, Some(boom))
        .await
        .unwrap_err();
    assert!(matches!(err, VaultError::Unavailable(_)), "{err}");
    assert_eq!(
        (
            v.evidence_log().head().size,
            v.audit_log().map(|l| l.head()).unwrap().size
        ),
        (1, 1)
    );
    // The sequencer carries on from where it was.
    let out = put_audited(&v, b"x", None).await;
    assert_eq!(out.record.leaf_index, 1);
    assert_eq!(all_events(&v).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_audit_returns_before_the_commit_and_the_event_follows() {
    let dir = tempfile::tempdir().unwrap();
    let v = Vault::open(config(dir.path())).await.unwrap();
    for i in 0..5 {
        v.queue_audit(event("alice", "evidence.get", &format!("/r/{i}")))
            .await
            .unwrap();
    }
    // Queued behind nothing else: committed in order by the next batches.
    put_audited(&v, b"after", None).await;
    let events = all_events(&v).await;
    assert_eq!(events.len(), 6);
    let resources: Vec<&str> = events[..5].iter().map(|e| e.resource.as_str()).collect();
    assert_eq!(resources, ["/r/0", "/r/1", "/r/2", "/r/3", "/r/4"]);
    // Invalid events are refused up front; disabled audit takes nothing.
    assert!(matches!(
        v.queue_audit(AuditEvent {
            time: "later".into(),
            ..event("a", "b", "c")
        })
        .await,
        Err(VaultError::Invalid(_))
    ));
    let dir2 = tempfile::tempdir().unwrap();
    let mut c = config(dir2.path());
    c.audit.enabled = false;
    let off = Vault::open(c).await.unwrap();
    off.queue_audit(event("a", "b", "c")).await.unwrap();
    assert!(off.audit_log().map(|l| l.head()).is_none());
}

/// Polls `cond` until it holds or `secs` pass.
async fn eventually(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_as_storage_full_and_readiness_returns() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Flaky::new(dir.path()));
    let v = Vault::with_store(config(dir.path()), store.clone())
        .await
        .unwrap();
    put_audited(&v, b"before", None).await;
    assert!(v.health().is_empty(), "{:?}", v.health());

    store.full.store(true, Ordering::SeqCst);
    let err = put_audited_err(&v, b"while full").await;
    assert!(err.is_storage_full(), "{err}");
    assert!(matches!(err, VaultError::StorageFull(_)), "{err}");
    let err = v.record_audit(event("a", "b", "c")).await.unwrap_err();
    assert!(matches!(err, VaultError::StorageFull(_)), "{err}");
    let health = v.health();
    assert!(
        health
            .iter()
            .any(|h| h.component == Component::Sequencer && h.storage_full),
        "{health:?}"
    );

    // Space is back: the next commit succeeds, readiness clears by itself.
    store.full.store(false, Ordering::SeqCst);
    let out = put_audited(&v, b"after", None).await;
    assert_eq!(out.record.leaf_index, 1);
    eventually(10, "the vault is ready again", || v.health().is_empty()).await;
    v.evidence_log()
        .wait_for_checkpoint(2, Duration::from_secs(10))
        .await
        .unwrap();
    v.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_that_landed_but_reported_failure_is_reloaded_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Flaky::new(dir.path()));
    let v = Vault::with_store(config(dir.path()), store.clone())
        .await
        .unwrap();
    put_audited(&v, b"first", None).await;
    store.lie.store(true, Ordering::SeqCst);
    let err = put_audited_err(&v, b"landed").await;
    assert!(matches!(err, VaultError::Unavailable(_)), "{err}");
    store.lie.store(false, Ordering::SeqCst);
    assert_eq!(store.tree_size(LogId::Evidence).unwrap(), 2);
    // The sequencer goes on from the store, not from its stale memory: a
    // new record follows the one that landed, and both logs verify.
    let out = put_audited(&v, b"third", None).await;
    assert_eq!(out.record.leaf_index, 2);
    assert_eq!(v.evidence_log().head().size, 3);
    let events = all_events(&v).await;
    assert_eq!(events.len(), 3);
    assert_proven(&v, &events[2], 3, Duration::from_secs(10)).await;
    eventually(10, "the vault is ready again", || v.health().is_empty()).await;
    v.shutdown().await.unwrap();
}

async fn put_audited_err(v: &Vault, body: &[u8]) -> VaultError {
    put_as(v, "sa:ci", body, None, Some(on_commit("sa:ci", None)))
        .await
        .unwrap_err()
}

/// Puts `body` as `sa:ci` with one label.
async fn put_labelled(v: &Vault, body: &[u8], label: &str) -> PutOutcome {
    put_with(v, body, label, None).await
}

/// A put of `body` by `sa:ci`, labelled `case=label`, with `key` as its
/// idempotency key.
async fn put_with(v: &Vault, body: &[u8], label: &str, key: Option<&str>) -> PutOutcome {
    let mut up = v.upload();
    up.write(body).await.unwrap();
    let payload = up.finish().await.unwrap();
    v.put(PutRequest {
        content_type: "application/json".into(),
        labels: [("case".to_string(), label.to_string())].into(),
        payload,
        principal: "sa:ci".into(),
        idempotency_key: key.map(str::to_string),
        audit: None,
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_index_follower_loses_no_read_and_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Flaky::new(dir.path()));
    store.index_fail.store(true, Ordering::SeqCst);
    let v = Vault::with_store(config(dir.path()), store.clone())
        .await
        .unwrap();
    // Two records with the same bytes (other labels, so not duplicates)
    // and one more: none of them reaches the label or digest index.
    let a = put_labelled(&v, b"shared bytes", "c-1").await;
    let b = put_labelled(&v, b"shared bytes", "c-2").await;
    let c = put_labelled(&v, b"other bytes", "c-1").await;
    assert_ne!(a.record.id, b.record.id);
    eventually(10, "the follower reports its trouble", || {
        v.health().iter().any(|h| h.component == Component::Indexer)
    })
    .await;
    assert_eq!(store.indexed_through().unwrap(), 0);
    let reason = v.health()[0].to_string();
    assert!(reason.contains("reads stay exact"), "{reason}");

    // Reads are exact over the unindexed tail: a list by label...
    let listed = |label: &'static str| {
        let v = v.clone();
        async move {
            let q = ListQuery {
                labels: vec![("case".into(), label.into())],
                limit: 100,
                ..Default::default()
            };
            let page = v.list(&Reader::all("test"), q).await.unwrap();
            page.items.into_iter().map(|e| e.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(
        listed("c-1").await,
        [a.record.id.clone(), c.record.id.clone()]
    );
    assert_eq!(listed("c-2").await, std::slice::from_ref(&b.record.id));
    // ...and an erasure, which must find every record sharing the bytes.
    let erased = v
        .erase("sa:admin", &a.record.id, "test: shared bytes")
        .await
        .unwrap();
    let mut ids: Vec<String> = erased.iter().map(|e| e.id.clone()).collect();
    ids.sort();
    let mut want = vec![a.record.id.clone(), b.record.id.clone()];
    want.sort();
    assert_eq!(ids, want);

    // The follower recovers by itself and the index reaches the log.
    store.index_fail.store(false, Ordering::SeqCst);
    let size = store.tree_size(LogId::Evidence).unwrap();
    eventually(30, "the index catches up", || {
        store.indexed_through().unwrap() == size
    })
    .await;
    eventually(10, "the follower clears its trouble", || {
        v.health().is_empty()
    })
    .await;
    assert_eq!(
        listed("c-1").await,
        [a.record.id.clone(), c.record.id.clone()]
    );
    let labels: u64 = store
        .list(&ListQuery {
            limit: 1000,
            ..Default::default()
        })
        .unwrap()
        .items
        .iter()
        .map(|r| r.labels.len() as u64)
        .sum();
    assert_eq!(store.label_index_len().unwrap(), labels);
    v.shutdown().await.unwrap();
}

/// A put of `body` by `sa:ci` with `key` as its idempotency key.
async fn put_keyed(v: &Vault, body: &[u8], key: Option<&str>) -> PutOutcome {
    put_with(v, body, "keys", key).await
}

/// Schema 10: the dedup and idempotency keys are indexed by the follower,
/// behind the log. With the follower failing (nothing indexed), a
/// duplicate, an idempotent retry and a stream carrying both twins still
/// get the first record, a GET finds each record as soon as its put
/// returns, and so it stays after the store is reopened (its key tail
/// rebuilt from the records) and once the follower has caught up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_and_retries_stay_one_leaf_while_the_index_lags() {
    let dir = tempfile::tempdir().unwrap();
    let reader = Reader::all("test");
    let first = {
        let store = Arc::new(Flaky::new(dir.path()));
        store.index_fail.store(true, Ordering::SeqCst);
        let v = Vault::with_store(config(dir.path()), store.clone())
            .await
            .unwrap();
        let first = put_keyed(&v, b"{\"build\":1}", Some("retry-1")).await;
        assert!(!first.duplicate && !first.replayed);
        assert_eq!(
            v.get(&reader, &first.record.id).await.unwrap(),
            first.record
        );
        let dup = put_keyed(&v, b"{\"build\":1}", None).await;
        assert!(dup.duplicate, "{dup:?}");
        assert_eq!(dup.record, first.record);
        let retry = put_keyed(&v, b"{\"build\":2}", Some("retry-1")).await;
        assert!(retry.replayed, "{retry:?}");
        assert_eq!(retry.record, first.record);
        // One stream unit: a new record, its twin in the same unit, and
        // twins of the first record by bytes and by key.
        let rec = |body: &[u8], key: Option<&str>| StreamRecord {
            content_type: "application/json".into(),
            labels: [("case".to_string(), "keys".to_string())].into(),
            payload: body.to_vec(),
            idempotency_key: key.map(str::to_string),
        };
        let outcomes = v
            .submit(
                "sa:ci",
                vec![
                    rec(b"{\"build\":3}", None),
                    rec(b"{\"build\":3}", None),
                    rec(b"{\"build\":1}", None),
                    rec(b"{\"build\":4}", Some("retry-1")),
                ],
            )
            .await
            .unwrap()
            .outcomes()
            .await
            .unwrap();
        let outcomes: Vec<PutOutcome> = outcomes.into_iter().map(Result::unwrap).collect();
        assert!(!outcomes[0].duplicate);
        assert!(outcomes[1].duplicate);
        assert_eq!(outcomes[1].record, outcomes[0].record);
        assert_eq!(outcomes[2].record, first.record);
        assert!(outcomes[3].replayed);
        assert_eq!(outcomes[3].record, first.record);
        assert_eq!(store.tree_size(LogId::Evidence).unwrap(), 2);
        assert_eq!(store.indexed_through().unwrap(), 0, "nothing was indexed");
        // Stopped while the follower is still behind.
        v.shutdown().await.unwrap();
        first
    };

    // A new store instance: its key tail comes from the records.
    let store = Arc::new(Flaky::new(dir.path()));
    store.index_fail.store(true, Ordering::SeqCst);
    let v = Vault::with_store(config(dir.path()), store.clone())
        .await
        .unwrap();
    assert_eq!(store.indexed_through().unwrap(), 0);
    let dup = put_keyed(&v, b"{\"build\":1}", None).await;
    assert!(dup.duplicate);
    assert_eq!(dup.record, first.record);
    let retry = put_keyed(&v, b"{\"build\":9}", Some("retry-1")).await;
    assert!(retry.replayed);
    assert_eq!(retry.record, first.record);
    assert_eq!(store.tree_size(LogId::Evidence).unwrap(), 2);

    // The follower recovers; the same answers come from its indexes.
    store.index_fail.store(false, Ordering::SeqCst);
    eventually(30, "the index catches up", || {
        store.indexed_through().unwrap() == 2
    })
    .await;
    let dup = put_keyed(&v, b"{\"build\":1}", None).await;
    assert!(dup.duplicate);
    assert_eq!(dup.record, first.record);
    let retry = put_keyed(&v, b"{\"build\":10}", Some("retry-1")).await;
    assert!(retry.replayed);
    assert_eq!(retry.record, first.record);
    assert_eq!(store.tree_size(LogId::Evidence).unwrap(), 2);
    for l in store.index_lookups(LogId::Evidence, 0, 2).unwrap() {
        assert_eq!(l.by_dedup_key, Some(l.leaf_index));
        assert!(l.missing_from.is_empty() && l.ahead_in.is_empty(), "{l:?}");
    }
    v.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_for_a_failing_index_follower() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Flaky::new(dir.path()));
    store.index_fail.store(true, Ordering::SeqCst);
    let v = Vault::with_store(config(dir.path()), store.clone())
        .await
        .unwrap();
    put_labelled(&v, b"one", "c-1").await;
    put_labelled(&v, b"two", "c-1").await;
    let stopped = v.shutdown().await.unwrap();
    assert_eq!(stopped.evidence_size, 2);
    assert_eq!(store.indexed_through().unwrap(), 0, "nothing was indexed");
    drop(v);
    // The next start resumes from the durable cursor and catches up.
    store.index_fail.store(false, Ordering::SeqCst);
    let v = Vault::with_store(config(dir.path()), store.clone())
        .await
        .unwrap();
    eventually(30, "the index catches up after the restart", || {
        store.indexed_through().unwrap() == 2
    })
    .await;
    assert_eq!(v.indexed_through(), 2);
    v.shutdown().await.unwrap();
}
