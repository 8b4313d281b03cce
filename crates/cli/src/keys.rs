//! `evault keys generate`: a signing key in the C2SP signed-note format, in
//! a file (Ed25519, ML-DSA-44 or a witness's Ed25519 cosignature key) or
//! inside a PKCS#11 token (Ed25519). `evault keys rotate|retire|list`: a
//! running vault's evidence log keys.

use std::io::Write;
use std::path::Path;

use evault_note::{
    Ed25519Verifier, SignerKeyText, VerifierKeyText, generate_cosigner, generate_ed25519,
    generate_mldsa44,
};
use serde_json::{Value, json};

use crate::client::Client;
use crate::error::{CliError, CliResult};
use crate::output::print_json;

/// The key types `keys generate` makes (C2SP signed-note type bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyType {
    /// A log's Ed25519 key (0x01).
    Ed25519,
    /// A log's or a witness's ML-DSA-44 key (0x06, FIPS 204).
    #[value(name = "ml-dsa-44")]
    MlDsa44,
    /// A witness's Ed25519 `cosignature/v1` key (0x04).
    Ed25519Cosignature,
}

pub fn generate(name: &str, out: &Path, key_type: KeyType, json_out: bool) -> CliResult {
    use std::os::unix::fs::OpenOptionsExt;
    let made: Result<(SignerKeyText, VerifierKeyText), _> = match key_type {
        KeyType::Ed25519 => generate_ed25519(name),
        KeyType::MlDsa44 => generate_mldsa44(name),
        KeyType::Ed25519Cosignature => generate_cosigner(name),
    };
    let (skey, vkey) = made.map_err(|e| format!("key name {name:?}: {e}"))?;
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

/// Generates an Ed25519 key pair inside the token `uri` names and prints
/// its verifier key under `name`.
pub fn generate_in_token(name: &str, uri: &str, key_type: KeyType, json_out: bool) -> CliResult {
    if key_type != KeyType::Ed25519 {
        return Err(CliError::usage(
            "--pkcs11 makes Ed25519 keys only (PKCS#11 has no ML-DSA-44 or cosignature mechanism)",
        ));
    }
    if !evault_note::is_valid_name(name) {
        return Err(CliError::usage(format!("key name {name:?} is not valid")));
    }
    let public = evault_pkcs11::generate_ed25519(uri).map_err(|e| e.to_string())?;
    let vkey = Ed25519Verifier::from_public_key(name, &public)
        .map_err(|e| format!("the token's public key: {e}"))?
        .verifier_key();
    if json_out {
        print_json(&json!({"pkcs11": redact_query(uri), "verifier_key": vkey.to_string()}));
    } else {
        crate::say!(
            "evault: key generated inside the token ({})",
            redact_query(uri)
        );
        println!("{vkey}");
    }
    Ok(())
}

/// The URI without its query (module path and PIN source or value).
fn redact_query(uri: &str) -> &str {
    uri.split_once('?').map_or(uri, |(path, _)| path)
}

/// `keys rotate`: asks the server to rotate the evidence log's key.
pub fn rotate(client: &Client, overlap: std::time::Duration, json_out: bool) -> CliResult {
    let path = format!(
        "/api/v1/log/keys/rotate?overlap_seconds={}",
        overlap.as_secs()
    );
    let keys = client.post_json(&path, None)?;
    show_keys(&keys, json_out);
    Ok(())
}

/// `keys retire` (a POST) and `keys list` (a GET): the key set after it.
pub fn remote(client: &Client, path: &str, post: bool, json_out: bool) -> CliResult {
    let keys: Value = if post {
        client.post_json(path, None)?
    } else {
        client.get_json(path)?
    };
    show_keys(&keys, json_out);
    Ok(())
}

/// The key set, as JSON or one line per key.
fn show_keys(keys: &Value, json_out: bool) {
    if json_out {
        print_json(keys);
        return;
    }
    let mut out = std::io::stdout().lock();
    for k in keys["keys"].as_array().into_iter().flatten() {
        let mut line = format!(
            "{:<8} {}",
            k["state"].as_str().unwrap_or("?"),
            k["verifier_key"].as_str().unwrap_or("?")
        );
        if let Some(n) = k["added_at"].as_u64() {
            line.push_str(&format!("  added at leaf {n}"));
        }
        if let Some(t) = k["retire_after"].as_str() {
            line.push_str(&format!("  retires after {t}"));
        }
        if let Some(n) = k["retired_at"].as_u64() {
            line.push_str(&format!("  retired at leaf {n}"));
        }
        let _ = writeln!(out, "{line}");
    }
}
