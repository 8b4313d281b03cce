//! The audit event and its leaf data (docs/FORMATS.md, "Audit log").
//!
//! Every API call leaves one event in a second Merkle log with its own
//! origin and key. Like an evidence record, the leaf is the RFC 8785 (JCS)
//! canonical JSON of the event as the API returns it, minus its position, so
//! an auditor recomputes it from the API's JSON alone.

use std::fmt;
use std::str::FromStr;

use evault_merkle::{Hash, leaf_hash};
use serde::{Deserialize, Serialize};

/// Version tag inside every audit leaf; a new layout gets a new tag.
pub const AUDIT_LEAF_VERSION: &str = "evault/audit/v1";

/// How a request ended, as far as an auditor cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Allowed, and the operation succeeded.
    Success,
    /// Authenticated but not allowed (or rate limited).
    Denied,
    /// No valid credentials.
    Unauthenticated,
    /// Allowed, but the operation failed.
    Failed,
}

impl Outcome {
    /// The lower-case name used in JSON, the leaf and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Denied => "denied",
            Outcome::Unauthenticated => "unauthenticated",
            Outcome::Failed => "failed",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Outcome {
    type Err = String;

    /// Exactly the names [`Outcome::as_str`] gives.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "success" => Ok(Outcome::Success),
            "denied" => Ok(Outcome::Denied),
            "unauthenticated" => Ok(Outcome::Unauthenticated),
            "failed" => Ok(Outcome::Failed),
            other => Err(format!(
                "outcome {other:?}: expected success, denied, unauthenticated or failed"
            )),
        }
    }
}

/// One audit event as the API returns it. Strict like
/// [`crate::Evidence`]: unknown members are an error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEvent {
    /// UUIDv7, assigned by the vault when committed (callers leave it empty).
    pub id: String,
    /// Position in the audit log; not part of the leaf (the inclusion proof
    /// proves it), like [`crate::Evidence::leaf_index`].
    pub leaf_index: u64,
    /// RFC 3339, UTC, millisecond precision: when the request arrived.
    pub time: String,
    /// The request's id, as in the `x-request-id` reply header.
    pub request_id: String,
    /// Who called, or `anonymous`.
    pub principal: String,
    /// Key id of the credential used; `None` when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// `service-account`, `oidc` or `none`.
    pub auth_method: String,
    /// `http` or `grpc`.
    pub protocol: String,
    /// e.g. `evidence.put`.
    pub operation: String,
    /// e.g. `/api/v1/evidence/0193…` or an evidence id.
    pub resource: String,
    /// How the request ended.
    pub outcome: Outcome,
    /// HTTP status (or gRPC code).
    pub status: u16,
    /// Client address.
    pub client: String,
    /// Lower-case hex SHA-256 of the request's parameters (the server
    /// decides what they are).
    pub params_digest: String,
    /// Why the request was denied, failed or anonymous.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A JSON object being written, members in the order given.
struct Members(Vec<u8>);

impl Members {
    /// Writes `"name":` then `json` (already JSON).
    fn raw(&mut self, name: &str, json: &[u8]) {
        self.0.push(if self.0.is_empty() { b'{' } else { b',' });
        self.0.push(b'"');
        self.0.extend_from_slice(name.as_bytes());
        self.0.extend_from_slice(b"\":");
        self.0.extend_from_slice(json);
    }

    /// Writes `"name":` then `value` as a JSON string.
    fn string(&mut self, name: &str, value: &str) {
        self.raw(name, b"");
        // Writing a &str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.0, value);
    }
}

/// Exactly the members of the leaf: every event field but `leaf_index`,
/// plus `v`; absent options are left out, as in the API. Parsing uses this;
/// [`AuditEvent::leaf_data`] writes the same members directly (and the
/// tests check it against `serde_jcs` over this struct).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LeafFields<S> {
    v: S,
    id: S,
    time: S,
    request_id: S,
    principal: S,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_id: Option<S>,
    auth_method: S,
    protocol: S,
    operation: S,
    resource: S,
    outcome: Outcome,
    status: u16,
    client: S,
    params_digest: S,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<S>,
}

impl AuditEvent {
    /// The leaf data: RFC 8785 canonical JSON of every field except
    /// `leaf_index`, plus `"v": "evault/audit/v1"`.
    ///
    /// Written member by member rather than through `serde_jcs`: the
    /// sequencer builds one per API call on its serial commit path, and the
    /// member names are fixed ASCII, so their JCS order (UTF-16 code units,
    /// here plain byte order) is static. Strings are escaped by serde_json,
    /// the escaper `serde_jcs` itself uses; the tests compare both.
    pub fn leaf_data(&self) -> Vec<u8> {
        let mut m = Members(Vec::with_capacity(512));
        m.string("auth_method", &self.auth_method);
        m.string("client", &self.client);
        m.string("id", &self.id);
        if let Some(k) = &self.key_id {
            m.string("key_id", k);
        }
        m.string("operation", &self.operation);
        m.string("outcome", self.outcome.as_str());
        m.string("params_digest", &self.params_digest);
        m.string("principal", &self.principal);
        m.string("protocol", &self.protocol);
        if let Some(r) = &self.reason {
            m.string("reason", r);
        }
        m.string("request_id", &self.request_id);
        m.string("resource", &self.resource);
        m.raw("status", self.status.to_string().as_bytes());
        m.string("time", &self.time);
        m.string("v", AUDIT_LEAF_VERSION);
        m.0.push(b'}');
        m.0
    }

    /// RFC 6962 leaf hash of [`AuditEvent::leaf_data`].
    pub fn leaf_hash(&self) -> Hash {
        leaf_hash(&self.leaf_data())
    }

    /// Parses leaf data written by [`AuditEvent::leaf_data`], at position
    /// `leaf_index`. Refuses another version tag, unknown or missing
    /// members, and bytes that are not the canonical form of what they
    /// parse to (so the event returned hashes to exactly this leaf).
    pub fn from_leaf_data(bytes: &[u8], leaf_index: u64) -> Result<AuditEvent, String> {
        let f: LeafFields<String> = serde_json::from_slice(bytes)
            .map_err(|e| format!("audit leaf is not an {AUDIT_LEAF_VERSION} object: {e}"))?;
        if f.v != AUDIT_LEAF_VERSION {
            return Err(format!(
                "audit leaf has version {:?}, expected {AUDIT_LEAF_VERSION:?}",
                f.v
            ));
        }
        let event = AuditEvent {
            id: f.id,
            leaf_index,
            time: f.time,
            request_id: f.request_id,
            principal: f.principal,
            key_id: f.key_id,
            auth_method: f.auth_method,
            protocol: f.protocol,
            operation: f.operation,
            resource: f.resource,
            outcome: f.outcome,
            status: f.status,
            client: f.client,
            params_digest: f.params_digest,
            reason: f.reason,
        };
        if event.leaf_data() != bytes {
            return Err("audit leaf is not in RFC 8785 canonical form".into());
        }
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AuditProofBundle, BundleError, LoggedRecord};
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use evault_merkle::MemoryTree;
    use evault_note::{Checkpoint, Ed25519Signer, Verifiers, sign};

    fn sample() -> AuditEvent {
        AuditEvent {
            id: "01936f0e-8f3a-7cc2-9b1e-3f1f2d4c5b6a".into(),
            leaf_index: 7,
            time: "2026-11-23T11:30:00.123Z".into(),
            request_id: "01936f0e-8f39-7000-8000-000000000001".into(),
            principal: "sa:ci".into(),
            key_id: Some("k1".into()),
            auth_method: "service-account".into(),
            protocol: "http".into(),
            operation: "evidence.put".into(),
            resource: "/api/v1/evidence/01936f0e-8f3a-7cc2-9b1e-3f1f2d4c5b6a".into(),
            outcome: Outcome::Success,
            status: 201,
            client: "192.0.2.7:51234".into(),
            params_digest: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
                .into(),
            reason: None,
        }
    }

    #[test]
    fn leaf_data_is_canonical_and_excludes_the_index() {
        let e = sample();
        let got = String::from_utf8(e.leaf_data()).unwrap();
        let want = concat!(
            r#"{"auth_method":"service-account","client":"192.0.2.7:51234","#,
            r#""id":"01936f0e-8f3a-7cc2-9b1e-3f1f2d4c5b6a","key_id":"k1","#,
            r#""operation":"evidence.put","outcome":"success","#,
            r#""params_digest":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","#,
            r#""principal":"sa:ci","protocol":"http","#,
            r#""request_id":"01936f0e-8f39-7000-8000-000000000001","#,
            r#""resource":"/api/v1/evidence/01936f0e-8f3a-7cc2-9b1e-3f1f2d4c5b6a","#,
            r#""status":201,"time":"2026-11-23T11:30:00.123Z","v":"evault/audit/v1"}"#
        );
        assert_eq!(got, want);
        let mut moved = e.clone();
        moved.leaf_index = 99;
        assert_eq!(moved.leaf_data(), e.leaf_data());
        assert_eq!(moved.leaf_hash(), e.leaf_hash());
    }

    /// The hand-written leaf is byte for byte what serde_jcs makes of the
    /// same members, whatever the strings hold.
    #[test]
    fn leaf_data_equals_serde_jcs() {
        let awkward = [
            "",
            "plain",
            "quote \" backslash \\ slash /",
            "\u{0}\u{1}\u{8}\u{9}\u{a}\u{b}\u{c}\u{d}\u{1f}\u{7f}",
            "é ✓ 𝄞 😀 \u{2028}\u{2029} \u{fffd}",
            "</script>",
        ];
        for (n, a) in awkward.iter().enumerate() {
            for opt in [None, Some(a.to_string())] {
                let e = AuditEvent {
                    id: a.to_string(),
                    principal: format!("{a}{n}"),
                    resource: a.to_string(),
                    client: a.to_string(),
                    key_id: opt.clone(),
                    reason: opt.clone(),
                    status: [0, 7, 200, 65535][n % 4],
                    outcome: [
                        Outcome::Success,
                        Outcome::Denied,
                        Outcome::Unauthenticated,
                        Outcome::Failed,
                    ][n % 4],
                    ..sample()
                };
                let reference = serde_jcs::to_vec(&LeafFields {
                    v: AUDIT_LEAF_VERSION,
                    id: e.id.as_str(),
                    time: &e.time,
                    request_id: &e.request_id,
                    principal: &e.principal,
                    key_id: e.key_id.as_deref(),
                    auth_method: &e.auth_method,
                    protocol: &e.protocol,
                    operation: &e.operation,
                    resource: &e.resource,
                    outcome: e.outcome,
                    status: e.status,
                    client: &e.client,
                    params_digest: &e.params_digest,
                    reason: e.reason.as_deref(),
                })
                .unwrap();
                assert_eq!(
                    String::from_utf8(e.leaf_data()).unwrap(),
                    String::from_utf8(reference).unwrap(),
                    "case {n}"
                );
                assert_eq!(
                    AuditEvent::from_leaf_data(&e.leaf_data(), 1).unwrap().id,
                    e.id
                );
            }
        }
    }

    #[test]
    fn optional_members_and_escapes() {
        let mut e = sample();
        e.key_id = None;
        e.outcome = Outcome::Denied;
        e.status = 403;
        e.reason = Some("needs role \"admin\"\n😀".into());
        let got = String::from_utf8(e.leaf_data()).unwrap();
        assert!(!got.contains("key_id"), "{got}");
        assert!(
            got.contains(r#""outcome":"denied","#)
                && got.contains(r#""reason":"needs role \"admin\"\n😀","#),
            "{got}"
        );
        // Every other field still changes the leaf.
        let mut other = e.clone();
        other.client = "elsewhere".into();
        assert_ne!(other.leaf_hash(), e.leaf_hash());
    }

    #[test]
    fn from_leaf_data_round_trips_and_rejects_others() {
        for e in [sample(), {
            let mut e = sample();
            e.key_id = None;
            e.reason = Some("anonymous".into());
            e.outcome = Outcome::Unauthenticated;
            e
        }] {
            let back = AuditEvent::from_leaf_data(&e.leaf_data(), e.leaf_index).unwrap();
            assert_eq!(back, e);
            let elsewhere = AuditEvent::from_leaf_data(&e.leaf_data(), 3).unwrap();
            assert_eq!(elsewhere.leaf_index, 3);
        }
        let good = String::from_utf8(sample().leaf_data()).unwrap();
        for bad in [
            good.replace("evault/audit/v1", "evault/audit/v2"),
            good.replace("evault/audit/v1", "evault/evidence/v1"),
            good.replace(r#","v":"evault/audit/v1""#, ""),
            good.replace(r#""status":201,"#, ""),
            good.replace(r#""status":201,"#, r#""status":201,"extra":1,"#),
            good.replace(r#""outcome":"success""#, r#""outcome":"Success""#),
            // Valid JSON, but not canonical: it would not hash to this leaf.
            good.replace(r#"{"auth_method""#, r#"{ "auth_method""#),
            good.replace(r#""status":201"#, r#""status":2.01e2"#),
            "[]".into(),
            String::new(),
        ] {
            assert!(
                AuditEvent::from_leaf_data(bad.as_bytes(), 0).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn outcome_names() {
        for o in [
            Outcome::Success,
            Outcome::Denied,
            Outcome::Unauthenticated,
            Outcome::Failed,
        ] {
            assert_eq!(o.as_str().parse::<Outcome>(), Ok(o));
            assert_eq!(o.to_string(), o.as_str());
            assert_eq!(serde_json::to_string(&o).unwrap(), format!("\"{o}\""));
        }
        assert!("SUCCESS".parse::<Outcome>().is_err());
        assert!("".parse::<Outcome>().is_err());
    }

    #[test]
    fn audit_bundle_verifies_and_catches_tampering() {
        const ORIGIN: &str = "vault.example/log/audit";
        let signer = Ed25519Signer::from_seed(ORIGIN, &[3; 32]).unwrap();
        let verifiers = Verifiers::new().with(signer.verifier()).unwrap();
        let events: Vec<AuditEvent> = (0..13)
            .map(|i| AuditEvent {
                leaf_index: i,
                request_id: format!("req-{i}"),
                ..sample()
            })
            .collect();
        let mut tree = MemoryTree::new();
        for e in &events {
            tree.push(LoggedRecord::leaf_hash(e).unwrap());
        }
        let note = sign(
            &Checkpoint::new(ORIGIN, 13, tree.root()).to_text(),
            &[&signer],
        )
        .unwrap();
        let bundle = AuditProofBundle {
            record: events[5].clone(),
            leaf_index: 5,
            tree_size: 13,
            inclusion_proof: tree
                .inclusion_proof(5, 13)
                .unwrap()
                .iter()
                .map(|h| STANDARD.encode(h))
                .collect(),
            checkpoint: note,
        };
        let ok = bundle.verify(&verifiers, Some(ORIGIN)).unwrap();
        assert_eq!((ok.leaf_index, ok.tree_size), (5, 13));
        let json = serde_json::to_string(&bundle).unwrap();
        let back: AuditProofBundle = serde_json::from_str(&json).unwrap();
        assert!(back.verify(&verifiers, None).is_ok());
        assert_eq!(bundle.to_tlog_proof().unwrap().index, 5);

        let mut b = bundle.clone();
        b.record.outcome = Outcome::Denied;
        assert!(matches!(
            b.verify(&verifiers, None),
            Err(BundleError::Inclusion(_))
        ));
        let mut b = bundle.clone();
        b.record.leaf_index = 6;
        assert!(matches!(
            b.verify(&verifiers, None),
            Err(BundleError::IndexMismatch { .. })
        ));
        assert!(matches!(
            bundle.verify(&verifiers, Some("vault.example/log")),
            Err(BundleError::WrongOrigin { .. })
        ));
    }

    #[test]
    fn unknown_members_are_rejected() {
        let mut v = serde_json::to_value(sample()).unwrap();
        assert_eq!(
            serde_json::from_value::<AuditEvent>(v.clone()).unwrap(),
            sample()
        );
        v["approved"] = true.into();
        assert!(serde_json::from_value::<AuditEvent>(v).is_err());
    }
}
