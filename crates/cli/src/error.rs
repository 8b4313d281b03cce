//! What a failed command reports, and with which exit code.
//!
//! Every command fails through [`CliError`]: one sentence of what went
//! wrong, optionally one of what to do, and the exit code of its class
//! (crates/cli/README.md, "Exit codes"). `main` prints it on stderr, or as a
//! JSON object on stdout with `--json`.

use serde_json::{Map, Value, json};

/// The documented exit codes (clap's own usage errors are 2 as well).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exit {
    /// A proof, signature, trail or consistency check failed.
    Verify = 1,
    /// The command line, a local file or the local keystore is wrong.
    Usage = 2,
    /// The server answered with an error (4xx or 5xx).
    Refused = 3,
    /// No evault REST API could be talked to at the server address.
    Unreachable = 4,
}

/// A failed command.
#[derive(Debug)]
pub struct CliError {
    pub exit: Exit,
    pub message: String,
    /// What to do about it, when there is something better than "retry".
    pub hint: Option<String>,
    /// More members for the `--json` error object (status, detail, …).
    pub extra: Map<String, Value>,
}

pub type CliResult<T = ()> = Result<T, CliError>;

/// How every failed check's message starts.
const NOT_VERIFIED: &str = "NOT VERIFIED: ";

impl CliError {
    pub fn new(exit: Exit, message: impl Into<String>) -> CliError {
        CliError {
            exit,
            message: message.into(),
            hint: None,
            extra: Map::new(),
        }
    }

    pub fn usage(message: impl Into<String>) -> CliError {
        CliError::new(Exit::Usage, message)
    }

    /// A failed check: the message starts with `NOT VERIFIED`, which
    /// scripts grep for, and `--json` says `"verified": false`.
    pub fn not_verified(message: impl std::fmt::Display) -> CliError {
        CliError::new(Exit::Verify, format!("{NOT_VERIFIED}{message}")).with("verified", false)
    }

    pub fn unreachable(message: impl Into<String>) -> CliError {
        CliError::new(Exit::Unreachable, message)
    }

    pub fn hint(mut self, hint: impl Into<String>) -> CliError {
        self.hint = Some(hint.into());
        self
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> CliError {
        self.extra.insert(key.to_string(), value.into());
        self
    }

    /// Prefixes the message with what was being done (`put a.json: …`).
    pub fn context(mut self, what: impl std::fmt::Display) -> CliError {
        self.message = match self.message.strip_prefix(NOT_VERIFIED) {
            Some(rest) => format!("{NOT_VERIFIED}{what}: {rest}"),
            None => format!("{what}: {}", self.message),
        };
        self
    }

    /// The `--json` form: `error`, `exit_code`, `hint` and the extras.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "error": self.message,
            "exit_code": self.exit as u8,
        });
        if let Some(h) = &self.hint {
            v["hint"] = h.clone().into();
        }
        if let Value::Object(m) = &mut v {
            for (k, x) in &self.extra {
                m.insert(k.clone(), x.clone());
            }
        }
        v
    }
}

/// Local failures that were plain strings (keystore, key files, flags)
/// are the caller's to fix: usage errors.
impl From<String> for CliError {
    fn from(message: String) -> CliError {
        CliError::usage(message)
    }
}

impl From<&str> for CliError {
    fn from(message: &str) -> CliError {
        CliError::usage(message)
    }
}

/// An I/O error's text without the `(os error N)` tail, which says nothing
/// more to a user than the text before it.
pub fn io_text(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// `path: what went wrong` for a local file, as a usage error.
pub fn file_error(path: &std::path::Path, e: &std::io::Error) -> CliError {
    CliError::usage(format!("{}: {}", path.display(), io_text(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_form_has_error_code_hint_and_extras() {
        let e = CliError::new(Exit::Refused, "put a: 413")
            .hint("raise --max-upload")
            .with("status", 413);
        let v = e.to_json();
        assert_eq!(v["exit_code"], 3);
        assert_eq!(v["status"], 413);
        assert_eq!(v["hint"], "raise --max-upload");
        let nv = CliError::not_verified("bad proof").context("p.json");
        assert_eq!(nv.message, "NOT VERIFIED: p.json: bad proof");
        assert_eq!(nv.to_json()["verified"], Value::Bool(false));
        let missing = std::fs::File::open("/nonexistent/x").unwrap_err();
        assert_eq!(io_text(&missing), "No such file or directory");
    }
}
