//! `evault consistency`: does a newer checkpoint of a log extend an older
//! one (RFC 9162 §2.1.4)? Both checkpoints are signed notes in files; the
//! proof is fetched from the vault or, offline, read from `--proof`.

use std::path::Path;

use evault_note::Checkpoint;
use evault_verify::{ConsistencyError, ConsistencyProof, verify_checkpoints};
use serde_json::json;

use crate::client::Client;
use crate::error::{CliError, CliResult, file_error};
use crate::output::{print_json, read_file};
use crate::proof::{LogKind, bundle_failure};

pub struct Args<'a> {
    pub old: &'a Path,
    pub new: &'a Path,
    pub key: &'a [String],
    pub key_policy: crate::proof::KeyPolicy,
    pub origin: Option<&'a str>,
    pub proof: Option<&'a Path>,
    pub out: Option<&'a Path>,
    pub log: LogKind,
}

/// The tree size a checkpoint note claims (its signature is checked later,
/// with the proof).
fn claimed_size(path: &Path, note: &str) -> CliResult<u64> {
    let body = note.split("\n\n").next().unwrap_or_default();
    Checkpoint::parse(&format!("{body}\n"))
        .map(|c| c.size)
        .map_err(|e| {
            CliError::usage(format!("{}: not a checkpoint: {e}", path.display())).hint(
                "save one with `evault checkpoint --out FILE` (add --log audit for the audit log)",
            )
        })
}

pub fn run(client: impl FnOnce() -> CliResult<Client>, a: Args<'_>, json_out: bool) -> CliResult {
    let old_note = read_file(a.old)?;
    let new_note = read_file(a.new)?;
    let keys = crate::proof::KeySet::load(a.key, a.key_policy, "--key")?;
    let (verifiers, key_name) = (&keys.verifiers, keys.name.as_str());
    let (from, to) = (
        claimed_size(a.old, &old_note)?,
        claimed_size(a.new, &new_note)?,
    );
    let proof = match a.proof {
        Some(p) => serde_json::from_str::<ConsistencyProof>(&read_file(p)?).map_err(|e| {
            CliError::usage(format!("{}: not a consistency proof: {e}", p.display()))
        })?,
        // Nothing to fetch: any tree extends the empty one, a tree of the
        // same size must have the same root, and a shrunk log fails below.
        None if from == 0 || from >= to => ConsistencyProof {
            from,
            to,
            proof: vec![],
        },
        None => {
            let c = client()?;
            let path = a.log.consistency_path(from, to);
            let proof: ConsistencyProof = c.get_json(&path)?;
            if let Some(out) = a.out {
                let text = serde_json::to_string_pretty(&proof).unwrap_or_default() + "\n";
                std::fs::write(out, text).map_err(|e| file_error(out, &e))?;
                crate::say!("evault: wrote the proof to {}", out.display());
            }
            proof
        }
    };
    let ok = verify_checkpoints(&old_note, &new_note, &proof, verifiers, a.origin).map_err(
        |e| match &e {
            ConsistencyError::Old(b) => bundle_failure(b, key_name, "--key").context("--old"),
            ConsistencyError::New(b) => bundle_failure(b, key_name, "--key").context("--new"),
            e => CliError::not_verified(e),
        },
    )?;
    keys.check(&old_note, "--old")?;
    keys.check(&new_note, "--new")?;
    if json_out {
        print_json(&json!({
            "consistent": true,
            "origin": ok.origin,
            "old_size": ok.old_size,
            "new_size": ok.new_size,
            "signed_by": ok.signed_by,
        }));
    } else {
        println!(
            "consistent: {} at size {} extends its checkpoint of size {}, signed by {}",
            ok.origin,
            ok.new_size,
            ok.old_size,
            ok.signed_by.join(", ")
        );
    }
    Ok(())
}
