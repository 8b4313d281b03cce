//! `evault import BUNDLE --key KEY`: an evidence bundle of another log,
//! uploaded to the vault, which verifies it with that log's key and keeps
//! it as a mirror (its origin, leaf indexes and checkpoint; never records
//! of its own log). The upload starts an `import_bundle` task, followed to
//! its end.

use std::path::Path;

use serde_json::Value;

use crate::client::{Client, encode};
use crate::error::{CliError, CliResult, file_error};
use crate::output::print_json;
use crate::proof::{load_verifiers, read_key};
use crate::task::{ended, follow, str_of};

pub fn run(client: &Client, bundle: &Path, key: &str, no_wait: bool, json: bool) -> CliResult {
    // Checked here first: a wrong file or key costs no upload.
    let key_text = read_key(key)?;
    load_verifiers(&key_text, "--key")?;
    if !crate::evb::is_bundle_file(bundle)? {
        return Err(CliError::usage(format!(
            "{}: not an evidence bundle (no zstd magic); `evault task result` of an \\
             export_bundle task gives one",
            bundle.display()
        )));
    }
    let mut file = std::fs::File::open(bundle).map_err(|e| file_error(bundle, &e))?;
    let len = file.metadata().map_err(|e| file_error(bundle, &e))?.len();
    let path = format!("/api/v1/imports?key={}", encode(key_text.trim()));
    let headers = [(
        "Content-Type".to_string(),
        "application/octet-stream".to_string(),
    )];
    let (_, task) = client.post_file(&path, &headers, bundle, len, &mut file)?;
    let id = str_of(&task, "id").to_string();
    if no_wait {
        if json {
            print_json(&task);
        } else {
            println!("{id}");
        }
        return Ok(());
    }
    let t = follow(client, &id, json)?;
    if json {
        print_json(&t);
    } else if str_of(&t, "state") == "succeeded" {
        println!("{}", summary_line(&t["summary"]));
    }
    ended(&id, &t)
}

fn summary_line(s: &Value) -> String {
    let n = |k: &str| s[k].as_u64().unwrap_or(0);
    format!(
        "imported {} records of {} at tree size {} ({} new, {} payloads new{}); read them \\
         under /api/v1/mirrors",
        n("records"),
        str_of(s, "origin"),
        n("tree_size"),
        n("records_new"),
        n("payloads_new"),
        if s["checkpoint_new"] == Value::Bool(true) {
            ", a new checkpoint"
        } else {
            ""
        }
    )
}
