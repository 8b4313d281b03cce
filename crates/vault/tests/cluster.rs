//! Several vault nodes on one PostgreSQL database: one leads (holds the
//! write lease and sequences), the others stand by, following the leader
//! through the database, and one takes over when the leader stops or is
//! cut off. Each test creates and drops its own database; without a
//! server they skip loudly (`EVAULT_REQUIRE_POSTGRES=1` makes them fail).

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use evault_store::testing::postgres::TestDb;
use evault_vault::{
    Advertise, Component, LogProof, PutOutcome, Reader, Role, Vault, VaultConfig, VaultError,
};

mod nodes;

use nodes::{copy_keys, eventually, put};

const ORIGIN: &str = "test.example/cluster";

/// Node `node` in `dir` on the database at `url`: checkpoints follow the
/// tree closely, so a standby has something to follow.
fn node_config(dir: &Path, url: &str, node: &str) -> VaultConfig {
    let mut c = VaultConfig::new(dir);
    c.state_dir = Some(dir.join("state"));
    c.origin = Some(ORIGIN.into());
    c.checkpoint_interval = Duration::from_millis(50);
    c.store = evault_vault::StoreLocation::Postgres(url.into());
    c.lease.node = Some(node.into());
    c
}

fn standby_of(holder: &str, role: &Role) -> bool {
    matches!(role, Role::Standby { holder: h, .. } if h == holder)
}

/// The proof of `record` that node `v` serves verifies offline with the
/// log's key.
async fn assert_proven(v: &Vault, record: &PutOutcome) {
    let log = v.evidence_log();
    let proof = log
        .inclusion(&Reader::all("sa:auditor"), &record.record.id, None)
        .await
        .unwrap();
    let LogProof::Evidence(bundle) = proof else {
        panic!("an evidence proof")
    };
    bundle.verify(&log.verifiers(), Some(ORIGIN)).unwrap();
}

/// Every stored checkpoint of the evidence log is consistent with the
/// last one: one linear history, whichever node signed it.
async fn assert_one_history(v: &Vault) -> usize {
    let log = v.evidence_log();
    let all = log.list_checkpoints(None, 1000).await.unwrap();
    let last = all.last().expect("checkpoints").clone();
    for cp in &all {
        // The empty tree is a prefix of every tree: no proof to ask for.
        let hashes = match cp.size {
            0 => Vec::new(),
            from => log.consistency(from, last.size).await.unwrap().proof,
        };
        let proof = evault_verify::ConsistencyProof {
            from: cp.size,
            to: last.size,
            proof: hashes.iter().map(|h| STANDARD.encode(h)).collect(),
        };
        evault_verify::verify_checkpoints(
            &cp.note,
            &last.note,
            &proof,
            &log.verifiers(),
            Some(ORIGIN),
        )
        .unwrap_or_else(|e| panic!("checkpoint {} against {}: {e}", cp.size, last.size));
    }
    all.len()
}

/// Two standbys follow the leader's commits and checkpoints and serve
/// proofs of them that verify; when the leader shuts down one of them
/// leads, continues the same tree, and the other follows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standbys_follow_the_leader_and_one_takes_over_when_it_stops() {
    let Some(db) = TestDb::create("standbys_follow_the_leader_and_one_takes_over") else {
        return;
    };
    evault_store::postgres::migrate(db.url()).unwrap();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let v1 = Vault::open(node_config(dirs[0].path(), db.url(), "node-1"))
        .await
        .unwrap();
    assert!(v1.role().is_leader());
    let mut acked = Vec::new();
    for i in 0..20 {
        acked.push(put(&v1, format!("before {i}").as_bytes()).await.unwrap());
    }
    let mut standbys = Vec::new();
    for (i, d) in dirs.iter().enumerate().skip(1) {
        copy_keys(dirs[0].path(), d.path());
        let v = Vault::open(node_config(d.path(), db.url(), &format!("node-{}", i + 1)))
            .await
            .unwrap();
        assert!(standby_of("node-1", &v.role()), "{:?}", v.role());
        assert!(
            v.health().iter().any(|h| h.component == Component::Lease),
            "a standby is not ready: {:?}",
            v.health()
        );
        let err = put(&v, b"to a standby").await.expect_err("refused");
        assert!(
            matches!(&err, VaultError::Unavailable(why) if why.contains("\"node-1\"")),
            "{err}"
        );
        standbys.push(v);
    }
    for i in 0..30 {
        acked.push(put(&v1, format!("after {i}").as_bytes()).await.unwrap());
    }
    for v in &standbys {
        eventually(
            || async {
                v.evidence_log().checkpoint_size() == 50 && v.evidence_log().head().size == 50
            },
            "a standby to follow the leader's head and checkpoint",
        )
        .await;
        for record in [&acked[0], &acked[25], &acked[49]] {
            assert_proven(v, record).await;
        }
    }

    let stopped = Instant::now();
    v1.shutdown().await.unwrap();
    eventually(
        || async { standbys.iter().any(|v| v.role().is_leader()) },
        "a standby to take over",
    )
    .await;
    eprintln!(
        "a standby led {:?} after the leader stopped",
        stopped.elapsed()
    );
    let (leader, other) = if standbys[0].role().is_leader() {
        (&standbys[0], &standbys[1])
    } else {
        (&standbys[1], &standbys[0])
    };
    let Role::Leader { epoch } = leader.role() else {
        unreachable!()
    };
    assert_eq!(epoch, 2, "one takeover, one new epoch");
    let next = put(leader, b"under the new leader").await.unwrap();
    assert_eq!(next.record.leaf_index, 50, "the same tree, continued");
    let leader_name = leader.config().lease.node.clone().unwrap();
    eventually(
        || async { standby_of(&leader_name, &other.role()) },
        "the other standby to name the new leader",
    )
    .await;
    eventually(
        || async { other.evidence_log().checkpoint_size() == 51 },
        "the other standby to follow the new leader",
    )
    .await;
    assert_proven(other, &next).await;
    assert_proven(leader, &acked[0]).await;
    let checkpoints = assert_one_history(other).await;
    assert!(checkpoints >= 2, "{checkpoints}");
    for v in &standbys {
        v.shutdown().await.unwrap();
    }
    assert_eq!(
        db.query_text("SELECT count(DISTINCT node) FROM commits")
            .as_deref(),
        Some("2"),
        "only the two leaders committed"
    );
}

/// A leader cut off from the database past its lease (its connections
/// refused) loses it to a standby; when it comes back it cannot commit:
/// its first write is fenced off, it becomes a standby naming the new
/// leader, follows it, and the log has no commit of its epoch after the
/// new leader's first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_past_its_lease_comes_back_as_a_standby_and_commits_nothing() {
    let Some(db) = TestDb::create("a_leader_cut_off_past_its_lease") else {
        return;
    };
    evault_store::postgres::migrate(db.url()).unwrap();
    // Node 1 logs in as its own role, so that it alone can be cut off.
    let cut = db.role_name("cut");
    db.execute(&format!("CREATE ROLE {cut} LOGIN SUPERUSER"))
        .unwrap();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let v1 = Vault::open(node_config(d1.path(), &db.url_as(&cut, "unused"), "node-1"))
        .await
        .unwrap();
    let mut acked = vec![put(&v1, b"first").await.unwrap()];
    copy_keys(d1.path(), d2.path());
    let v2 = Vault::open(node_config(d2.path(), db.url(), "node-2"))
        .await
        .unwrap();
    assert!(standby_of("node-1", &v2.role()), "{:?}", v2.role());

    // The cut: node 1's sessions end and it cannot open new ones.
    db.execute(&format!(
        "ALTER ROLE {cut} NOLOGIN; \
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{cut}'"
    ))
    .unwrap();
    let cut_at = Instant::now();
    eventually(|| async { v2.role().is_leader() }, "node-2 to take over").await;
    eprintln!("node-2 led {:?} after node-1 was cut off", cut_at.elapsed());
    acked.push(put(&v2, b"under node-2").await.unwrap());
    assert_eq!(acked[1].record.leaf_index, 1);

    // Back. Whatever it still believes, node 1 commits nothing.
    db.execute(&format!("ALTER ROLE {cut} LOGIN")).unwrap();
    let err = put(&v1, b"from the node that was cut off")
        .await
        .expect_err("fenced off");
    assert!(matches!(err, VaultError::Unavailable(_)), "{err}");
    eventually(
        || async { standby_of("node-2", &v1.role()) },
        "node-1 to come back as a standby naming node-2",
    )
    .await;
    let err = put(&v1, b"again")
        .await
        .expect_err("a standby writes nothing");
    assert!(
        matches!(&err, VaultError::Unavailable(why) if why.contains("\"node-2\"")),
        "{err}"
    );
    acked.push(put(&v2, b"still node-2").await.unwrap());
    eventually(
        || async { v1.evidence_log().checkpoint_size() == 3 },
        "node-1 to follow node-2",
    )
    .await;
    for record in &acked {
        assert_proven(&v1, record).await;
    }
    assert_one_history(&v1).await;
    v1.shutdown().await.unwrap();
    v2.shutdown().await.unwrap();
    assert_eq!(
        db.query_text(
            "SELECT count(*) FROM commits WHERE node = 'node-1' AND seq > \
             (SELECT min(seq) FROM commits WHERE node = 'node-2')"
        )
        .as_deref(),
        Some("0"),
        "no commit of node-1 after node-2 led"
    );
}

/// The embedded store has no lease: its one vault always leads.
#[tokio::test]
async fn a_vault_on_the_embedded_store_leads() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = VaultConfig::new(dir.path());
    c.state_dir = Some(dir.path().join("state"));
    let v = Vault::open(c).await.unwrap();
    assert_eq!(v.role(), Role::Leader { epoch: 0 });
    assert_eq!(v.role().refusal(), None);
    v.shutdown().await.unwrap();
}

/// The leader's advertised address reaches the standbys through the lease:
/// a standby that can forward calls to it is ready; a bad address is
/// refused before anything is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_learns_where_the_leader_takes_forwarded_calls() {
    let Some(db) = TestDb::create("a_standby_learns_where_the_leader_takes_calls") else {
        return;
    };
    evault_store::postgres::migrate(db.url()).unwrap();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut c1 = node_config(d1.path(), db.url(), "node-1");
    c1.lease.advertise = Advertise {
        rest: Some("http://127.0.0.1:18470".into()),
        grpc: Some("http://127.0.0.1:19090".into()),
    };
    let v1 = Vault::open(c1).await.unwrap();
    assert!(v1.role().is_leader());
    copy_keys(d1.path(), d2.path());

    let mut bad = node_config(d2.path(), db.url(), "node-2");
    bad.lease.advertise.rest = Some("https://node-2:8470/path".into());
    let Err(err) = Vault::open(bad).await else {
        panic!("an address with a path is refused")
    };
    assert!(err.to_string().contains("https://HOST:PORT"), "{err}");

    let v2 = Vault::open(node_config(d2.path(), db.url(), "node-2"))
        .await
        .unwrap();
    let role = v2.role();
    let leader = role.forward_to().expect("the leader's address");
    assert_eq!(leader.rest.as_deref(), Some("http://127.0.0.1:18470"));
    assert_eq!(leader.grpc.as_deref(), Some("http://127.0.0.1:19090"));
    assert!(
        !v2.health().iter().any(|h| h.component == Component::Lease),
        "a standby that forwards is ready: {:?}",
        v2.health()
    );
    v2.shutdown().await.unwrap();
    v1.shutdown().await.unwrap();
}

/// Key rotation on a shared store. Without a next signer it is refused:
/// the key file it would make would be on the leader alone. With the same
/// next signer on the nodes, a standby takes up the new key set from the
/// store (the new key listed as active) and, once it leads, signs with
/// both keys of the overlap. A standby that lacks the new key says so on
/// its health board instead of ever signing with the old keys alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_on_the_leader_is_taken_up_by_the_standbys() {
    use std::sync::Arc;

    use evault_note::{Ed25519Signer, Signer};
    use evault_vault::{KeyState, LogId, LogSigner};
    let Some(db) = TestDb::create("a_rotation_on_the_leader_is_taken_up_by_the_standbys") else {
        return;
    };
    evault_store::postgres::migrate(db.url()).unwrap();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let v1 = Vault::open(node_config(dirs[0].path(), db.url(), "node-1"))
        .await
        .unwrap();
    put(&v1, b"one").await.unwrap();
    let err = v1
        .rotate_key(LogId::Evidence, Duration::from_secs(3600))
        .await
        .expect_err("refused without a next signer");
    assert!(
        matches!(&err, VaultError::Conflict(why) if why.contains("--next-signer")),
        "{err}"
    );
    let old = v1.evidence_log().verifier_key();
    v1.shutdown().await.unwrap();
    drop(v1);

    let (skey, vkey) = evault_note::generate_ed25519(ORIGIN).unwrap();
    let next: Arc<dyn Signer> =
        Arc::new(Ed25519Signer::from_signer_key(skey.expose_secret()).unwrap());
    let with_next = |dir: &Path, node: &str| {
        let mut c = node_config(dir, db.url(), node);
        c.next_signer = Some(LogSigner::new(next.clone()));
        c
    };
    let v1 = Vault::open(with_next(dirs[0].path(), "node-1"))
        .await
        .unwrap();
    assert!(v1.role().is_leader());
    copy_keys(dirs[0].path(), dirs[1].path());
    copy_keys(dirs[0].path(), dirs[2].path());
    let v2 = Vault::open(with_next(dirs[1].path(), "node-2"))
        .await
        .unwrap();
    let v3 = Vault::open(node_config(dirs[2].path(), db.url(), "node-3"))
        .await
        .unwrap();
    assert!(standby_of("node-1", &v2.role()) && standby_of("node-1", &v3.role()));

    let keys = v1
        .rotate_key(LogId::Evidence, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(keys[1].verifier_key, vkey.as_str());
    assert_eq!(keys[1].file, None, "the next signer's key: no key file");
    put(&v1, b"two").await.unwrap();
    eventually(
        || async {
            v2.keys(LogId::Evidence)
                .unwrap()
                .iter()
                .any(|e| e.verifier_key == vkey.as_str() && e.state == KeyState::Active)
        },
        "the standby to take up the rotation",
    )
    .await;
    eventually(
        || async {
            v3.health().iter().any(|h| {
                h.component == Component::Signer(LogId::Evidence)
                    && h.reason.contains(vkey.as_str())
            })
        },
        "the standby without the new key to say it cannot sign",
    )
    .await;
    assert!(
        v3.keys(LogId::Evidence).unwrap().len() == 1,
        "its key set stays as it was"
    );
    v3.shutdown().await.unwrap();
    v1.shutdown().await.unwrap();
    eventually(|| async { v2.role().is_leader() }, "node-2 to take over").await;
    let three = put(&v2, b"three").await.unwrap();
    let log = v2.evidence_log();
    log.wait_for_checkpoint(three.record.leaf_index + 1, Duration::from_secs(30))
        .await
        .unwrap();
    let note = log.checkpoint_at(log.checkpoint_size()).await.unwrap().note;
    for key in [&old, vkey.as_str()] {
        let mut trusted = evault_note::Verifiers::new();
        trusted
            .insert_boxed(evault_note::verifier_for(key).unwrap())
            .unwrap();
        assert!(
            evault_note::open(note.as_bytes(), &trusted).is_ok(),
            "the new leader's checkpoint is signed by {key}: {note}"
        );
    }
    v2.shutdown().await.unwrap();
}
