//! The log's side against in-process witnesses: a k-of-n policy, a 409 that
//! resynchronises, back-off, a witness that lies, and a log that forked
//! (a witness refuses it, so it is not reported witnessed).

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use evault_merkle::{Hash, MemoryTree, leaf_hash};
use evault_note::{Checkpoint, CosignatureSigner, Ed25519Signer, MlDsaCosigner, Signer, sign};
use evault_witness::{
    LogConfig, ProofSource, Response, Transport, Witness, WitnessConfig, WitnessOutcome,
    WitnessSpec, Witnesses,
};

const ORIGIN: &str = "example.com/log";

struct Log {
    tree: MemoryTree,
    key: Ed25519Signer,
}

impl Log {
    fn new(tag: u8, n: u64) -> Self {
        let mut tree = MemoryTree::new();
        for i in 0..n {
            tree.push(leaf_hash(&[tag, i as u8, (i >> 8) as u8]));
        }
        Log {
            tree,
            key: Ed25519Signer::from_seed(ORIGIN, &[1; 32]).unwrap(),
        }
    }

    fn grow(&mut self, tag: u8, n: u64) {
        for _ in 0..n {
            let i = self.tree.size();
            self.tree.push(leaf_hash(&[tag, i as u8, (i >> 8) as u8]));
        }
    }

    fn note(&self) -> (String, u64) {
        let size = self.tree.size();
        let cp = Checkpoint::new(ORIGIN, size, self.tree.root_at(size).unwrap());
        (sign(&cp.to_text(), &[&self.key]).unwrap(), size)
    }
}

impl ProofSource for Log {
    fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, String> {
        self.tree
            .consistency_proof(old, new)
            .map_err(|e| format!("{e:?}"))
    }
}

/// Witnesses reachable by URL; a URL not in the map is unreachable. A
/// witness can be made to answer garbage.
#[derive(Default)]
struct Net {
    witnesses: HashMap<String, Witness>,
    liars: RefCell<Vec<String>>,
    requests: RefCell<Vec<(String, u64)>>,
}

impl Transport for Net {
    fn post(&self, url: &str, body: &[u8]) -> Result<Response, String> {
        let old = std::str::from_utf8(body)
            .ok()
            .and_then(|b| b.lines().next())
            .and_then(|l| l.strip_prefix("old "))
            .and_then(|n| n.parse().ok())
            .unwrap_or(u64::MAX);
        self.requests.borrow_mut().push((url.to_owned(), old));
        let w = self
            .witnesses
            .get(url)
            .ok_or_else(|| "connection refused".to_string())?;
        if self.liars.borrow().iter().any(|l| l == url) {
            let fake = CosignatureSigner::from_seed("witness.example/a", &[66; 32]).unwrap();
            let note = sign(
                &Checkpoint::new(ORIGIN, 1, [0; 32]).to_text(),
                &[&fake as &dyn Signer],
            )
            .unwrap();
            let line = note.lines().last().unwrap().to_owned() + "\n";
            return Ok(Response {
                status: 200,
                content_type: Some("text/plain".into()),
                body: line.into_bytes(),
            });
        }
        Ok(match w.add_checkpoint(body) {
            Ok(lines) => Response {
                status: 200,
                content_type: Some("text/plain".into()),
                body: lines.into_bytes(),
            },
            Err(e) => Response {
                status: e.status(),
                content_type: Some(e.content_type().into()),
                body: e.body().into_bytes(),
            },
        })
    }
}

fn tmp(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("client-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A witness named `witness.example/<n>` with an Ed25519 and an ML-DSA key.
fn witness(dir: &std::path::Path, n: &str, log: &Log) -> (Witness, WitnessSpec) {
    let name = format!("witness.example/{n}");
    let seed = n.as_bytes()[0];
    let ed = CosignatureSigner::from_seed(&name, &[seed; 32]).unwrap();
    let pq = MlDsaCosigner::from_seed(&name, &[seed; 32]).unwrap();
    let spec = WitnessSpec {
        name: name.clone(),
        url: format!("https://{n}.example/add-checkpoint"),
        keys: vec![
            ed.verifier_key().into_string(),
            pq.verifier_key().into_string(),
        ],
    };
    let w = Witness::open(
        WitnessConfig {
            state_dir: dir.join(n),
            logs: vec![LogConfig {
                origin: ORIGIN.into(),
                keys: vec![log.key.verifier_key().into_string()],
            }],
            requests_per_minute: 10_000,
        },
        vec![Box::new(ed), Box::new(pq)],
    )
    .unwrap();
    (w, spec)
}

fn setup(name: &str, log: &Log, names: &[&str], threshold: usize) -> (Net, Witnesses, PathBuf) {
    let dir = tmp(name);
    let mut net = Net::default();
    let mut specs = Vec::new();
    for n in names {
        let (w, spec) = witness(&dir, n, log);
        net.witnesses.insert(spec.url.clone(), w);
        specs.push(spec);
    }
    (net, Witnesses::new(specs, threshold).unwrap(), dir)
}

#[test]
fn two_of_three_cosign_and_the_checkpoint_is_witnessed() {
    let mut log = Log::new(0, 10);
    let (mut net, mut ws, dir) = setup("k-of-n", &log, &["a", "b", "c"], 2);
    // c is down.
    net.witnesses.remove("https://c.example/add-checkpoint");
    let t0 = Instant::now();
    let (note, size) = log.note();
    let round = ws.cosign(&note, size, &log, &net, t0);
    assert_eq!(round.cosigned, 2);
    assert!(round.witnessed());
    assert_eq!(
        round.cosignatures.len(),
        4,
        "Ed25519 and ML-DSA-44 from a and b"
    );
    assert!(
        matches!(round.outcomes[2].1, WitnessOutcome::Failed(ref e) if e.contains("connection refused"))
    );

    // The cosignatures go on the checkpoint and verify there.
    let cosigned = format!("{note}{}", round.cosignatures.concat());
    assert_eq!(cosigned.lines().filter(|l| l.starts_with("— ")).count(), 5);

    // Next checkpoint: a and b get a proof from 10; c is still backing off.
    log.grow(0, 5);
    let (note, size) = log.note();
    let round = ws.cosign(&note, size, &log, &net, t0 + Duration::from_millis(10));
    assert!(round.witnessed());
    assert!(matches!(
        round.outcomes[2].1,
        WitnessOutcome::BackingOff { .. }
    ));
    let reqs = net.requests.borrow();
    assert!(
        reqs.iter()
            .any(|(u, old)| u.contains("a.example") && *old == 10)
    );
    assert_eq!(
        ws.acknowledged(),
        vec![
            ("witness.example/a".into(), 15),
            ("witness.example/b".into(), 15),
            ("witness.example/c".into(), 0)
        ]
    );
    drop(reqs);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn one_of_three_is_not_witnessed_under_two_of_three() {
    let log = Log::new(0, 4);
    let (mut net, mut ws, dir) = setup("under", &log, &["a", "b", "c"], 2);
    net.witnesses.remove("https://b.example/add-checkpoint");
    net.witnesses.remove("https://c.example/add-checkpoint");
    let (note, size) = log.note();
    let round = ws.cosign(&note, size, &log, &net, Instant::now());
    assert_eq!(round.cosigned, 1);
    assert!(!round.witnessed());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_409_resynchronises_a_restarted_log() {
    let mut log = Log::new(0, 8);
    let (net, mut ws, dir) = setup("resync", &log, &["a"], 1);
    let (note, size) = log.note();
    assert!(
        ws.cosign(&note, size, &log, &net, Instant::now())
            .witnessed()
    );

    // The log restarts: it no longer knows what the witness cosigned.
    let mut fresh = Witnesses::new(
        vec![WitnessSpec {
            name: "witness.example/a".into(),
            url: "https://a.example/add-checkpoint".into(),
            keys: a_keys(),
        }],
        1,
    )
    .unwrap();
    log.grow(0, 3);
    let (note, size) = log.note();
    net.requests.borrow_mut().clear();
    let round = fresh.cosign(&note, size, &log, &net, Instant::now());
    assert!(round.witnessed(), "{round:?}");
    // old 0 → 409 "8" → old 8 with a proof → 200.
    let olds: Vec<u64> = net.requests.borrow().iter().map(|(_, o)| *o).collect();
    assert_eq!(olds, vec![0, 8]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Witness a's Ed25519 key, as a log configured with only that key knows it.
fn a_keys() -> Vec<String> {
    let name = "witness.example/a";
    let seed = b'a';
    vec![
        CosignatureSigner::from_seed(name, &[seed; 32])
            .unwrap()
            .verifier_key()
            .into_string(),
    ]
}

#[test]
fn a_forked_log_is_refused_and_not_witnessed() {
    let honest = Log::new(0, 12);
    let (net, mut ws, dir) = setup("fork", &honest, &["a", "b"], 1);
    let (note, size) = honest.note();
    assert!(
        ws.cosign(&note, size, &honest, &net, Instant::now())
            .witnessed()
    );

    // The same key signs another history of 16 leaves.
    let forked = Log::new(7, 16);
    let (note, size) = forked.note();
    let round = ws.cosign(&note, size, &forked, &net, Instant::now());
    assert_eq!(round.cosigned, 0);
    assert!(!round.witnessed());
    for (_, o) in &round.outcomes {
        assert!(
            matches!(o, WitnessOutcome::Inconsistent(e) if e.contains("422")),
            "{o:?}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_log_behind_its_witness_is_told_so() {
    let log = Log::new(0, 20);
    let (net, _, dir) = setup("behind", &log, &["a"], 1);
    let mut ws = Witnesses::new(
        vec![WitnessSpec {
            name: "witness.example/a".into(),
            url: "https://a.example/add-checkpoint".into(),
            keys: a_keys(),
        }],
        1,
    )
    .unwrap();
    let (note, size) = log.note();
    assert!(
        ws.cosign(&note, size, &log, &net, Instant::now())
            .witnessed()
    );
    // A restored backup: the log is at 10 again.
    let restored = Log::new(0, 10);
    let mut fresh = Witnesses::new(
        vec![WitnessSpec {
            name: "witness.example/a".into(),
            url: "https://a.example/add-checkpoint".into(),
            keys: a_keys(),
        }],
        1,
    )
    .unwrap();
    let (note, size) = restored.note();
    let round = fresh.cosign(&note, size, &restored, &net, Instant::now());
    assert!(!round.witnessed());
    assert!(
        matches!(&round.outcomes[0].1, WitnessOutcome::Inconsistent(e) if e.contains("beyond this checkpoint's 10")),
        "{round:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unverifiable_cosignatures_count_for_nothing_and_back_off_doubles() {
    let log = Log::new(0, 3);
    let (net, mut ws, dir) = setup("liar", &log, &["a"], 1);
    net.liars
        .borrow_mut()
        .push("https://a.example/add-checkpoint".into());
    let t0 = Instant::now();
    let (note, size) = log.note();
    let round = ws.cosign(&note, size, &log, &net, t0);
    assert!(!round.witnessed());
    assert!(
        matches!(&round.outcomes[0].1, WitnessOutcome::Failed(e) if e.contains("do not verify")),
        "{round:?}"
    );
    // Backing off 1 s, then 2 s after the next failure.
    let round = ws.cosign(&note, size, &log, &net, t0 + Duration::from_millis(500));
    assert!(matches!(
        round.outcomes[0].1,
        WitnessOutcome::BackingOff { remaining, .. } if remaining == Duration::from_millis(500)
    ));
    let t1 = t0 + Duration::from_secs(1);
    ws.cosign(&note, size, &log, &net, t1);
    let round = ws.cosign(&note, size, &log, &net, t1 + Duration::from_millis(1500));
    assert!(matches!(
        round.outcomes[0].1,
        WitnessOutcome::BackingOff { .. }
    ));
    // It recovers once it answers honestly.
    net.liars.borrow_mut().clear();
    let round = ws.cosign(&note, size, &log, &net, t1 + Duration::from_secs(2));
    assert!(round.witnessed(), "{round:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_policy_is_checked() {
    let spec = WitnessSpec {
        name: "w".into(),
        url: "u".into(),
        keys: vec![],
    };
    assert!(Witnesses::new(vec![], 0).is_err());
    assert!(Witnesses::new(vec![spec.clone()], 2).is_err());
    let e = Witnesses::new(vec![spec.clone()], 1).unwrap_err();
    assert!(e.to_string().contains("no key"), "{e}");
    let bad = WitnessSpec {
        keys: vec!["junk".into()],
        ..spec
    };
    let e = Witnesses::new(vec![bad], 1).unwrap_err();
    assert!(e.to_string().contains("key"), "{e}");

    // One witness listed twice, by name or by key, would count twice.
    let key = a_keys();
    let w = |name: &str, url: &str| WitnessSpec {
        name: name.into(),
        url: url.into(),
        keys: key.clone(),
    };
    let e = Witnesses::new(vec![w("a", "u1"), w("a", "u2")], 2).unwrap_err();
    assert!(e.to_string().contains("listed twice"), "{e}");
    let e = Witnesses::new(vec![w("a", "u1"), w("b", "u2")], 2).unwrap_err();
    assert!(e.to_string().contains("also another witness's"), "{e}");
}
