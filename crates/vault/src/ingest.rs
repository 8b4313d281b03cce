//! Validation of what clients submit. Everything here runs before anything
//! is written, so a rejected request leaves no trace in the store.

use std::collections::BTreeMap;

use crate::error::{Result, VaultError};

/// Most labels one record may carry.
pub const MAX_LABELS: usize = 32;
/// Most `label` filters one list query may carry: a record has at most
/// [`MAX_LABELS`] labels, so more filters could match nothing, and each
/// one deepens the store's query (SQLite refuses ~1,000).
pub const MAX_LABEL_FILTERS: usize = MAX_LABELS;
/// Longest label key, in bytes.
pub const MAX_LABEL_KEY: usize = 64;
/// Longest label value, in bytes.
pub const MAX_LABEL_VALUE: usize = 256;
/// Longest content type, in bytes.
pub const MAX_CONTENT_TYPE: usize = 127;
/// Longest idempotency key, in bytes.
pub const MAX_IDEMPOTENCY_KEY: usize = 128;

/// Checks a list query's label filters: their number (see
/// [`MAX_LABEL_FILTERS`]) and keys.
pub fn validate_label_filters(labels: &[(String, String)]) -> Result<()> {
    if labels.len() > MAX_LABEL_FILTERS {
        return Err(VaultError::Invalid(format!(
            "{} label filters; at most {MAX_LABEL_FILTERS} are allowed",
            labels.len()
        )));
    }
    for (k, _) in labels {
        validate_label_key(k)?;
    }
    Ok(())
}

/// Checks a MIME type of the form `type/subtype[; params]`.
pub fn validate_content_type(ct: &str) -> Result<()> {
    let invalid = |why: &str| Err(VaultError::Invalid(format!("content type {ct:?}: {why}")));
    if ct.is_empty() || ct.len() > MAX_CONTENT_TYPE {
        return invalid("must be 1 to 127 bytes");
    }
    let essence = ct.split(';').next().unwrap_or("").trim();
    let Some((ty, sub)) = essence.split_once('/') else {
        return invalid("must look like type/subtype");
    };
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    if !token(ty) || !token(sub) {
        return invalid("type and subtype must be MIME tokens");
    }
    if ct.bytes().any(|b| b.is_ascii_control()) {
        return invalid("must not contain control characters");
    }
    Ok(())
}

/// Checks label keys (`[A-Za-z0-9._/-]`, 1..=64 bytes) and values (UTF-8,
/// at most 256 bytes, no control characters), and their count.
pub fn validate_labels(labels: &BTreeMap<String, String>) -> Result<()> {
    if labels.len() > MAX_LABELS {
        return Err(VaultError::Invalid(format!(
            "{} labels given, at most {MAX_LABELS} allowed",
            labels.len()
        )));
    }
    for (k, v) in labels {
        validate_label_key(k)?;
        if v.len() > MAX_LABEL_VALUE {
            return Err(VaultError::Invalid(format!(
                "label {k:?}: value longer than {MAX_LABEL_VALUE} bytes"
            )));
        }
        if v.chars().any(char::is_control) {
            return Err(VaultError::Invalid(format!(
                "label {k:?}: value contains control characters"
            )));
        }
    }
    Ok(())
}

/// Checks a label key: 1 to 64 bytes of `[A-Za-z0-9._/-]`.
pub fn validate_label_key(k: &str) -> Result<()> {
    if k.is_empty()
        || k.len() > MAX_LABEL_KEY
        || !k
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._/-".contains(&b))
    {
        return Err(VaultError::Invalid(format!(
            "label key {k:?}: must be 1 to {MAX_LABEL_KEY} characters of [A-Za-z0-9._/-]"
        )));
    }
    Ok(())
}

/// Parses `k=v` or `k:v` label syntax.
pub fn parse_label(s: &str) -> Result<(String, String)> {
    let (k, v) = s
        .split_once('=')
        .or_else(|| s.split_once(':'))
        .ok_or_else(|| VaultError::Invalid(format!("label {s:?}: expected key=value")))?;
    validate_label_key(k)?;
    Ok((k.to_string(), v.to_string()))
}

/// Checks an idempotency key: 1 to 128 visible ASCII characters
/// (0x21 to 0x7E, so no space).
pub fn validate_idempotency_key(k: &str) -> Result<()> {
    if k.is_empty()
        || k.len() > MAX_IDEMPOTENCY_KEY
        || !k.bytes().all(|b| (0x21..0x7f).contains(&b))
    {
        return Err(VaultError::Invalid(format!(
            "idempotency key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        for ok in [
            "application/json",
            "text/plain; charset=utf-8",
            "application/vnd.in-toto+json",
        ] {
            validate_content_type(ok).unwrap();
        }
        for bad in [
            "",
            "json",
            "/x",
            "a/",
            "a b/c",
            "text/plain\n",
            &"a/".repeat(70),
        ] {
            assert!(validate_content_type(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn labels() {
        let mut l = BTreeMap::from([("env".to_string(), "prod".to_string())]);
        validate_labels(&l).unwrap();
        l.insert("bad key".into(), "x".into());
        assert!(validate_labels(&l).is_err());
        let l = BTreeMap::from([("k".to_string(), "v\u{7}".to_string())]);
        assert!(validate_labels(&l).is_err());
        let l = BTreeMap::from([("k".to_string(), "v".repeat(257))]);
        assert!(validate_labels(&l).is_err());
        let many: BTreeMap<_, _> = (0..33).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(validate_labels(&many).is_err());
        assert_eq!(parse_label("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert_eq!(parse_label("a:b").unwrap(), ("a".into(), "b".into()));
        assert!(parse_label("ab").is_err());
    }

    #[test]
    fn idempotency_keys() {
        validate_idempotency_key("retry-123").unwrap();
        assert!(validate_idempotency_key("").is_err());
        assert!(validate_idempotency_key("has space").is_err());
        assert!(validate_idempotency_key(&"x".repeat(129)).is_err());
    }
}
