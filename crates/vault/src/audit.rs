//! The audit trail's configuration and the checks every event passes before
//! the sequencer logs it. The log itself is a second Merkle log committed
//! by the same sequencer as the evidence (see `sequencer`), mirrored to
//! JSON lines by `mirror`.

use std::path::PathBuf;

use evault_store::AuditRow;
use evault_verify::AuditEvent;

use crate::PutOutcome;
use crate::error::Result;

/// How the audit trail runs. Defaults are the documented ones.
#[derive(Clone, Debug)]
pub struct AuditConfig {
    /// Log an event for every call. Off: nothing is written, and the audit
    /// read API answers [`crate::VaultError::NotFound`]. Default on.
    pub enabled: bool,
    /// Checkpoint origin of a new audit log; must match a stored one.
    /// Default `<evidence origin>/audit`.
    pub origin: Option<String>,
    /// Audit signing key; default `<data dir>/audit.key`, generated (named
    /// after the audit origin) if missing while the audit log is empty.
    /// Ignored when `signer` is set.
    pub key_file: Option<PathBuf>,
    /// The audit log's signer, when its key does not live in a file.
    pub signer: Option<crate::LogSigner>,
    /// The audit log's ML-DSA-44 key file, as
    /// [`VaultConfig::pq_key_file`](crate::VaultConfig::pq_key_file).
    pub pq_key_file: Option<PathBuf>,
    /// Also append every committed event to daily JSON-lines files. Default
    /// on.
    pub mirror: bool,
    /// Directory of the mirror files; default `<data dir>/audit`.
    pub mirror_dir: Option<PathBuf>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            enabled: true,
            origin: None,
            key_file: None,
            signer: None,
            pq_key_file: None,
            mirror: true,
            mirror_dir: None,
        }
    }
}

/// Builds a put's audit event from what the put did, inside the commit that
/// writes the record: called once the outcome (new, duplicate or replayed,
/// with its leaf index) is known, and its event is committed in the same
/// transaction, so neither exists without the other. Not called if audit is
/// disabled or the put fails before reaching the commit. The vault assigns
/// the event's `id` and `leaf_index`.
pub type AuditOnCommit = Box<dyn FnOnce(&PutOutcome) -> AuditEvent + Send + 'static>;

/// Largest leaf data of an event: tlog-tiles entry bundles prefix each
/// entry with a 16-bit length.
const MAX_LEAF: usize = u16::MAX as usize;

/// Checks what the caller filled in: `time` is RFC 3339 UTC with exactly
/// millisecond precision (the documented leaf format, and the key of the
/// mirror file and of time filters), `params_digest` is lower-case hex
/// SHA-256, principal and operation are not empty. Returns `time` in
/// milliseconds since the Unix epoch.
pub(crate) fn check_event(e: &AuditEvent) -> Result<i64, String> {
    let time_ms = humantime::parse_rfc3339(&e.time)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .filter(|&ms| crate::records::format_ms(ms) == e.time)
        .ok_or_else(|| {
            format!(
                "time {:?} is not RFC 3339 UTC with milliseconds (2026-11-23T11:30:00.123Z)",
                e.time
            )
        })?;
    if e.params_digest.len() != 64
        || !e
            .params_digest
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(format!(
            "params_digest {:?} is not lower-case hex SHA-256",
            e.params_digest
        ));
    }
    if e.principal.is_empty() {
        return Err("principal is empty (use \"anonymous\")".into());
    }
    if e.operation.is_empty() {
        return Err("operation is empty".into());
    }
    Ok(time_ms)
}

/// Assigns the event its id (a new UUIDv7) and position, checks it, and
/// returns the row to store. The event is updated in place (it is what the
/// mirror writes).
pub(crate) fn to_row(e: &mut AuditEvent, leaf_index: u64) -> Result<AuditRow, String> {
    let time_ms = check_event(e)?;
    e.id = uuid::Uuid::now_v7().to_string();
    e.leaf_index = leaf_index;
    let leaf_data = e.leaf_data();
    if leaf_data.is_empty() || leaf_data.len() > MAX_LEAF {
        return Err(format!(
            "the event's leaf data has {} bytes, at most {MAX_LEAF} allowed",
            leaf_data.len()
        ));
    }
    Ok(AuditRow {
        leaf_index,
        id: e.id.clone(),
        time_ms,
        principal: e.principal.clone(),
        operation: e.operation.clone(),
        outcome: e.outcome.as_str().to_string(),
        leaf_data,
    })
}

/// The API view of a stored event: its leaf data, parsed, and checked
/// against the columns the store looks it up and filters by (so an edited
/// column cannot hide an event from a listing unnoticed).
pub(crate) fn from_row(row: &AuditRow) -> Result<AuditEvent> {
    // The leaf is what the audit tree commits to; the columns are copies
    // for filtering. A difference is a change at rest.
    let bad = |why: String| {
        crate::integrity::failure(
            "audit_event",
            format!("audit event {}: {why}", row.leaf_index),
        )
    };
    let event = AuditEvent::from_leaf_data(&row.leaf_data, row.leaf_index).map_err(bad)?;
    let time_ms = check_event(&event).map_err(bad)?;
    let columns = (
        row.id.as_str(),
        row.principal.as_str(),
        row.operation.as_str(),
        row.outcome.as_str(),
        row.time_ms,
    );
    let leaf = (
        event.id.as_str(),
        event.principal.as_str(),
        event.operation.as_str(),
        event.outcome.as_str(),
        time_ms,
    );
    if columns != leaf {
        return Err(bad(format!(
            "stored columns {columns:?} differ from its leaf's {leaf:?}"
        )));
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::VaultError;
    use evault_verify::Outcome;

    fn event() -> AuditEvent {
        AuditEvent {
            id: String::new(),
            leaf_index: 0,
            time: "2026-11-23T11:30:00.123Z".into(),
            request_id: "r".into(),
            principal: "sa:ci".into(),
            key_id: None,
            auth_method: "service-account".into(),
            protocol: "http".into(),
            operation: "evidence.put".into(),
            resource: "/api/v1/evidence".into(),
            outcome: Outcome::Success,
            status: 201,
            client: "127.0.0.1:1".into(),
            params_digest: "ab".repeat(32),
            reason: None,
        }
    }

    #[test]
    fn checks_time_digest_and_names() {
        assert_eq!(check_event(&event()), Ok(1_795_433_400_123));
        let bad: [fn(&mut AuditEvent); 9] = [
            |e| e.time = "2026-11-23T11:30:00Z".into(),
            |e| e.time = "2026-11-23T11:30:00.1234Z".into(),
            |e| e.time = "2026-11-23T11:30:00.123+00:00".into(),
            |e| e.time = "2026-11-23 11:30:00.123Z".into(),
            |e| e.time = "yesterday".into(),
            |e| e.params_digest = "AB".repeat(32),
            |e| e.params_digest = "ab".repeat(31),
            |e| e.principal.clear(),
            |e| e.operation.clear(),
        ];
        for (n, f) in bad.iter().enumerate() {
            let mut e = event();
            f(&mut e);
            assert!(check_event(&e).is_err(), "case {n}: {e:?}");
        }
    }

    #[test]
    fn to_row_assigns_id_and_index_and_round_trips() {
        let mut e = event();
        let row = to_row(&mut e, 41).unwrap();
        assert_eq!(e.leaf_index, 41);
        assert_eq!(uuid::Uuid::parse_str(&e.id).unwrap().get_version_num(), 7);
        assert_eq!(
            (row.id.as_str(), row.outcome.as_str(), row.time_ms),
            (e.id.as_str(), "success", 1_795_433_400_123)
        );
        assert_eq!(from_row(&row).unwrap(), e);
        // A column that disagrees with the leaf is caught.
        let edits: [fn(&mut AuditRow); 5] = [
            |r| r.principal = "someone else".into(),
            |r| r.operation = "other".into(),
            |r| r.outcome = "denied".into(),
            |r| r.time_ms += 1,
            |r| r.id = "x".into(),
        ];
        for edit in edits {
            let mut r = row.clone();
            edit(&mut r);
            assert!(matches!(
                from_row(&r),
                Err(VaultError::Corrupt {
                    what: "audit_event",
                    ..
                })
            ));
        }
        let mut huge = event();
        huge.reason = Some("x".repeat(MAX_LEAF));
        assert!(to_row(&mut huge, 0).is_err());
    }
}
