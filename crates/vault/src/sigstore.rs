//! Sigstore bundles on ingest: a record whose content type is a Sigstore
//! bundle is verified (offline, against the configured trusted roots)
//! before it is logged; the result becomes vault-set `evault.sigstore.*`
//! labels, so it is in the record's leaf; the configured policies may then
//! refuse it. See `evault-sigstore` for what is verified.

use std::collections::BTreeMap;

use crate::error::{Result, VaultError};
use crate::ingest::{MAX_LABEL_VALUE, MAX_LABELS};

pub use evault_sigstore::{
    LABEL_PREFIX, Outcome, Policy, Status, TrustRoots, VERIFIER_FAILED, bundle_media_type,
    is_sigstore_bundle,
};

/// Labels beginning with this are set by the vault only (key events,
/// Sigstore verification); a client's are refused.
pub const RESERVED_LABEL_PREFIX: &str = "evault.";

/// Most labels of its own a Sigstore record may carry: the rest of
/// [`MAX_LABELS`] is kept for the vault's.
pub const MAX_CLIENT_LABELS: usize = MAX_LABELS - evault_sigstore::MAX_LABELS;

/// The vault's Sigstore settings. Default: no trusted root (every bundle
/// is `unverifiable`) and no policy.
#[derive(Clone, Debug, Default)]
pub struct SigstoreConfig {
    /// The trusted roots bundles are verified against; a bundle verifies
    /// if any of them verifies it.
    pub trusted_roots: TrustRoots,
    /// Every policy whose selector matches a Sigstore record must pass, or
    /// the record is refused ([`VaultError::Refused`]).
    pub policies: Vec<Policy>,
}

impl SigstoreConfig {
    /// Checks every policy (see [`Policy::validate`]; selector keys follow
    /// the ingest label-key rules), that their names are distinct, and that
    /// the roots they pin are configured.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let mut names = std::collections::BTreeSet::new();
        for p in &self.policies {
            p.validate()?;
            for k in p.labels.keys() {
                crate::ingest::validate_label_key(k)
                    .map_err(|e| format!("sigstore policy `{}`: selector: {e}", p.name))?;
            }
            if let Some(r) = p
                .roots
                .iter()
                .find(|r| !self.trusted_roots.names().any(|n| n == r.as_str()))
            {
                return Err(format!(
                    "sigstore policy `{}`: root {r:?} is not a configured trusted root",
                    p.name
                ));
            }
            if !names.insert(p.name.as_str()) {
                return Err(format!("sigstore policy `{}` is defined twice", p.name));
            }
        }
        Ok(())
    }
}

/// Whether `key` is in the vault's namespace, in any case (`Evault.x`
/// would read as the vault's to a person).
pub fn is_reserved(key: &str) -> bool {
    key.get(..RESERVED_LABEL_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(RESERVED_LABEL_PREFIX))
}

/// Refuses client labels in the vault's namespace.
pub(crate) fn refuse_reserved(labels: &BTreeMap<String, String>) -> Result<()> {
    match labels.keys().find(|k| is_reserved(k)) {
        Some(k) => Err(VaultError::Invalid(format!(
            "label {k:?}: labels beginning with {RESERVED_LABEL_PREFIX:?} are set by the vault only"
        ))),
        None => Ok(()),
    }
}

/// The error for a bundle too large to be verified in memory.
pub(crate) fn too_large(limit: usize) -> VaultError {
    VaultError::Invalid(format!(
        "Sigstore bundles must be at most {limit} bytes (they are verified in memory)"
    ))
}

/// Runs `verify`; a panic in it (third-party parsing of hostile input) is
/// this bundle's failure, not the server's: the bundle is `failed` with
/// [`VERIFIER_FAILED`]. Logged without the payload.
fn caught(
    content_type: &str,
    size: usize,
    artifact: Option<[u8; 32]>,
    verify: impl FnOnce() -> std::result::Result<Outcome, String>,
) -> std::result::Result<Outcome, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(verify)).unwrap_or_else(|_| {
        tracing::warn!(
            content_type,
            size,
            "the Sigstore verifier panicked on a bundle; it is logged as failed"
        );
        Ok(Outcome::verifier_failed(artifact))
    })
}

/// For a Sigstore bundle (`payload` in memory): verifies it on a blocking
/// thread, adds the outcome's labels to `labels` and applies the policies.
/// A payload declared as anything else but whose body is a bundle (its
/// top-level `mediaType` says so) is refused: declaring `application/json`
/// must not skip verification and the policies. Other records pass
/// untouched. Nothing is written either way.
pub(crate) async fn apply(
    config: &SigstoreConfig,
    content_type: &str,
    payload: &[u8],
    labels: &mut BTreeMap<String, String>,
    artifact_digest: Option<[u8; 32]>,
) -> Result<Option<Outcome>> {
    if !is_sigstore_bundle(content_type) {
        if let Some(media_type) = bundle_media_type(payload) {
            return Err(VaultError::Invalid(format!(
                "the payload is a Sigstore bundle (mediaType {media_type}): \
                 declare its content type {media_type} so it is verified"
            )));
        }
        if artifact_digest.is_some() {
            return Err(VaultError::Invalid(
                "an artifact digest is only taken with a Sigstore bundle".into(),
            ));
        }
        return Ok(None);
    }
    if labels.len() > MAX_CLIENT_LABELS {
        return Err(VaultError::Invalid(format!(
            "{} labels given; a Sigstore record may carry at most {MAX_CLIENT_LABELS} \
             (the vault adds its own)",
            labels.len()
        )));
    }
    let roots = config.trusted_roots.clone();
    let ct = content_type.to_string();
    let bytes = payload.to_vec();
    // Verification is CPU work (signatures, Merkle paths): off the runtime.
    // A panic in the verifier (third-party parsing of hostile input) is
    // this bundle's failure, not the server's: it is logged as `failed`.
    let outcome = tokio::task::spawn_blocking(move || {
        caught(&ct, bytes.len(), artifact_digest, || {
            evault_sigstore::verify(&ct, &bytes, artifact_digest, &roots)
        })
    })
    .await?
    .map_err(VaultError::Invalid)?;
    labels.extend(outcome.labels(MAX_LABEL_VALUE));
    for policy in &config.policies {
        policy
            .check(&outcome, labels)
            .map_err(VaultError::Refused)?;
    }
    Ok(Some(outcome))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verifier_panic_is_a_failed_bundle() {
        let o = caught(evault_sigstore::MEDIA_TYPE_V03, 3, Some([7; 32]), || {
            panic!("hostile bundle")
        })
        .unwrap();
        assert_eq!(o.status, Status::Failed);
        assert_eq!(o.reason.as_deref(), Some(VERIFIER_FAILED));
        assert_eq!(o.artifact, Some([7; 32]));
        assert_eq!(
            o.labels(MAX_LABEL_VALUE)["evault.sigstore.reason"],
            VERIFIER_FAILED
        );
        // Errors and outcomes pass through.
        assert_eq!(
            caught("x", 0, None, || Err("bad".into())).unwrap_err(),
            "bad"
        );
    }

    #[test]
    fn the_reserved_prefix_is_refused_in_any_case() {
        for k in ["evault.x", "Evault.x", "EVAULT.sigstore.status"] {
            assert!(is_reserved(k), "{k}");
            let labels = BTreeMap::from([(k.to_string(), "v".to_string())]);
            assert!(refuse_reserved(&labels).is_err(), "{k}");
        }
        for k in ["evault", "evaultx.y", "kind", "é"] {
            assert!(!is_reserved(k), "{k}");
        }
    }
}
