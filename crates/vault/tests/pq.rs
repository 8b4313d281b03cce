//! ML-DSA-44 beside Ed25519: with `pq_key_file` every checkpoint carries
//! both signatures, Ed25519 first. A verifier that knows either key opens
//! it and skips the other line as an unknown key's (the signed-note rules
//! Go's `sumdb/note` follows); one that knows both verifies both.

use std::path::Path;
use std::time::Duration;

use evault_note::{
    MlDsaCosigner, Signature, Verifiers, generate_mldsa44, open, parse_verifier_key, verifier_for,
};
use evault_vault::{PutRequest, Vault, VaultConfig, VaultError};

#[macro_use]
mod drivers;

const ORIGIN: &str = "test.example/pq";

fn config(dir: &Path) -> VaultConfig {
    let mut c = VaultConfig::new(dir.join("data"));
    c.store = drivers::store();
    // Never the user's state directory.
    c.state_dir = Some(dir.join("state"));
    c.origin = Some(ORIGIN.into());
    c.checkpoint_interval = Duration::from_millis(20);
    c
}

async fn put(v: &Vault, body: &[u8]) -> u64 {
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
    let leaf = out.record.leaf_index;
    v.evidence_log()
        .wait_for_checkpoint(leaf + 1, Duration::from_secs(30))
        .await
        .unwrap();
    leaf
}

fn known(keys: &[&str]) -> Verifiers {
    let mut v = Verifiers::new();
    for k in keys {
        v.insert_boxed(verifier_for(k).unwrap()).unwrap();
    }
    v
}

fn ids(sigs: &[Signature]) -> Vec<u32> {
    sigs.iter().map(|s| s.key_id).collect()
}

on_every_store! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_checkpoint_carries_both_signatures_and_opens_with_either_key() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path());
        let pq_file = dir.path().join("data").join("log-mldsa.key");
        c.pq_key_file = Some(pq_file.clone());
        c.audit.pq_key_file = Some(dir.path().join("data").join("audit-mldsa.key"));
        let v = Vault::open(c.clone()).await.unwrap();

        // Made on first start, 0600, named after the origin.
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&pq_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let info = v.evidence_log().info();
        assert_eq!(info.verifier_keys.len(), 2, "{info:?}");
        assert_eq!(info.verifier_keys[0], info.verifier_key);
        let (ed, pq) = (info.verifier_keys[0].clone(), info.verifier_keys[1].clone());
        let (ed_id, pq_id) = {
            let (e, p) = (
                parse_verifier_key(&ed).unwrap(),
                parse_verifier_key(&pq).unwrap(),
            );
            assert_eq!((e.alg, p.alg), (0x01, 0x06));
            assert_eq!((e.name.as_str(), p.name.as_str()), (ORIGIN, ORIGIN));
            (e.key_id, p.key_id)
        };
        // The audit log signs with its own pair.
        let audit = v.audit_log().unwrap().info();
        assert_eq!(audit.verifier_keys.len(), 2);
        assert!(!audit.verifier_keys.contains(&pq));

        put(&v, b"one").await;
        let note = v.evidence_log().latest_checkpoint().await.unwrap().note;
        // Ed25519's line first: a client that reads only the first signature
        // (or needs an Ed25519 one, as C2SP tlog-tiles asks) finds it.
        let lines: Vec<&str> = note.lines().filter(|l| l.starts_with('\u{2014}')).collect();
        assert_eq!(lines.len(), 2, "{note}");
        let opened = open(note.as_bytes(), &known(&[&ed])).unwrap();
        assert_eq!(ids(&opened.verified), [ed_id]);
        assert_eq!(
            ids(&opened.unverified),
            [pq_id],
            "the ML-DSA line is skipped"
        );
        let opened = open(note.as_bytes(), &known(&[&pq])).unwrap();
        assert_eq!(ids(&opened.verified), [pq_id]);
        assert_eq!(ids(&opened.unverified), [ed_id]);
        let opened = open(note.as_bytes(), &known(&[&ed, &pq])).unwrap();
        assert_eq!(ids(&opened.verified), [ed_id, pq_id]);
        assert!(opened.unverified.is_empty());
        v.shutdown().await.unwrap();
        drop(v);

        // Restarted, it loads the same key and goes on signing with both.
        let v = Vault::open(c).await.unwrap();
        assert_eq!(
            v.evidence_log().info().verifier_keys,
            [ed.clone(), pq.clone()]
        );
        put(&v, b"two").await;
        let note = v.evidence_log().latest_checkpoint().await.unwrap().note;
        let opened = open(note.as_bytes(), &known(&[&ed, &pq])).unwrap();
        assert_eq!(ids(&opened.verified), [ed_id, pq_id]);
        v.shutdown().await.unwrap();
        drop(v);
    }
}

on_every_store! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_log_with_history_takes_an_ml_dsa_key_only_when_given_one() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        let v = Vault::open(c.clone()).await.unwrap();
        put(&v, b"before").await;
        let ed = v.evidence_log().verifier_key();
        let before = v.evidence_log().latest_checkpoint().await.unwrap();
        v.shutdown().await.unwrap();
        drop(v);
        let heads: Vec<_> = std::fs::read_dir(dir.path().join("state"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();

        // No key file: not made behind the operator's back.
        let mut with_pq = c.clone();
        let pq_file = dir.path().join("log-mldsa.key");
        with_pq.pq_key_file = Some(pq_file.clone());
        let e = Vault::open(with_pq.clone()).await.err().expect("refused");
        assert!(matches!(e, VaultError::Inconsistent(_)), "{e}");
        assert!(e.to_string().contains("--type ml-dsa-44"), "{e}");
        assert!(!pq_file.exists());

        // A key named after another log: refused.
        let (skey, _) = generate_mldsa44("other.example/log").unwrap();
        std::fs::write(&pq_file, skey.expose_secret()).unwrap();
        let e = Vault::open(with_pq.clone()).await.err().expect("refused");
        assert!(e.to_string().contains("must be named after"), "{e}");

        // The operator's key: later checkpoints carry both signatures, earlier
        // ones keep their Ed25519 one and still verify.
        let (skey, pq) = generate_mldsa44(ORIGIN).unwrap();
        std::fs::write(&pq_file, skey.expose_secret()).unwrap();
        let v = Vault::open(with_pq).await.unwrap();
        assert_eq!(
            v.evidence_log().info().verifier_keys,
            [ed.clone(), pq.to_string()]
        );
        put(&v, b"after").await;
        let note = v.evidence_log().latest_checkpoint().await.unwrap().note;
        let opened = open(note.as_bytes(), &known(&[&ed, pq.as_str()])).unwrap();
        assert_eq!(opened.verified.len(), 2);
        let old = v.evidence_log().checkpoint_at(before.size).await.unwrap();
        assert_eq!(old.note, before.note);
        open(old.note.as_bytes(), &known(&[&ed])).unwrap();
        // The fork guard's head file is the same one: keyed by the Ed25519 key.
        let now: Vec<_> = std::fs::read_dir(dir.path().join("state"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(heads, now);
        v.shutdown().await.unwrap();
        drop(v);
    }
}

on_every_store! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_ml_dsa_signature_is_a_log_signature_with_timestamp_zero() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path());
        c.pq_key_file = Some(dir.path().join("pq.key"));
        c.audit.enabled = false;
        let v = Vault::open(c.clone()).await.unwrap();
        put(&v, b"x").await;
        let note = v.evidence_log().latest_checkpoint().await.unwrap().note;
        let pq_vkey = v.evidence_log().info().verifier_keys[1].clone();
        v.shutdown().await.unwrap();
        drop(v);
        // The same key, signing the same body with timestamp 0, gives a line
        // that verifies alike: ML-DSA is randomised, so only verification (not
        // bytes) can be compared.
        let skey = std::fs::read_to_string(dir.path().join("pq.key")).unwrap();
        let signer = MlDsaCosigner::from_signer_key(skey.trim())
            .unwrap()
            .with_fixed_timestamp(0);
        assert_eq!(signer.verifier_key().as_str(), pq_vkey);
        let line = note
            .lines()
            .filter(|l| l.starts_with('\u{2014}'))
            .nth(1)
            .unwrap();
        use base64::Engine as _;
        let sig = base64::engine::general_purpose::STANDARD
            .decode(line.rsplit(' ').next().unwrap())
            .unwrap();
        assert_eq!(sig.len(), 4 + 8 + 2420, "key ID, timestamp, ML-DSA-44");
        assert_eq!(&sig[4..12], &[0; 8], "timestamp 0: no statement of time");
    }
}
