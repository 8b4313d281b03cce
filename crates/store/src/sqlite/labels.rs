//! A record's labels as stored in `records.labels`: a JSON object of
//! strings (RFC 8259), keys in `BTreeMap` order, so the column is readable
//! with any SQLite client (`json_each(labels)`). serde_json does the JSON;
//! this module only insists on an object of strings with no repeated key.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};

/// Writes `labels` as a JSON object into `out` (replacing its contents).
pub(crate) fn encode(labels: &BTreeMap<String, String>, out: &mut String) -> Result<(), String> {
    *out = serde_json::to_string(labels).map_err(|e| format!("encoding labels: {e}"))?;
    Ok(())
}

/// Parses a JSON object of strings; anything else, including a repeated
/// key, is an error naming what is wrong.
pub(crate) fn decode(text: &str) -> Result<BTreeMap<String, String>, String> {
    serde_json::from_str::<Labels>(text)
        .map(|l| l.0)
        .map_err(|e| format!("labels are not a JSON object of strings: {e}"))
}

struct Labels(BTreeMap<String, String>);

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Strict;
        impl<'de> Visitor<'de> for Strict {
            type Value = Labels;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of string values without repeated keys")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Labels, A::Error> {
                let mut out = BTreeMap::new();
                while let Some((k, v)) = map.next_entry::<String, String>()? {
                    if out.contains_key(&k) {
                        return Err(serde::de::Error::custom(format!("repeated key {k:?}")));
                    }
                    out.insert(k, v);
                }
                Ok(Labels(out))
            }
        }
        d.deserialize_map(Strict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn round_trips_awkward_strings() {
        let cases = [
            map(&[]),
            map(&[("case", "C-1"), ("source", "scanner")]),
            map(&[
                ("q\"uote", "back\\slash"),
                ("ctl", "\u{0}\u{1}\u{8}\u{c}\n\r\t\u{1f}"),
                ("unicode", "é ✓ 𝄞 😀"),
                ("", ""),
                ("slash/", "</script>"),
            ]),
        ];
        let mut buf = String::new();
        for labels in cases {
            encode(&labels, &mut buf).unwrap();
            assert_eq!(decode(&buf).unwrap(), labels, "{buf}");
        }
        encode(&map(&[("a", "b"), ("c", "d\"")]), &mut buf).unwrap();
        assert_eq!(buf, r#"{"a":"b","c":"d\""}"#);
    }

    #[test]
    fn accepts_standard_json_forms() {
        let got = decode(" { \"a\" : \"\\u00e9\\ud834\\udd1e\\/\" , \"b\":\"\"}\n").unwrap();
        assert_eq!(got, map(&[("a", "é𝄞/"), ("b", "")]));
        assert_eq!(decode("{}").unwrap(), map(&[]));
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "",
            "[]",
            "{",
            "{\"a\"}",
            "{\"a\":1}",
            "{\"a\":\"b\",}",
            "{\"a\":\"b\"} x",
            "{\"a\":\"b\",\"a\":\"c\"}",
            "{\"a\":\"\\x\"}",
            "{\"a\":\"\\ud834\"}",
            "{\"a\":\"\\udd1e\"}",
            "{\"a\":\"\\u12\"}",
            "{\"a\":\"\\u+123\"}",
            "{\"a\":\"\n\"}",
            "{\"a\":\"b",
            "{\"a\":\"b\\",
        ] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
    }
}
