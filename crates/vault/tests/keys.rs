//! Key rotation: checkpoints before, during and after a rotation verify
//! with the right key sets; the key events are in the log, signed by both
//! keys; a restart in the middle keeps the keys and the fork guard.

use std::path::Path;
use std::time::Duration;

use evault_note::{Verifiers, open, verifier_for};
use evault_store::ListQuery;
use evault_vault::{
    KEY_EVENT_PRINCIPAL, KeyState, LogId, PutRequest, Reader, Vault, VaultConfig, VaultError,
};
use evault_verify::key_event::{KeyAction, KeyEvent, LABEL_EVENT};

const ORIGIN: &str = "test.example/keys";

fn config(dir: &Path) -> VaultConfig {
    let mut c = VaultConfig::new(dir.join("data"));
    c.state_dir = Some(dir.join("state"));
    c.origin = Some(ORIGIN.into());
    c.checkpoint_interval = Duration::from_millis(20);
    c
}

/// Puts a record and returns the checkpoint that covers it.
async fn put_and_checkpoint(v: &Vault, body: &[u8]) -> String {
    let mut up = v.upload();
    up.write(body).await.unwrap();
    let payload = up.finish().await.unwrap();
    let out = v
        .put(PutRequest {
            content_type: "text/plain".into(),
            labels: Default::default(),
            payload,
            principal: "sa:ci".into(),
            idempotency_key: None,
            audit: None,
        })
        .await
        .unwrap();
    let log = v.evidence_log();
    log.wait_for_checkpoint(out.record.leaf_index + 1, Duration::from_secs(30))
        .await
        .unwrap();
    let size = log.checkpoint_size();
    log.checkpoint_at(size).await.unwrap().note
}

/// The signed head files in a state directory, sorted.
fn head_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("head-") && !n.ends_with(".tmp"))
        .collect();
    names.sort();
    names
}

fn known(keys: &[&str]) -> Verifiers {
    let mut v = Verifiers::new();
    for k in keys {
        v.insert_boxed(verifier_for(k).unwrap()).unwrap();
    }
    v
}

/// Whether `note` carries a valid signature by each of `keys`.
fn signed_by_each(note: &str, keys: &[&str]) -> bool {
    keys.iter()
        .all(|k| open(note.as_bytes(), &known(&[k])).is_ok())
}

/// The key event records, in log order, with their events verified
/// against `trusted` (plus the subject of an `add`).
async fn key_events(v: &Vault, trusted: &[&str]) -> Vec<(u64, KeyEvent)> {
    let page = v
        .list(
            &Reader::all("test"),
            ListQuery {
                labels: vec![],
                content_type: Some(evault_verify::KEY_EVENT_TYPE.into()),
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    page.items
        .into_iter()
        .map(|r| {
            assert_eq!(r.ingested_by, KEY_EVENT_PRINCIPAL);
            assert!(r.labels.contains_key(LABEL_EVENT));
            let (event, note) = KeyEvent::from_labels(&r.labels).unwrap().unwrap();
            let mut keys: Vec<&str> = trusted.to_vec();
            if !keys.contains(&event.subject.as_str()) {
                keys.push(&event.subject);
            }
            event.open(&note, &known(&keys)).unwrap();
            (r.leaf_index, event)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_before_during_and_after_a_rotation_verify_with_the_right_keys() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path());
    let v = Vault::open(c.clone()).await.unwrap();
    let a = v.evidence_log().verifier_key();
    let before = put_and_checkpoint(&v, b"before").await;
    assert!(signed_by_each(&before, &[&a]));
    let heads = head_files(&dir.path().join("state"));

    // Rotate: B is made (0600, in the data dir) and announced; A retires
    // after the overlap.
    let keys = v
        .rotate_key(LogId::Evidence, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_eq!(keys[0].verifier_key, a);
    assert_eq!(keys[0].state, KeyState::Retiring);
    assert_eq!(keys[1].state, KeyState::Active);
    let b = keys[1].verifier_key.clone();
    let file = dir.path().join("data").join(keys[1].file.as_ref().unwrap());
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let added_at = keys[1].added_at.unwrap();
    // The new key is what verifiers should pin from now on; both sign.
    let info = v.evidence_log().info();
    assert_eq!(info.verifier_key, b);
    assert_eq!(info.verifier_keys, vec![a.clone(), b.clone()]);

    // A second rotation waits for the first to end.
    let err = v
        .rotate_key(LogId::Evidence, Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(matches!(err, VaultError::Conflict(_)), "{err}");
    // The audit log keeps its key.
    assert!(matches!(
        v.rotate_key(LogId::Audit, Duration::from_secs(60)).await,
        Err(VaultError::Invalid(_))
    ));

    // During the overlap every checkpoint carries both signatures: it
    // verifies with {A}, with {B}, and with both required.
    let during = put_and_checkpoint(&v, b"during").await;
    assert!(signed_by_each(&during, &[&a, &b]), "{during}");

    // End the overlap: A is retired by a record at leaf L.
    let keys = v.retire_keys(LogId::Evidence).await.unwrap();
    assert_eq!(keys[0].state, KeyState::Retired);
    let retired_at = keys[0].retired_at.unwrap();
    assert!(retired_at > added_at);
    assert_eq!(v.evidence_log().info().verifier_keys, vec![b.clone()]);
    let after = put_and_checkpoint(&v, b"after").await;
    assert!(signed_by_each(&after, &[&b]));
    assert!(
        !signed_by_each(&after, &[&a]),
        "a checkpoint past the retirement carries A's signature: {after}"
    );

    // Old checkpoints still verify with the old key, served by the vault.
    let first = v.evidence_log().checkpoint_at(1).await.unwrap().note;
    assert!(signed_by_each(&first, &[&a]));

    // The history of keys is in the log: add B (signed by A and B), then
    // retire A (signed by A and B), at the leaves the key set names.
    let events = key_events(&v, &[&a, &b]).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0].0, added_at);
    assert_eq!(events[0].1.action, KeyAction::Add);
    assert_eq!(events[0].1.subject, b);
    assert_eq!(events[1].0, retired_at);
    assert_eq!(events[1].1.action, KeyAction::Retire);
    assert_eq!(events[1].1.subject, a);

    // A restart keeps the key set and signs with B alone; the fork guard's
    // head file is the same one (named by the log's first key).
    v.shutdown().await.unwrap();
    drop(v);
    let v = Vault::open(c.clone()).await.unwrap();
    assert_eq!(v.evidence_log().verifier_key(), b);
    let again = put_and_checkpoint(&v, b"again").await;
    assert!(signed_by_each(&again, &[&b]) && !signed_by_each(&again, &[&a]));
    assert_eq!(head_files(&dir.path().join("state")), heads);
    // fsck of the running vault checks every checkpoint with the key set.
    let report = tokio::task::spawn_blocking({
        let v = v.clone();
        move || v.fsck(&Default::default(), &|_, _| {}, &|| false)
    })
    .await
    .unwrap()
    .unwrap();
    assert!(report.clean && report.complete, "{report:?}");
    v.shutdown().await.unwrap();
    drop(v);

    // So does fsck of the stopped data directory, from the stored key set,
    // after the operator removed the retired key file.
    std::fs::remove_file(dir.path().join("data/log.key")).unwrap();
    let report =
        evault_vault::fsck_data_dir(&c.data_dir, &Default::default(), &|_, _| {}, &|| false)
            .unwrap();
    assert!(report.clean && report.complete, "{report:?}");
    // And the vault starts without it: A signs nothing any more.
    let v = Vault::open(c).await.unwrap();
    assert!(signed_by_each(
        &put_and_checkpoint(&v, b"no A").await,
        &[&b]
    ));
    v.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_during_the_overlap_keeps_both_keys_and_the_timer_retires_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path());
    let v = Vault::open(c.clone()).await.unwrap();
    let a = v.evidence_log().verifier_key();
    put_and_checkpoint(&v, b"one").await;
    let keys = v
        .rotate_key(LogId::Evidence, Duration::from_secs(3600))
        .await
        .unwrap();
    let b = keys[1].verifier_key.clone();
    v.shutdown().await.unwrap();
    drop(v);

    let v = Vault::open(c.clone()).await.unwrap();
    assert_eq!(v.keys(LogId::Evidence).unwrap(), keys);
    let during = put_and_checkpoint(&v, b"two").await;
    assert!(signed_by_each(&during, &[&a, &b]));
    v.shutdown().await.unwrap();
    drop(v);

    // A second rotation waits while the overlap runs.
    let v = Vault::open(c.clone()).await.unwrap();
    let keys = v
        .rotate_key(LogId::Evidence, Duration::from_secs(3600))
        .await;
    assert!(matches!(keys, Err(VaultError::Conflict(_))));
    // An overlap of zero: the timer retires the old key at once.
    let short = tempfile::tempdir().unwrap();
    let c2 = config(short.path());
    let v2 = Vault::open(c2).await.unwrap();
    put_and_checkpoint(&v2, b"x").await;
    v2.rotate_key(LogId::Evidence, Duration::ZERO)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let keys = v2.keys(LogId::Evidence).unwrap();
        if keys[0].state == KeyState::Retired {
            assert_eq!(keys[1].state, KeyState::Active);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the timer did not retire the old key: {keys:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    v2.shutdown().await.unwrap();
    v.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_key_that_is_not_the_logs_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path());
    let v = Vault::open(c.clone()).await.unwrap();
    put_and_checkpoint(&v, b"one").await;
    v.rotate_key(LogId::Evidence, Duration::from_secs(3600))
        .await
        .unwrap();
    v.shutdown().await.unwrap();
    drop(v);
    // Another key file in place of log.key.
    let other = dir.path().join("other.key");
    let (skey, _) = evault_note::generate_ed25519(ORIGIN).unwrap();
    std::fs::write(&other, skey.expose_secret()).unwrap();
    let mut bad = c.clone();
    bad.key_file = Some(other);
    let err = Vault::open(bad).await.err().unwrap();
    assert!(
        err.to_string().contains("not one of the log's keys"),
        "{err}"
    );
    // The rotated key file is gone: A still signs, but B cannot.
    let keys_dir = dir.path().join("data");
    for e in std::fs::read_dir(&keys_dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("log-") && name.ends_with(".key") {
            std::fs::rename(&p, dir.path().join(name)).unwrap();
        }
    }
    let err = Vault::open(c).await.err().unwrap();
    assert!(err.to_string().contains("log-"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_next_signer_is_the_key_a_rotation_moves_to() {
    use std::sync::Arc;

    use evault_note::{Ed25519Signer, Signer};
    use evault_vault::LogSigner;
    let dir = tempfile::tempdir().unwrap();
    let (skey, vkey) = evault_note::generate_ed25519(ORIGIN).unwrap();
    let b: Arc<dyn Signer> =
        Arc::new(Ed25519Signer::from_signer_key(skey.expose_secret()).unwrap());
    let mut c = config(dir.path());
    let v = Vault::open(c.clone()).await.unwrap();
    let a = v.evidence_log().verifier_key();
    put_and_checkpoint(&v, b"one").await;
    v.shutdown().await.unwrap();
    drop(v);

    // The next key is held by the embedding program (a token): the
    // rotation moves to it and writes no key file.
    c.next_signer = Some(LogSigner::new(b.clone()));
    let v = Vault::open(c.clone()).await.unwrap();
    let keys = v
        .rotate_key(LogId::Evidence, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(keys[1].verifier_key, vkey.as_str());
    assert_eq!(keys[1].file, None);
    let during = put_and_checkpoint(&v, b"two").await;
    assert!(signed_by_each(&during, &[&a, vkey.as_str()]));
    v.shutdown().await.unwrap();
    drop(v);

    // Mid-overlap, B must still be configured.
    let mut without = c.clone();
    without.next_signer = None;
    let err = Vault::open(without).await.err().unwrap();
    assert!(err.to_string().contains(vkey.as_str()), "{err}");

    // After the retirement B becomes the signer; A's key file can go.
    let v = Vault::open(c.clone()).await.unwrap();
    v.retire_keys(LogId::Evidence).await.unwrap();
    // A next signer that is already one of the log's keys is refused.
    assert!(matches!(
        v.rotate_key(LogId::Evidence, Duration::from_secs(60)).await,
        Err(VaultError::Conflict(_))
    ));
    v.shutdown().await.unwrap();
    drop(v);
    std::fs::remove_file(dir.path().join("data/log.key")).unwrap();
    let mut moved = c.clone();
    moved.next_signer = None;
    moved.signer = Some(LogSigner::new(b));
    let v = Vault::open(moved).await.unwrap();
    let after = put_and_checkpoint(&v, b"three").await;
    assert!(signed_by_each(&after, &[vkey.as_str()]) && !signed_by_each(&after, &[&a]));
    v.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_cut_short_after_its_add_record_is_finished_by_the_next_one() {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;

    use evault_note::{Ed25519Signer, Signer};
    use evault_store::LogStore as _;
    use evault_verify::KEY_EVENT_TYPE;
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path());
    let v = Vault::open(c.clone()).await.unwrap();
    let a = v.evidence_log().verifier_key();
    put_and_checkpoint(&v, b"one").await;

    // What a crash leaves after steps 1 and 2: the new key's file, the key
    // recorded as pending, and the `add` record committed; the key set
    // not yet updated.
    let (skey, p_vkey) = evault_note::generate_ed25519(ORIGIN).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dir.path().join("data/log-pending.key"))
        .unwrap();
    writeln!(f, "{}", skey.expose_secret()).unwrap();
    let p = Ed25519Signer::from_signer_key(skey.expose_secret()).unwrap();
    let a_key = std::fs::read_to_string(dir.path().join("data/log.key")).unwrap();
    let a_signer = Ed25519Signer::from_signer_key(a_key.trim()).unwrap();
    let event = KeyEvent {
        origin: ORIGIN.into(),
        action: KeyAction::Add,
        subject: p_vkey.as_str().into(),
    };
    let note = evault_note::sign(&event.statement(), &[&a_signer as &dyn Signer, &p]).unwrap();
    let mut up = v.upload();
    up.write(note.as_bytes()).await.unwrap();
    let payload = up.finish().await.unwrap();
    // As the rotation writes it: key-event labels are the vault's own.
    let first = v
        .put_trusted(PutRequest {
            content_type: KEY_EVENT_TYPE.into(),
            labels: event.labels(&note).unwrap(),
            payload,
            principal: KEY_EVENT_PRINCIPAL.into(),
            idempotency_key: Some(format!("key-event/add/{:08x}", p.key_id())),
            audit: None,
        })
        .await
        .unwrap();
    v.shutdown().await.unwrap();
    drop(v);
    {
        let store = evault_vault::SqliteStore::open(&dir.path().join("data/evault.db")).unwrap();
        let set = serde_json::json!([
            {"verifier_key": a, "state": "active"},
            {"verifier_key": p_vkey.as_str(), "state": "pending", "file": "log-pending.key"},
        ]);
        store.set_meta("keys/evidence", &set.to_string()).unwrap();
    }

    // The pending key signs nothing yet.
    let v = Vault::open(c).await.unwrap();
    let cp = put_and_checkpoint(&v, b"two").await;
    assert!(signed_by_each(&cp, &[&a]) && !signed_by_each(&cp, &[p_vkey.as_str()]));
    // The next rotation finishes with it: the same record (a replay), no
    // second key, no second `add`.
    let keys = v
        .rotate_key(LogId::Evidence, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_eq!(keys[1].verifier_key, p_vkey.as_str());
    assert_eq!(keys[1].added_at, Some(first.record.leaf_index));
    let events = key_events(&v, &[&a]).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let cp = put_and_checkpoint(&v, b"three").await;
    assert!(signed_by_each(&cp, &[&a, p_vkey.as_str()]));
    v.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_key_cannot_be_the_evidence_logs_next_key() {
    use std::sync::Arc;

    use evault_note::{Ed25519Signer, Signer};
    use evault_vault::LogSigner;
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    let v = Vault::open(c.clone()).await.unwrap();
    let audit_origin = v.audit_log().unwrap().origin().to_string();
    v.shutdown().await.unwrap();
    drop(v);
    // The audit log's key, renamed after the evidence origin, as the next
    // evidence key: refused, the logs keep apart keys.
    let text = std::fs::read_to_string(dir.path().join("data/audit.key")).unwrap();
    let audit = Ed25519Signer::from_signer_key(text.trim()).unwrap();
    assert_eq!(audit.name(), audit_origin);
    let seed = {
        // Same key material under the evidence origin: the seed is the
        // last field of PRIVATE+KEY+<name>+<id>+<base64(type || seed)>.
        use base64::Engine as _;
        let data = text.trim().splitn(5, '+').nth(4).unwrap();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap();
        <[u8; 32]>::try_from(&raw[1..]).unwrap()
    };
    let same: Arc<dyn Signer> = Arc::new(Ed25519Signer::from_seed(ORIGIN, &seed).unwrap());
    c.next_signer = Some(LogSigner::new(same));
    let err = Vault::open(c).await.err().unwrap();
    assert!(err.to_string().contains("needs its own"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_name_the_key_and_what_to_do() {
    use std::sync::Arc;

    use evault_note::{Ed25519Signer, Signer};
    use evault_store::LogStore as _;
    use evault_vault::LogSigner;
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path());
    let v = Vault::open(c.clone()).await.unwrap();
    put_and_checkpoint(&v, b"one").await;
    // An overlap longer than a year is refused before anything happens.
    let err = v
        .rotate_key(LogId::Evidence, Duration::from_secs(400 * 86_400))
        .await
        .unwrap_err();
    assert!(matches!(err, VaultError::Invalid(_)), "{err}");
    assert_eq!(v.keys(LogId::Evidence).unwrap().len(), 1);
    let keys = v
        .rotate_key(LogId::Evidence, Duration::from_secs(3600))
        .await
        .unwrap();
    let b_file = dir.path().join("data").join(keys[1].file.as_ref().unwrap());
    v.shutdown().await.unwrap();
    drop(v);

    // A next signer named after another origin.
    let (skey, _) = evault_note::generate_ed25519("other.example/log").unwrap();
    let other: Arc<dyn Signer> =
        Arc::new(Ed25519Signer::from_signer_key(skey.expose_secret()).unwrap());
    let mut named = c.clone();
    named.next_signer = Some(LogSigner::new(other));
    let err = Vault::open(named).await.err().unwrap();
    assert!(err.to_string().contains("named after the"), "{err}");

    // B's file holding another key of the log's name.
    let b_text = std::fs::read(&b_file).unwrap();
    let (skey, _) = evault_note::generate_ed25519(ORIGIN).unwrap();
    std::fs::write(&b_file, format!("{}\n", skey.expose_secret())).unwrap();
    let err = Vault::open(c.clone()).await.err().unwrap();
    assert!(err.to_string().contains("not the log's key"), "{err}");
    std::fs::write(&b_file, &b_text).unwrap();

    // A (still signing during the overlap) without its key file.
    let a_file = dir.path().join("data/log.key");
    let a_text = std::fs::read(&a_file).unwrap();
    std::fs::remove_file(&a_file).unwrap();
    let err = Vault::open(c.clone()).await.err().unwrap();
    assert!(err.to_string().contains("still signs"), "{err}");
    std::fs::write(&a_file, &a_text).unwrap();

    // An empty stored key set is damage, not a fresh start.
    {
        let store = evault_vault::SqliteStore::open(&dir.path().join("data/evault.db")).unwrap();
        let set = store.get_meta("keys/evidence").unwrap().unwrap();
        store.set_meta("keys/evidence", "[]").unwrap();
        drop(store);
        let err = Vault::open(c.clone()).await.err().unwrap();
        assert!(err.to_string().contains("empty"), "{err}");
        let store = evault_vault::SqliteStore::open(&dir.path().join("data/evault.db")).unwrap();
        // A pending key whose file is gone: the next rotation says so (409).
        let mut entries: serde_json::Value = serde_json::from_str(&set).unwrap();
        entries.as_array_mut().unwrap().push(serde_json::json!(
            {"verifier_key": evault_note::generate_ed25519(ORIGIN).unwrap().1.as_str(),
             "state": "pending", "file": "log-gone.key"}
        ));
        store
            .set_meta("keys/evidence", &entries.to_string())
            .unwrap();
    }
    let v = Vault::open(c).await.unwrap();
    v.retire_keys(LogId::Evidence).await.unwrap();
    let err = v
        .rotate_key(LogId::Evidence, Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, VaultError::Conflict(why) if why.contains("log-gone.key")),
        "{err}"
    );
    v.shutdown().await.unwrap();
}
