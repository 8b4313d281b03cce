//! A record's labels as stored in `records.labels`: a JSON object of
//! strings (RFC 8259), keys in `BTreeMap` order, so the column is readable
//! with any SQLite client (`json_each(labels)`).
//!
//! The decoder accepts any such object (whitespace, every escape, surrogate
//! pairs) and rejects everything else, without panicking.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Writes `labels` as a JSON object into `out` (cleared first).
pub(crate) fn encode(labels: &BTreeMap<String, String>, out: &mut String) {
    out.clear();
    out.push('{');
    for (i, (key, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        encode_string(key, out);
        out.push(':');
        encode_string(value, out);
    }
    out.push('}');
}

fn encode_string(s: &str, out: &mut String) {
    out.push('"');
    let mut plain_from = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        // `i` is at an ASCII byte, so a char boundary.
        out.push_str(&s[plain_from..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        plain_from = i + 1;
    }
    out.push_str(&s[plain_from..]);
    out.push('"');
}

/// Parses a JSON object of strings. Duplicate keys are an error.
pub(crate) fn decode(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut p = Parser { s: text, i: 0 };
    let mut labels = BTreeMap::new();
    p.ws();
    p.expect(b'{')?;
    p.ws();
    if p.peek() == Some(b'}') {
        p.i += 1;
    } else {
        loop {
            p.ws();
            let key = p.string()?;
            p.ws();
            p.expect(b':')?;
            p.ws();
            let value = p.string()?;
            if labels.insert(key, value).is_some() {
                return Err("duplicate label key".into());
            }
            p.ws();
            match p.next() {
                Some(b',') => continue,
                Some(b'}') => break,
                _ => return Err(p.error("expected ',' or '}'")),
            }
        }
    }
    p.ws();
    if p.i != text.len() {
        return Err(p.error("trailing data"));
    }
    Ok(labels)
}

struct Parser<'a> {
    s: &'a str,
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.i += 1;
        Some(b)
    }

    fn error(&self, what: &str) -> String {
        format!("labels JSON: {what} at byte {}", self.i)
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn expect(&mut self, want: u8) -> Result<(), String> {
        if self.next() == Some(want) {
            Ok(())
        } else {
            Err(self.error(&format!("expected '{}'", want as char)))
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self
            .s
            .get(self.i..self.i + 4)
            .ok_or_else(|| self.error("truncated \\u escape"))?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(self.error("bad \\u escape"));
        }
        let v = u32::from_str_radix(digits, 16).map_err(|_| self.error("bad \\u escape"))?;
        self.i += 4;
        Ok(v)
    }

    fn string(&mut self) -> Result<String, String> {
        self.expect(b'"')?;
        let mut out = String::new();
        let mut plain_from = self.i;
        loop {
            let at = self.i;
            let b = self
                .next()
                .ok_or_else(|| self.error("unterminated string"))?;
            match b {
                b'"' => {
                    out.push_str(&self.s[plain_from..at]);
                    return Ok(out);
                }
                b'\\' => {
                    out.push_str(&self.s[plain_from..at]);
                    let c = match self.next() {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            let hi = self.hex4()?;
                            let code = if (0xd800..0xdc00).contains(&hi) {
                                if self.next() != Some(b'\\') || self.next() != Some(b'u') {
                                    return Err(self.error("lone surrogate"));
                                }
                                let lo = self.hex4()?;
                                if !(0xdc00..0xe000).contains(&lo) {
                                    return Err(self.error("bad surrogate pair"));
                                }
                                0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00)
                            } else {
                                hi
                            };
                            char::from_u32(code).ok_or_else(|| self.error("lone surrogate"))?
                        }
                        _ => return Err(self.error("bad escape")),
                    };
                    out.push(c);
                    plain_from = self.i;
                }
                0x00..=0x1f => return Err(self.error("control character in string")),
                _ => {}
            }
        }
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
            encode(&labels, &mut buf);
            assert_eq!(decode(&buf).unwrap(), labels, "{buf}");
        }
        encode(&map(&[("a", "b"), ("c", "d\"")]), &mut buf);
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
