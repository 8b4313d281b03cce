//! Secrets read from files (a database password, the cluster's secret):
//! only the file's owner may read it, and its first line is the secret.

use std::path::Path;

/// Why a secret file was not read.
#[derive(Debug)]
pub struct SecretFileError {
    message: String,
    /// The file is readable by group or others (fix: chmod 600).
    pub exposed: bool,
}

impl std::fmt::Display for SecretFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The first line of `path`, which must be non-empty and readable by its
/// owner only; `flag` names the option in errors.
pub fn first_line(flag: &str, path: &Path) -> Result<String, SecretFileError> {
    use std::os::unix::fs::PermissionsExt;
    let fail = |message: String, exposed: bool| SecretFileError { message, exposed };
    let meta = std::fs::metadata(path)
        .map_err(|e| fail(format!("{flag} {}: {e}", path.display()), false))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(fail(
            format!("{flag} {}: readable by group or others", path.display()),
            true,
        ));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| fail(format!("{flag} {}: {e}", path.display()), false))?;
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        return Err(fail(
            format!("{flag} {}: the first line is empty", path.display()),
            false,
        ));
    }
    Ok(line.to_string())
}
