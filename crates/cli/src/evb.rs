//! `evault verify BUNDLE.evb`: an evidence bundle checked offline with the
//! log's verifier key alone; one line per record, then a summary.

use std::io::Read;
use std::path::Path;

use evault_verify::evb::{self, BundleReport, Check, NoPayloadSink, ReadLimits};
use serde_json::{Value, json};

use crate::error::{CliError, CliResult, file_error};
use crate::output::{print_json, read_file};

/// Whether `path` starts with the zstd magic (an evidence bundle); a file
/// that cannot be opened is a usage error.
pub fn is_bundle_file(path: &Path) -> CliResult<bool> {
    let mut f = std::fs::File::open(path).map_err(|e| file_error(path, &e))?;
    let mut head = [0u8; 4];
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(file_error(path, &e)),
        }
    }
    Ok(evb::is_bundle(&head[..n]))
}

fn check_name(c: Check) -> String {
    match serde_json::to_value(c) {
        Ok(Value::String(s)) => s,
        _ => format!("{c:?}"),
    }
}

pub fn verify(
    path: &Path,
    keys: &crate::proof::KeySet,
    newer: Option<&Path>,
    origin: Option<&str>,
    json_out: bool,
) -> CliResult {
    let (verifiers, key_name) = (&keys.verifiers, keys.name.as_str());
    let newer = newer.map(read_file).transpose()?;
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| file_error(path, &e))?;
    let bundle = evb::read_bundle(
        std::io::BufReader::new(file),
        &ReadLimits::default(),
        &mut NoPayloadSink,
    )
    .map_err(|e| {
        CliError::not_verified(format!("{name}: not a valid evidence bundle: {e}"))
            .hint("nothing was extracted or written; the file is refused as it is")
    })?;
    let report = evb::verify_bundle(&bundle, verifiers, origin, newer.as_deref());
    if report.verified {
        keys.check(
            &String::from_utf8_lossy(&bundle.checkpoint),
            &format!("{name}: its checkpoint"),
        )?;
        if let Some(newer) = &newer {
            keys.check(newer, "the newer checkpoint")?;
        }
    }
    if json_out {
        if report.verified {
            let mut v = serde_json::to_value(&report).unwrap_or(Value::Null);
            v["format"] = "evb".into();
            print_json(&v);
        }
    } else {
        print_text(&report);
    }
    if report.verified {
        return Ok(());
    }
    Err(failure(&name, &report, key_name, json_out))
}

/// One line per record (`ok`, or `FAILED` with each failed check), the
/// bundle's own failures, then the summary of what was verified.
fn print_text(report: &BundleReport) {
    for r in &report.entries {
        let leaf = r
            .leaf_index
            .map_or_else(|| "?".to_string(), |i| i.to_string());
        let id = r.id.as_deref().unwrap_or("?");
        if r.ok {
            match &r.erased_by {
                Some(t) => println!("ok      leaf {leaf}  {id}  (payload erased by tombstone {t})"),
                None => println!("ok      leaf {leaf}  {id}"),
            }
        } else {
            let what: Vec<String> = r
                .failures
                .iter()
                .map(|f| format!("{}: {}", check_name(f.check), f.detail))
                .collect();
            println!("FAILED  leaf {leaf}  {id}  {}", what.join("; "));
        }
    }
    for f in &report.failures {
        let member = f
            .member
            .as_deref()
            .map(|m| format!(" {m}"))
            .unwrap_or_default();
        println!(
            "FAILED  bundle{member}  {}: {}",
            check_name(f.check),
            f.detail
        );
    }
    if report.verified {
        let consistency: Vec<String> = report
            .consistency
            .iter()
            .map(|c| format!("; consistent with tree size {} ({})", c.to, c.source))
            .collect();
        let erased = if report.erased > 0 {
            format!(
                " ({} with payloads erased, each by a verified tombstone)",
                report.erased
            )
        } else {
            String::new()
        };
        println!(
            "verified: {} records{erased} of {} at tree size {}, checkpoint signed by {}{}",
            report.records,
            report.origin,
            report.tree_size,
            report.signed_by.join(", "),
            consistency.concat()
        );
    }
}

/// The `NOT VERIFIED` error: names the first failing record and check,
/// or the bundle's first failure; with `--json` it carries the report.
fn failure(name: &str, report: &BundleReport, key_name: &str, json_out: bool) -> CliError {
    let bad: Vec<_> = report.failed_records().collect();
    let mut parts = Vec::new();
    if let Some(r) = bad.first() {
        let f = &r.failures[0];
        parts.push(format!(
            "{} of {} records failed; first: record {} (leaf {}): {}: {}",
            bad.len(),
            report.records,
            r.id.as_deref().unwrap_or("?"),
            r.leaf_index
                .map_or_else(|| "?".to_string(), |i| i.to_string()),
            check_name(f.check),
            f.detail
        ));
    }
    if let Some(f) = report.failures.first() {
        let member = f
            .member
            .as_deref()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default();
        parts.push(format!("{}{member}: {}", check_name(f.check), f.detail));
    }
    let mut e = CliError::not_verified(format!("{name}: {}", parts.join("; ")));
    let wrong_key = report
        .failures
        .iter()
        .any(|f| f.check == Check::Checkpoint && f.detail.contains("not signed by the given key"));
    if wrong_key {
        e = e.hint(format!(
            "--key is {key_name}; pass the verifier key of the log that signed the bundle's \
             checkpoint (`evault serve` prints it, GET /api/v1/log returns it)"
        ));
    } else if report
        .failures
        .iter()
        .any(|f| f.check == Check::ConsistencyUnavailable)
    {
        e = e.hint(
            "the bundle cannot show consistency with that checkpoint; check it against the \
             vault with `evault consistency`",
        );
    }
    if json_out && let Ok(Value::Object(m)) = serde_json::to_value(report) {
        for (k, v) in m {
            e = e.with(&k, v);
        }
        e = e.with("format", json!("evb"));
    }
    e
}
