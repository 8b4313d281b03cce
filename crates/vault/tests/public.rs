//! What the vault publishes, and to whom: origins derived from the public
//! URL (C2SP tlog-tiles: the tiles prefix without scheme and trailing
//! slashes) for new logs only, and the audit log's entry bundles, which
//! only a reader that sees every event gets.

use std::path::Path;
use std::time::{Duration, SystemTime};

use evault_merkle::tiles::{TileId, TilePath, parse_entry_bundle};
use evault_vault::{Reader, Vault, VaultConfig, VaultError, tlog_origin};
use evault_verify::{AuditEvent, Outcome};

fn config(dir: &Path) -> VaultConfig {
    let mut c = VaultConfig::new(dir.join("data"));
    // Never the user's state directory.
    c.state_dir = Some(dir.join("state"));
    c.checkpoint_interval = Duration::from_millis(20);
    c
}

#[test]
fn origins_follow_the_tlog_tiles_prefix_of_the_public_url() {
    for (url, evidence, audit) in [
        (
            "https://vault.example.com/",
            "vault.example.com/tlog",
            "vault.example.com/tlog-audit",
        ),
        (
            "https://vault.example.com",
            "vault.example.com/tlog",
            "vault.example.com/tlog-audit",
        ),
        (
            "HTTP://10.0.0.1:8470/evault//",
            "10.0.0.1:8470/evault/tlog",
            "10.0.0.1:8470/evault/tlog-audit",
        ),
    ] {
        assert_eq!(
            tlog_origin(url, evault_vault::EVIDENCE_TILES_PREFIX).unwrap(),
            evidence
        );
        assert_eq!(
            tlog_origin(url, evault_vault::AUDIT_TILES_PREFIX).unwrap(),
            audit
        );
    }
    for bad in [
        "vault.example.com",
        "ftp://vault.example.com",
        "https://",
        "https:///x",
        "https://a b",
        "https://x/?q=1",
        "https://x/#f",
        "https://user@x/",
        "https://x/a+b",
        "https://x//y",
    ] {
        let e = tlog_origin(bad, "tlog").expect_err(bad);
        assert!(matches!(e, VaultError::Invalid(_)), "{bad}: {e}");
        assert!(e.to_string().contains("public URL"), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_vault_takes_its_origins_from_the_public_url_and_an_existing_one_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.public_url = Some("https://vault.example.com/evault/".into());
    let v = Vault::open(c).await.unwrap();
    assert_eq!(v.evidence_log().origin(), "vault.example.com/evault/tlog");
    let audit = v.audit_log().unwrap();
    assert_eq!(audit.origin(), "vault.example.com/evault/tlog-audit");
    // The checkpoints carry it (and so does the key's name).
    let cp = v.evidence_log().latest_checkpoint().await.unwrap();
    assert!(
        cp.note.starts_with("vault.example.com/evault/tlog\n"),
        "{}",
        cp.note
    );
    let key = v.evidence_log().verifier_key();
    assert!(key.starts_with("vault.example.com/evault/tlog+"), "{key}");
    v.shutdown().await.unwrap();
    // Every handle goes: the data directory's lock is released.
    drop((audit, v));

    // Moved to another address: the logs keep their origins (a warning is
    // logged), they are not refused.
    let mut c = config(dir.path());
    c.public_url = Some("https://elsewhere.example/".into());
    let v = Vault::open(c).await.unwrap();
    assert_eq!(v.evidence_log().origin(), "vault.example.com/evault/tlog");
    assert_eq!(
        v.audit_log().unwrap().origin(),
        "vault.example.com/evault/tlog-audit"
    );
    v.shutdown().await.unwrap();
    drop(v);

    // A vault made without a public URL keeps its origin when one is given
    // later.
    let other = tempfile::tempdir().unwrap();
    let v = Vault::open(config(other.path())).await.unwrap();
    let first = v.evidence_log().origin().to_string();
    assert!(first.starts_with("evault.local/"), "{first}");
    v.shutdown().await.unwrap();
    drop(v);
    let mut c = config(other.path());
    c.public_url = Some("https://vault.example.com/".into());
    let v = Vault::open(c).await.unwrap();
    assert_eq!(v.evidence_log().origin(), first);
    v.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_origin_wins_over_the_public_url_and_a_bad_url_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.origin = Some("example.org/chosen".into());
    c.public_url = Some("https://vault.example.com/".into());
    let v = Vault::open(c).await.unwrap();
    assert_eq!(v.evidence_log().origin(), "example.org/chosen");
    // The audit log has no origin of its own configured: its prefix's.
    assert_eq!(
        v.audit_log().unwrap().origin(),
        "vault.example.com/tlog-audit"
    );
    v.shutdown().await.unwrap();

    let bad = tempfile::tempdir().unwrap();
    let mut c = config(bad.path());
    c.public_url = Some("vault.example.com".into());
    let e = Vault::open(c).await.err().expect("refused");
    assert!(e.to_string().contains("https://"), "{e}");
}

fn event(principal: &str) -> AuditEvent {
    AuditEvent {
        id: String::new(),
        leaf_index: 0,
        time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        request_id: uuid::Uuid::now_v7().to_string(),
        principal: principal.into(),
        key_id: None,
        auth_method: "none".into(),
        protocol: "http".into(),
        operation: "health.live".into(),
        resource: "/healthz".into(),
        outcome: Outcome::Success,
        status: 200,
        client: "127.0.0.1:1".into(),
        params_digest: "0".repeat(64),
        reason: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_entry_bundles_need_a_reader_that_sees_every_event() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.origin = Some("test.example/public".into());
    let v = Vault::open(c).await.unwrap();
    for p in ["alice", "bob", "alice"] {
        v.record_audit(event(p)).await.unwrap();
    }
    let audit = v.audit_log().unwrap();
    let bundle = TilePath::Entries { index: 0, width: 3 };

    // An ingester reading its own events may not read a bundle of everyone's.
    let e = audit
        .tile(&Reader::own("alice"), bundle)
        .await
        .expect_err("an own-scoped reader is refused");
    assert!(matches!(e, VaultError::Hidden { .. }), "{e}");

    let data = audit.tile(&Reader::all("auditor"), bundle).await.unwrap();
    let entries = parse_entry_bundle(&data).unwrap();
    assert_eq!(entries.len(), 3);
    let principals: Vec<String> = entries
        .iter()
        .map(|e| {
            serde_json::from_slice::<serde_json::Value>(e).unwrap()["principal"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(principals, ["alice", "bob", "alice"]);

    // Hash tiles of the audit log, and the evidence log's bundles, are
    // public log data: any reader gets them.
    let hashes = TilePath::Hashes(TileId {
        level: 0,
        index: 0,
        width: 3,
    });
    assert_eq!(
        audit
            .tile(&Reader::own("alice"), hashes)
            .await
            .unwrap()
            .len(),
        3 * 32
    );
    v.shutdown().await.unwrap();
}
