//! Sigstore bundles as verified evidence: recognise a bundle by its media
//! type, verify it offline against the operator's trusted roots (with
//! `sigstore-verify`), describe the result as vault labels, and check the
//! operator's policies against it.
//!
//! Verification never reaches the network and never uses the wall clock as
//! the signing time: the certificate is checked at the bundle's own verified
//! times (a Rekor v1 integrated time under its signed entry timestamp, or RFC
//! 3161 timestamps), so a bundle verifies the same way years later, as long
//! as the trusted root still holds the keys of its time.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use sigstore_verify::trust_root::TrustedRoot;
use sigstore_verify::types::bundle::{KindVersion, MediaType, VerificationMaterialContent};
use sigstore_verify::types::{Bundle, HashAlgorithm, Sha256Hash, SignatureContent};
use sigstore_verify::{VerificationPolicy, Verifier};

/// The `sigstore-verify` release this crate is built and tested with.
pub const SIGSTORE_VERIFY_VERSION: &str = "0.15.1";

/// Media type of a v0.3 bundle (the current one).
pub const MEDIA_TYPE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// Media type of bundles 0.1 to 0.3 with a `version` parameter.
pub const MEDIA_TYPE_VERSIONED: &str = "application/vnd.dev.sigstore.bundle+json";
/// Every Sigstore bundle media type, known version or not, starts with this.
pub const MEDIA_TYPE_FAMILY: &str = "application/vnd.dev.sigstore.bundle";
/// The bundle content types verified, for error messages.
const SUPPORTED: &str = "application/vnd.dev.sigstore.bundle.v0.3+json, or \
application/vnd.dev.sigstore.bundle+json;version=0.1, 0.2 or 0.3";

/// Prefix of every label the vault sets on a Sigstore record.
pub const LABEL_PREFIX: &str = "evault.sigstore.";
/// `verified`, `failed` or `unverifiable`.
pub const LABEL_STATUS: &str = "evault.sigstore.status";
/// Why the bundle is not verified (absent when it is).
pub const LABEL_REASON: &str = "evault.sigstore.reason";
/// `sha256:<hex>` of the artifact the bundle signs.
pub const LABEL_ARTIFACT: &str = "evault.sigstore.artifact";
/// The transparency-log entry: `rekor-v1:<logIndex>` or `rekor-v2:<logIndex>`.
pub const LABEL_TLOG: &str = "evault.sigstore.tlog";
/// The earliest verified signing time (RFC 3339); only when verified.
pub const LABEL_TIME: &str = "evault.sigstore.time";
/// Name of the trusted root that verified it; only when verified.
pub const LABEL_ROOT: &str = "evault.sigstore.root";
/// The certificate's SAN (identity); only when verified.
pub const LABEL_SAN: &str = "evault.sigstore.san";
/// The certificate's OIDC issuer; only when verified.
pub const LABEL_ISSUER: &str = "evault.sigstore.issuer";
/// The certificate's build signer URI (the workflow); only when verified.
pub const LABEL_WORKFLOW: &str = "evault.sigstore.workflow";
/// The certificate's source repository URI; only when verified.
pub const LABEL_REPOSITORY: &str = "evault.sigstore.repository";
/// Most labels [`Outcome::labels`] sets.
pub const MAX_LABELS: usize = 10;

/// Bundle format versions, as `(minor)` of `0.x`.
fn content_type_version(content_type: &str) -> Option<Result<u8, String>> {
    let mut parts = content_type.split(';');
    let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let params: Vec<(String, String)> = parts
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            Some((
                k.trim().to_ascii_lowercase(),
                v.trim().trim_matches('"').to_string(),
            ))
        })
        .collect();
    if essence == MEDIA_TYPE_V03 {
        return Some(Ok(3));
    }
    if !essence.starts_with(MEDIA_TYPE_FAMILY) {
        return None;
    }
    // Another member of the family (a future `.v0.4+json`, say): refused,
    // not logged unverified as if it were any JSON.
    if essence != MEDIA_TYPE_VERSIONED {
        return Some(Err(format!(
            "content type {content_type:?} is not a supported Sigstore bundle type \
             (supported: {SUPPORTED})"
        )));
    }
    let version = params.iter().find(|(k, _)| k == "version").map(|(_, v)| v);
    Some(match version.map(String::as_str) {
        Some("0.1") => Ok(1),
        Some("0.2") => Ok(2),
        Some("0.3") => Ok(3),
        Some(v) => Err(format!(
            "content type {content_type:?}: unknown Sigstore bundle version {v:?} (0.1, 0.2 or 0.3)"
        )),
        None => Err(format!(
            "content type {content_type:?}: a Sigstore bundle needs a version parameter (0.1, 0.2 or 0.3)"
        )),
    })
}

/// Whether `content_type` is in the Sigstore bundle family: its essence
/// (compared case-insensitively) starts with
/// `application/vnd.dev.sigstore.bundle`. Only
/// `application/vnd.dev.sigstore.bundle.v0.3+json` and
/// `application/vnd.dev.sigstore.bundle+json` with a `version` of 0.1, 0.2
/// or 0.3 are verified; [`verify`] refuses the others (unknown versions).
pub fn is_sigstore_bundle(content_type: &str) -> bool {
    content_type_version(content_type).is_some()
}

/// The top-level `mediaType` of a payload that is a JSON object claiming to
/// be a Sigstore bundle (the value starts with
/// `application/vnd.dev.sigstore.bundle`), whatever content type it was
/// declared with. Cheap for everything else: only a body that starts (after
/// whitespace) with `{` and contains that string is parsed, and a body
/// that does not parse (or nests too deeply) is `None`.
pub fn bundle_media_type(payload: &[u8]) -> Option<String> {
    let start = payload.iter().position(|b| !b.is_ascii_whitespace())?;
    if payload[start] != b'{' {
        return None;
    }
    let needle = MEDIA_TYPE_FAMILY.as_bytes();
    if !payload.windows(needle.len()).any(|w| w == needle) {
        return None;
    }
    // serde_json refuses nesting deeper than 128: a hostile body is `None`.
    let value: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let media_type = value.get("mediaType")?.as_str()?.to_string();
    media_type
        .to_ascii_lowercase()
        .starts_with(MEDIA_TYPE_FAMILY)
        .then_some(media_type)
}

/// The configured trusted roots, each prepared once for verification. Cheap
/// to clone.
#[derive(Clone, Default)]
pub struct TrustRoots {
    roots: Arc<Vec<Root>>,
}

struct Root {
    name: String,
    verifier: Verifier,
}

impl fmt::Debug for TrustRoots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.roots.iter().map(|r| &r.name))
            .finish()
    }
}

impl TrustRoots {
    /// No roots: every bundle is `unverifiable`.
    pub fn none() -> Self {
        Self::default()
    }

    /// Reads `trusted_root.json` files, each named by its file stem
    /// (`/etc/sigstore/public-good.json` is `public-good`); see
    /// [`TrustRoots::load_named`].
    pub fn load(paths: &[PathBuf]) -> Result<Self, String> {
        let named = paths
            .iter()
            .map(|p| Ok((root_name(p)?, p.clone())))
            .collect::<Result<Vec<_>, String>>()?;
        Self::load_named(&named)
    }

    /// Reads `(name, trusted_root.json path)` pairs. The name (not the
    /// path: it is the server's business) is what the
    /// `evault.sigstore.root` label and a policy's `roots` say; names must
    /// be distinct.
    pub fn load_named(roots: &[(String, PathBuf)]) -> Result<Self, String> {
        let mut texts = Vec::with_capacity(roots.len());
        for (name, path) in roots {
            let json = std::fs::read_to_string(path)
                .map_err(|e| format!("sigstore trusted root {name} ({}): {e}", path.display()))?;
            texts.push((name.as_str(), json));
        }
        Self::from_json(texts.iter().map(|(n, j)| (*n, j.as_str())))
    }

    /// Roots from `(name, trusted_root.json text)` pairs; names must be
    /// distinct and non-empty.
    pub fn from_json<'a>(
        roots: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, String> {
        let mut names = std::collections::BTreeSet::new();
        let mut out = Vec::new();
        for (name, json) in roots {
            if name.trim().is_empty() {
                return Err("sigstore trusted root: a root's name must not be empty".into());
            }
            if !names.insert(name) {
                return Err(format!(
                    "sigstore trusted root {name}: two roots are named {name:?}; name them apart"
                ));
            }
            out.push(Root::new(name, json)?);
        }
        Ok(Self {
            roots: Arc::new(out),
        })
    }

    /// Whether no root is configured.
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    /// The roots' names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.roots.iter().map(|r| r.name.as_str())
    }
}

/// A root's default name: its file stem.
fn root_name(path: &std::path::Path) -> Result<String, String> {
    path.file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| {
            format!(
                "sigstore trusted root {}: no file name to name it by",
                path.display()
            )
        })
}

impl Root {
    fn new(name: &str, json: &str) -> Result<Self, String> {
        let root = TrustedRoot::from_json(json)
            .map_err(|e| format!("sigstore trusted root {name}: not a trusted root: {e}"))?;
        let verifier = Verifier::new(&root)
            .map_err(|e| format!("sigstore trusted root {name}: unusable: {e}"))?;
        Ok(Self {
            name: name.to_string(),
            verifier,
        })
    }
}

/// What verification concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// The bundle verified against a configured root.
    Verified,
    /// The bundle is well-formed but does not verify (or does not sign the
    /// artifact given).
    Failed,
    /// It could not be verified: no trusted root is configured, or no
    /// artifact digest is known.
    Unverifiable,
}

impl Status {
    /// `verified`, `failed` or `unverifiable`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Verified => "verified",
            Status::Failed => "failed",
            Status::Unverifiable => "unverifiable",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of verifying one bundle. Certificate claims (identity,
/// issuer, workflow, repository) are only filled in when the bundle
/// verified: an unverified certificate names whoever its maker wished.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// What verification concluded.
    pub status: Status,
    /// Why it is not verified; `None` when it is.
    pub reason: Option<String>,
    /// SHA-256 of the artifact the bundle was checked against.
    pub artifact: Option<[u8; 32]>,
    /// The certificate's SAN (an email or URI).
    pub identity: Option<String>,
    /// The certificate's OIDC issuer.
    pub issuer: Option<String>,
    /// The certificate's build signer URI (for GitHub: the workflow at its ref).
    pub workflow: Option<String>,
    /// The certificate's source repository URI.
    pub repository: Option<String>,
    /// The bundle's first transparency-log entry, `rekor-v1:<logIndex>` or
    /// `rekor-v2:<logIndex>` (as the bundle states it).
    pub tlog: Option<String>,
    /// The earliest verified signing time, RFC 3339.
    pub time: Option<String>,
    /// Name of the root that verified it.
    pub root: Option<String>,
}

/// Why a bundle the verifier panicked on is `failed`.
pub const VERIFIER_FAILED: &str = "the verifier failed on this bundle";

impl Outcome {
    /// The outcome of a bundle the verifier panicked on: `failed`, with
    /// [`VERIFIER_FAILED`] as the reason.
    pub fn verifier_failed(artifact: Option<[u8; 32]>) -> Self {
        Outcome {
            artifact,
            ..Self::not_verified(Status::Failed, VERIFIER_FAILED.into())
        }
    }

    fn not_verified(status: Status, reason: String) -> Self {
        Outcome {
            status,
            reason: Some(reason),
            artifact: None,
            identity: None,
            issuer: None,
            workflow: None,
            repository: None,
            tlog: None,
            time: None,
            root: None,
        }
    }

    /// The `evault.sigstore.*` labels describing this outcome (at most
    /// [`MAX_LABELS`]), each value at most `max_value` bytes with no control
    /// characters. An over-long reason is cut at a character boundary and
    /// ends in `…`; an over-long certificate claim is not cut (a prefix of
    /// an identity would read as another identity) but stored as
    /// `<label>.sha256` = `sha256:<hex>` of the full value.
    pub fn labels(&self, max_value: usize) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        out.insert(LABEL_STATUS.to_string(), self.status.as_str().to_string());
        if let Some(reason) = &self.reason {
            out.insert(
                LABEL_REASON.to_string(),
                truncate(&clean(reason), max_value),
            );
        }
        if let Some(a) = &self.artifact {
            out.insert(LABEL_ARTIFACT.to_string(), format!("sha256:{}", hex(a)));
        }
        let claims = [
            (LABEL_TLOG, &self.tlog),
            (LABEL_TIME, &self.time),
            (LABEL_ROOT, &self.root),
            (LABEL_SAN, &self.identity),
            (LABEL_ISSUER, &self.issuer),
            (LABEL_WORKFLOW, &self.workflow),
            (LABEL_REPOSITORY, &self.repository),
        ];
        for (key, value) in claims {
            let Some(v) = value else { continue };
            let v = clean(v);
            if v.len() <= max_value {
                out.insert(key.to_string(), v);
            } else {
                out.insert(
                    format!("{key}.sha256"),
                    format!("sha256:{}", hex(&Sha256::digest(v.as_bytes()).into())),
                );
            }
        }
        out
    }
}

/// Label values may not hold control characters; error texts may.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let ellipsis = '…';
    let mut end = max.saturating_sub(ellipsis.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ellipsis}", &s[..end])
}

fn hex(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The artifact digest a bundle states: a `hashedrekord`'s message digest,
/// or the single SHA-256 subject of an in-toto statement in its DSSE
/// envelope. `Ok(None)` when it states none (or several subjects); `Err`
/// (the bundle is `failed`) when it states a SHA-256 digest that is not 32
/// bytes: no artifact can match it.
fn bundle_digest(bundle: &Bundle) -> Result<Option<[u8; 32]>, String> {
    match &bundle.content {
        SignatureContent::MessageSignature(m) => {
            let Some(d) = m.message_digest.as_ref() else {
                return Ok(None);
            };
            if d.algorithm != HashAlgorithm::Sha2256 {
                return Ok(None);
            }
            let bytes = d.digest.as_bytes();
            match bytes.try_into() {
                Ok(digest) => Ok(Some(digest)),
                Err(_) => Err(format!(
                    "the bundle's SHA2_256 messageDigest is {} bytes, not 32",
                    bytes.len()
                )),
            }
        }
        SignatureContent::DsseEnvelope(env) => Ok(in_toto_digest(env)),
        _ => Ok(None),
    }
}

fn in_toto_digest(env: &sigstore_verify::types::DsseEnvelope) -> Option<[u8; 32]> {
    if env.payload_type != "application/vnd.in-toto+json" {
        return None;
    }
    let statement: serde_json::Value = serde_json::from_slice(env.payload.as_bytes()).ok()?;
    let [subject] = statement.get("subject")?.as_array()?.as_slice() else {
        return None;
    };
    let hex = subject.get("digest")?.get("sha256")?.as_str()?;
    Sha256Hash::from_hex(hex).ok().map(|h| *h.as_bytes())
}

fn tlog(bundle: &Bundle) -> Option<String> {
    let entry = bundle.verification_material.tlog_entries.first()?;
    let version = match entry.kind_version {
        // Rekor v2 logs only `hashedrekord` 0.0.2 (a DSSE too, as the
        // conformance bundles show); the other kinds are Rekor v1's.
        KindVersion::HashedRekordV002 => "rekor-v2",
        _ => "rekor-v1",
    };
    Some(format!("{version}:{}", u64::from(entry.log_index)))
}

/// Why a bundle signed with a key (not a Fulcio certificate) is `unverifiable`.
pub const MANAGED_KEY: &str =
    "managed-key bundles are not supported; only keyless (Fulcio certificate) bundles are verified";

/// Verifies a bundle submitted as `content_type`, offline, against `roots`.
///
/// The artifact is `artifact_digest` when the caller gives one, else the
/// digest the bundle itself states (see the crate README); a given digest
/// that differs from the bundle's makes it `failed`.
///
/// `Err` (the caller refuses the record as invalid) when `content_type` is
/// not a bundle media type, the payload is not a bundle, or the bundle's
/// `mediaType` is not the version its content type declares. Every other
/// problem is an [`Outcome`]: the record is still evidence, labelled
/// `failed` or `unverifiable`, unless a [`Policy`] refuses it.
pub fn verify(
    content_type: &str,
    bundle: &[u8],
    artifact_digest: Option<[u8; 32]>,
    roots: &TrustRoots,
) -> Result<Outcome, String> {
    let declared = content_type_version(content_type)
        .ok_or_else(|| format!("content type {content_type:?} is not a Sigstore bundle"))??;
    let text = std::str::from_utf8(bundle)
        .map_err(|_| "the Sigstore bundle is not UTF-8 JSON".to_string())?;
    let bundle = Bundle::from_json(text).map_err(|e| format!("not a Sigstore bundle: {e}"))?;
    let actual = match bundle.media_type {
        MediaType::Bundle0_1 => 1,
        MediaType::Bundle0_2 => 2,
        MediaType::Bundle0_3 => 3,
        // `MediaType` is non-exhaustive: a version a newer parser accepts
        // is not one this crate knows how to label.
        other => {
            return Err(format!(
                "the bundle's mediaType {:?} is not a supported version (supported: {SUPPORTED})",
                other.as_str()
            ));
        }
    };
    if actual != declared {
        return Err(format!(
            "content type {content_type:?} declares bundle version 0.{declared}, \
             the bundle's mediaType is {:?}",
            bundle.media_type.as_str()
        ));
    }

    let tlog = tlog(&bundle);
    let with = |mut o: Outcome, artifact| {
        o.artifact = artifact;
        o.tlog = tlog.clone();
        o
    };
    if matches!(
        bundle.verification_material.content,
        VerificationMaterialContent::PublicKey(_)
    ) {
        return Ok(with(
            Outcome::not_verified(Status::Unverifiable, MANAGED_KEY.into()),
            artifact_digest,
        ));
    }
    let stated = match bundle_digest(&bundle) {
        Ok(stated) => stated,
        Err(reason) => {
            return Ok(with(
                Outcome::not_verified(Status::Failed, reason),
                artifact_digest,
            ));
        }
    };
    let artifact = match (artifact_digest, stated) {
        (Some(given), Some(stated)) if given != stated => {
            return Ok(with(
                Outcome::not_verified(
                    Status::Failed,
                    format!(
                        "the artifact digest given (sha256:{}) is not the one the bundle signs (sha256:{})",
                        hex(&given),
                        hex(&stated)
                    ),
                ),
                Some(given),
            ));
        }
        (Some(d), _) | (None, Some(d)) => d,
        (None, None) => {
            return Ok(with(
                Outcome::not_verified(
                    Status::Unverifiable,
                    "the bundle states no single SHA-256 artifact digest; give the artifact's digest"
                        .into(),
                ),
                None,
            ));
        }
    };
    if roots.is_empty() {
        return Ok(with(
            Outcome::not_verified(
                Status::Unverifiable,
                "no Sigstore trusted root is configured".into(),
            ),
            Some(artifact),
        ));
    }

    // Identity is the policies' business (they see every claim, and give
    // their own reasons); here only the cryptography and the roots count.
    let policy = VerificationPolicy::any_identity();
    let mut errors = Vec::new();
    for root in roots.roots.iter() {
        match root
            .verifier
            .verify(Sha256Hash::new(artifact), &bundle, &policy)
        {
            Ok(result) => {
                let cert = result.certificate();
                let time = result
                    .integrated_time()
                    .into_iter()
                    .chain(result.verified_timestamps().iter().copied())
                    .min();
                return Ok(Outcome {
                    status: Status::Verified,
                    reason: None,
                    artifact: Some(artifact),
                    identity: result.identity().map(|s| s.as_str().to_string()),
                    issuer: result.issuer().map(str::to_string),
                    workflow: cert.and_then(|c| c.ci_claims.build_signer_uri.clone()),
                    repository: cert.and_then(|c| c.ci_claims.source_repository_uri.clone()),
                    tlog,
                    time: time.map(|t| t.to_string()),
                    root: Some(root.name.clone()),
                });
            }
            Err(e) => errors.push((root.name.as_str(), e.to_string())),
        }
    }
    let reason = match errors.as_slice() {
        [(_, e)] => e.clone(),
        _ => errors
            .iter()
            .map(|(name, e)| format!("root {name}: {e}"))
            .collect::<Vec<_>>()
            .join("; "),
    };
    Ok(with(
        Outcome::not_verified(Status::Failed, reason),
        Some(artifact),
    ))
}

/// An operator's rule for Sigstore records: every bundle whose labels
/// match `labels` must satisfy it, else the record is refused.
///
/// Any identity or issuer requirement implies a verified bundle (claims of
/// an unverified certificate prove nothing); `require_verified` alone
/// refuses every bundle that did not verify.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// Named in every refusal.
    pub name: String,
    /// The selector: the record's labels must hold each of these (all must
    /// be equal). Empty: every Sigstore record.
    pub labels: BTreeMap<String, String>,
    /// The certificate's SAN must equal this.
    pub identity: Option<String>,
    /// The certificate's SAN must start with this.
    pub identity_prefix: Option<String>,
    /// The certificate's OIDC issuer must equal this.
    pub issuer: Option<String>,
    /// The bundle must have verified.
    pub require_verified: bool,
    /// When not empty, the bundle must have verified under one of these
    /// trusted roots (by name). With several roots configured (production
    /// and staging, say) this keeps a bundle made elsewhere from
    /// satisfying an identity requirement.
    pub roots: Vec<String>,
}

impl Policy {
    /// Checks the policy is meaningful: a name, at most one of `identity`
    /// and `identity_prefix`, at least one requirement, and no selector key
    /// in the vault's `evault.` namespace (compared case-insensitively).
    /// Label-key syntax is the vault's to check.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("sigstore policy: `name` must not be empty".into());
        }
        if let Some(k) = self.labels.keys().find(|k| {
            k.get(..7)
                .is_some_and(|p| p.eq_ignore_ascii_case("evault."))
        }) {
            return Err(format!(
                "sigstore policy `{}`: selector label {k:?} is in the vault's `evault.` namespace; \
                 select on client labels (every policy already applies only to Sigstore records)",
                self.name
            ));
        }
        if self.roots.iter().any(|r| r.trim().is_empty()) {
            return Err(format!(
                "sigstore policy `{}`: `roots` must not hold an empty name",
                self.name
            ));
        }
        if self.identity.is_some() && self.identity_prefix.is_some() {
            return Err(format!(
                "sigstore policy `{}`: give `identity` or `identity_prefix`, not both",
                self.name
            ));
        }
        let empty = |s: &Option<String>| s.as_deref().is_some_and(str::is_empty);
        if empty(&self.identity) || empty(&self.identity_prefix) || empty(&self.issuer) {
            return Err(format!(
                "sigstore policy `{}`: `identity`, `identity_prefix` and `issuer` must not be empty when given",
                self.name
            ));
        }
        if self.identity.is_none()
            && self.identity_prefix.is_none()
            && self.issuer.is_none()
            && self.roots.is_empty()
            && !self.require_verified
        {
            return Err(format!(
                "sigstore policy `{}` requires nothing: give `identity`, `identity_prefix`, `issuer`, `roots` or `require_verified = true`",
                self.name
            ));
        }
        Ok(())
    }

    /// Whether the policy applies to a record with these labels.
    pub fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        self.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
    }

    /// `Ok` when the policy does not select the record or the outcome
    /// satisfies it; else why not, naming the policy.
    pub fn check(
        &self,
        outcome: &Outcome,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), String> {
        if !self.selects(labels) {
            return Ok(());
        }
        let name = &self.name;
        let wants_identity = self.identity.is_some()
            || self.identity_prefix.is_some()
            || self.issuer.is_some()
            || !self.roots.is_empty();
        if (self.require_verified || wants_identity) && outcome.status != Status::Verified {
            let reason = outcome.reason.as_deref().unwrap_or("no reason given");
            return Err(format!(
                "sigstore policy `{name}`: bundle not verified ({}): {reason}",
                outcome.status
            ));
        }
        let named = |v: &Option<String>| match v {
            Some(v) => v.clone(),
            None => "none".to_string(),
        };
        if let Some(want) = &self.identity
            && outcome.identity.as_ref() != Some(want)
        {
            return Err(format!(
                "sigstore policy `{name}`: requires identity {want}, the certificate names {}",
                named(&outcome.identity)
            ));
        }
        if let Some(prefix) = &self.identity_prefix
            && !outcome
                .identity
                .as_deref()
                .is_some_and(|i| i.starts_with(prefix.as_str()))
        {
            return Err(format!(
                "sigstore policy `{name}`: requires an identity starting with {prefix}, the certificate names {}",
                named(&outcome.identity)
            ));
        }
        if let Some(want) = &self.issuer
            && outcome.issuer.as_ref() != Some(want)
        {
            return Err(format!(
                "sigstore policy `{name}`: requires issuer {want}, the certificate names {}",
                named(&outcome.issuer)
            ));
        }
        if !self.roots.is_empty()
            && !outcome
                .root
                .as_ref()
                .is_some_and(|r| self.roots.contains(r))
        {
            return Err(format!(
                "sigstore policy `{name}`: requires a bundle verified under root {}, it verified under {}",
                self.roots.join(" or "),
                named(&outcome.root)
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types() {
        for ok in [
            "application/vnd.dev.sigstore.bundle.v0.3+json",
            "Application/VND.dev.sigstore.bundle.v0.3+JSON",
            "application/vnd.dev.sigstore.bundle+json;version=0.1",
            "application/vnd.dev.sigstore.bundle+json; version=0.2",
            "application/vnd.dev.sigstore.bundle+json;version=0.3",
        ] {
            assert!(is_sigstore_bundle(ok), "{ok}");
            assert!(content_type_version(ok).unwrap().is_ok(), "{ok}");
        }
        assert!(matches!(
            content_type_version("application/vnd.dev.sigstore.bundle+json"),
            Some(Err(_))
        ));
        assert!(matches!(
            content_type_version("application/vnd.dev.sigstore.bundle+json;version=0.9"),
            Some(Err(_))
        ));
        assert!(!is_sigstore_bundle("application/json"));
        // Unknown members of the family are recognised, then refused.
        let e = content_type_version("application/vnd.dev.sigstore.bundle.v0.4+json")
            .unwrap()
            .unwrap_err();
        assert!(e.contains("not a supported Sigstore bundle type"), "{e}");
        assert!(e.contains(MEDIA_TYPE_V03), "{e}");
    }

    #[test]
    fn bundles_are_recognised_by_their_body() {
        let b = br#"  {"mediaType": "application/vnd.dev.sigstore.bundle.v0.4+json", "x": 1}"#;
        assert_eq!(
            bundle_media_type(b).as_deref(),
            Some("application/vnd.dev.sigstore.bundle.v0.4+json")
        );
        for no in [
            &br#"{"mediaType": "application/json", "note": "application/vnd.dev.sigstore.bundle"}"#
                [..],
            br#"["application/vnd.dev.sigstore.bundle.v0.3+json"]"#,
            br#"{"a": {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json"}}"#,
            br#"{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json""#,
            b"{}",
        ] {
            assert_eq!(
                bundle_media_type(no),
                None,
                "{}",
                String::from_utf8_lossy(no)
            );
        }
        let deep = format!(
            "{}\"application/vnd.dev.sigstore.bundle\"{}",
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        assert_eq!(
            bundle_media_type(format!("{{\"a\":{deep}}}").as_bytes()),
            None
        );
    }

    #[test]
    fn long_values_are_cut_or_digested() {
        let long = "x".repeat(300);
        let o = Outcome {
            identity: Some(long.clone()),
            ..Outcome::not_verified(Status::Failed, format!("bad\n{long}"))
        };
        let labels = o.labels(256);
        let reason = &labels[LABEL_REASON];
        assert!(reason.len() <= 256 && reason.starts_with("bad x") && reason.ends_with('…'));
        assert!(!labels.contains_key(LABEL_SAN));
        assert_eq!(
            labels[&format!("{LABEL_SAN}.sha256")],
            format!("sha256:{}", hex(&Sha256::digest(long.as_bytes()).into()))
        );
    }

    #[test]
    fn policies_validate() {
        let p = |f: &dyn Fn(&mut Policy)| {
            let mut p = Policy {
                name: "release".into(),
                require_verified: true,
                ..Policy::default()
            };
            f(&mut p);
            p.validate()
        };
        assert!(p(&|_| {}).is_ok());
        assert!(p(&|p| p.name.clear()).is_err());
        assert!(
            p(&|p| p.require_verified = false)
                .unwrap_err()
                .contains("requires nothing")
        );
        assert!(
            p(&|p| {
                p.identity = Some("a".into());
                p.identity_prefix = Some("b".into());
            })
            .is_err()
        );
        for key in ["evault.sigstore.status", "Evault.x", "EVAULT.y"] {
            let e = p(&|p| {
                p.labels.insert(key.into(), "v".into());
            })
            .unwrap_err();
            assert!(e.contains("namespace"), "{e}");
        }
        assert!(
            p(&|p| {
                p.require_verified = false;
                p.roots = vec!["production".into()];
            })
            .is_ok()
        );
        assert!(p(&|p| p.roots = vec![String::new()]).is_err());
    }

    #[test]
    fn a_policy_pinned_to_roots_wants_one_of_them() {
        let p = Policy {
            name: "prod".into(),
            roots: vec!["production".into()],
            ..Policy::default()
        };
        let verified = |root: &str| Outcome {
            status: Status::Verified,
            reason: None,
            root: Some(root.into()),
            ..Outcome::not_verified(Status::Verified, String::new())
        };
        let none = BTreeMap::new();
        assert!(p.check(&verified("production"), &none).is_ok());
        let e = p.check(&verified("staging"), &none).unwrap_err();
        assert!(
            e.contains("root production, it verified under staging"),
            "{e}"
        );
        let e = p
            .check(&Outcome::not_verified(Status::Failed, "bad".into()), &none)
            .unwrap_err();
        assert!(e.contains("not verified (failed): bad"), "{e}");
    }
}
