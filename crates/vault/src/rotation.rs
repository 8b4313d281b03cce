//! Key rotation of the evidence log, in the order that keeps every step
//! recoverable after a crash:
//!
//! 1. the new key's file is made and recorded as pending (meta);
//! 2. the `add` key event, signed by the keys in use and the new key, is
//!    appended and durably committed (idempotency key: a retry replays it);
//! 3. the key set is updated: the new key signs, the old ones retire after
//!    the overlap. From the next checkpoint on, both sign.
//!
//! When the overlap ends (a timer, or [`Vault::retire_keys`]), the `retire`
//! event of each old key is appended, signed by it and its successor, and
//! only then does the old key stop signing. So no checkpoint of a tree that
//! holds the `retire` record is ever signed by the retired key alone.

use std::sync::{Arc, Weak};
use std::time::Duration;

use evault_note::{Signer, parse_verifier_key, sign};
use evault_store::LogId;
use evault_verify::{KEY_EVENT_TYPE, KeyAction, KeyEvent};
use tokio::sync::watch;

use crate::checkpointer::now_ms;
use crate::error::{Result, VaultError};
use crate::keyring::{KeyEntry, KeyRing, KeyState};
use crate::{Inner, PutOutcome, PutRequest, Vault};

/// The principal key events are logged under. No caller can be it: the
/// keystore refuses it as a service account's principal, and OIDC
/// principals are `issuer#sub`.
pub const KEY_EVENT_PRINCIPAL: &str = "evault";
/// The longest overlap a rotation accepts (a year).
pub const MAX_OVERLAP: Duration = Duration::from_secs(366 * 24 * 3600);

impl Vault {
    /// The key set of `log`: every key it ever signed with, and where each
    /// stands.
    pub fn keys(&self, log: LogId) -> Result<Vec<KeyEntry>> {
        Ok(self.inner.log(log)?.ring.entries())
    }

    /// Rotates the evidence log's Ed25519 key: a new key is made in the
    /// data directory, announced by a key event record signed by the keys
    /// in use and the new one, and signs every checkpoint from then on;
    /// the keys in use keep signing for `overlap`, then retire. Returns the
    /// key set. [`VaultError::Conflict`] while an earlier rotation's
    /// overlap runs.
    pub async fn rotate_key(&self, log: LogId, overlap: Duration) -> Result<Vec<KeyEntry>> {
        if log != LogId::Evidence {
            return Err(VaultError::Invalid(format!(
                "only the evidence log's key can be rotated; the {log} log keeps its key"
            )));
        }
        if overlap > MAX_OVERLAP {
            return Err(VaultError::Invalid(format!(
                "an overlap of {overlap:?} is longer than the most allowed ({} days)",
                MAX_OVERLAP.as_secs() / 86_400
            )));
        }
        let ring = self.inner.log(log)?.ring.clone();
        // On a shared store the node that takes over next signs with the
        // new key too: a key file made here would be on this node alone.
        if self.inner.store.coordination().is_some() && ring.next_signer().is_none() {
            return Err(VaultError::Conflict(
                "on a shared store (PostgreSQL) every node must hold the key a rotation moves \
                 to, or the node that takes over could not sign with it: configure the same \
                 --next-signer (a pkcs11: key, or a file: key copied to each node) on every node, \
                 restart them, then rotate"
                    .into(),
            ));
        }
        let _one = ring.changing.lock().await;
        if let Some(e) = ring
            .entries()
            .iter()
            .find(|e| e.state == KeyState::Retiring)
        {
            return Err(VaultError::Conflict(format!(
                "a rotation is under way: key {} retires when its overlap ends; end it first \
                 (evault keys retire) or wait",
                e.verifier_key
            )));
        }
        let (store, r) = (self.inner.store.clone(), ring.clone());
        let new = self
            .blocking_keys(move || r.pending_or_new(&*store))
            .await?;
        let mut signers = ring.ed25519();
        signers.push(new.clone());
        let event = KeyEvent {
            origin: ring.origin.clone(),
            action: KeyAction::Add,
            subject: new.verifier_key().as_str().to_string(),
        };
        let leaf = self.append_key_event(&event, signers).await?;
        let until = now_ms().saturating_add(overlap.as_millis().min(i64::MAX as u128) as i64);
        let (store, r) = (self.inner.store.clone(), ring.clone());
        self.blocking_keys(move || r.activate(&*store, &new, leaf, until))
            .await?;
        tracing::info!(
            "{log} log key rotated: {} added at leaf {leaf}; the old key keeps signing for {:?}",
            event.subject,
            overlap
        );
        metrics::counter!("evault_key_events_total", "log" => log.to_string(), "event" => "add")
            .increment(1);
        self.inner.key_changes.notify_one();
        Ok(ring.entries())
    }

    /// Ends the overlap of `log`'s rotation now: each retiring key's
    /// `retire` event is logged and it stops signing. Returns the key set
    /// (unchanged when no key is retiring).
    pub async fn retire_keys(&self, log: LogId) -> Result<Vec<KeyEntry>> {
        let ring = self.inner.log(log)?.ring.clone();
        let _one = ring.changing.lock().await;
        let (store, r) = (self.inner.store.clone(), ring.clone());
        self.blocking_keys(move || r.end_overlap(&*store, now_ms()))
            .await?;
        self.retire_due(&ring).await?;
        Ok(ring.entries())
    }

    /// Retires every key of `ring` whose overlap has ended; the caller
    /// holds `ring.changing`.
    async fn retire_due(&self, ring: &Arc<KeyRing>) -> Result<()> {
        let now = now_ms();
        let due: Vec<String> = ring
            .entries()
            .into_iter()
            .filter(|e| {
                e.state == KeyState::Retiring && e.retire_after_ms.is_some_and(|t| t <= now)
            })
            .map(|e| e.verifier_key)
            .collect();
        for vkey in due {
            // Signed by the retired key and every key that stays.
            let signers = ring.ed25519();
            if signers.len() < 2 {
                return Err(VaultError::Inconsistent(format!(
                    "cannot retire {vkey}: it is the {} log's only signing key",
                    ring.log
                )));
            }
            let event = KeyEvent {
                origin: ring.origin.clone(),
                action: KeyAction::Retire,
                subject: vkey.clone(),
            };
            let leaf = self.append_key_event(&event, signers).await?;
            let (store, r, v) = (self.inner.store.clone(), ring.clone(), vkey.clone());
            self.blocking_keys(move || r.retire(&*store, &v, leaf))
                .await?;
            tracing::info!(
                "{} log key {vkey} retired at leaf {leaf}: checkpoints of larger trees are \
                 signed without it",
                ring.log
            );
            metrics::counter!("evault_key_events_total", "log" => ring.log.to_string(), "event" => "retire")
                .increment(1);
        }
        Ok(())
    }

    /// Signs `event` with `signers` and appends it as an evidence record;
    /// returns its leaf index. A retry after a crash replays the first
    /// record (same idempotency key), which must be this very event.
    async fn append_key_event(
        &self,
        event: &KeyEvent,
        signers: Vec<Arc<dyn Signer>>,
    ) -> Result<u64> {
        let statement = event.statement();
        let note = tokio::task::spawn_blocking(move || {
            let keys: Vec<&dyn Signer> = signers.iter().map(|s| &**s).collect();
            sign(&statement, &keys)
        })
        .await??;
        let labels = event
            .labels(&note)
            .map_err(|e| VaultError::Invalid(format!("key event: {e}")))?;
        let key_id = parse_verifier_key(&event.subject)
            .map_err(|e| VaultError::Invalid(format!("key event subject: {e}")))?
            .key_id;
        let mut upload = self.upload();
        upload.write(note.as_bytes()).await?;
        let payload = upload.finish().await?;
        let outcome: PutOutcome = self
            .put_trusted(PutRequest {
                content_type: KEY_EVENT_TYPE.to_string(),
                labels: labels.clone(),
                payload,
                principal: KEY_EVENT_PRINCIPAL.to_string(),
                idempotency_key: Some(format!("key-event/{}/{key_id:08x}", event.action.as_str())),
                audit: None,
            })
            .await?;
        // A replay must be this very event: the same labels (statement and
        // signatures) and payload, from the vault itself.
        let r = &outcome.record;
        let same = r.content_type == KEY_EVENT_TYPE
            && r.ingested_by == KEY_EVENT_PRINCIPAL
            && r.labels == labels
            && r.sha256 == sha256_hex(note.as_bytes());
        if !same {
            return Err(VaultError::Inconsistent(format!(
                "the key event record of {} {} is not what was logged under its idempotency key \
                 (record {})",
                event.action.as_str(),
                event.subject,
                r.id
            )));
        }
        Ok(r.leaf_index)
    }

    async fn blocking_keys<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        tokio::task::spawn_blocking(f).await?
    }
}

/// Retires keys when their overlap ends. Holds the vault weakly: it ends
/// when the vault stops or is dropped.
pub(crate) async fn retirement_timer(inner: Weak<Inner>, mut stopping: watch::Receiver<bool>) {
    let Some(changes) = inner.upgrade().map(|i| i.key_changes.clone()) else {
        return;
    };
    loop {
        let Some(next) = inner
            .upgrade()
            .map(|i| i.evidence.ring.next_retirement_ms())
        else {
            return;
        };
        let wait = match next {
            Some(t) => Duration::from_millis(t.saturating_sub(now_ms()).max(0) as u64),
            None => Duration::from_secs(3600),
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = changes.notified() => continue,
            _ = stopping.wait_for(|s| *s) => return,
        }
        if next.is_none_or(|t| t > now_ms()) {
            continue;
        }
        let Some(inner) = inner.upgrade() else {
            return;
        };
        // Retired by the leader (a standby appends nothing); a standby
        // checks again after the next wait.
        if !inner.role.borrow().is_leader() {
            drop(inner);
            tokio::time::sleep(crate::cluster::FOLLOW_EVERY).await;
            continue;
        }
        let vault = Vault { inner };
        let ring = vault.inner.evidence.ring.clone();
        let done = {
            let _one = ring.changing.lock().await;
            vault.retire_due(&ring).await
        };
        drop(vault);
        if let Err(e) = done {
            tracing::error!("retiring the evidence log's old key: {e} (retrying in 10 s)");
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(10)) => {}
                _ = stopping.wait_for(|s| *s) => return,
            }
        }
    }
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
