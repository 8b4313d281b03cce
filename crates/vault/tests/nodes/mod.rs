//! Helpers of the tests that run vault nodes side by side (`lifecycle.rs`,
//! `cluster.rs`, `fork.rs`): a plain put, the keys a second node signs with, and a
//! poll with a deadline.

// Each test crate that includes this module uses a part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use evault_vault::{PutOutcome, PutRequest, Vault, VaultError};

/// Puts `body` as `sa:ci`, with no labels, idempotency key or audit event.
pub async fn put(v: &Vault, body: &[u8]) -> Result<PutOutcome, VaultError> {
    let mut up = v.upload();
    up.write(body).await?;
    let payload = up.finish().await?;
    v.put(PutRequest {
        content_type: "text/plain".into(),
        labels: BTreeMap::new(),
        payload,
        principal: "sa:ci".into(),
        idempotency_key: None,
        audit: None,
    })
    .await
}

/// The keys of the vault in `from` (a second node signs with the same).
pub fn copy_keys(from: &Path, to: &Path) {
    for name in ["log.key", "audit.key"] {
        std::fs::copy(from.join(name), to.join(name)).unwrap();
    }
}

/// Polls `done` until it holds, for at most a minute.
pub async fn eventually<F: std::future::Future<Output = bool>>(
    mut done: impl FnMut() -> F,
    what: &str,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !done().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
