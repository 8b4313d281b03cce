//! `evault backfill INVENTORY [--dry-run] [--out report.json]`: uploads a
//! release inventory (CSV or JSON, by its extension or first byte) to
//! `POST /api/v1/backfills`, follows the `backfill_releases` task it starts
//! (progress on stderr), downloads its report (SHA-256 checked), prints the
//! counts per status and exits 1 if any item is an `error`.

use std::path::Path;

use serde_json::Value;
use sha2::Digest as _;

use crate::client::Client;
use crate::error::{CliError, CliResult, Exit, file_error};
use crate::output::print_json;
use crate::task::{ended, follow, str_of};

/// The statuses, in the order their counts are printed.
const STATUSES: [&str; 5] = [
    "backfilled",
    "already-present",
    "dry-run",
    "error",
    "pending",
];
/// Errors named on stderr; the rest are in the report.
const ERRORS_SHOWN: usize = 20;

pub fn run(
    client: &Client,
    inventory: &Path,
    dry_run: bool,
    out: Option<&Path>,
    json: bool,
) -> CliResult {
    let bytes = std::fs::read(inventory).map_err(|e| file_error(inventory, &e))?;
    let content_type = media_type(inventory, &bytes);
    let path = format!("/api/v1/backfills?dry_run={dry_run}");
    let headers = [("Content-Type".to_string(), content_type.to_string())];
    let (_, task) = client.post_file(
        &path,
        &headers,
        inventory,
        bytes.len() as u64,
        &mut bytes.as_slice(),
    )?;
    let id = str_of(&task, "id").to_string();
    let t = follow(client, &id, json)?;
    ended(&id, &t)?;

    let mut report_bytes = Vec::new();
    client.get_to(&format!("/api/v1/tasks/{id}/result"), &mut report_bytes)?;
    let want = t["result"]["sha256"].as_str().unwrap_or("");
    let got = evault_verify::evidence::hex(&sha2::Sha256::digest(&report_bytes));
    if got != want {
        return Err(CliError::not_verified(format!(
            "the report of task {id} hashes to {got}, the task says {want}"
        )));
    }
    let report: Value = serde_json::from_slice(&report_bytes)
        .map_err(|e| client.not_json(&format!("/api/v1/tasks/{id}/result"), e))?;
    if let Some(out) = out {
        std::fs::write(out, &report_bytes).map_err(|e| file_error(out, &e))?;
    }
    let count = |s: &str| report["counts"][s].as_u64().unwrap_or(0);
    if json {
        let mut v =
            serde_json::json!({ "task": id, "dry_run": dry_run, "counts": report["counts"] });
        if let Some(out) = out {
            v["report"] = out.display().to_string().into();
        }
        print_json(&v);
    } else {
        let counts: Vec<String> = STATUSES
            .iter()
            .filter(|s| count(s) > 0)
            .map(|s| format!("{} {s}", count(s)))
            .collect();
        println!(
            "{}{} item(s): {}",
            if dry_run { "dry run: " } else { "" },
            report["items"].as_array().map_or(0, Vec::len),
            counts.join(", ")
        );
    }
    let errors = count("error");
    if errors == 0 {
        return Ok(());
    }
    let items = report["items"].as_array().cloned().unwrap_or_default();
    for item in items
        .iter()
        .filter(|i| str_of(i, "status") == "error")
        .take(ERRORS_SHOWN)
    {
        eprintln!(
            "error: {} {}: {}",
            str_of(item, "version"),
            item["artifact"]
                .as_str()
                .or(item["sha256"].as_str())
                .unwrap_or("?"),
            str_of(item, "reason")
        );
    }
    let mut e = CliError::new(
        Exit::Verify,
        format!("{errors} item(s) of the inventory could not be backfilled"),
    );
    e = match out {
        Some(out) => e.hint(format!("every item's status is in {}", out.display())),
        None => e.hint("--out FILE keeps the report of every item"),
    };
    Err(e)
}

/// `text/csv` unless the file is JSON (a `.json` name, or a first
/// non-blank byte `[`).
fn media_type(path: &Path, bytes: &[u8]) -> &'static str {
    let json_name = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let json_body = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    if json_name || json_body {
        "application/json"
    } else {
        "text/csv"
    }
}
