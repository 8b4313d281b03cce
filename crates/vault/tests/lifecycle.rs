//! The vault's seams and lifecycle: a signer that is not a key file,
//! shutdown under load (every acknowledged record ends up under a final
//! signed checkpoint), and the audit mirror catching up after a crash with
//! every committed event exactly once.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use evault_note::{Ed25519Signer, SignError, Signer, VerifierKeyText, Verifiers, verifier_for};
use evault_store::{LogId, LogStore, SqliteStore};
use evault_vault::{Component, LogSigner, Reader, Role, Vault, VaultConfig, VaultError};
use evault_verify::{AuditEvent, Outcome, open_checkpoint};

mod nodes;

use nodes::{copy_keys, eventually, put};

const ORIGIN: &str = "test.example/lifecycle";

fn config(dir: &Path) -> VaultConfig {
    let mut c = VaultConfig::new(dir);
    // Never the user's state directory.
    c.state_dir = Some(dir.join("state"));
    c.origin = Some(ORIGIN.into());
    // Long: the final checkpoint on shutdown must not wait for it.
    c.checkpoint_interval = Duration::from_secs(3600);
    c
}

fn event(n: u64) -> AuditEvent {
    AuditEvent {
        id: String::new(),
        leaf_index: 0,
        time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        request_id: format!("request-{n}"),
        principal: "sa:ci".into(),
        key_id: None,
        auth_method: "service-account".into(),
        protocol: "http".into(),
        operation: "evidence.get".into(),
        resource: format!("/api/v1/evidence/{n}"),
        outcome: Outcome::Success,
        status: 200,
        client: "127.0.0.1:1".into(),
        params_digest: "0".repeat(64),
        reason: None,
    }
}

/// A signer held by the embedding program (standing in for an HSM or a
/// KMS): counts what it signs.
struct CountingSigner {
    key: Ed25519Signer,
    signed: Arc<AtomicUsize>,
}

impl Signer for CountingSigner {
    fn name(&self) -> &str {
        self.key.name()
    }
    fn key_id(&self) -> u32 {
        Signer::key_id(&self.key)
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, SignError> {
        self.signed.fetch_add(1, Ordering::SeqCst);
        Signer::sign(&self.key, msg)
    }
    fn verifier_key(&self) -> VerifierKeyText {
        Signer::verifier_key(&self.key)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signer_that_is_not_a_file_signs_every_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let signed = Arc::new(AtomicUsize::new(0));
    let log_signer = CountingSigner {
        key: Ed25519Signer::from_seed(ORIGIN, &[7; 32]).unwrap(),
        signed: signed.clone(),
    };
    let vkey = Signer::verifier_key(&log_signer).to_string();
    let mut c = config(dir.path());
    c.checkpoint_interval = Duration::from_millis(20);
    c.signer = Some(LogSigner::new(Arc::new(log_signer)));
    let v = Vault::open(c).await.unwrap();
    assert_eq!(v.evidence_log().verifier_key(), vkey);
    // The empty log's checkpoint, then one for the record.
    put(&v, b"x").await.unwrap();
    v.evidence_log()
        .wait_for_checkpoint(1, Duration::from_secs(10))
        .await
        .unwrap();
    let cp = v.evidence_log().latest_checkpoint().await.unwrap();
    let mut known = Verifiers::new();
    known.insert_boxed(verifier_for(&vkey).unwrap()).unwrap();
    let (body, _) = open_checkpoint(&cp.note, &known, Some(ORIGIN)).unwrap();
    assert_eq!(body.size, 1);
    assert!(signed.load(Ordering::SeqCst) >= 2);
    // No key file was written for the evidence log.
    assert!(!dir.path().join("log.key").exists());
    v.shutdown().await.unwrap();
}

/// A signer whose backend can be taken away (standing in for a PKCS#11
/// token that is removed and put back).
struct AwaySigner {
    key: Ed25519Signer,
    away: Arc<AtomicBool>,
}

impl Signer for AwaySigner {
    fn name(&self) -> &str {
        self.key.name()
    }
    fn key_id(&self) -> u32 {
        Signer::key_id(&self.key)
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, SignError> {
        if self.away.load(Ordering::SeqCst) {
            return Err(SignError::Backend("token not present".into()));
        }
        Signer::sign(&self.key, msg)
    }
    fn verifier_key(&self) -> VerifierKeyText {
        Signer::verifier_key(&self.key)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signer_that_goes_away_refuses_what_needs_a_checkpoint_until_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let away = Arc::new(AtomicBool::new(false));
    let token = away.clone();
    let mut c = config(dir.path());
    c.checkpoint_interval = Duration::from_millis(20);
    c.signer = Some(LogSigner::open("a test token", move |origin: &str| {
        assert_eq!(origin, ORIGIN, "opened for the log's origin");
        Ok(Arc::new(AwaySigner {
            key: Ed25519Signer::from_seed(origin, &[9; 32]).unwrap(),
            away: token.clone(),
        }) as Arc<dyn Signer>)
    }));
    let v = Vault::open(c).await.unwrap();
    let log = v.evidence_log();
    let first = put(&v, b"one").await.unwrap();
    log.wait_for_checkpoint(1, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(log.signer_unavailable().is_none());

    // Away: the record still commits, its checkpoint cannot be signed.
    away.store(true, Ordering::SeqCst);
    let second = put(&v, b"two").await.unwrap();
    assert_eq!(second.record.leaf_index, 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while log.signer_unavailable().is_none() {
        assert!(std::time::Instant::now() < deadline, "never reported");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let health = v.health();
    assert!(
        health
            .iter()
            .any(|h| h.component == Component::Signer(LogId::Evidence)
                && h.reason.contains("token not present")),
        "{health:?}"
    );
    // Waiting for a checkpoint fails at once (the first poll), not after
    // the timeout...
    use futures_util::FutureExt as _;
    let e = log
        .wait_for_checkpoint(2, Duration::from_secs(3600))
        .now_or_never()
        .expect("answered without waiting")
        .unwrap_err();
    assert!(matches!(e, VaultError::SignerUnavailable(_)), "{e}");
    // ... one already signed is still there ...
    assert_eq!(
        log.wait_for_checkpoint(1, Duration::from_secs(1))
            .await
            .unwrap(),
        1
    );
    // ... and so is the proof of a record it covers, but not of the new one.
    let reader = Reader::all("sa:auditor");
    log.inclusion(&reader, &first.record.id, None)
        .await
        .unwrap();
    let e = log
        .inclusion(&reader, &second.record.id, None)
        .await
        .unwrap_err();
    assert!(matches!(e, VaultError::SignerUnavailable(_)), "{e}");
    assert!(e.to_string().contains("evidence log's signer"), "{e}");

    // Back: the checkpointer's next attempt signs, and the trouble clears.
    away.store(false, Ordering::SeqCst);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while log.signer_unavailable().is_some() {
        assert!(std::time::Instant::now() < deadline, "never cleared");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let size = log
        .wait_for_checkpoint(2, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(size >= 2);
    assert!(v.health().is_empty(), "{:?}", v.health());
    log.inclusion(&reader, &second.record.id, None)
        .await
        .unwrap();
    v.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_under_load_signs_every_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let v = Vault::open(config(dir.path())).await.unwrap();
    let mut clients = Vec::new();
    for c in 0..8 {
        let v = v.clone();
        clients.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0.. {
                match put(&v, format!("client {c} record {i}").as_bytes()).await {
                    Ok(o) => acked.push(o.record.leaf_index),
                    Err(VaultError::Unavailable(_)) => return acked,
                    Err(e) => panic!("unexpected: {e}"),
                }
            }
            acked
        }));
    }
    // Stop once the load is well under way.
    while v.evidence_log().head().size < 500 {
        tokio::task::yield_now().await;
    }
    let stopped = v.shutdown().await.unwrap();
    let mut acked = Vec::new();
    for c in clients {
        acked.extend(c.await.unwrap());
    }
    assert!(acked.len() >= 500, "{}", acked.len());
    let highest = *acked.iter().max().unwrap();
    // The final checkpoint covers every acknowledged record, though the
    // checkpoint interval is an hour.
    assert!(
        stopped.evidence_checkpoint > highest,
        "{stopped:?} vs {highest}"
    );
    assert_eq!(stopped.evidence_checkpoint, stopped.evidence_size);
    let (size, signed) = stopped.audit.unwrap();
    assert_eq!(size, signed);
    // Intake is closed, reads still work, and a second call agrees.
    assert!(matches!(
        put(&v, b"late").await,
        Err(VaultError::Unavailable(_))
    ));
    assert!(matches!(
        v.record_audit(event(0)).await,
        Err(VaultError::Unavailable(_))
    ));
    assert!(v.is_shutting_down());
    let cp = v.evidence_log().latest_checkpoint().await.unwrap();
    assert_eq!(cp.size, stopped.evidence_checkpoint);
    assert_eq!(v.shutdown().await.unwrap(), stopped);
    // What the store holds says the same after the process is gone.
    drop(v);
    let store = SqliteStore::open(&dir.path().join("evault.db")).unwrap();
    let latest = store.latest_checkpoint(LogId::Evidence).unwrap().unwrap();
    assert_eq!(latest.size, stopped.evidence_size);
    assert_eq!(store.tree_size(LogId::Evidence).unwrap(), latest.size);
}

/// Every mirror line's leaf index, over all day files, in file order.
fn mirrored(dir: &Path) -> Vec<u64> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines() {
            let e: AuditEvent = serde_json::from_str(line).expect("whole JSON lines only");
            out.push(e.leaf_index);
        }
    }
    out.sort_unstable();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mirror_catches_up_after_a_crash_with_every_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let mirror = dir.path().join("audit");
    let v = Vault::open(config(dir.path())).await.unwrap();
    for n in 0..300 {
        v.record_audit(event(n)).await.unwrap();
    }
    v.shutdown().await.unwrap();
    drop(v);
    assert_eq!(mirrored(&mirror), (0..300).collect::<Vec<_>>());

    // What a crash between writing mirror lines and moving the cursor
    // leaves: the cursor 40 events back, and a torn last line.
    let store = SqliteStore::open(&dir.path().join("evault.db")).unwrap();
    let key = format!(
        "audit_mirror_cursor:{}",
        mirror.canonicalize().unwrap().display()
    );
    assert_eq!(store.get_meta(&key).unwrap().as_deref(), Some("300"));
    store.set_meta(&key, "260").unwrap();
    drop(store);
    let day = std::fs::read_dir(&mirror)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut text = std::fs::read_to_string(&day).unwrap();
    text.push_str("{\"id\":\"torn");
    std::fs::write(&day, text).unwrap();

    // A crash before anything was mirrored: events committed, no lines.
    let v = Vault::open(config(dir.path())).await.unwrap();
    for n in 300..350 {
        v.record_audit(event(n)).await.unwrap();
    }
    v.shutdown().await.unwrap();
    drop(v);
    assert_eq!(mirrored(&mirror), (0..350).collect::<Vec<_>>());

    // The cursor lost entirely (a vault from before the cursor existed):
    // the files themselves say what is there.
    let store = SqliteStore::open(&dir.path().join("evault.db")).unwrap();
    store.set_meta(&key, "0").unwrap();
    drop(store);
    let v = Vault::open(config(dir.path())).await.unwrap();
    v.record_audit(event(350)).await.unwrap();
    let stopped = v.shutdown().await.unwrap();
    assert_eq!(stopped.audit.map(|a| a.0), Some(351));
    assert_eq!(mirrored(&mirror), (0..351).collect::<Vec<_>>());
    // The mirror's lines are the events as the API returns them.
    let first = v
        .audit_list(&Reader::all("test"), Default::default())
        .await
        .unwrap()
        .items
        .remove(0);
    let line = std::fs::read_to_string(&day).unwrap();
    let parsed: AuditEvent = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    assert_eq!(parsed, first);
}

/// A vault on PostgreSQL in `dir`, as node `node`, with the default lease
/// (3 s: a shorter one could lapse while a loaded test machine stalls).
fn pg_config(dir: &Path, url: &str, node: &str) -> VaultConfig {
    let mut c = config(dir);
    c.store = evault_vault::StoreLocation::Postgres(url.into());
    c.lease.node = Some(node.into());
    c
}

/// On a shared store one vault writes at a time: a second `Vault::open`
/// on the same database starts at once as a standby, which names the
/// leader (not ready; its calls are refused with `Unavailable`); once the
/// first shuts down (giving the lease up), the second leads and continues
/// the same tree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_vault_writes_a_shared_store_at_a_time() {
    let Some(db) = evault_store::testing::postgres::TestDb::create(
        "one_vault_writes_a_shared_store_at_a_time",
    ) else {
        return;
    };
    evault_store::postgres::migrate(db.url()).unwrap();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let v1 = Vault::open(pg_config(d1.path(), db.url(), "node-1"))
        .await
        .unwrap();
    assert_eq!(v1.role(), Role::Leader { epoch: 1 });
    assert_eq!(put(&v1, b"first").await.unwrap().record.leaf_index, 0);
    copy_keys(d1.path(), d2.path());

    // The smallest pool will do: the sequencer, the follower, the
    // checkpointers and the lease's keeper take turns on one connection.
    let mut c2 = pg_config(d2.path(), db.url(), "node-2");
    c2.postgres.pool_size = 1;
    let v2 = Vault::open(c2).await.unwrap();
    assert_eq!(
        v2.role(),
        Role::Standby {
            holder: "node-1".into(),
            epoch: 1,
            leader: evault_vault::Advertise::default(),
        }
    );
    let err = put(&v2, b"refused")
        .await
        .expect_err("a standby writes nothing");
    assert!(
        matches!(&err, VaultError::Unavailable(why) if why.contains("\"node-1\"")),
        "{err}"
    );
    eventually(
        || async {
            v2.health()
                .iter()
                .any(|h| h.component == Component::Lease && h.reason.contains("\"node-1\""))
        },
        "the standby's health board to name the leader",
    )
    .await;
    assert_eq!(put(&v1, b"second").await.unwrap().record.leaf_index, 1);

    v1.shutdown().await.unwrap();
    eventually(|| async { v2.role().is_leader() }, "node-2 to lead").await;
    assert_eq!(put(&v2, b"third").await.unwrap().record.leaf_index, 2);
    assert!(v2.health().is_empty(), "{:?}", v2.health());
    v2.shutdown().await.unwrap();
    assert_eq!(
        db.query_text("SELECT string_agg(DISTINCT node, ',' ORDER BY node) FROM commits")
            .as_deref(),
        Some("node-1,node-2")
    );
}

/// A vault whose lease another took commits nothing (its callers get
/// `Unavailable`, the health board names the lease), and writes again once
/// the other's lease ran out and it took a new one, continuing the tree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vault_that_lost_its_lease_commits_nothing_until_it_holds_one_again() {
    let Some(db) = evault_store::testing::postgres::TestDb::create(
        "a_vault_that_lost_its_lease_commits_nothing_until_it_holds_one_again",
    ) else {
        return;
    };
    evault_store::postgres::migrate(db.url()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let v = Vault::open(pg_config(dir.path(), db.url(), "node-1"))
        .await
        .unwrap();
    assert_eq!(put(&v, b"before").await.unwrap().record.leaf_index, 0);

    // Another takes the lease for two seconds on the database's clock.
    db.execute(
        "UPDATE lease SET epoch = epoch + 1, holder = 'intruder', \
         expires_at = clock_timestamp() + interval '2 seconds'",
    )
    .unwrap();
    let err = put(&v, b"during").await.expect_err("fenced off");
    assert!(
        matches!(&err, VaultError::Unavailable(why) if why.contains("lease")),
        "{err}"
    );
    eventually(
        || async { v.health().iter().any(|h| h.component == Component::Lease) },
        "the health board to name the lost lease",
    )
    .await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let after = loop {
        match put(&v, b"after").await {
            Ok(out) => break out.record.leaf_index,
            Err(VaultError::Unavailable(_)) => {}
            Err(e) => panic!("{e}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting for a commit under a lease taken again"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(after, 1, "the refused record left no gap");
    eventually(
        || async { !v.health().iter().any(|h| h.component == Component::Lease) },
        "the lease to be healthy again",
    )
    .await;
    v.shutdown().await.unwrap();
    // Epoch 2 was the other's: nothing of it in the log.
    assert_eq!(
        db.query_text(
            "SELECT string_agg(DISTINCT epoch::text, ',' ORDER BY epoch::text) FROM commits"
        )
        .as_deref(),
        Some("1,3")
    );
}

/// PostgreSQL options a vault cannot run with are refused before anything
/// is connected to, naming the option.
#[tokio::test]
async fn postgres_options_a_vault_cannot_run_with_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens there: the options are checked first.
    let url = "postgres://nobody@127.0.0.1:1/none";
    type Change = fn(&mut VaultConfig);
    let changes: [(Change, &str); 4] = [
        (|c| c.postgres.pool_size = 0, "store pool size 0"),
        (
            |c| c.postgres.call_timeout = Duration::from_millis(5),
            "store timeout",
        ),
        (
            |c| c.postgres.connect_timeout = Duration::ZERO,
            "store connect timeout",
        ),
        (|c| c.postgres.read_only = true, "read_only"),
    ];
    for (change, named) in changes {
        let mut c = pg_config(dir.path(), url, "node-1");
        change(&mut c);
        let err = Vault::open(c).await.err().expect("refused");
        assert!(
            matches!(&err, VaultError::Invalid(why) if why.contains(named)),
            "{named}: {err}"
        );
    }
}
