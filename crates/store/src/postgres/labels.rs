//! Labels in `jsonb`, which cannot hold U+0000 (the store keeps any
//! labels it is given; the vault itself refuses control characters).
//!
//! Each key and value goes in with U+0000 written as `ESC 0` and `ESC`
//! itself as `ESC ESC` (`ESC` is U+10FFFF, a noncharacter). The mapping
//! is injective and applied alike to what is stored and to what a query
//! compares it with, so equality, containment and the label index stay
//! exact; a string with neither character is unchanged.

use std::borrow::Cow;
use std::collections::BTreeMap;

const ESC: char = '\u{10FFFF}';

/// `s` as stored.
pub(super) fn encode(s: &str) -> Cow<'_, str> {
    if !s.contains(['\0', ESC]) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\0' => {
                out.push(ESC);
                out.push('0');
            }
            ESC => {
                out.push(ESC);
                out.push(ESC);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A stored string back as given; `Err` if it is not an encoding.
pub(super) fn decode(s: String) -> Result<String, String> {
    if !s.contains(ESC) {
        return Ok(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != ESC {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('0') => out.push('\0'),
            Some(ESC) => out.push(ESC),
            _ => return Err(format!("label {s:?} has a stray escape")),
        }
    }
    Ok(out)
}

/// `labels` as stored.
pub(super) fn encode_map(labels: &BTreeMap<String, String>) -> Cow<'_, BTreeMap<String, String>> {
    if labels
        .iter()
        .all(|(k, v)| !k.contains(['\0', ESC]) && !v.contains(['\0', ESC]))
    {
        return Cow::Borrowed(labels);
    }
    Cow::Owned(
        labels
            .iter()
            .map(|(k, v)| (encode(k).into_owned(), encode(v).into_owned()))
            .collect(),
    )
}

/// Stored labels back as given.
pub(super) fn decode_map(
    labels: BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, String> {
    labels
        .into_iter()
        .map(|(k, v)| Ok((decode(k)?, decode(v)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_stays_injective() {
        let cases = [
            "",
            "plain",
            "\0",
            "a\0b",
            "\u{10FFFF}",
            "\u{10FFFF}0",
            "\0\u{10FFFF}\0",
        ];
        let mut seen = std::collections::HashSet::new();
        for s in cases {
            let e = encode(s).into_owned();
            assert!(!e.contains('\0'), "{s:?}");
            assert!(seen.insert(e.clone()), "{s:?} collides");
            assert_eq!(decode(e).unwrap(), s);
        }
        assert!(matches!(encode("plain"), Cow::Borrowed(_)));
        assert!(decode("x\u{10FFFF}".into()).is_err());
        assert!(decode("\u{10FFFF}a".into()).is_err());
    }
}
