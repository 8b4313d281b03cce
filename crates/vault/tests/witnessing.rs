//! Witnessing: each new evidence checkpoint is offered to the configured
//! witnesses (here in-process C2SP tlog-witness witnesses behind a fake
//! network). It is reported witnessed only once k distinct witnesses
//! cosigned it; their verified cosignatures are stored and served with the
//! checkpoint; after a restart the witnesses' 409 answers resynchronise.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use evault_note::{CosignatureSigner, Verifiers, generate_ed25519, open, verifier_for};
use evault_vault::{
    PutRequest, Vault, VaultConfig, WitnessResponse, WitnessSetup, WitnessSpec, WitnessStatus,
    WitnessTransport,
};
use evault_witness::{LogConfig, Witness, WitnessConfig};

const ORIGIN: &str = "test.example/witnessed";

/// Witnesses by URL; one that is "down" refuses connections.
#[derive(Default)]
struct Net {
    witnesses: HashMap<String, Witness>,
    down: Mutex<HashSet<String>>,
}

impl WitnessTransport for Net {
    fn post(&self, url: &str, body: &[u8]) -> Result<WitnessResponse, String> {
        if self.down.lock().unwrap().contains(url) {
            return Err("connection refused".into());
        }
        let w = self.witnesses.get(url).ok_or("no such host")?;
        Ok(match w.add_checkpoint(body) {
            Ok(lines) => WitnessResponse {
                status: 200,
                content_type: Some("text/plain".into()),
                body: lines.into_bytes(),
            },
            Err(e) => WitnessResponse {
                status: e.status(),
                content_type: Some(e.content_type().into()),
                body: e.body().into_bytes(),
            },
        })
    }
}

struct Setup {
    net: Arc<Net>,
    config: VaultConfig,
    witness_keys: Vec<String>,
}

fn setup(dir: &Path) -> Setup {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    // The log's key exists before the vault, so the witnesses know it.
    let (skey, vkey) = generate_ed25519(ORIGIN).unwrap();
    std::fs::write(data.join("log.key"), skey.expose_secret()).unwrap();
    let mut net = Net::default();
    let mut specs = Vec::new();
    let mut witness_keys = Vec::new();
    for (name, seed) in [("witness.example/a", 1u8), ("witness.example/b", 2)] {
        let cosigner = CosignatureSigner::from_seed(name, &[seed; 32]).unwrap();
        let key = cosigner.verifier_key().to_string();
        let url = format!("https://{name}/add-checkpoint");
        let w = Witness::open(
            WitnessConfig {
                state_dir: dir.join(format!("witness-{seed}")),
                logs: vec![LogConfig {
                    origin: ORIGIN.into(),
                    keys: vec![vkey.to_string()],
                }],
                requests_per_minute: 6000,
            },
            vec![Box::new(cosigner)],
        )
        .unwrap();
        net.witnesses.insert(url.clone(), w);
        specs.push(WitnessSpec {
            name: name.into(),
            url,
            keys: vec![key.clone()],
        });
        witness_keys.push(key);
    }
    let net = Arc::new(net);
    let mut c = VaultConfig::new(&data);
    // Never the user's state directory.
    c.state_dir = Some(dir.join("state"));
    c.origin = Some(ORIGIN.into());
    c.checkpoint_interval = Duration::from_millis(20);
    c.witnesses = Some(WitnessSetup {
        witnesses: specs,
        threshold: 2,
        transport: net.clone(),
        interval: Duration::from_millis(20),
    });
    Setup {
        net,
        config: c,
        witness_keys,
    }
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
    let size = out.record.leaf_index + 1;
    v.evidence_log()
        .wait_for_checkpoint(size, Duration::from_secs(30))
        .await
        .unwrap()
}

async fn status_until(v: &Vault, what: &str, ok: impl Fn(&WitnessStatus) -> bool) -> WitnessStatus {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = v.witness_status().expect("witnesses configured");
        if ok(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Which of `keys` have a verified signature on `note`.
fn cosigned_by(note: &str, keys: &[String]) -> Vec<bool> {
    keys.iter()
        .map(|k| {
            let mut known = Verifiers::new();
            known.insert_boxed(verifier_for(k).unwrap()).unwrap();
            open(note.as_bytes(), &known).is_ok()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_is_witnessed_only_once_k_of_n_cosigned_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path());
    let b_url = "https://witness.example/b/add-checkpoint";
    s.net.down.lock().unwrap().insert(b_url.into());
    let v = Vault::open(s.config.clone()).await.unwrap();
    let size = put(&v, b"one").await;

    // One of two: cosigned by A, not witnessed.
    let st = status_until(&v, "witness A to cosign", |st| {
        st.witnesses[0].acknowledged_size >= size
    })
    .await;
    assert_eq!((st.threshold, st.total), (2, 2));
    assert_eq!(st.witnessed_size, None, "{st:?}");
    assert!(st.witnesses[1].last_error.is_some(), "{st:?}");
    assert_eq!(st.witnesses[1].acknowledged_size, 0);
    let note = v.evidence_log().latest_checkpoint().await.unwrap().note;
    assert_eq!(cosigned_by(&note, &s.witness_keys), [true, false], "{note}");

    // B is back: the same checkpoint is offered again and now counts.
    s.net.down.lock().unwrap().remove(b_url);
    let st = status_until(&v, "2 of 2", |st| st.witnessed_size >= Some(size)).await;
    assert!(
        st.witnesses.iter().all(|w| w.last_error.is_none()),
        "{st:?}"
    );
    let cp = v.evidence_log().latest_checkpoint().await.unwrap();
    assert_eq!(cosigned_by(&cp.note, &s.witness_keys), [true, true]);
    // The log's own signature still opens it, the witness lines skipped.
    let mut log_key = Verifiers::new();
    log_key
        .insert_boxed(verifier_for(&v.evidence_log().verifier_key()).unwrap())
        .unwrap();
    let opened = open(cp.note.as_bytes(), &log_key).unwrap();
    assert_eq!((opened.verified.len(), opened.unverified.len()), (1, 2));
    // A checkpoint of the same size read by size carries them too.
    let at = v.evidence_log().checkpoint_at(cp.size).await.unwrap();
    assert_eq!(at.note, cp.note);

    // Growth: proofs from the size each last cosigned.
    let size2 = put(&v, b"two").await;
    status_until(&v, "the next checkpoint", |st| {
        st.witnessed_size >= Some(size2)
    })
    .await;
    v.shutdown().await.unwrap();
    drop(v);

    // Restarted, the vault no longer knows the witnesses' sizes: it asks
    // from 0, they answer 409 with theirs, and it asks again from there.
    let v = Vault::open(s.config.clone()).await.unwrap();
    let st = v.witness_status().unwrap();
    assert!(
        st.witnessed_size >= Some(size2),
        "the store remembers: {st:?}"
    );
    let size3 = put(&v, b"three").await;
    let st = status_until(&v, "witnessing after a restart", |st| {
        st.witnessed_size >= Some(size3)
    })
    .await;
    assert!(
        st.witnesses.iter().all(|w| w.acknowledged_size >= size3),
        "{st:?}"
    );
    v.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_witness_policy_stops_the_vault_from_starting() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = setup(dir.path());
    let w = s.config.witnesses.as_mut().unwrap();
    w.threshold = 3;
    let e = Vault::open(s.config.clone()).await.err().expect("refused");
    assert!(e.to_string().contains("witness threshold 3"), "{e}");
    let w = s.config.witnesses.as_mut().unwrap();
    w.threshold = 1;
    w.witnesses[1].keys[0] = "not a key".into();
    let e = Vault::open(s.config.clone()).await.err().expect("refused");
    assert!(e.to_string().contains("witness.example/b"), "{e}");
}
