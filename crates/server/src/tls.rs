//! TLS with rustls (ring provider): the server configuration. Handshakes
//! run in each connection's own task (`conn.rs`), bounded in time and
//! counted against the connection cap, so a slow client cannot stall the
//! accept loop.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::ServeError;

/// Certificate chain and private key, PEM files.
#[derive(Clone, Debug)]
pub struct TlsConfig {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// PKCS#8, PKCS#1 or SEC1 private key.
    pub key: PathBuf,
}

impl TlsConfig {
    /// Loads the PEM files into a rustls server configuration (TLS 1.2 and
    /// 1.3) offering `alpn` (`http/1.1` for REST, `h2` for gRPC).
    pub fn load(&self, alpn: &[u8]) -> Result<Arc<ServerConfig>, ServeError> {
        let tls = |what: &str, path: &PathBuf, e: &dyn std::fmt::Display| {
            ServeError::Tls(format!("{what} {}: {e}", path.display()))
        };
        let certs = CertificateDer::pem_file_iter(&self.cert)
            .map_err(|e| tls("reading certificates from", &self.cert, &e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| tls("parsing certificates in", &self.cert, &e))?;
        if certs.is_empty() {
            return Err(tls("no certificate in", &self.cert, &"empty"));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| tls("reading the private key from", &self.key, &e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ServeError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| ServeError::Tls(format!("certificate and key: {e}")))?;
        config.alpn_protocols = vec![alpn.to_vec()];
        Ok(Arc::new(config))
    }
}
