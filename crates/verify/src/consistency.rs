//! Consistency of two signed checkpoints of one log: the newer tree
//! extends the older one (RFC 9162 §2.1.4), so nothing the older
//! checkpoint committed to was removed or rewritten.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use evault_merkle::{Hash, verify_consistency};
use evault_note::Verifiers;
use serde::{Deserialize, Serialize};

use crate::bundle::{BundleError, open_checkpoint};

/// A consistency proof as the REST API serves it
/// (`/api/v1/tree/consistency`, `/api/v1/audit/consistency`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyProof {
    /// Older tree size, in leaves.
    pub from: u64,
    /// Newer tree size, in leaves.
    pub to: u64,
    /// RFC 6962 consistency proof, standard base64 hashes.
    pub proof: Vec<String>,
}

/// What a successful check established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Consistent {
    /// The log both checkpoints are of.
    pub origin: String,
    /// Tree size of the older checkpoint.
    pub old_size: u64,
    /// Tree size of the newer checkpoint.
    pub new_size: u64,
    /// Names of the keys whose signatures verified on the newer checkpoint.
    pub signed_by: Vec<String>,
}

/// Why two checkpoints were not shown consistent.
#[derive(Debug)]
pub enum ConsistencyError {
    /// The older checkpoint does not open (signature, body or origin).
    Old(BundleError),
    /// The newer checkpoint does not open (signature, body or origin).
    New(BundleError),
    /// The two checkpoints are of different logs.
    OriginMismatch {
        /// Origin of the older checkpoint.
        old: String,
        /// Origin of the newer checkpoint.
        new: String,
    },
    /// The "older" checkpoint is larger: the log shrank, or they were swapped.
    Shrank {
        /// Size of the checkpoint given as older.
        old: u64,
        /// Size of the checkpoint given as newer.
        new: u64,
    },
    /// The proof is for other tree sizes than the two checkpoints.
    SizesDiffer {
        /// Sizes the proof is for.
        proof: (u64, u64),
        /// Sizes of the checkpoints.
        checkpoints: (u64, u64),
    },
    /// Proof element `n` (0-based) is not standard base64 of 32 bytes.
    BadProofEncoding(usize),
    /// The proof does not lead from the older root to the newer one.
    Proof(evault_merkle::VerifyError),
}

impl fmt::Display for ConsistencyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConsistencyError::Old(e) => write!(f, "older checkpoint: {e}"),
            ConsistencyError::New(e) => write!(f, "newer checkpoint: {e}"),
            ConsistencyError::OriginMismatch { old, new } => write!(
                f,
                "the checkpoints are of different logs: {old:?} and {new:?}"
            ),
            ConsistencyError::Shrank { old, new } => write!(
                f,
                "the older checkpoint has size {old} but the newer only {new}: the log \
                 shrank (or the two were given the wrong way round)"
            ),
            ConsistencyError::SizesDiffer { proof, checkpoints } => write!(
                f,
                "the proof is from size {} to {} but the checkpoints are of sizes {} and {}",
                proof.0, proof.1, checkpoints.0, checkpoints.1
            ),
            ConsistencyError::BadProofEncoding(i) => {
                write!(
                    f,
                    "consistency proof element {i} is not a base64 SHA-256 hash"
                )
            }
            ConsistencyError::Proof(e) => write!(
                f,
                "the newer tree does not extend the older one: {e} (the log was rewritten, \
                 or the proof is wrong)"
            ),
        }
    }
}

impl std::error::Error for ConsistencyError {}

impl ConsistencyProof {
    /// The proof's hashes; element `i` that is not base64 of 32 bytes is
    /// [`ConsistencyError::BadProofEncoding`]`(i)`.
    pub fn hashes(&self) -> Result<Vec<Hash>, ConsistencyError> {
        self.proof
            .iter()
            .enumerate()
            .map(|(i, p)| {
                STANDARD
                    .decode(p)
                    .ok()
                    .and_then(|b| evault_merkle::hash_from_slice(&b))
                    .ok_or(ConsistencyError::BadProofEncoding(i))
            })
            .collect()
    }
}

/// Opens both checkpoint notes with `verifiers` (and the expected
/// `origin`, if given) and checks that `proof` shows the newer tree
/// extends the older one. An older tree of size 0 is a prefix of every
/// tree; equal sizes need equal roots and an empty proof.
pub fn verify_checkpoints(
    old_note: &str,
    new_note: &str,
    proof: &ConsistencyProof,
    verifiers: &Verifiers,
    origin: Option<&str>,
) -> Result<Consistent, ConsistencyError> {
    let (old, _) = open_checkpoint(old_note, verifiers, origin).map_err(ConsistencyError::Old)?;
    let (new, signed_by) =
        open_checkpoint(new_note, verifiers, origin).map_err(ConsistencyError::New)?;
    if old.origin != new.origin {
        return Err(ConsistencyError::OriginMismatch {
            old: old.origin,
            new: new.origin,
        });
    }
    if old.size > new.size {
        return Err(ConsistencyError::Shrank {
            old: old.size,
            new: new.size,
        });
    }
    let consistent = Consistent {
        origin: new.origin.clone(),
        old_size: old.size,
        new_size: new.size,
        signed_by,
    };
    if old.size == 0 {
        return Ok(consistent);
    }
    if (proof.from, proof.to) != (old.size, new.size) {
        return Err(ConsistencyError::SizesDiffer {
            proof: (proof.from, proof.to),
            checkpoints: (old.size, new.size),
        });
    }
    let hashes = proof.hashes()?;
    verify_consistency(old.size, new.size, &hashes, &old.root_hash, &new.root_hash)
        .map_err(ConsistencyError::Proof)?;
    Ok(consistent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use evault_merkle::MemoryTree;
    use evault_note::{Checkpoint, Ed25519Signer, sign};

    const ORIGIN: &str = "vault.example/log";

    struct Log {
        tree: MemoryTree,
        signer: Ed25519Signer,
    }

    impl Log {
        /// `n` leaves; a log with another `salt` has other leaves.
        fn new(n: u64, salt: u8) -> Log {
            let mut tree = MemoryTree::new();
            for i in 0..n {
                tree.push(evault_merkle::leaf_hash(
                    &[&i.to_be_bytes()[..], &[salt]].concat(),
                ));
            }
            Log {
                tree,
                signer: Ed25519Signer::from_seed(ORIGIN, &[3; 32]).unwrap(),
            }
        }
        fn note(&self, size: u64) -> String {
            let root = self.tree.root_at(size).unwrap();
            sign(
                &Checkpoint::new(ORIGIN, size, root).to_text(),
                &[&self.signer],
            )
            .unwrap()
        }
        fn proof(&self, from: u64, to: u64) -> ConsistencyProof {
            ConsistencyProof {
                from,
                to,
                proof: self
                    .tree
                    .consistency_proof(from, to)
                    .unwrap()
                    .iter()
                    .map(|h| STANDARD.encode(h))
                    .collect(),
            }
        }
        fn verifiers(&self) -> Verifiers {
            Verifiers::new().with(self.signer.verifier()).unwrap()
        }
    }

    #[test]
    fn a_genuine_proof_verifies_and_tampering_is_caught() {
        let log = Log::new(20, 0);
        let v = log.verifiers();
        let (old, new) = (log.note(7), log.note(20));
        let ok = verify_checkpoints(&old, &new, &log.proof(7, 20), &v, Some(ORIGIN)).unwrap();
        assert_eq!((ok.old_size, ok.new_size), (7, 20));
        assert_eq!(ok.origin, ORIGIN);

        let mut bad = log.proof(7, 20);
        bad.proof.swap(0, 1);
        assert!(matches!(
            verify_checkpoints(&old, &new, &bad, &v, None),
            Err(ConsistencyError::Proof(_))
        ));
        bad.proof[0] = "nope".into();
        assert!(matches!(
            verify_checkpoints(&old, &new, &bad, &v, None),
            Err(ConsistencyError::BadProofEncoding(0))
        ));
        assert!(matches!(
            verify_checkpoints(&old, &new, &log.proof(6, 20), &v, None),
            Err(ConsistencyError::SizesDiffer { .. })
        ));
        assert!(matches!(
            verify_checkpoints(&new, &old, &log.proof(7, 20), &v, None),
            Err(ConsistencyError::Shrank { old: 20, new: 7 })
        ));
        // A rewritten log: another tree of the same size.
        let other = Log::new(20, 1);
        let forged = other.note(20);
        assert!(matches!(
            verify_checkpoints(&old, &forged, &log.proof(7, 20), &v, None),
            Err(ConsistencyError::Proof(_))
        ));
        // A key that did not sign them.
        let stranger = Ed25519Signer::from_seed(ORIGIN, &[4; 32]).unwrap();
        let wrong = Verifiers::new().with(stranger.verifier()).unwrap();
        let err = verify_checkpoints(&old, &new, &log.proof(7, 20), &wrong, None).unwrap_err();
        assert!(
            matches!(err, ConsistencyError::Old(BundleError::UnknownSigner(_))),
            "{err}"
        );
        assert!(err.to_string().contains(ORIGIN), "{err}");
    }

    #[test]
    fn equal_sizes_and_the_empty_tree() {
        let log = Log::new(5, 0);
        let v = log.verifiers();
        let empty = ConsistencyProof {
            from: 5,
            to: 5,
            proof: vec![],
        };
        assert!(verify_checkpoints(&log.note(5), &log.note(5), &empty, &v, None).is_ok());
        let none = ConsistencyProof {
            from: 0,
            to: 0,
            proof: vec![],
        };
        assert!(verify_checkpoints(&log.note(0), &log.note(5), &none, &v, None).is_ok());
    }

    #[test]
    fn the_proof_json_is_strict() {
        let ok: ConsistencyProof = serde_json::from_str(r#"{"from":1,"to":2,"proof":[]}"#).unwrap();
        assert_eq!((ok.from, ok.to), (1, 2));
        assert!(
            serde_json::from_str::<ConsistencyProof>(r#"{"from":1,"to":2,"proof":[],"x":1}"#)
                .is_err()
        );
    }
}
