//! `evault prove` fetches a record's inclusion proof bundle; `evault verify`
//! checks one offline, trusting only the log's verifier key.

use std::path::{Path, PathBuf};

use evault_note::{Ed25519Verifier, Verifiers};
use evault_verify::audit::AuditEvent;
use evault_verify::{Evidence, LoggedRecord, ProofBundle, Verified};
use serde_json::{Value, json};

use crate::client::{Client, encode};
use crate::output::{pretty_json, print_json, write_out};

pub fn prove(
    client: &Client,
    id: &str,
    tree_size: Option<u64>,
    out: Option<PathBuf>,
    tlog: bool,
) -> Result<(), String> {
    let mut path = format!("/api/v1/evidence/{}/proof", encode(id));
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
    let text = fetch_proof(
        client,
        &path,
        if tlog {
            "text/plain"
        } else {
            "application/json"
        },
        tree_size.is_none(),
    )?;
    let text = if tlog { text } else { pretty_json(&text)? };
    write_out(&text, out.as_deref(), "proof")
}

/// GETs a proof. A record is acknowledged before the next checkpoint
/// covers it: with `wait`, a 404 is retried for a few checkpoint intervals
/// rather than failing at once.
pub fn fetch_proof(
    client: &Client,
    path: &str,
    accept: &str,
    wait: bool,
) -> Result<String, String> {
    let mut attempt = 0;
    loop {
        match client.get_text(path, accept) {
            Ok(t) => return Ok(t),
            Err(e) if e.starts_with("404") && wait && attempt < 20 => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(250));
            }
            Err(e) => return Err(e),
        }
    }
}

pub fn verify(
    proof: &Path,
    checkpoint: Option<&Path>,
    key: &str,
    origin: Option<&str>,
    json_out: bool,
) -> Result<(), String> {
    let text = std::fs::read_to_string(proof).map_err(|e| format!("{}: {e}", proof.display()))?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not a proof bundle: {e}", proof.display()))?;
    // An audit event bundle has the evidence bundle's shape; its record is
    // told apart by the fields only an audit event has.
    let audit = value["record"].get("request_id").is_some();
    let key_text = if Path::new(key).is_file() {
        std::fs::read_to_string(key)
            .map_err(|e| format!("{key}: {e}"))?
            .trim()
            .to_string()
    } else {
        key.to_string()
    };
    let verifier =
        Ed25519Verifier::from_verifier_key(&key_text).map_err(|e| format!("--key: {e}"))?;
    let verifiers = Verifiers::new().with(verifier).map_err(|e| e.to_string())?;
    let checkpoint = match checkpoint {
        Some(cp) => {
            Some(std::fs::read_to_string(cp).map_err(|e| format!("{}: {e}", cp.display()))?)
        }
        None => None,
    };
    let ok = if audit {
        verify_bundle::<AuditEvent>(value.clone(), checkpoint, &verifiers, origin)
    } else {
        verify_bundle::<Evidence>(value.clone(), checkpoint, &verifiers, origin)
    }
    .map_err(|e| format!("{}: {e}", proof.display()))?;
    let what = if audit { "audit event" } else { "record" };
    let id = value["record"]["id"].as_str().unwrap_or("?");
    if json_out {
        print_json(&json!({
            "verified": true,
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

/// Parses a bundle of records of type `R` and verifies it offline.
fn verify_bundle<R: LoggedRecord + serde::de::DeserializeOwned>(
    value: Value,
    checkpoint: Option<String>,
    verifiers: &Verifiers,
    origin: Option<&str>,
) -> Result<Verified, String> {
    let mut bundle: ProofBundle<R> =
        serde_json::from_value(value).map_err(|e| format!("not a proof bundle: {e}"))?;
    if let Some(cp) = checkpoint {
        bundle.checkpoint = cp;
    }
    bundle
        .verify(verifiers, origin)
        .map_err(|e| format!("NOT VERIFIED: {e}"))
}
