//! Output rules shared by the commands: results go to stdout (text, or
//! JSON with `--json`); notes, progress and errors go to stderr, progress
//! only when stderr is a terminal.

use std::io::IsTerminal;
use std::path::Path;

use serde_json::Value;

use crate::error::{CliError, CliResult, file_error};

pub fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// A reply's JSON text, pretty-printed.
pub fn pretty_json(text: &str) -> CliResult<String> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| CliError::unreachable(format!("unexpected reply: {e}")))?;
    Ok(serde_json::to_string_pretty(&v).unwrap_or_default() + "\n")
}

/// Writes `text` to the file `out` (saying so on stderr), or to stdout.
pub fn write_out(text: &str, out: Option<&Path>, what: &str) -> CliResult {
    match out {
        Some(path) => {
            std::fs::write(path, text).map_err(|e| file_error(path, &e))?;
            crate::say!("evault: wrote {what} to {}", path.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// Whether progress may be drawn: only on a terminal, never into a log.
pub fn progress_allowed() -> bool {
    std::io::stderr().is_terminal()
}

/// Reads a local file the user named, as a usage error if it cannot be.
pub fn read_file(path: &Path) -> CliResult<String> {
    std::fs::read_to_string(path).map_err(|e| file_error(path, &e))
}
