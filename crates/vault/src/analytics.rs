//! Typed analytics events: the quality and analytics events pipelines
//! stream, kept as records of content type [`ANALYTICS_TYPE`].
//!
//! Such a record's payload must be exactly one event, as docs/FORMATS.md
//! describes. [`check`] validates it before anything is written (so a bad
//! event is rejected on its own, with the field at fault named) and returns
//! its typed fields, which travel with the record to the store; the store
//! indexes them in the record's transaction for
//! [`Vault::analytics_summary`](crate::Vault::analytics_summary).

use crate::calendar::{days_from_civil, days_in_month};
use std::fmt;

use evault_store::{AnalyticsGroup, AnalyticsQuery, AnalyticsRow};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::error::Category;
use serde_json::{Map, Value};

use crate::error::{Result, VaultError};

/// An analytics summary ([`Vault::analytics_summary`](crate::Vault::analytics_summary)):
/// one group per source and kind, and the query as the vault applied it
/// (narrowed to the reader's own events where its scope says so).
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// Per source and kind, ordered by both.
    pub groups: Vec<AnalyticsGroup>,
    /// The filters applied.
    pub query: AnalyticsQuery,
}

/// Media type of an analytics event record (parameters allowed).
pub const ANALYTICS_TYPE: &str = "application/vnd.evault.analytics+json";
/// Longest `source`, in bytes.
pub const MAX_SOURCE: usize = 128;
/// Longest `kind`, in bytes.
pub const MAX_KIND: usize = 128;
/// Longest `unit`, in bytes.
pub const MAX_UNIT: usize = 32;
/// Most entries in `metrics`, and in `metadata`.
pub const MAX_ENTRIES: usize = 64;
/// Longest metric or metadata name, in characters of `[A-Za-z0-9._/-]`.
pub const MAX_NAME: usize = 64;
/// Longest metadata value, in bytes.
pub const MAX_METADATA_VALUE: usize = 1024;

/// The members an event may have.
const FIELDS: [&str; 7] = [
    "source",
    "kind",
    "value",
    "unit",
    "metrics",
    "metadata",
    "timestamp",
];

/// Latest accepted timestamp, 9999-12-31T23:59:59.999Z: beyond it RFC 3339
/// has no four-digit year to print it with.
const MAX_TIMESTAMP_MS: i64 = 253_402_300_799_999;

/// Whether a content type's essence (before any `;`, case-insensitive) is
/// [`ANALYTICS_TYPE`].
pub fn is_analytics(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .eq_ignore_ascii_case(ANALYTICS_TYPE)
}

/// Validates `payload` if `content_type` is [`ANALYTICS_TYPE`] and returns
/// the event's typed fields; `None` for any other content type. An invalid
/// event is [`VaultError::Invalid`] saying which field is wrong and why.
pub fn check(content_type: &str, payload: &[u8]) -> Result<Option<AnalyticsRow>> {
    if !is_analytics(content_type) {
        return Ok(None);
    }
    parse_event(payload)
        .map(Some)
        .map_err(|why| VaultError::Invalid(format!("analytics event: {why}")))
}

/// The error for an analytics payload too large to be held inline (it is
/// validated in memory, and stored with its record).
pub(crate) fn too_large(limit: usize) -> VaultError {
    VaultError::Invalid(format!("analytics events must be at most {limit} bytes"))
}

fn parse_event(payload: &[u8]) -> std::result::Result<AnalyticsRow, String> {
    let Strict(value) = serde_json::from_slice(payload).map_err(|e| match e.classify() {
        // Our own errors (duplicate keys): the message is the reason.
        Category::Data => e.to_string(),
        _ => format!("payload is not valid JSON ({e})"),
    })?;
    let Value::Object(obj) = value else {
        return Err("payload must be a JSON object".into());
    };
    if let Some(k) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(format!(
            "unknown field `{k}` (allowed: {})",
            FIELDS.join(", ")
        ));
    }
    let required = |name: &str| format!("missing field `{name}`");
    let source = text(&obj, "source", MAX_SOURCE)?.ok_or_else(|| required("source"))?;
    let kind = text(&obj, "kind", MAX_KIND)?.ok_or_else(|| required("kind"))?;
    let value = match present(&obj, "value") {
        None => None,
        Some(v) => Some(number(v).ok_or("field `value` must be a finite number")?),
    };
    let unit = text(&obj, "unit", MAX_UNIT)?;

    let mut metrics = Vec::new();
    if let Some(m) = entries(&obj, "metrics", "an object of numbers")? {
        for (name, v) in m {
            check_name("metrics", name)?;
            let n = number(v)
                .ok_or_else(|| format!("field `metrics`: {name:?} must be a finite number"))?;
            metrics.push((name.clone(), n));
        }
    }
    if let Some(m) = entries(&obj, "metadata", "an object of strings")? {
        for (name, v) in m {
            check_name("metadata", name)?;
            let Value::String(s) = v else {
                return Err(format!("field `metadata`: {name:?} must be a string"));
            };
            if s.len() > MAX_METADATA_VALUE {
                return Err(format!(
                    "field `metadata`: {name:?} is longer than {MAX_METADATA_VALUE} bytes"
                ));
            }
        }
    }

    let timestamp = match present(&obj, "timestamp") {
        None => return Err(required("timestamp")),
        Some(Value::String(s)) => {
            parse_timestamp(s).map_err(|why| format!("field `timestamp` {why}"))?
        }
        Some(_) => return Err("field `timestamp` must be a string".into()),
    };
    Ok(AnalyticsRow {
        source,
        kind,
        timestamp_ms: timestamp,
        value,
        unit,
        metrics,
    })
}

/// A member's value; `null` counts as absent.
fn present<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).filter(|v| !v.is_null())
}

fn number(v: &Value) -> Option<f64> {
    v.as_f64().filter(|n| n.is_finite())
}

/// An optional string member of 1 to `max` bytes without control
/// characters.
fn text(
    obj: &Map<String, Value>,
    name: &str,
    max: usize,
) -> std::result::Result<Option<String>, String> {
    let Some(v) = present(obj, name) else {
        return Ok(None);
    };
    let Value::String(s) = v else {
        return Err(format!("field `{name}` must be a string"));
    };
    if s.is_empty() || s.len() > max {
        return Err(format!("field `{name}` must be 1 to {max} bytes"));
    }
    if s.chars().any(char::is_control) {
        return Err(format!(
            "field `{name}` must not contain control characters"
        ));
    }
    Ok(Some(s.clone()))
}

/// An optional object member of at most [`MAX_ENTRIES`] entries.
fn entries<'a>(
    obj: &'a Map<String, Value>,
    name: &str,
    shape: &str,
) -> std::result::Result<Option<&'a Map<String, Value>>, String> {
    match present(obj, name) {
        None => Ok(None),
        Some(Value::Object(m)) if m.len() > MAX_ENTRIES => Err(format!(
            "field `{name}` has {} entries, at most {MAX_ENTRIES} allowed",
            m.len()
        )),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(format!("field `{name}` must be {shape}")),
    }
}

fn check_name(field: &str, name: &str) -> std::result::Result<(), String> {
    if name.is_empty()
        || name.len() > MAX_NAME
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._/-".contains(&b))
    {
        return Err(format!(
            "field `{field}`: name {name:?} must be 1 to {MAX_NAME} characters of [A-Za-z0-9._/-]"
        ));
    }
    Ok(())
}

/// Any JSON value, refusing an object that has a key twice (at any depth):
/// `serde_json::Value` would silently keep the last one, and an event whose
/// meaning depends on the reader's choice of duplicate is not evidence.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> std::result::Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number is not finite"))
    }

    fn visit_str<E>(self, v: &str) -> std::result::Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> std::result::Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Value, D::Error> {
        Strict::deserialize(d).map(|s| s.0)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            let Strict(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// Parses an event timestamp into milliseconds since the Unix epoch.
///
/// `YYYY-MM-DD`, then `T` (or `t`, or a space), then `hh:mm:ss` with
/// optional fractional seconds (1 to 9 digits; cut to milliseconds), then
/// the zone: `Z` (or `z`), ` UTC`, or an offset `±hh:mm`, `±hhmm` or
/// `±hh`, which is applied. Between 1970-01-01T00:00:00Z and
/// 9999-12-31T23:59:59.999Z. The error says what is wrong, to follow the
/// field name (`"is empty"`, `"has no time zone …"`).
pub fn parse_timestamp(s: &str) -> std::result::Result<i64, String> {
    if s.is_empty() {
        return Err("is empty".into());
    }
    let mut sc = Scanner {
        b: s.as_bytes(),
        i: 0,
    };
    let year = sc.digits(4, "year")?;
    sc.expect(b'-', "'-' after the year")?;
    let month = sc.digits(2, "month")?;
    sc.expect(b'-', "'-' after the month")?;
    let day = sc.digits(2, "day")?;
    match sc.next() {
        Some(b'T' | b't' | b' ') => {}
        None => return Err("has no time of day (e.g. 2026-11-23T10:00:00Z)".into()),
        Some(_) => return Err("must have 'T' or a space between date and time".into()),
    }
    let hour = sc.digits(2, "hour")?;
    sc.expect(b':', "':' after the hour")?;
    let minute = sc.digits(2, "minute")?;
    sc.expect(b':', "':' after the minute")?;
    let second = sc.digits(2, "second")?;
    let mut frac_ms = 0;
    if sc.peek() == Some(b'.') {
        sc.i += 1;
        let start = sc.i;
        while sc.peek().is_some_and(|c| c.is_ascii_digit()) {
            sc.i += 1;
        }
        let digits = &sc.b[start..sc.i];
        if digits.is_empty() || digits.len() > 9 {
            return Err("must have 1 to 9 digits of fractional seconds after '.'".into());
        }
        for k in 0..3 {
            frac_ms = frac_ms * 10 + digits.get(k).map_or(0, |d| i64::from(d - b'0'));
        }
    }
    let offset_min = zone(&sc.b[sc.i..])?;

    if !(1..=12).contains(&month) {
        return Err(format!("has month {month:02}, not 01 to 12"));
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err(format!(
            "has day {day:02}, which {year:04}-{month:02} does not have"
        ));
    }
    if hour > 23 {
        return Err(format!("has hour {hour:02}, not 00 to 23"));
    }
    if minute > 59 {
        return Err(format!("has minute {minute:02}, not 00 to 59"));
    }
    if second > 59 {
        return Err(format!(
            "has second {second:02}, not 00 to 59 (leap seconds are not accepted)"
        ));
    }
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        - offset_min * 60;
    let ms = secs * 1000 + frac_ms;
    if ms < 0 {
        return Err("is before 1970-01-01T00:00:00Z".into());
    }
    if ms > MAX_TIMESTAMP_MS {
        return Err("is after 9999-12-31T23:59:59.999Z".into());
    }
    Ok(ms)
}

/// The zone suffix's offset east of UTC, in minutes.
fn zone(rest: &[u8]) -> std::result::Result<i64, String> {
    let two = |a: u8, b: u8| -> Option<i64> {
        (a.is_ascii_digit() && b.is_ascii_digit()).then(|| i64::from((a - b'0') * 10 + (b - b'0')))
    };
    let bad_offset = || "has an offset that is not ±hh:mm, ±hhmm or ±hh".to_string();
    match rest {
        [] => Err("has no time zone (Z, ±hh:mm, ±hhmm, ±hh or \" UTC\")".into()),
        b"Z" | b"z" | b" UTC" => Ok(0),
        [sign @ (b'+' | b'-'), digits @ ..] => {
            let (h, m) = match *digits {
                [h1, h2] => (two(h1, h2), Some(0)),
                [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => (two(h1, h2), two(m1, m2)),
                _ => return Err(bad_offset()),
            };
            let (Some(h), Some(m)) = (h, m) else {
                return Err(bad_offset());
            };
            if h > 23 || m > 59 {
                return Err(format!(
                    "has offset {h:02}:{m:02}, hours must be 00 to 23 and minutes 00 to 59"
                ));
            }
            let off = h * 60 + m;
            Ok(if *sign == b'-' { -off } else { off })
        }
        _ => Err(
            "has unexpected text after the time (expected Z, ±hh:mm, ±hhmm, ±hh or \" UTC\")"
                .into(),
        ),
    }
}

/// A cursor over the bytes of a timestamp.
struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    /// Exactly `n` ASCII digits, as a number.
    fn digits(&mut self, n: usize, what: &str) -> std::result::Result<i64, String> {
        let Some(d) = self
            .b
            .get(self.i..self.i + n)
            .filter(|d| d.iter().all(u8::is_ascii_digit))
        else {
            return Err(format!("must have a {n}-digit {what} at byte {}", self.i));
        };
        self.i += n;
        Ok(d.iter().fold(0, |acc, &c| acc * 10 + i64::from(c - b'0')))
    }

    fn expect(&mut self, c: u8, what: &str) -> std::result::Result<(), String> {
        let at = self.i;
        if self.next() == Some(c) {
            Ok(())
        } else {
            Err(format!("must have {what} at byte {at}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-23T10:00:00Z.
    const T: i64 = 1_795_428_000_000;

    fn ok(s: &str) -> i64 {
        parse_timestamp(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn err(s: &str) -> String {
        match parse_timestamp(s) {
            Ok(ms) => panic!("{s:?} parsed as {ms}"),
            Err(e) => e,
        }
    }

    #[test]
    fn timestamp_forms() {
        assert_eq!(ok("1970-01-01T00:00:00Z"), 0);
        for s in [
            "2026-11-23T10:00:00Z",
            "2026-11-23t10:00:00z",
            "2026-11-23 10:00:00Z",
            "2026-11-23T10:00:00+00:00",
            "2026-11-23T10:00:00-00:00",
            "2026-11-23T10:00:00+0000",
            "2026-11-23T10:00:00+00",
            "2026-11-23T10:00:00 UTC",
            "2026-11-23 10:00:00 UTC",
            "2026-11-23T11:00:00+01:00",
            "2026-11-23T11:00:00+0100",
            "2026-11-23T11:00:00+01",
            "2026-11-23T04:30:00-05:30",
            "2026-11-23T04:30:00-0530",
            "2026-11-23T05:00:00-05",
            "2026-11-24T09:59:00+23:59",
        ] {
            assert_eq!(ok(s), T, "{s}");
        }
        assert_eq!(ok("2026-11-23T10:00:00.5Z"), T + 500);
        assert_eq!(ok("2026-11-23T10:00:00.12Z"), T + 120);
        assert_eq!(ok("2026-11-23T10:00:00.123Z"), T + 123);
        assert_eq!(ok("2026-11-23T10:00:00.123999999Z"), T + 123);
        assert_eq!(ok("2026-11-23T11:00:00.250+0100"), T + 250);
        assert_eq!(ok("2026-11-23 10:00:00.001 UTC"), T + 1);
        // Leap day, year ends, the last accepted instant.
        assert_eq!(ok("2024-02-29T00:00:00Z"), 1_709_164_800_000);
        assert_eq!(ok("2000-02-29T00:00:00Z"), 951_782_400_000);
        assert_eq!(ok("1999-12-31T23:59:59.999Z"), 946_684_799_999);
        assert_eq!(ok("9999-12-31T23:59:59.999Z"), MAX_TIMESTAMP_MS);
        // An offset can carry a date across the epoch or the year.
        assert_eq!(ok("1970-01-01T01:00:00+01:00"), 0);
        assert_eq!(ok("2026-12-31T23:00:00-01:00"), ok("2027-01-01T00:00:00Z"));
    }

    #[test]
    fn bad_timestamps_say_why() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("2026", "'-' after the year"),
            ("2026-11", "'-' after the month"),
            ("2026-11-23", "no time of day"),
            ("2026-11-23T", "2-digit hour"),
            ("2026-11-23T10", "':' after the hour"),
            ("2026-11-23T10:00", "':' after the minute"),
            ("2026-11-23T10:00:00", "no time zone"),
            ("26-11-23T10:00:00Z", "4-digit year"),
            ("2026-1-23T10:00:00Z", "2-digit month"),
            ("2026-11-3T10:00:00Z", "2-digit day"),
            ("+2026-11-23T10:00:00Z", "4-digit year"),
            (" 2026-11-23T10:00:00Z", "4-digit year"),
            ("2026-11-23X10:00:00Z", "'T' or a space"),
            ("2026-11-23T1:00:00Z", "2-digit hour"),
            ("2026-13-01T00:00:00Z", "month 13"),
            ("2026-00-01T00:00:00Z", "month 00"),
            ("2026-02-30T00:00:00Z", "day 30"),
            ("2025-02-29T00:00:00Z", "day 29"),
            ("1900-02-29T00:00:00Z", "day 29"),
            ("2026-04-31T00:00:00Z", "day 31"),
            ("2026-11-00T00:00:00Z", "day 00"),
            ("2026-11-23T24:00:00Z", "hour 24"),
            ("2026-11-23T10:60:00Z", "minute 60"),
            ("2026-11-23T10:00:60Z", "second 60"),
            ("2026-11-23T10:00:00.Z", "fractional"),
            ("2026-11-23T10:00:00.1234567891Z", "fractional"),
            ("2026-11-23T10:00:00+1:00", "offset"),
            ("2026-11-23T10:00:00+01:0", "offset"),
            ("2026-11-23T10:00:00+010", "offset"),
            ("2026-11-23T10:00:00+01:00:00", "offset"),
            ("2026-11-23T10:00:00+", "offset"),
            ("2026-11-23T10:00:00+ab", "offset"),
            ("2026-11-23T10:00:00+24:00", "offset 24:00"),
            ("2026-11-23T10:00:00+01:60", "offset 01:60"),
            ("2026-11-23T10:00:00Zjunk", "unexpected text"),
            ("2026-11-23T10:00:00 Z", "unexpected text"),
            ("2026-11-23T10:00:00UTC", "unexpected text"),
            ("2026-11-23T10:00:00 utc", "unexpected text"),
            ("2026-11-23T10:00:00 UTC ", "unexpected text"),
            ("2026-11-23T10:00:00Z ", "unexpected text"),
            ("１９７０-01-01T00:00:00Z", "4-digit year"),
            ("1969-12-31T23:59:59.999Z", "before 1970"),
            ("1970-01-01T00:30:00+01:00", "before 1970"),
            ("0000-01-01T00:00:00Z", "before 1970"),
            ("9999-12-31T23:59:59-01:00", "after 9999"),
        ];
        for (s, why) in cases {
            let e = err(s);
            assert!(e.contains(why), "{s:?}: {e:?} should mention {why:?}");
        }
    }

    fn event(json: &str) -> std::result::Result<AnalyticsRow, String> {
        match check(ANALYTICS_TYPE, json.as_bytes()) {
            Ok(Some(row)) => Ok(row),
            Ok(None) => Err("not checked".into()),
            Err(VaultError::Invalid(why)) => Err(why),
            Err(e) => Err(format!("unexpected error {e}")),
        }
    }

    #[test]
    fn content_type_decides() {
        assert!(is_analytics(ANALYTICS_TYPE));
        assert!(is_analytics(
            "Application/VND.evault.Analytics+JSON; charset=utf-8"
        ));
        assert!(!is_analytics("application/json"));
        assert!(!is_analytics("application/vnd.evault.analytics+json2"));
        assert_eq!(check("application/json", b"not json").ok(), Some(None));
    }

    #[test]
    fn a_full_event() {
        let row = event(
            r#"{"source": "ci/main", "kind": "build", "value": 12.5, "unit": "s",
                "metrics": {"cpu.user": 1, "mem_mb": 2.5e2, "neg": -3},
                "metadata": {"commit": "abc", "runner/os": "linux"},
                "timestamp": "2026-11-23T11:00:00+0100"}"#,
        )
        .unwrap();
        assert_eq!(
            row,
            AnalyticsRow {
                source: "ci/main".into(),
                kind: "build".into(),
                timestamp_ms: T,
                value: Some(12.5),
                unit: Some("s".into()),
                metrics: vec![
                    ("cpu.user".into(), 1.0),
                    ("mem_mb".into(), 250.0),
                    ("neg".into(), -3.0)
                ],
            }
        );
        let min =
            event(r#"{"source":"s","kind":"k","timestamp":"2026-11-23 10:00:00 UTC"}"#).unwrap();
        assert_eq!((min.value, &min.unit, min.metrics.len()), (None, &None, 0));
        // null is absent, for the optional fields.
        let nulls = event(
            r#"{"source":"s","kind":"k","value":null,"unit":null,"metrics":null,
                "metadata":null,"timestamp":"2026-11-23T10:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(nulls, min);
    }

    #[test]
    fn bad_events_name_the_field() {
        let base = r#""source":"s","kind":"k","timestamp":"2026-11-23T10:00:00Z""#;
        let long = |n: usize| "x".repeat(n);
        let many = |what: &str, n: usize| {
            (0..n)
                .map(|i| format!("\"m{i}\":{what}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let cases: Vec<(String, &str)> = vec![
            ("".into(), "not valid JSON"),
            ("{".into(), "not valid JSON"),
            ("[1]".into(), "must be a JSON object"),
            ("\"s\"".into(), "must be a JSON object"),
            (format!("{{{base}}} x"), "not valid JSON"),
            (format!("{{{base},\"extra\":1}}"), "unknown field `extra`"),
            (
                format!("{{{base},\"source\":\"t\"}}"),
                "duplicate key \"source\"",
            ),
            (
                format!("{{{base},\"metrics\":{{\"a\":1,\"a\":2}}}}"),
                "duplicate key \"a\"",
            ),
            (
                format!("{{{base},\"metadata\":{{\"a\":\"x\",\"a\":\"y\"}}}}"),
                "duplicate key \"a\"",
            ),
            (
                r#"{"kind":"k","timestamp":"2026-11-23T10:00:00Z"}"#.into(),
                "missing field `source`",
            ),
            (
                r#"{"source":"s","timestamp":"2026-11-23T10:00:00Z"}"#.into(),
                "missing field `kind`",
            ),
            (
                r#"{"source":"s","kind":"k"}"#.into(),
                "missing field `timestamp`",
            ),
            (
                r#"{"source":"s","kind":"k","timestamp":null}"#.into(),
                "missing field `timestamp`",
            ),
            (
                r#"{"source":1,"kind":"k","timestamp":"2026-11-23T10:00:00Z"}"#.into(),
                "field `source` must be a string",
            ),
            (
                r#"{"source":"","kind":"k","timestamp":"2026-11-23T10:00:00Z"}"#.into(),
                "field `source` must be 1 to 128 bytes",
            ),
            (
                format!(
                    r#"{{"source":"{}","kind":"k","timestamp":"2026-11-23T10:00:00Z"}}"#,
                    long(129)
                ),
                "field `source` must be 1 to 128 bytes",
            ),
            (
                format!(
                    r#"{{"source":"s","kind":"{}","timestamp":"2026-11-23T10:00:00Z"}}"#,
                    long(129)
                ),
                "field `kind` must be 1 to 128 bytes",
            ),
            (
                r#"{"source":"a\nb","kind":"k","timestamp":"2026-11-23T10:00:00Z"}"#.into(),
                "field `source` must not contain control characters",
            ),
            (
                r#"{"source":"s","kind":["k"],"timestamp":"2026-11-23T10:00:00Z"}"#.into(),
                "field `kind` must be a string",
            ),
            (format!("{{{base},\"value\":\"1\"}}"), "field `value`"),
            (format!("{{{base},\"value\":true}}"), "field `value`"),
            (format!("{{{base},\"value\":1e999}}"), "not valid JSON"),
            (
                format!("{{{base},\"unit\":\"{}\"}}", long(33)),
                "field `unit`",
            ),
            (format!("{{{base},\"unit\":\"\"}}"), "field `unit`"),
            (format!("{{{base},\"unit\":5}}"), "field `unit`"),
            (
                format!("{{{base},\"metrics\":[1]}}"),
                "field `metrics` must be",
            ),
            (
                format!("{{{base},\"metrics\":{{\"a\":\"1\"}}}}"),
                "field `metrics`: \"a\" must be a finite number",
            ),
            (
                format!("{{{base},\"metrics\":{{\"a\":null}}}}"),
                "field `metrics`: \"a\"",
            ),
            (
                format!("{{{base},\"metrics\":{{\"bad name\":1}}}}"),
                "field `metrics`: name \"bad name\"",
            ),
            (
                format!("{{{base},\"metrics\":{{\"\":1}}}}"),
                "field `metrics`: name \"\"",
            ),
            (
                format!("{{{base},\"metrics\":{{\"{}\":1}}}}", long(65)),
                "field `metrics`: name",
            ),
            (
                format!("{{{base},\"metrics\":{{{}}}}}", many("1", 65)),
                "field `metrics` has 65 entries",
            ),
            (
                format!("{{{base},\"metadata\":\"x\"}}"),
                "field `metadata` must be",
            ),
            (
                format!("{{{base},\"metadata\":{{\"a\":1}}}}"),
                "field `metadata`: \"a\" must be a string",
            ),
            (
                format!("{{{base},\"metadata\":{{\"a\":\"{}\"}}}}", long(1025)),
                "field `metadata`: \"a\" is longer than 1024 bytes",
            ),
            (
                format!("{{{base},\"metadata\":{{\"é\":\"x\"}}}}"),
                "field `metadata`: name",
            ),
            (
                format!("{{{base},\"metadata\":{{{}}}}}", many("\"v\"", 65)),
                "field `metadata` has 65 entries",
            ),
            (
                r#"{"source":"s","kind":"k","timestamp":1795428000}"#.into(),
                "field `timestamp` must be a string",
            ),
            (
                r#"{"source":"s","kind":"k","timestamp":"2026-02-30T10:00:00Z"}"#.into(),
                "field `timestamp` has day 30",
            ),
            (
                r#"{"source":"s","kind":"k","timestamp":"2026-11-23T10:00:00"}"#.into(),
                "field `timestamp` has no time zone",
            ),
        ];
        for (json, why) in &cases {
            let e = event(json).expect_err(json);
            assert!(e.starts_with("analytics event: "), "{e}");
            assert!(e.contains(why), "{json}: {e:?} should mention {why:?}");
        }
        // The limits themselves are fine.
        event(&format!(
            "{{{base},\"unit\":\"{}\",\"metrics\":{{{}}},\"metadata\":{{\"{}\":\"{}\"}}}}",
            long(32),
            many("1", 64),
            long(64),
            long(1024)
        ))
        .unwrap();
        event(&format!(
            r#"{{"source":"{}","kind":"{}","timestamp":"2026-11-23T10:00:00Z"}}"#,
            long(128),
            long(128)
        ))
        .unwrap();
    }
}
