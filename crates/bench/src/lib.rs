//! Shared helpers for the benchmark drivers in `src/bin`.

use std::time::Duration;

use evault_vault::{PutOutcome, PutRequest, Vault, VaultError};

/// Puts one small record whose payload is unique to `(client, i)`.
pub async fn put_unique(
    vault: &Vault,
    client: usize,
    i: u64,
    size: usize,
) -> Result<PutOutcome, VaultError> {
    let mut body = format!("client {client} record {i} ").into_bytes();
    body.resize(size.max(body.len()), b'.');
    let mut up = vault.upload();
    up.write(&body).await?;
    let payload = up.finish().await?;
    vault
        .put(PutRequest {
            content_type: "text/plain".into(),
            labels: [("bench".to_string(), (client % 8).to_string())].into(),
            payload,
            principal: "bench".into(),
            idempotency_key: None,
        })
        .await
}

/// The value at quantile `q` (0..=1) of sorted durations.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}
