//! Configuration: flags first, then `EVAULT_*` environment variables (both
//! handled by clap), then an optional TOML file, then defaults.

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8470";
/// Where `evault serve` answers gRPC unless told otherwise.
pub const DEFAULT_GRPC_LISTEN: &str = "127.0.0.1:9090";
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8470";
pub const DEFAULT_DATA_DIR: &str = "./evault-data";

/// The TOML file's shape. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    /// `sqlite` or a PostgreSQL URL (`--store`).
    pub store: Option<String>,
    /// This node's name in the write lease of a PostgreSQL store
    /// (`--node-id`).
    pub node_id: Option<String>,
    /// How long the write lease lasts unrenewed (`--lease-ttl`, e.g. "3s").
    pub lease_ttl: Option<String>,
    /// Where other nodes reach this node's REST API (`--advertise`).
    pub advertise: Option<String>,
    /// Where other nodes reach this node's gRPC API (`--advertise-grpc`).
    pub advertise_grpc: Option<String>,
    /// The file holding the secret the cluster's nodes share
    /// (`--cluster-secret-file`).
    pub cluster_secret_file: Option<PathBuf>,
    /// The PEM certificates a standby trusts when forwarding to an
    /// https:// leader (`--cluster-ca-file`).
    pub cluster_ca_file: Option<PathBuf>,
    /// Connections to a PostgreSQL store, at most (`--store-pool-size`).
    pub store_pool_size: Option<usize>,
    /// Each PostgreSQL call's deadline (`--store-timeout`, e.g. "30s").
    pub store_timeout: Option<String>,
    /// How long connecting to PostgreSQL may take
    /// (`--store-connect-timeout`, e.g. "5s").
    pub store_connect_timeout: Option<String>,
    /// The first wait before reconnecting to PostgreSQL
    /// (`--store-reconnect-backoff`, e.g. "100ms").
    pub store_reconnect_backoff: Option<String>,
    /// The longest wait between attempts to reconnect
    /// (`--store-reconnect-backoff-max`, e.g. "1s").
    pub store_reconnect_backoff_max: Option<String>,
    pub listen: Option<String>,
    /// gRPC address, or "off".
    pub grpc_listen: Option<String>,
    pub origin: Option<String>,
    /// The URL clients reach the server at (`--public-url`).
    pub public_url: Option<String>,
    pub key_file: Option<PathBuf>,
    /// The evidence log's signer, a `file:` or `pkcs11:` URI (`--signer`).
    pub signer: Option<String>,
    /// The key the next rotation moves the evidence log to, as `signer`
    /// (`--next-signer`).
    pub next_signer: Option<String>,
    /// The audit log's signer, as `signer` (`--audit-signer`).
    pub audit_signer: Option<String>,
    /// The evidence log's ML-DSA-44 key, a `file:` URI (`--pq-signer`).
    pub pq_signer: Option<String>,
    /// The audit log's ML-DSA-44 key (`--audit-pq-signer`).
    pub audit_pq_signer: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub server: Option<String>,
    pub token: Option<String>,
    pub checkpoint_interval: Option<String>,
    pub max_upload: Option<u64>,
    pub inline_max: Option<usize>,
    pub max_batch: Option<usize>,
    pub max_delay: Option<String>,
    /// Service-account keystore file.
    pub service_accounts: Option<PathBuf>,
    pub public_log_read: Option<bool>,
    /// Requests per second per principal (0 or absent: no limit).
    pub rate_limit: Option<f64>,
    pub rate_limit_burst: Option<u32>,
    pub audit_dir: Option<PathBuf>,
    pub audit_mirror: Option<bool>,
    /// Directory of the signed tree heads (outside the data directory).
    pub state_dir: Option<PathBuf>,
    /// Clock skew tolerated on token times (e.g. `60s`).
    pub token_leeway: Option<String>,
    /// Longest token lifetime accepted (e.g. `24h`).
    pub token_max_lifetime: Option<String>,
    /// OIDC issuers whose tokens are accepted.
    #[serde(default)]
    pub oidc: Vec<OidcConfig>,
    /// Witnesses asked to cosign each evidence checkpoint (C2SP
    /// tlog-witness).
    #[serde(default)]
    pub witness: Vec<crate::witnessing::WitnessConfig>,
    /// How many distinct witnesses must cosign a checkpoint (default: all).
    pub witness_threshold: Option<usize>,
    /// The least time between two rounds of witness requests (default
    /// 10s): the latest checkpoint is offered then, until witnessed.
    pub witness_interval: Option<String>,
    /// `[backfill]`: release backfills (`evault backfill`).
    pub backfill: Option<BackfillConfig>,
    /// `[sigstore]`: trusted roots and policies for Sigstore bundles.
    pub sigstore: Option<crate::sigstore_config::SigstoreFileConfig>,
    /// `[retention]`: how often retention policies are applied.
    pub retention: Option<RetentionConfig>,
}

/// The `[retention]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// How often the vault starts a `retention_sweep` (e.g. "1h", the
    /// default; "0s": never on its own).
    pub interval: String,
}

/// The `[backfill]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackfillConfig {
    /// The only directory whose files a backfill reads: inventory paths
    /// are relative to it. Absent: artifacts are named by digest only.
    pub dir: PathBuf,
}

/// One `[[oidc]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    pub issuer: String,
    pub audience: String,
    pub jwks_url: Option<String>,
    pub jwks_file: Option<PathBuf>,
    /// Any of `RS256`, `ES256`, `EdDSA`.
    pub algorithms: Vec<String>,
    /// Claim holding the evault roles (default `roles`).
    pub roles_claim: Option<String>,
    /// Least time between two JWKS fetches for unknown key ids (default 30s).
    pub min_refresh_interval: Option<String>,
    /// Offer this issuer on the dashboard's sign-in page.
    pub dashboard: Option<DashboardSignIn>,
}

/// `[oidc.dashboard]`: the dashboard as a public OIDC client of the issuer
/// (authorization code flow with PKCE). Its redirect URI is the server's
/// `/ui/`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardSignIn {
    pub client_id: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    /// Default `openid`.
    pub scope: Option<String>,
    /// The token sent as bearer: `id_token` (default) or `access_token`.
    pub token: Option<String>,
}

impl FileConfig {
    /// Reads `path` if given; a missing explicit file is an error.
    pub fn load(path: Option<&Path>) -> Result<FileConfig, String> {
        let Some(path) = path else {
            return Ok(FileConfig::default());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("config file {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e: toml::de::Error| {
            // toml quotes the offending line; a signer URI may hold a PIN
            // (pin-value), which must not reach a terminal or a log.
            if text.contains("pin-value") {
                let line = e
                    .span()
                    .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
                format!(
                    "config file {}: {}{}",
                    path.display(),
                    e.message(),
                    line.map(|l| format!(" (line {l})")).unwrap_or_default()
                )
            } else {
                format!("config file {}: {e}", path.display())
            }
        })
    }
}

/// Parses a duration like `500ms` or `2s`.
pub fn parse_duration(what: &str, s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{what} {s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects_unknown_keys() {
        let c: FileConfig = toml::from_str("data_dir = \"/x\"\nlisten = \"0.0.0.0:1\"").unwrap();
        assert_eq!(c.data_dir.as_deref(), Some(Path::new("/x")));
        assert!(toml::from_str::<FileConfig>("dta_dir = \"/x\"").is_err());
        let c: FileConfig = toml::from_str("public_url = \"https://v.example/\"").unwrap();
        assert_eq!(c.public_url.as_deref(), Some("https://v.example/"));
        assert_eq!(parse_duration("t", "250ms").unwrap().as_millis(), 250);
        assert!(parse_duration("t", "soon").is_err());
        let c: FileConfig = toml::from_str(
            "[[oidc]]\nissuer = \"https://id.example\"\naudience = \"evault\"\n\
             jwks_url = \"https://id.example/jwks\"\nalgorithms = [\"ES256\"]\n",
        )
        .unwrap();
        assert_eq!(c.oidc.len(), 1);
        assert!(toml::from_str::<FileConfig>("[[oidc]]\nissuer = \"x\"\nbogus = 1").is_err());
    }
}
