//! TLS to PostgreSQL, with rustls, as the URL asks (`sslmode`):
//!
//! - `require`, `verify-ca` and `verify-full` connect only over TLS and
//!   always verify the server's certificate chain and host name, against
//!   `sslrootcert` (a PEM file) if the URL names one, else the system's
//!   roots. (libpq's `require` skips the verification; a TLS connection to
//!   a server nobody checked protects nothing against an active attacker,
//!   so here it is never skipped.)
//! - No `sslmode`, `disable`, `allow` or `prefer` connect without TLS, as
//!   before: a URL that wants TLS says `require` or `verify-full`.
//!
//! tokio-postgres knows neither `verify-*` nor `sslrootcert`: both are
//! taken out of the URL before it parses the rest.

use std::sync::Arc;

use tokio_postgres::config::SslMode;

use super::{backend, redact};
use crate::Result;

/// How to connect: the parsed configuration, and the TLS connector when
/// the URL asks for TLS.
pub(crate) struct Target {
    pub config: tokio_postgres::Config,
    pub tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
}

/// Parses `url` (a `postgres://` URL or a `key=value` string).
pub(crate) fn target(url: &str) -> Result<Target> {
    let (rest, mode, root) = split(url)?;
    let mut config: tokio_postgres::Config = rest
        .parse()
        .map_err(|e| backend(format!("invalid PostgreSQL URL {}: {e}", redact(url))))?;
    let tls = match mode.as_deref() {
        None | Some("disable" | "allow" | "prefer") => {
            if root.is_some() {
                return Err(backend(format!(
                    "{}: sslrootcert is set but sslmode does not ask for TLS; add \
                     sslmode=verify-full",
                    redact(url)
                )));
            }
            config.ssl_mode(SslMode::Disable);
            None
        }
        Some("require" | "verify-ca" | "verify-full") => {
            config.ssl_mode(SslMode::Require);
            Some(connector(root.as_deref(), url)?)
        }
        Some(other) => {
            return Err(backend(format!(
                "{}: sslmode={other} is not one of disable, allow, prefer, require, verify-ca, \
                 verify-full",
                redact(url)
            )));
        }
    };
    Ok(Target { config, tls })
}

/// A rustls connector trusting `root` (a PEM file), else the system's
/// roots.
fn connector(root: Option<&str>, url: &str) -> Result<tokio_postgres_rustls::MakeRustlsConnect> {
    let mut roots = rustls::RootCertStore::empty();
    match root {
        Some(path) => {
            use rustls::pki_types::pem::PemObject as _;
            let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
                .map_err(|e| {
                    backend(format!(
                        "{}: cannot read sslrootcert {path}: {e}",
                        redact(url)
                    ))
                })?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(backend(format!(
                    "{}: sslrootcert {path} holds no certificate",
                    redact(url)
                )));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(backend(format!(
                    "{}: sslmode asks for TLS, but the system has no root certificates; name \
                     one with sslrootcert=FILE",
                    redact(url)
                )));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| backend(format!("TLS to PostgreSQL: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// `url` without its `sslmode` and `sslrootcert`, and their values.
fn split(url: &str) -> Result<(String, Option<String>, Option<String>)> {
    let (mut mode, mut root) = (None, None);
    let lower = url.get(..13).unwrap_or(url).to_ascii_lowercase();
    if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return Ok((url.to_string(), None, None));
        };
        let mut kept = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            match &*k {
                "sslmode" => mode = Some(v.into_owned()),
                "sslrootcert" => root = Some(v.into_owned()),
                _ => {
                    kept.append_pair(&k, &v);
                }
            }
        }
        let kept = kept.finish();
        let rest = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{kept}")
        };
        return Ok((rest, mode, root));
    }
    // key=value pairs; these two take no quoted values here.
    let mut kept = Vec::new();
    for word in url.split_whitespace() {
        match word.split_once('=') {
            Some(("sslmode", v)) => mode = Some(v.to_string()),
            Some(("sslrootcert", v)) => root = Some(v.to_string()),
            _ => kept.push(word),
        }
    }
    if mode.iter().chain(&root).any(|v| v.contains('\'')) {
        return Err(backend(format!(
            "{}: write sslmode and sslrootcert without quotes (or use a postgres:// URL)",
            redact(url)
        )));
    }
    Ok((kept.join(" "), mode, root))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tls_parameters_are_taken_out_of_both_forms() {
        let (rest, mode, root) =
            split("postgres://u@h:5/db?application_name=x&sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem")
                .unwrap();
        assert_eq!(rest, "postgres://u@h:5/db?application_name=x");
        assert_eq!(mode.as_deref(), Some("verify-full"));
        assert_eq!(root.as_deref(), Some("/tmp/ca.pem"));
        let (rest, mode, root) = split("postgres://u@h/db?sslmode=require").unwrap();
        assert_eq!(
            (rest.as_str(), mode.as_deref(), root),
            ("postgres://u@h/db", Some("require"), None)
        );
        let (rest, mode, root) =
            split("host=h user=u sslmode=verify-ca sslrootcert=/ca.pem dbname=d").unwrap();
        assert_eq!(rest, "host=h user=u dbname=d");
        assert_eq!(mode.as_deref(), Some("verify-ca"));
        assert_eq!(root.as_deref(), Some("/ca.pem"));
        assert!(split("host=h sslmode='require'").is_err());
    }

    #[test]
    fn tls_is_used_only_when_asked_for() {
        let plain = target("postgres://u@h/db").unwrap();
        assert!(plain.tls.is_none());
        assert_eq!(plain.config.get_ssl_mode(), SslMode::Disable);
        let prefer = target("postgres://u@h/db?sslmode=prefer").unwrap();
        assert!(prefer.tls.is_none());
        let err = target("postgres://u@h/db?sslmode=bogus").err().unwrap();
        assert!(err.to_string().contains("sslmode=bogus"), "{err}");
        let err = target("postgres://u@h/db?sslrootcert=/x").err().unwrap();
        assert!(err.to_string().contains("verify-full"), "{err}");
        let err = target("postgres://u@h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem")
            .err()
            .unwrap();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }
}
