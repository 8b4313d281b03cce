//! Shared helpers for the benchmark drivers in `src/bin`.

use std::time::{Duration, SystemTime};

use evault_vault::{AuditOnCommit, PutOutcome, PutRequest, Vault, VaultError};
use evault_verify::{AuditEvent, Outcome};

/// Puts one small record whose payload is unique to `(client, i)`, with
/// the audit event the server would commit with it (when the vault's audit
/// trail is on).
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
            audit: Some(put_event(client)),
        })
        .await
}

/// A put's audit event shaped like the server's (same fields, similar
/// sizes), completed from the outcome inside the commit.
pub fn put_event(client: usize) -> AuditOnCommit {
    let time = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    Box::new(move |o: &PutOutcome| AuditEvent {
        id: String::new(),
        leaf_index: 0,
        time,
        request_id: format!("01936f0e-8f39-7000-8000-{client:012x}"),
        principal: "bench".into(),
        key_id: Some("bench-key-1".into()),
        auth_method: "service-account".into(),
        protocol: "http".into(),
        operation: "evidence.put".into(),
        resource: format!("/api/v1/evidence/{}", o.record.id),
        outcome: Outcome::Success,
        status: if o.duplicate { 200 } else { 201 },
        client: format!("127.0.0.1:{}", 40000 + client % 20000),
        params_digest: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into(),
        reason: None,
    })
}

/// The value at quantile `q` (0..=1) of sorted durations.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}
