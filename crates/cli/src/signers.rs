//! `--signer` and `--audit-signer`: where a log's signing key lives, as a
//! URI. `file:` (RFC 8089) names a key file in the `PRIVATE+KEY+…` format,
//! generated when missing while the log is empty; `pkcs11:` (RFC 7512)
//! names an Ed25519 key inside a PKCS#11 token, which never leaves it.

use std::path::PathBuf;
use std::sync::Arc;

use evault_note::Signer;
use evault_pkcs11::{Pkcs11Signer, Pkcs11Uri};
use evault_vault::LogSigner;

/// Where a log's key is.
#[derive(PartialEq, Eq)]
pub enum SignerUri {
    /// A key file.
    File(PathBuf),
    /// A key in a PKCS#11 token; the whole URI, PIN attributes included.
    Pkcs11(String),
}

impl std::fmt::Debug for SignerUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignerUri::File(p) => f.debug_tuple("File").field(p).finish(),
            // Never the URI itself: it may hold a PIN (pin-value).
            SignerUri::Pkcs11(uri) => {
                let shown = Pkcs11Uri::parse(uri)
                    .map(|u| u.describe())
                    .unwrap_or_else(|_| "?".into());
                f.debug_tuple("Pkcs11").field(&shown).finish()
            }
        }
    }
}

impl SignerUri {
    /// Parses `file:PATH`, `file:///PATH` or `pkcs11:…`. `what` names the
    /// setting in errors.
    pub fn parse(what: &str, text: &str) -> Result<SignerUri, String> {
        let text = text.trim();
        if text.starts_with("pkcs11:") {
            // Checked now, so a typo fails before the vault starts; the
            // error names the attribute, never the PIN.
            Pkcs11Uri::parse(text).map_err(|e| format!("{what}: {e}"))?;
            return Ok(SignerUri::Pkcs11(text.to_string()));
        }
        let Some(rest) = text.strip_prefix("file:") else {
            return Err(format!(
                "{what}: expected a file: or pkcs11: URI, e.g. file:/var/lib/evault/log.key or \
                 pkcs11:token=evault;object=log-key?module-path=…&pin-source=… (a plain path \
                 goes in --key-file)"
            ));
        };
        // RFC 8089: file:/p, file:///p and file://localhost/p are the same
        // local file; another host is not one this machine can open.
        let path = match rest.strip_prefix("//") {
            Some(authority_path) => {
                let (host, path) = authority_path
                    .find('/')
                    .map(|i| authority_path.split_at(i))
                    .unwrap_or((authority_path, ""));
                if !(host.is_empty() || host.eq_ignore_ascii_case("localhost")) {
                    return Err(format!(
                        "{what}: file URI names host {host:?}; only local files can hold a key"
                    ));
                }
                path
            }
            None => rest,
        };
        let path = percent_decode(path).map_err(|e| format!("{what}: {e}"))?;
        if path.is_empty() {
            return Err(format!("{what}: the file: URI names no file"));
        }
        Ok(SignerUri::File(PathBuf::from(path)))
    }

    /// The vault's signer for either: a key file that must exist, or a
    /// token's key.
    pub fn into_signer(self) -> LogSigner {
        match self {
            SignerUri::File(p) => LogSigner::key_file(p),
            SignerUri::Pkcs11(uri) => pkcs11_signer(uri),
        }
    }

    /// The key file's path, or the vault's signer for a token's key.
    pub fn into_config(self) -> (Option<PathBuf>, Option<LogSigner>) {
        match self {
            SignerUri::File(p) => (Some(p), None),
            SignerUri::Pkcs11(uri) => (None, Some(pkcs11_signer(uri))),
        }
    }
}

/// The vault's signer for the key a `pkcs11:` URI names, opened at start-up.
fn pkcs11_signer(uri: String) -> LogSigner {
    let describe = Pkcs11Uri::parse(&uri)
        .map(|u| format!("PKCS#11 {}", u.describe()))
        .unwrap_or_else(|_| "PKCS#11 key".into());
    LogSigner::open(describe, move |origin: &str| {
        let s = Pkcs11Signer::open(&uri, origin).map_err(|e| e.to_string())?;
        tracing::info!("signing as {origin:?} with PKCS#11 {}", s.describe());
        Ok(Arc::new(s) as Arc<dyn Signer>)
    })
}

/// The key file of an ML-DSA-44 signer: only `file:` URIs, since PKCS#11
/// (3.1) has no ML-DSA mechanism that SoftHSM or common HSMs offer.
pub fn pq_key_file(what: &str, text: &str) -> Result<PathBuf, String> {
    match SignerUri::parse(what, text)? {
        SignerUri::File(path) => Ok(path),
        SignerUri::Pkcs11(_) => Err(format!(
            "{what}: an ML-DSA-44 key must be a file: URI (PKCS#11 tokens sign Ed25519 only here)"
        )),
    }
}

/// Decodes `%XX` escapes (RFC 3986) into UTF-8 text.
fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("a % in a file URI must start an escape like %20")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the file URI's path is not UTF-8".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_uris_in_their_rfc_8089_forms() {
        for text in [
            "file:/var/lib/evault/log.key",
            "file:///var/lib/evault/log.key",
            "file://localhost/var/lib/evault/log.key",
            "  file://LOCALHOST/var/lib/evault/log.key ",
        ] {
            assert_eq!(
                SignerUri::parse("signer", text).unwrap(),
                SignerUri::File("/var/lib/evault/log.key".into()),
                "{text}"
            );
        }
        assert_eq!(
            SignerUri::parse("signer", "file:keys/my%20log.key").unwrap(),
            SignerUri::File("keys/my log.key".into())
        );
    }

    #[test]
    fn refusals_name_the_setting_and_what_is_wrong() {
        for (text, says) in [
            ("/var/lib/evault/log.key", "expected a file: or pkcs11: URI"),
            (
                "file://vault.example/log.key",
                "names host \"vault.example\"",
            ),
            ("file:", "names no file"),
            ("file:/a%zzb", "must start an escape"),
            ("file:/a%ff", "not UTF-8"),
            ("pkcs11:token=t", "PKCS#11 URI: "),
        ] {
            let e = SignerUri::parse("--signer", text).unwrap_err();
            assert!(e.starts_with("--signer: "), "{text}: {e}");
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn an_ml_dsa_key_is_a_file() {
        assert_eq!(
            pq_key_file("pq signer", "file:/k/pq.key").unwrap(),
            PathBuf::from("/k/pq.key")
        );
        let e = pq_key_file(
            "pq signer",
            "pkcs11:token=t;object=k?module-path=/m.so&pin-value=1",
        )
        .unwrap_err();
        assert!(e.contains("must be a file: URI"), "{e}");
    }

    #[test]
    fn a_pkcs11_uri_is_kept_whole_and_never_shown_with_its_pin() {
        let uri = "pkcs11:token=evault;object=log-key?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=123456";
        assert_eq!(
            SignerUri::parse("signer", uri).unwrap(),
            SignerUri::Pkcs11(uri.into())
        );
        let shown = format!("{:?}", SignerUri::Pkcs11(uri.into()));
        assert!(!shown.contains("123456"), "{shown}");
        let (file, signer) = SignerUri::Pkcs11(uri.into()).into_config();
        assert!(file.is_none());
        let shown = format!("{:?}", signer.unwrap());
        assert!(shown.contains("log-key"), "{shown}");
        assert!(!shown.contains("123456"), "{shown}");
    }
}
