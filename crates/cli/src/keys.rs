//! `evault keys generate`: a signing key in the C2SP signed-note format.

use std::io::Write;
use std::path::Path;

use evault_note::generate_ed25519;
use serde_json::json;

use crate::error::CliResult;
use crate::output::print_json;

pub fn generate(name: &str, out: &Path, json_out: bool) -> CliResult {
    use std::os::unix::fs::OpenOptionsExt;
    let (skey, vkey) = generate_ed25519(name).map_err(|e| format!("key name {name:?}: {e}"))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(|e| crate::error::file_error(out, &e))?;
    f.write_all(skey.expose_secret().as_bytes())
        .and_then(|_| f.write_all(b"\n"))
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("{}: {e}", out.display()))?;
    if json_out {
        print_json(&json!({"private_key_file": out, "verifier_key": vkey.to_string()}));
    } else {
        crate::say!(
            "evault: private key written to {} (mode 0600)",
            out.display()
        );
        println!("{vkey}");
    }
    Ok(())
}
