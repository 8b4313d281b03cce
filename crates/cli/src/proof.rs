//! `evault prove` (and `audit prove`) fetch an entry's inclusion proof;
//! `evault verify` checks one offline, trusting only the log's verifier key.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use evault_note::{Verifiers, log_verifier};
use evault_verify::audit::AuditEvent;
use evault_verify::{BundleError, Evidence, LoggedRecord, ProofBundle, TlogProof, Verified};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::client::{Client, encode};
use crate::error::{CliError, CliResult, Exit, file_error};
use crate::output::{pretty_json, print_json, read_file, write_out};

/// Which of the vault's two Merkle logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogKind {
    /// The evidence log (records).
    Evidence,
    /// The audit log (one event per API call).
    Audit,
}

impl LogKind {
    fn noun(self) -> &'static str {
        match self {
            LogKind::Evidence => "record",
            LogKind::Audit => "audit event",
        }
    }

    fn entry_path(self, id: &str) -> String {
        match self {
            LogKind::Evidence => format!("/api/v1/evidence/{}", encode(id)),
            LogKind::Audit => format!("/api/v1/audit/events/{}", encode(id)),
        }
    }

    pub fn info_path(self) -> &'static str {
        match self {
            LogKind::Evidence => "/api/v1/log",
            LogKind::Audit => "/api/v1/audit/log",
        }
    }

    pub fn checkpoint_path(self, size: Option<u64>) -> String {
        let base = match self {
            LogKind::Evidence => "/api/v1/checkpoints",
            LogKind::Audit => "/api/v1/audit/checkpoints",
        };
        match size {
            Some(n) => format!("{base}/{n}"),
            None => format!("{base}/latest"),
        }
    }

    pub fn consistency_path(self, from: u64, to: u64) -> String {
        let base = match self {
            LogKind::Evidence => "/api/v1/tree/consistency",
            LogKind::Audit => "/api/v1/audit/consistency",
        };
        format!("{base}?from={from}&to={to}")
    }

    fn list_hint(self) -> &'static str {
        match self {
            LogKind::Evidence => "check the id; `evault ls` lists records",
            LogKind::Audit => "check the id; `evault audit tail` lists events",
        }
    }
}

/// Whether `e` is the server's 404.
fn is_not_found(e: &CliError) -> bool {
    e.exit == Exit::Refused && e.extra.get("status") == Some(&Value::from(404))
}

#[allow(clippy::too_many_arguments)]
pub fn prove(
    client: &Client,
    log: LogKind,
    id: &str,
    tree_size: Option<u64>,
    out: Option<PathBuf>,
    tlog: bool,
    wait: Duration,
    json_out: bool,
) -> CliResult {
    let text = fetch_proof(client, log, id, tree_size, tlog, wait)?;
    let text = if tlog { text } else { pretty_json(&text)? };
    let format = if tlog { "tlog-proof" } else { "bundle" };
    match (&out, json_out) {
        (Some(path), true) => {
            std::fs::write(path, &text).map_err(|e| file_error(path, &e))?;
            print_json(&json!({"id": id, "out": path, "format": format}));
        }
        (None, true) if tlog => print_json(&json!({"id": id, "format": format, "proof": text})),
        _ => write_out(&text, out.as_deref(), "proof")?,
    }
    Ok(())
}

/// GETs a proof. An entry is acknowledged before the next checkpoint
/// covers it, so without `tree_size` a 404 is looked into: an id the
/// server does not know fails at once; a known entry not yet under a
/// signed checkpoint is waited for (at most `wait`, polling the log's
/// checkpoint size with backoff), then proven.
fn fetch_proof(
    client: &Client,
    log: LogKind,
    id: &str,
    tree_size: Option<u64>,
    tlog: bool,
    wait: Duration,
) -> CliResult<String> {
    let mut path = format!("{}/proof", log.entry_path(id));
    let mut q = Vec::new();
    if let Some(n) = tree_size {
        q.push(format!("tree_size={n}"));
    }
    if tlog {
        q.push("format=tlog-proof".to_string());
    }
    if !q.is_empty() {
        path = format!("{path}?{}", q.join("&"));
    }
    let accept = if tlog {
        "text/plain"
    } else {
        "application/json"
    };
    let what = format!("proving {} {id}", log.noun());
    match client.get_text(&path, accept) {
        Ok(t) => return Ok(t),
        Err(e) if is_not_found(&e) && tree_size.is_none() => {}
        Err(e) => return Err(e.context(what)),
    }
    let entry: Value = client.get_json(&log.entry_path(id)).map_err(|e| {
        let e = e.context(&what);
        if is_not_found(&e) {
            e.hint(log.list_hint())
        } else {
            e
        }
    })?;
    let leaf = entry["leaf_index"]
        .as_u64()
        .ok_or_else(|| client.not_json(&log.entry_path(id), "no leaf_index"))?;
    let deadline = Instant::now() + wait;
    let mut delay = Duration::from_millis(50);
    loop {
        let info: Value = client.get_json(log.info_path())?;
        if info["checkpoint_size"].as_u64().unwrap_or(0) > leaf {
            break;
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(CliError::new(
                Exit::Refused,
                format!(
                    "{what}: it is leaf {leaf}, not yet under a signed checkpoint after \
                     waiting {}",
                    humantime::format_duration(wait)
                ),
            )
            .hint(
                "the vault signs a checkpoint every --checkpoint-interval; retry, or raise --wait",
            ));
        }
        std::thread::sleep(delay.min(deadline - now));
        delay = (delay * 2).min(Duration::from_secs(1));
    }
    client.get_text(&path, accept).map_err(|e| e.context(what))
}

/// A verifier key given as text or as a file holding it.
pub fn read_key(key: &str) -> CliResult<String> {
    let path = Path::new(key);
    if path.is_file() {
        Ok(read_file(path)?.trim().to_string())
    } else {
        Ok(key.trim().to_string())
    }
}

/// The verifiers for `--key`, and the key's `name+id` for messages.
pub fn load_verifiers(key: &str, flag: &str) -> CliResult<(Verifiers, String)> {
    let text = read_key(key)?;
    // A log's key: Ed25519, or ML-DSA-44 as C2SP tlog-checkpoint recommends.
    let verifier = log_verifier(&text).map_err(|e| {
        CliError::usage(format!("{flag}: not a log's verifier key ({e})")).hint(
            "a verifier key looks like <origin>+<8 hex>+<base64> (Ed25519 or ML-DSA-44): \
             `evault serve` prints the log's, and GET /api/v1/log (or /api/v1/audit/log) \
             returns it",
        )
    })?;
    let name = match evault_note::parse_verifier_key(&text) {
        Ok(k) => format!("{}+{:08x}", k.name, k.key_id),
        Err(_) => text.clone(),
    };
    let mut verifiers = Verifiers::new();
    verifiers
        .insert_boxed(verifier)
        .map_err(|e| CliError::usage(format!("{flag}: {e}")))?;
    Ok((verifiers, name))
}

/// `--key-policy`: which of the given keys each checkpoint must carry.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeyPolicy {
    /// A signature by any one of them (e.g. during a key rotation).
    #[default]
    Any,
    /// A signature by every one of them (e.g. Ed25519 and ML-DSA-44).
    All,
}

/// The log keys given with `--key` (repeatable; a file may hold several,
/// one per line, as `GET /api/v1/log` lists them in `verifier_keys`).
pub struct KeySet {
    /// All of them, for opening checkpoints.
    pub verifiers: Verifiers,
    /// Their `name+id`s, for messages.
    pub name: String,
    keys: Vec<(String, Verifiers)>,
    policy: KeyPolicy,
}

impl KeySet {
    pub fn load(given: &[String], policy: KeyPolicy, flag: &str) -> CliResult<KeySet> {
        let mut texts = Vec::new();
        for g in given {
            let text = read_key(g)?;
            texts.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_string),
            );
        }
        if texts.is_empty() {
            return Err(CliError::usage(format!("{flag}: no key given")));
        }
        let mut verifiers = Verifiers::new();
        let mut names = Vec::new();
        let mut keys = Vec::new();
        for text in texts {
            let (one, name) = load_verifiers(&text, flag)?;
            verifiers
                .insert_boxed(log_verifier(&text).map_err(|e| CliError::usage(e.to_string()))?)
                .map_err(|e| CliError::usage(format!("{flag}: {e}")))?;
            names.push(name);
            keys.push((text, one));
        }
        Ok(KeySet {
            verifiers,
            name: names.join(", "),
            keys,
            policy,
        })
    }

    /// With `--key-policy all`: `note` (already verified with the set)
    /// must carry a valid signature by every key. `what` names it.
    pub fn check(&self, note: &str, what: &str) -> CliResult {
        if self.policy == KeyPolicy::Any {
            return Ok(());
        }
        for (text, one) in &self.keys {
            if evault_note::open(note.as_bytes(), one).is_err() {
                let name = evault_note::parse_verifier_key(text)
                    .map(|k| format!("{}+{:08x}", k.name, k.key_id))
                    .unwrap_or_else(|_| text.clone());
                return Err(CliError::not_verified(format!(
                    "{what} is not signed by {name}, and --key-policy all asks for a signature by \
                     every --key"
                )));
            }
        }
        Ok(())
    }
}

/// A failed check as `NOT VERIFIED`, naming the given key when the
/// checkpoint was signed by another one.
pub fn bundle_failure(e: &BundleError, key_name: &str, flag: &str) -> CliError {
    match e {
        BundleError::UnknownSigner(_) => {
            CliError::not_verified(format!("{e} ({flag} is {key_name})")).hint(format!(
                "pass the verifier key of the log that signed it as {flag} (`evault serve` \
                 prints both logs' keys)"
            ))
        }
        e => CliError::not_verified(e),
    }
}

pub fn verify(
    proof: &Path,
    record: Option<&Path>,
    checkpoint: Option<&Path>,
    keys: &KeySet,
    origin: Option<&str>,
    json_out: bool,
) -> CliResult {
    let text = read_file(proof)?;
    let (verifiers, key_name) = (&keys.verifiers, keys.name.as_str());
    let checkpoint = checkpoint.map(read_file).transpose()?;
    let record: Option<Value> = match record {
        Some(p) => Some(
            serde_json::from_str(&read_file(p)?)
                .map_err(|e| CliError::usage(format!("{}: not a JSON record: {e}", p.display())))?,
        ),
        None => None,
    };
    let name = proof.display();
    let (format, audit, ok, id) = if text.starts_with("c2sp.org/tlog-proof@") {
        let parsed = TlogProof::parse(&text)
            .map_err(|e| CliError::not_verified(format!("{name}: not a valid tlog-proof: {e}")))?;
        let Some(record) = record else {
            return Err(CliError::usage(format!(
                "{name} is a C2SP tlog-proof, which does not carry the record it proves"
            ))
            .hint(
                "pass the record with --record FILE (save it with `evault get <id> --json > \
                 record.json`, or an audit event from `evault audit tail --json`)",
            ));
        };
        let mut parsed = parsed;
        if let Some(cp) = checkpoint {
            parsed.checkpoint = cp;
        }
        let note = parsed.checkpoint.clone();
        let audit = record.get("request_id").is_some();
        let id = record["id"].as_str().unwrap_or("?").to_string();
        let ok = if audit {
            tlog_verify::<AuditEvent>(&parsed, record, verifiers, origin)
        } else {
            tlog_verify::<Evidence>(&parsed, record, verifiers, origin)
        }
        .map_err(|e| e.into_error(key_name).context(&name))?;
        keys.check(&note, &format!("{name}: the checkpoint"))?;
        ("tlog-proof", audit, ok, id)
    } else {
        let value: Value = serde_json::from_str(&text).map_err(|e| {
            CliError::usage(format!(
                "{name} is neither a JSON proof bundle nor a C2SP tlog-proof ({e})"
            ))
            .hint("give the file `evault prove --out` (or `--tlog-proof --out`) wrote")
        })?;
        // An audit event bundle has the evidence bundle's shape; its record
        // is told apart by the fields only an audit event has.
        let audit = value["record"].get("request_id").is_some();
        let id = value["record"]["id"].as_str().unwrap_or("?").to_string();
        let note = checkpoint
            .clone()
            .or_else(|| value["checkpoint"].as_str().map(str::to_string))
            .unwrap_or_default();
        let ok = if audit {
            bundle_verify::<AuditEvent>(value, record, checkpoint, verifiers, origin)
        } else {
            bundle_verify::<Evidence>(value, record, checkpoint, verifiers, origin)
        }
        .map_err(|e| e.into_error(key_name).context(&name))?;
        keys.check(&note, &format!("{name}: the checkpoint"))?;
        ("bundle", audit, ok, id)
    };
    let what = if audit { "audit event" } else { "record" };
    if json_out {
        print_json(&json!({
            "verified": true,
            "format": format,
            "kind": if audit { "audit-event" } else { "evidence" },
            "origin": ok.origin,
            "tree_size": ok.tree_size,
            "leaf_index": ok.leaf_index,
            "record_id": id,
            "signed_by": ok.signed_by,
        }));
    } else {
        println!(
            "verified: {what} {id} is leaf {} of {} (tree size {}), checkpoint signed by {}",
            ok.leaf_index,
            ok.origin,
            ok.tree_size,
            ok.signed_by.join(", ")
        );
    }
    Ok(())
}

/// Why verification failed: the proof (bundle error) or its input.
enum Failure {
    Bundle(BundleError),
    Input(String),
}

impl Failure {
    fn into_error(self, key_name: &str) -> CliError {
        match self {
            Failure::Bundle(e) => bundle_failure(&e, key_name, "--key"),
            Failure::Input(m) => CliError::not_verified(m),
        }
    }
}

/// A record in the strict format (unknown members are refused).
fn strict<R: DeserializeOwned>(value: Value, what: &str) -> Result<R, Failure> {
    serde_json::from_value(value).map_err(|e| Failure::Input(format!("{what}: {e}")))
}

/// Parses a bundle of records of type `R` and verifies it offline; a
/// `--record` must be the bundle's own.
fn bundle_verify<R: LoggedRecord + DeserializeOwned + PartialEq>(
    value: Value,
    record: Option<Value>,
    checkpoint: Option<String>,
    verifiers: &Verifiers,
    origin: Option<&str>,
) -> Result<Verified, Failure> {
    let mut bundle: ProofBundle<R> = strict(value, "not a valid proof bundle")?;
    if let Some(r) = record {
        let given: R = strict(r, "--record is not a valid record")?;
        if given != bundle.record {
            return Err(Failure::Input(
                "the record given with --record is not the one the bundle proves".into(),
            ));
        }
    }
    if let Some(cp) = checkpoint {
        bundle.checkpoint = cp;
    }
    bundle.verify(verifiers, origin).map_err(Failure::Bundle)
}

/// Verifies a tlog-proof for a record of type `R`.
fn tlog_verify<R: LoggedRecord + DeserializeOwned>(
    proof: &TlogProof,
    record: Value,
    verifiers: &Verifiers,
    origin: Option<&str>,
) -> Result<Verified, Failure> {
    let record: R = strict(record, "--record is not a valid record")?;
    proof
        .verify(&record, verifiers, origin)
        .map_err(Failure::Bundle)
}
