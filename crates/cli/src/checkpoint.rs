//! `evault checkpoint`: print one of a log's signed checkpoints.

use std::path::Path;

use serde_json::Value;

use crate::client::Client;
use crate::error::{CliResult, file_error};
use crate::output::{print_json, write_out};
use crate::proof::LogKind;

pub fn show(
    client: &Client,
    log: LogKind,
    size: Option<u64>,
    out: Option<&Path>,
    json_out: bool,
) -> CliResult {
    let path = log.checkpoint_path(size);
    if !json_out {
        let note = client.get_text(&path, "text/plain")?;
        return write_out(&note, out, "checkpoint");
    }
    // The server's JSON form: size, note and when it was signed.
    let info: Value = client.get_json(&path)?;
    if let Some(p) = out {
        let note = info["note"].as_str().unwrap_or_default();
        std::fs::write(p, note).map_err(|e| file_error(p, &e))?;
    }
    print_json(&info);
    Ok(())
}
