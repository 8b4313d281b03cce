//! The witness against a real Merkle log: every status of C2SP tlog-witness
//! `add-checkpoint`, persistence across a restart, the rollback race, and a
//! log that forks.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use evault_merkle::{MemoryTree, leaf_hash};
use evault_note::{
    Checkpoint, CosignatureSigner, Ed25519Signer, MlDsaCosigner, Signer, Verifiers,
    cosignature_timestamp, open, sign,
};
use evault_witness::{
    AddCheckpoint, AddError, LogConfig, MAX_BODY, Witness, WitnessConfig, origin_hash,
};

const ORIGIN: &str = "example.com/log";

struct Log {
    tree: MemoryTree,
    key: Ed25519Signer,
}

impl Log {
    fn new(seed: u8) -> Self {
        Log {
            tree: MemoryTree::new(),
            key: Ed25519Signer::from_seed(ORIGIN, &[seed; 32]).unwrap(),
        }
    }

    fn grow(&mut self, n: u64, tag: u8) {
        for i in 0..n {
            let size = self.tree.size();
            self.tree
                .push(leaf_hash(&[tag, (size + i) as u8, ((size + i) >> 8) as u8]));
        }
    }

    fn checkpoint(&self, size: u64) -> String {
        let cp = Checkpoint::new(ORIGIN, size, self.tree.root_at(size).unwrap());
        sign(&cp.to_text(), &[&self.key]).unwrap()
    }

    /// The request a log sends: from `old` to its current size.
    fn request(&self, old: u64) -> String {
        self.request_for(old, self.tree.size())
    }

    /// The request from `old` to `size`.
    fn request_for(&self, old: u64, size: u64) -> String {
        let proof = if old == 0 {
            Vec::new()
        } else {
            self.tree.consistency_proof(old, size).unwrap()
        };
        let note = self.checkpoint(size);
        AddCheckpoint {
            old_size: old,
            proof,
            note: &note,
        }
        .encode()
    }
}

fn dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("witness-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn ed_cosigner() -> CosignatureSigner {
    CosignatureSigner::from_seed("witness.example/w1", &[9; 32]).unwrap()
}

fn pq_cosigner() -> MlDsaCosigner {
    MlDsaCosigner::from_seed("witness.example/w1", &[10; 32]).unwrap()
}

fn witness(state: &Path, log: &Log, per_minute: u32) -> Witness {
    Witness::open(
        WitnessConfig {
            state_dir: state.to_path_buf(),
            logs: vec![LogConfig {
                origin: ORIGIN.into(),
                keys: vec![log.key.verifier_key().into_string()],
            }],
            requests_per_minute: per_minute,
        },
        vec![Box::new(ed_cosigner()), Box::new(pq_cosigner())],
    )
    .unwrap()
}

fn status(r: Result<String, AddError>) -> u16 {
    match r {
        Ok(_) => 200,
        Err(e) => e.status(),
    }
}

#[test]
fn cosigns_a_growing_log_and_persists_what_it_cosigned() {
    let state = dir("grow");
    let mut log = Log::new(1);
    log.grow(5, 0);
    let w = witness(&state, &log, 1000);

    // First contact: old 0, no proof.
    let body = w.add_checkpoint(log.request(0).as_bytes()).unwrap();
    assert_eq!(body.lines().count(), 2, "{body}");
    assert!(body.lines().all(|l| l.starts_with("— witness.example/w1 ")));

    // The cosignatures verify when appended to the checkpoint, as a client
    // does, and carry a non-zero timestamp.
    let note = format!("{}{body}", log.checkpoint(5));
    let ed = ed_cosigner();
    let pq = pq_cosigner();
    let known = Verifiers::new()
        .with(ed.verifier())
        .unwrap()
        .with(pq.verifier())
        .unwrap();
    let opened = open(note.as_bytes(), &known).unwrap();
    assert_eq!(opened.verified.len(), 2);
    let ed_sig = opened
        .verified
        .iter()
        .find(|s| s.key_id == ed.key_id())
        .unwrap();
    assert!(cosignature_timestamp(ed_sig).unwrap() > 0);

    // Grow with a consistency proof from 5.
    log.grow(11, 0);
    assert_eq!(status(w.add_checkpoint(log.request(5).as_bytes())), 200);
    // The same checkpoint again (old == size, same root): cosigned again.
    assert_eq!(status(w.add_checkpoint(log.request(16).as_bytes())), 200);

    // The monitoring view holds the log's signature and the cosignatures.
    let latest = w.latest(&origin_hash(ORIGIN)).unwrap().unwrap();
    let with_log = Verifiers::new()
        .with(log.key.verifier())
        .unwrap()
        .with(ed.verifier())
        .unwrap()
        .with(pq.verifier())
        .unwrap();
    let opened = open(latest.as_bytes(), &with_log).unwrap();
    assert_eq!(opened.verified.len(), 3);
    assert_eq!(Checkpoint::parse(&opened.text).unwrap().size, 16);
    assert!(
        w.latest(&origin_hash("example.com/other"))
            .unwrap()
            .is_none()
    );
    assert!(w.latest("../../etc/passwd").unwrap().is_none());
    assert!(
        w.latest(&origin_hash(ORIGIN).to_uppercase())
            .unwrap()
            .is_none()
    );

    // A restarted witness remembers the size it cosigned.
    drop(w);
    let w = witness(&state, &log, 1000);
    let e = w.add_checkpoint(log.request(5).as_bytes()).unwrap_err();
    assert_eq!((e.status(), e.body()), (409, "16\n".to_string()));
    log.grow(1, 0);
    assert_eq!(status(w.add_checkpoint(log.request(16).as_bytes())), 200);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let file = state.join(format!("{}.checkpoint", origin_hash(ORIGIN)));
        let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let mode = std::fs::metadata(&state).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }
    std::fs::remove_dir_all(&state).unwrap();
}

#[test]
fn every_refusal_has_the_status_the_spec_assigns() {
    let state = dir("refusals");
    let mut log = Log::new(1);
    log.grow(8, 0);
    let w = witness(&state, &log, 1000);
    assert_eq!(status(w.add_checkpoint(log.request(0).as_bytes())), 200);
    log.grow(4, 0);

    // 400: not a request; malformed checkpoint; old size beyond the
    // checkpoint.
    assert_eq!(status(w.add_checkpoint(b"hello")), 400);
    let bad_cp = sign("example.com/log\nx\nAAAA\n", &[&log.key]).unwrap();
    assert_eq!(
        status(w.add_checkpoint(format!("old 8\n\n{bad_cp}").as_bytes())),
        400
    );
    assert_eq!(
        status(w.add_checkpoint(format!("old 13\n\n{}", log.checkpoint(12)).as_bytes())),
        400
    );

    // 404: a log it does not witness.
    let stranger = Ed25519Signer::from_seed("example.com/other", &[3; 32]).unwrap();
    let other_cp = Checkpoint::new("example.com/other", 1, [1; 32]).to_text();
    let other_note = sign(&other_cp, &[&stranger]).unwrap();
    assert_eq!(
        status(w.add_checkpoint(format!("old 0\n\n{other_note}").as_bytes())),
        404
    );

    // 403: signed by an unknown key only; or a known key's signature broken.
    let impostor = Ed25519Signer::from_seed(ORIGIN, &[2; 32]).unwrap();
    let cp = Checkpoint::new(ORIGIN, 12, log.tree.root_at(12).unwrap()).to_text();
    let forged = sign(&cp, &[&impostor]).unwrap();
    let proof = log.tree.consistency_proof(8, 12).unwrap();
    let req = |note: &str| {
        AddCheckpoint {
            old_size: 8,
            proof: proof.clone(),
            note,
        }
        .encode()
    };
    let e = w.add_checkpoint(req(&forged).as_bytes()).unwrap_err();
    assert_eq!(e.status(), 403, "{e}");
    let genuine = log.checkpoint(12);
    let broken = genuine.replacen(&genuine[genuine.len() - 6..genuine.len() - 2], "AAAA", 1);
    assert_ne!(broken, genuine);
    assert_eq!(status(w.add_checkpoint(req(&broken).as_bytes())), 403);

    // 409: the old size is not what it cosigned; the body is the size.
    let e = w.add_checkpoint(log.request(4).as_bytes()).unwrap_err();
    assert_eq!(
        (e.status(), e.body().as_str(), e.content_type()),
        (409, "8\n", "text/x.tlog.size")
    );

    // 422: a proof that does not verify.
    let mut wrong = proof.clone();
    wrong[0][0] ^= 1;
    let body = AddCheckpoint {
        old_size: 8,
        proof: wrong,
        note: &genuine,
    }
    .encode();
    assert_eq!(status(w.add_checkpoint(body.as_bytes())), 422);
    // 422: a proof of the right shape for another size.
    let body = AddCheckpoint {
        old_size: 8,
        proof: log.tree.consistency_proof(7, 12).unwrap(),
        note: &genuine,
    }
    .encode();
    assert_eq!(status(w.add_checkpoint(body.as_bytes())), 422);

    // 413: too large.
    let huge = vec![b'a'; MAX_BODY + 1];
    assert_eq!(status(w.add_checkpoint(&huge)), 413);

    // Nothing above changed the state: the genuine request still works.
    assert_eq!(status(w.add_checkpoint(log.request(8).as_bytes())), 200);
    std::fs::remove_dir_all(&state).unwrap();
}

#[test]
fn size_zero_and_empty_proofs() {
    let state = dir("zero");
    let log = Log::new(1);
    let w = witness(&state, &log, 1000);
    // The empty tree, with the right root: cosigned.
    assert_eq!(status(w.add_checkpoint(log.request(0).as_bytes())), 200);
    // A size-0 checkpoint with another root: 422.
    let bad = sign(&Checkpoint::new(ORIGIN, 0, [1; 32]).to_text(), &[&log.key]).unwrap();
    assert_eq!(
        status(w.add_checkpoint(format!("old 0\n\n{bad}").as_bytes())),
        422
    );
    // Old size 0 with a proof: 422.
    let mut log = log;
    log.grow(3, 0);
    let body = AddCheckpoint {
        old_size: 0,
        proof: vec![[0; 32]],
        note: &log.checkpoint(3),
    }
    .encode();
    assert_eq!(status(w.add_checkpoint(body.as_bytes())), 422);
    assert_eq!(status(w.add_checkpoint(log.request(0).as_bytes())), 200);
    std::fs::remove_dir_all(&state).unwrap();
}

#[test]
fn a_fork_is_refused() {
    let state = dir("fork");
    let mut log = Log::new(1);
    log.grow(10, 0);
    let w = witness(&state, &log, 1000);
    assert_eq!(status(w.add_checkpoint(log.request(0).as_bytes())), 200);

    // The same log key signs another history of the same size: 422.
    let mut fork = Log::new(1);
    fork.grow(10, 1);
    assert_eq!(
        status(w.add_checkpoint(fork.request(10).as_bytes())),
        422,
        "same size, another root"
    );
    // And of a larger size: no proof from the cosigned root can verify.
    fork.grow(6, 1);
    let fake = AddCheckpoint {
        old_size: 10,
        proof: fork.tree.consistency_proof(10, 16).unwrap(),
        note: &fork.checkpoint(16),
    }
    .encode();
    assert_eq!(status(w.add_checkpoint(fake.as_bytes())), 422);
    // The honest log still goes on.
    log.grow(6, 0);
    assert_eq!(status(w.add_checkpoint(log.request(10).as_bytes())), 200);
    std::fs::remove_dir_all(&state).unwrap();
}

#[test]
fn racing_requests_never_roll_the_size_back() {
    // Many threads submit checkpoints of different sizes, each claiming the
    // size it last saw. However they interleave, the stored size only ever
    // grows, and every cosigned checkpoint extends the one before.
    let state = dir("race");
    let mut log = Log::new(1);
    log.grow(104, 0);
    let w = Arc::new(witness(&state, &log, 100_000));
    assert_eq!(
        status(w.add_checkpoint(log.request_for(0, 64).as_bytes())),
        200
    );
    let log = Arc::new(log);
    let mut handles = Vec::new();
    for t in 0..4u64 {
        let (w, log) = (Arc::clone(&w), Arc::clone(&log));
        handles.push(std::thread::spawn(move || {
            let mut cosigned = Vec::new();
            let mut old = 64;
            for size in (64 + t..=104).step_by(4) {
                match w.add_checkpoint(log.request_for(old, size).as_bytes()) {
                    Ok(_) => {
                        cosigned.push(size);
                        old = size;
                    }
                    Err(AddError::Conflict { latest }) => {
                        // Another thread moved on; continue from there if
                        // it is behind the next size, as a log would.
                        if latest <= size {
                            old = latest;
                        }
                    }
                    Err(e) => panic!("size {size}: {e}"),
                }
            }
            cosigned
        }));
    }
    let mut all: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort();
    assert!(!all.is_empty());
    let latest = w.latest(&origin_hash(ORIGIN)).unwrap().unwrap();
    let text = &latest[..latest.rfind("\n\n").unwrap() + 1];
    let size = Checkpoint::parse(text).unwrap().size;
    assert_eq!(
        size,
        *all.last().unwrap(),
        "stored size is the largest cosigned"
    );
    std::fs::remove_dir_all(&state).unwrap();
}

#[test]
fn progress_beyond_the_rate_gets_429_and_resubmissions_are_free() {
    let state = dir("rate");
    let mut log = Log::new(1);
    log.grow(2, 0);
    let w = witness(&state, &log, 2);
    let first = w.add_checkpoint(log.request(0).as_bytes()).unwrap();
    // Sending the cosigned checkpoint again, as often as anyone likes (it is
    // public): the same cosignatures, not signed again, nothing charged.
    for _ in 0..5 {
        assert_eq!(w.add_checkpoint(log.request(2).as_bytes()).unwrap(), first);
    }
    log.grow(1, 0);
    assert_eq!(status(w.add_checkpoint(log.request(2).as_bytes())), 200);
    log.grow(1, 0);
    let e = w.add_checkpoint(log.request(3).as_bytes()).unwrap_err();
    assert_eq!(e.status(), 429);
    assert!(e.to_string().contains("retry in"), "{e}");
    // A refused request (here a 409) is not charged either, and changes
    // nothing.
    assert_eq!(status(w.add_checkpoint(log.request(1).as_bytes())), 409);
    std::fs::remove_dir_all(&state).unwrap();
}

#[test]
fn two_witness_instances_on_one_state_directory_never_roll_back() {
    // An overlapping restart: two instances share the state directory. The
    // file lock makes their check-and-write one step each.
    let state = dir("two-instances");
    let mut log = Log::new(1);
    log.grow(40, 0);
    let a = Arc::new(witness(&state, &log, 100_000));
    let b = Arc::new(witness(&state, &log, 100_000));
    assert_eq!(
        status(a.add_checkpoint(log.request_for(0, 20).as_bytes())),
        200
    );
    let log = Arc::new(log);
    let handles: Vec<_> = [a.clone(), b.clone()]
        .into_iter()
        .enumerate()
        .map(|(t, w)| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                let mut old = 20;
                let mut done = Vec::new();
                for size in (21 + t as u64..=40).step_by(2) {
                    match w.add_checkpoint(log.request_for(old, size).as_bytes()) {
                        Ok(_) => {
                            done.push(size);
                            old = size;
                        }
                        Err(AddError::Conflict { latest }) if latest <= size => old = latest,
                        Err(AddError::Conflict { .. }) => {}
                        Err(e) => panic!("{size}: {e}"),
                    }
                }
                done
            })
        })
        .collect();
    let all: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let latest = a.latest(&origin_hash(ORIGIN)).unwrap().unwrap();
    let size = Checkpoint::parse(&latest[..latest.rfind("\n\n").unwrap() + 1])
        .unwrap()
        .size;
    assert_eq!(size, *all.iter().max().unwrap());
    std::fs::remove_dir_all(&state).unwrap();
}

#[test]
fn configuration_is_checked() {
    let state = dir("config");
    let log = Log::new(1);
    let base = |logs: Vec<LogConfig>| WitnessConfig {
        state_dir: state.clone(),
        logs,
        requests_per_minute: 10,
    };
    let good_log = || LogConfig {
        origin: ORIGIN.into(),
        keys: vec![log.key.verifier_key().into_string()],
    };
    let errs = [
        Witness::open(base(vec![good_log()]), vec![]).unwrap_err(),
        Witness::open(
            base(vec![good_log()]),
            vec![Box::new(Ed25519Signer::from_seed("w", &[1; 32]).unwrap())],
        )
        .unwrap_err(),
        Witness::open(
            base(vec![LogConfig {
                origin: ORIGIN.into(),
                keys: vec![],
            }]),
            vec![Box::new(ed_cosigner())],
        )
        .unwrap_err(),
        Witness::open(
            base(vec![LogConfig {
                origin: ORIGIN.into(),
                keys: vec!["not a key".into()],
            }]),
            vec![Box::new(ed_cosigner())],
        )
        .unwrap_err(),
        Witness::open(
            base(vec![good_log(), good_log()]),
            vec![Box::new(ed_cosigner())],
        )
        .unwrap_err(),
    ];
    let texts: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    assert!(texts[0].contains("needs a cosigner"), "{texts:?}");
    assert!(texts[1].contains("key type 0x01"), "{texts:?}");
    assert!(texts[2].contains("at least one key"), "{texts:?}");
    assert!(texts[3].contains("key"), "{texts:?}");
    assert!(texts[4].contains("configured twice"), "{texts:?}");
    // A witness can verify with the log's ML-DSA-44 key too.
    let pq_log = MlDsaCosigner::from_seed(ORIGIN, &[5; 32])
        .unwrap()
        .with_fixed_timestamp(0);
    let w = Witness::open(
        base(vec![LogConfig {
            origin: ORIGIN.into(),
            keys: vec![pq_log.verifier_key().into_string()],
        }]),
        vec![Box::new(ed_cosigner())],
    )
    .unwrap();
    let note = sign(
        &Checkpoint::new(ORIGIN, 0, evault_merkle::EMPTY_ROOT).to_text(),
        &[&pq_log],
    )
    .unwrap();
    let body = w
        .add_checkpoint(format!("old 0\n\n{note}").as_bytes())
        .unwrap();
    let known = Verifiers::new().with(ed_cosigner().verifier()).unwrap();
    open(format!("{note}{body}").as_bytes(), &known).unwrap();
    std::fs::remove_dir_all(&state).unwrap();
}
