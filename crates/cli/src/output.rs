//! Output helpers shared by the commands.

use std::path::Path;

use serde_json::Value;

pub fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

pub fn pretty_json(text: &str) -> Result<String, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("unexpected reply: {e}"))?;
    Ok(serde_json::to_string_pretty(&v).map_err(|e| e.to_string())? + "\n")
}

/// Writes `text` to `out` (saying so on stderr), or to stdout.
pub fn write_out(text: &str, out: Option<&Path>, what: &str) -> Result<(), String> {
    match out {
        Some(path) => {
            std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
            eprintln!("evault: wrote {what} to {}", path.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}
