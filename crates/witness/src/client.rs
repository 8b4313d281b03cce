//! The log's side of C2SP tlog-witness: ask each configured witness to
//! cosign a new checkpoint, react to its answer as the specification says,
//! keep the cosignatures that verify, and decide by a k-of-n policy whether
//! the checkpoint counts as witnessed.
//!
//! HTTP is behind [`Transport`] and the log's proofs behind [`ProofSource`],
//! so the same logic runs against a real witness or an in-process one.

use core::fmt;
use std::time::{Duration, Instant};

use evault_merkle::Hash;
use evault_note::{KeyError, Verifiers, open, verifier_for};

use crate::request::{AddCheckpoint, parse_decimal};

/// The first wait after a witness fails; doubled on each failure in a row.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between attempts at a failing witness.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// A witness the log asks for cosignatures.
#[derive(Debug, Clone)]
pub struct WitnessSpec {
    /// The witness's name (its key name).
    pub name: String,
    /// The `add-checkpoint` URL (`<submission prefix>/add-checkpoint`).
    pub url: String,
    /// Its cosigner verifier keys (type `0x04` or `0x06`).
    pub keys: Vec<String>,
}

/// An HTTP response, as much of it as the protocol reads.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

/// Sends an `add-checkpoint` request; implementations bound the time and
/// the size of the answer.
pub trait Transport {
    /// POSTs `body` to `url` and returns the response, or why there was
    /// none.
    fn post(&self, url: &str, body: &[u8]) -> Result<Response, String>;
}

/// The log's consistency proofs.
pub trait ProofSource {
    /// The RFC 6962 consistency proof from `old` to `new` leaves
    /// (`0 < old <= new`).
    fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, String>;
}

/// What happened with one witness for one checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WitnessOutcome {
    /// It cosigned; these are its verified signature lines.
    Cosigned(Vec<String>),
    /// Skipped: it failed recently and its back-off has not elapsed.
    BackingOff {
        /// Time left.
        remaining: Duration,
        /// Its last failure.
        last_error: String,
    },
    /// It refused or could not be reached; it is backed off.
    Failed(String),
    /// It answered 422: this checkpoint is not consistent with one it
    /// cosigned before. Either this log forked or was rolled back, or the
    /// witness is wrong; an operator must look. It is backed off.
    Inconsistent(String),
}

/// The state kept per witness between checkpoints.
#[derive(Debug)]
struct WitnessState {
    spec: WitnessSpec,
    verifiers: Verifiers,
    /// The size the witness last cosigned, as far as the log knows.
    acked: u64,
    failures: u32,
    retry_at: Option<Instant>,
    last_error: String,
}

/// Why the witness list could not be set up.
#[derive(Debug)]
pub enum SetupError {
    /// A witness key could not be parsed.
    Key {
        /// The witness.
        witness: String,
        /// Why.
        error: KeyError,
    },
    /// The threshold is 0 or above the number of witnesses, or a witness
    /// has no key.
    Policy(String),
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::Key { witness, error } => write!(f, "witness {witness}: key: {error}"),
            SetupError::Policy(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for SetupError {}

/// The result of asking every witness about one checkpoint.
#[derive(Debug, Clone)]
pub struct Round {
    /// Each witness's name and outcome, in configuration order.
    pub outcomes: Vec<(String, WitnessOutcome)>,
    /// The cosignature lines of every witness that cosigned.
    pub cosignatures: Vec<String>,
    /// How many witnesses cosigned.
    pub cosigned: usize,
    /// The policy: how many must.
    pub threshold: usize,
}

impl Round {
    /// Whether at least `threshold` witnesses cosigned.
    pub fn witnessed(&self) -> bool {
        self.cosigned >= self.threshold
    }
}

/// A log's witnesses and its k-of-n policy.
#[derive(Debug)]
pub struct Witnesses {
    witnesses: Vec<WitnessState>,
    threshold: usize,
}

impl Witnesses {
    /// Sets up the witnesses; a checkpoint counts as witnessed once
    /// `threshold` of them cosigned it.
    pub fn new(specs: Vec<WitnessSpec>, threshold: usize) -> Result<Self, SetupError> {
        if threshold == 0 || threshold > specs.len() {
            return Err(SetupError::Policy(format!(
                "witness threshold {threshold} must be between 1 and the number of witnesses ({})",
                specs.len()
            )));
        }
        let mut witnesses = Vec::with_capacity(specs.len());
        let mut names = std::collections::HashSet::new();
        let mut keys = std::collections::HashSet::new();
        for spec in specs {
            // One witness listed twice would count twice toward k.
            if !names.insert(spec.name.clone()) {
                return Err(SetupError::Policy(format!(
                    "witness {} is listed twice",
                    spec.name
                )));
            }
            if spec.keys.is_empty() {
                return Err(SetupError::Policy(format!(
                    "witness {} has no key",
                    spec.name
                )));
            }
            let mut verifiers = Verifiers::new();
            for k in &spec.keys {
                let v = verifier_for(k).map_err(|error| SetupError::Key {
                    witness: spec.name.clone(),
                    error,
                })?;
                if !keys.insert((v.name().to_owned(), v.key_id())) {
                    return Err(SetupError::Policy(format!(
                        "witness {}: key {}+{:08x} is also another witness's",
                        spec.name,
                        v.name(),
                        v.key_id()
                    )));
                }
                verifiers
                    .insert_boxed(v)
                    .map_err(|e| SetupError::Policy(format!("witness {}: {e}", spec.name)))?;
            }
            witnesses.push(WitnessState {
                spec,
                verifiers,
                acked: 0,
                failures: 0,
                retry_at: None,
                last_error: String::new(),
            });
        }
        Ok(Witnesses {
            witnesses,
            threshold,
        })
    }

    /// The size each witness last cosigned, as far as this log knows.
    pub fn acknowledged(&self) -> Vec<(String, u64)> {
        self.witnesses
            .iter()
            .map(|w| (w.spec.name.clone(), w.acked))
            .collect()
    }

    /// Asks every witness not backing off to cosign `note` (the log's
    /// signed checkpoint of `size` leaves).
    ///
    /// Each request carries a proof from the size the witness last
    /// cosigned. A 409 tells the witness's size; the request is sent once
    /// more from there if that size is not beyond the checkpoint. Any other
    /// refusal, an unreachable witness, or cosignatures that do not verify
    /// back the witness off (1 s, doubling, at most an hour).
    pub fn cosign(
        &mut self,
        note: &str,
        size: u64,
        proofs: &dyn ProofSource,
        transport: &dyn Transport,
        now: Instant,
    ) -> Round {
        let mut outcomes = Vec::with_capacity(self.witnesses.len());
        let mut cosignatures = Vec::new();
        for w in &mut self.witnesses {
            if let Some(at) = w.retry_at.filter(|at| *at > now) {
                outcomes.push((
                    w.spec.name.clone(),
                    WitnessOutcome::BackingOff {
                        remaining: at - now,
                        last_error: w.last_error.clone(),
                    },
                ));
                continue;
            }
            let outcome = match ask(w, note, size, proofs, transport) {
                Ok(lines) => {
                    w.acked = size;
                    w.failures = 0;
                    w.retry_at = None;
                    cosignatures.extend(lines.iter().cloned());
                    WitnessOutcome::Cosigned(lines)
                }
                Err(e) => {
                    w.failures = w.failures.saturating_add(1);
                    let wait = FIRST_BACKOFF
                        .saturating_mul(1u32 << (w.failures - 1).min(12))
                        .min(MAX_BACKOFF);
                    w.retry_at = Some(now + wait);
                    match e {
                        AskError::Failed(e) => {
                            w.last_error = e.clone();
                            WitnessOutcome::Failed(e)
                        }
                        AskError::Inconsistent(e) => {
                            w.last_error = e.clone();
                            WitnessOutcome::Inconsistent(e)
                        }
                    }
                }
            };
            outcomes.push((w.spec.name.clone(), outcome));
        }
        let cosigned = outcomes
            .iter()
            .filter(|(_, o)| matches!(o, WitnessOutcome::Cosigned(_)))
            .count();
        Round {
            outcomes,
            cosignatures,
            cosigned,
            threshold: self.threshold,
        }
    }
}

/// Why a witness did not cosign.
enum AskError {
    Failed(String),
    Inconsistent(String),
}

impl From<String> for AskError {
    fn from(e: String) -> Self {
        AskError::Failed(e)
    }
}

/// One witness, one checkpoint: at most two requests (the second after a
/// 409 names the witness's size).
fn ask(
    w: &mut WitnessState,
    note: &str,
    size: u64,
    proofs: &dyn ProofSource,
    transport: &dyn Transport,
) -> Result<Vec<String>, AskError> {
    let mut old = w.acked.min(size);
    for attempt in 0..2 {
        let proof = if old == 0 {
            Vec::new()
        } else {
            proofs
                .consistency_proof(old, size)
                .map_err(|e| format!("no consistency proof from {old} to {size}: {e}"))?
        };
        let body = AddCheckpoint {
            old_size: old,
            proof,
            note,
        }
        .encode();
        let resp = transport
            .post(&w.spec.url, body.as_bytes())
            .map_err(|e| format!("{}: {e}", w.spec.url))?;
        match resp.status {
            200 => return Ok(verify_cosignatures(w, note, &resp.body)?),
            409 if attempt == 0 => {
                let theirs = parse_size_body(&resp)
                    .ok_or_else(|| "409 without a text/x.tlog.size body".to_string())?;
                if theirs > size {
                    return Err(AskError::Inconsistent(format!(
                        "the witness has cosigned size {theirs}, beyond this checkpoint's {size}: \
                         this log is behind what it once published"
                    )));
                }
                w.acked = theirs;
                old = theirs;
            }
            status => {
                let text = String::from_utf8_lossy(&resp.body);
                let reason: String = text
                    .lines()
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take(200)
                    .collect();
                let e = format!("{} answered {status}: {reason}", w.spec.url);
                return Err(if status == 422 {
                    AskError::Inconsistent(e)
                } else {
                    AskError::Failed(e)
                });
            }
        }
    }
    Err(AskError::Failed(
        "409 twice in a row: the witness's size keeps moving".into(),
    ))
}

/// Reads a 409 body: the witness's size and a newline, as
/// `text/x.tlog.size`.
fn parse_size_body(resp: &Response) -> Option<u64> {
    let ct = resp.content_type.as_deref()?;
    if ct.split(';').next()?.trim() != "text/x.tlog.size" {
        return None;
    }
    let body = core::str::from_utf8(&resp.body).ok()?;
    parse_decimal(body.strip_suffix('\n')?)
}

/// Keeps the response's signature lines that verify with the witness's
/// keys; fails if none does.
fn verify_cosignatures(w: &WitnessState, note: &str, body: &[u8]) -> Result<Vec<String>, String> {
    let body = core::str::from_utf8(body).map_err(|_| "cosignatures are not UTF-8".to_string())?;
    if body.is_empty() || !body.ends_with('\n') || body.lines().any(|l| !l.starts_with("— ")) {
        return Err("the answer is not signature lines".into());
    }
    let text_end = note
        .rfind("\n\n")
        .ok_or_else(|| "the checkpoint is not a signed note".to_string())?;
    let text = &note[..=text_end];
    let opened = open(format!("{text}\n{body}").as_bytes(), &w.verifiers)
        .map_err(|e| format!("cosignatures do not verify: {e}"))?;
    Ok(opened
        .verified
        .iter()
        .map(|s| format!("— {} {}\n", s.name, s.base64))
        .collect())
}
