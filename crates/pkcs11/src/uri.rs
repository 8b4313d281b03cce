//! PKCS#11 URIs (RFC 7512), the subset a signing key needs.
//!
//! ```text
//! pkcs11:token=evault;object=log-key?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/etc/evault/pin
//! ```
//!
//! Path attributes (separated by `;`): `token` (token label), `slot-id`,
//! `object` (key label), `id` (key ID bytes, percent-encoded), `type` (must
//! be `private` if given), and the token-identifying `manufacturer`,
//! `model`, `serial`. Query attributes (separated by `&`): `module-path`
//! (required: evault loads no module by guesswork), `pin-source` (a file
//! holding the user PIN, as a path or a `file:` URI) and `pin-value`.
//!
//! Values are percent-decoded. Attributes RFC 7512 defines but a signer
//! cannot use (`library-*`, `slot-description`, `slot-manufacturer`,
//! `module-name`) are refused rather than ignored, so that a URI never
//! selects less precisely than its author meant. Vendor attributes (`x-…`)
//! are ignored, as the RFC allows.

use core::fmt;

/// A parsed `pkcs11:` URI that selects one private key in one token.
#[derive(Clone, PartialEq, Eq)]
pub struct Pkcs11Uri {
    /// `token`: the token label.
    pub token: Option<String>,
    /// `manufacturer`: the token's manufacturer ID.
    pub manufacturer: Option<String>,
    /// `model`: the token's model.
    pub model: Option<String>,
    /// `serial`: the token's serial number.
    pub serial: Option<String>,
    /// `slot-id`: the slot number.
    pub slot_id: Option<u64>,
    /// `object`: the key's label (`CKA_LABEL`).
    pub object: Option<String>,
    /// `id`: the key's `CKA_ID` bytes.
    pub id: Option<Vec<u8>>,
    /// `module-path`: the PKCS#11 library to load.
    pub module_path: String,
    /// `pin-source`: a file holding the user PIN.
    pub pin_source: Option<String>,
    /// `pin-value`: the user PIN itself (discouraged: it ends up in
    /// configuration files and process listings).
    pub pin_value: Option<String>,
}

/// Why a `pkcs11:` URI was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UriError {
    /// The text does not start with `pkcs11:`.
    NotPkcs11,
    /// An attribute is not `name=value`.
    MalformedAttribute(String),
    /// A `%` is not followed by two hexadecimal digits, or a value that must
    /// be text is not UTF-8.
    BadPercentEncoding(String),
    /// An attribute appears twice.
    Duplicate(String),
    /// An attribute this signer does not support.
    Unsupported(String),
    /// `type` is given and is not `private`.
    NotAPrivateKey(String),
    /// `slot-id` is not a decimal number.
    BadSlotId(String),
    /// No `module-path`.
    MissingModulePath,
    /// Neither `object` nor `id`: the key would be chosen by guesswork.
    MissingKeySelector,
    /// Neither `token`, `serial` nor `slot-id`: the token would be chosen
    /// by guesswork.
    MissingTokenSelector,
    /// Both `pin-source` and `pin-value`.
    TwoPins,
}

impl fmt::Display for UriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UriError::NotPkcs11 => f.write_str("not a PKCS#11 URI: it must start with \"pkcs11:\""),
            UriError::MalformedAttribute(a) => {
                write!(f, "PKCS#11 URI: attribute {a:?} is not name=value")
            }
            UriError::BadPercentEncoding(a) => {
                write!(f, "PKCS#11 URI: bad percent-encoding in {a:?}")
            }
            UriError::Duplicate(a) => write!(f, "PKCS#11 URI: attribute {a:?} appears twice"),
            UriError::Unsupported(a) => write!(
                f,
                "PKCS#11 URI: attribute {a:?} is not supported for a signing key \
                 (use token, serial, slot-id, object, id, module-path, pin-source)"
            ),
            UriError::NotAPrivateKey(t) => {
                write!(f, "PKCS#11 URI: type={t} does not name a private key")
            }
            UriError::BadSlotId(v) => write!(f, "PKCS#11 URI: slot-id {v:?} is not a number"),
            UriError::MissingModulePath => {
                f.write_str("PKCS#11 URI: module-path (the PKCS#11 library to load) is required")
            }
            UriError::MissingKeySelector => {
                f.write_str("PKCS#11 URI: name the key with object=<label> or id=<bytes>")
            }
            UriError::MissingTokenSelector => {
                f.write_str("PKCS#11 URI: name the token with token=<label>, serial= or slot-id=")
            }
            UriError::TwoPins => f.write_str("PKCS#11 URI: give pin-source or pin-value, not both"),
        }
    }
}

impl std::error::Error for UriError {}

impl Pkcs11Uri {
    /// Parses a `pkcs11:` URI; see the module documentation for what is
    /// accepted.
    pub fn parse(text: &str) -> Result<Self, UriError> {
        let rest = text.strip_prefix("pkcs11:").ok_or(UriError::NotPkcs11)?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut uri = Pkcs11Uri {
            token: None,
            manufacturer: None,
            model: None,
            serial: None,
            slot_id: None,
            object: None,
            id: None,
            module_path: String::new(),
            pin_source: None,
            pin_value: None,
        };
        let mut module_path = None;
        for attr in path.split(';').filter(|a| !a.is_empty()) {
            let (name, raw) = attr
                .split_once('=')
                .ok_or_else(|| UriError::MalformedAttribute(attr.to_owned()))?;
            match name {
                "token" => set_text(&mut uri.token, name, raw)?,
                "manufacturer" => set_text(&mut uri.manufacturer, name, raw)?,
                "model" => set_text(&mut uri.model, name, raw)?,
                "serial" => set_text(&mut uri.serial, name, raw)?,
                "object" => set_text(&mut uri.object, name, raw)?,
                "id" => {
                    if uri.id.is_some() {
                        return Err(UriError::Duplicate(name.to_owned()));
                    }
                    uri.id = Some(
                        percent_decode(raw)
                            .ok_or_else(|| UriError::BadPercentEncoding(attr.to_owned()))?,
                    );
                }
                "slot-id" => {
                    if uri.slot_id.is_some() {
                        return Err(UriError::Duplicate(name.to_owned()));
                    }
                    let v = decode_text(name, raw)?;
                    let n = (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                        .then(|| v.parse::<u64>().ok())
                        .flatten()
                        .ok_or(UriError::BadSlotId(v))?;
                    uri.slot_id = Some(n);
                }
                "type" => {
                    let v = decode_text(name, raw)?;
                    if v != "private" {
                        return Err(UriError::NotAPrivateKey(v));
                    }
                }
                n if n.starts_with("x-") => {}
                _ => return Err(UriError::Unsupported(name.to_owned())),
            }
        }
        // The query may hold a PIN, and a PIN with an unescaped '&' spills
        // into what looks like further attributes: errors here never echo
        // the text.
        for (n, attr) in query.split('&').filter(|a| !a.is_empty()).enumerate() {
            let (name, raw) = attr.split_once('=').ok_or_else(|| {
                UriError::MalformedAttribute(format!("query attribute {}", n + 1))
            })?;
            match name {
                "module-path" => set_text(&mut module_path, name, raw)?,
                "pin-source" => set_text(&mut uri.pin_source, name, raw)?,
                "pin-value" => {
                    if uri.pin_value.is_some() {
                        return Err(UriError::Duplicate(name.to_owned()));
                    }
                    uri.pin_value = Some(decode_text(name, raw).map_err(|_| {
                        UriError::BadPercentEncoding("pin-value=<redacted>".into())
                    })?);
                }
                n if n.starts_with("x-") => {}
                "module-name" => return Err(UriError::Unsupported(name.to_owned())),
                _ => {
                    return Err(UriError::Unsupported(format!("query attribute {}", n + 1)));
                }
            }
        }
        uri.module_path = module_path
            .filter(|p| !p.is_empty())
            .ok_or(UriError::MissingModulePath)?;
        if uri.object.is_none() && uri.id.is_none() {
            return Err(UriError::MissingKeySelector);
        }
        if uri.token.is_none() && uri.serial.is_none() && uri.slot_id.is_none() {
            return Err(UriError::MissingTokenSelector);
        }
        if uri.pin_source.is_some() && uri.pin_value.is_some() {
            return Err(UriError::TwoPins);
        }
        if let Some(src) = &mut uri.pin_source {
            if let Some(path) = src.strip_prefix("file://") {
                *src = path.to_owned();
            } else if let Some(path) = src.strip_prefix("file:") {
                *src = path.to_owned();
            }
        }
        Ok(uri)
    }

    /// Describes the key without any PIN, for logs and error messages.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(t) = &self.token {
            parts.push(format!("token {t:?}"));
        }
        if let Some(s) = &self.serial {
            parts.push(format!("serial {s:?}"));
        }
        if let Some(s) = self.slot_id {
            parts.push(format!("slot {s}"));
        }
        if let Some(o) = &self.object {
            parts.push(format!("key {o:?}"));
        }
        if let Some(id) = &self.id {
            let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
            parts.push(format!("key id {hex}"));
        }
        parts.join(", ")
    }
}

impl fmt::Debug for Pkcs11Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Uri")
            .field("key", &self.describe())
            .field("module_path", &self.module_path)
            .field("pin_source", &self.pin_source)
            .field("pin_value", &self.pin_value.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

fn set_text(slot: &mut Option<String>, name: &str, raw: &str) -> Result<(), UriError> {
    if slot.is_some() {
        return Err(UriError::Duplicate(name.to_owned()));
    }
    *slot = Some(decode_text(name, raw)?);
    Ok(())
}

fn decode_text(name: &str, raw: &str) -> Result<String, UriError> {
    percent_decode(raw)
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| UriError::BadPercentEncoding(format!("{name}={raw}")))
}

/// Decodes `%XX` escapes; every other byte stands for itself.
fn percent_decode(raw: &str) -> Option<Vec<u8>> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = core::str::from_utf8(hex).ok()?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIB: &str = "module-path=/usr/lib/softhsm/libsofthsm2.so";

    #[test]
    fn parses_the_rfc_attributes() {
        let u = Pkcs11Uri::parse(&format!(
            "pkcs11:token=The%20Token;object=log%2Dkey;id=%01%02%ff;type=private;x-vendor=1?{LIB}&pin-source=file:///etc/pin&x-q=2"
        ))
        .unwrap();
        assert_eq!(u.token.as_deref(), Some("The Token"));
        assert_eq!(u.object.as_deref(), Some("log-key"));
        assert_eq!(u.id.as_deref(), Some(&[1u8, 2, 0xff][..]));
        assert_eq!(u.module_path, "/usr/lib/softhsm/libsofthsm2.so");
        assert_eq!(u.pin_source.as_deref(), Some("/etc/pin"));
        assert_eq!(
            u.describe(),
            "token \"The Token\", key \"log-key\", key id 0102ff"
        );

        let u = Pkcs11Uri::parse(&format!(
            "pkcs11:slot-id=7;serial=abc;id=%10?{LIB}&pin-value=1234"
        ))
        .unwrap();
        assert_eq!(u.slot_id, Some(7));
        assert_eq!(u.serial.as_deref(), Some("abc"));
        assert_eq!(u.pin_value.as_deref(), Some("1234"));
        assert!(
            !format!("{u:?}").contains("1234"),
            "the PIN is never printed"
        );

        let u = Pkcs11Uri::parse(&format!(
            "pkcs11:token=t;object=k?{LIB}&pin-source=/run/pin"
        ))
        .unwrap();
        assert_eq!(u.pin_source.as_deref(), Some("/run/pin"));
        let u = Pkcs11Uri::parse(&format!(
            "pkcs11:token=t;object=k?{LIB}&pin-source=file:/run/p"
        ))
        .unwrap();
        assert_eq!(u.pin_source.as_deref(), Some("/run/p"));
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        let cases: &[(&str, UriError)] = &[
            ("token=t;object=k", UriError::NotPkcs11),
            ("pkcs11:token=t;object=k", UriError::MissingModulePath),
            (
                "pkcs11:token=t?module-path=/x",
                UriError::MissingKeySelector,
            ),
            (
                "pkcs11:object=k?module-path=/x",
                UriError::MissingTokenSelector,
            ),
            (
                "pkcs11:token=t;object=k;token=u?module-path=/x",
                UriError::Duplicate("token".into()),
            ),
            (
                "pkcs11:token=t;object=k;id=%1?module-path=/x",
                UriError::BadPercentEncoding("id=%1".into()),
            ),
            (
                "pkcs11:token=t;object=%ff?module-path=/x",
                UriError::BadPercentEncoding("object=%ff".into()),
            ),
            (
                "pkcs11:token=t;object=k;type=public?module-path=/x",
                UriError::NotAPrivateKey("public".into()),
            ),
            (
                "pkcs11:token=t;object=k;library-version=3?module-path=/x",
                UriError::Unsupported("library-version".into()),
            ),
            (
                "pkcs11:token=t;object=k?module-name=softhsm2",
                UriError::Unsupported("module-name".into()),
            ),
            (
                "pkcs11:token=t;object?module-path=/x",
                UriError::MalformedAttribute("object".into()),
            ),
            (
                "pkcs11:slot-id=x1;object=k?module-path=/x",
                UriError::BadSlotId("x1".into()),
            ),
            (
                "pkcs11:slot-id=99999999999999999999;object=k?module-path=/x",
                UriError::BadSlotId("99999999999999999999".into()),
            ),
            (
                "pkcs11:token=t;object=k?module-path=/x&pin-value=1&pin-source=/p",
                UriError::TwoPins,
            ),
            (
                "pkcs11:token=t;object=k?module-path=/x&pin-value=12%3",
                UriError::BadPercentEncoding("pin-value=<redacted>".into()),
            ),
            (
                "pkcs11:token=t;object=k?module-path=/x&pin-value=12&secret34",
                UriError::MalformedAttribute("query attribute 3".into()),
            ),
            (
                "pkcs11:token=t;object=k?module-path=/x&pin-value=12&se=cret",
                UriError::Unsupported("query attribute 3".into()),
            ),
            (
                "pkcs11:token=t;object=k?module-path=",
                UriError::MissingModulePath,
            ),
        ];
        for (text, want) in cases {
            let got = Pkcs11Uri::parse(text).unwrap_err();
            assert_eq!(&got, want, "{text}");
            assert!(!got.to_string().is_empty());
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%41%4a%4A").unwrap(), b"aAJJ");
        assert_eq!(percent_decode("%").as_deref(), None);
        assert_eq!(percent_decode("%g0").as_deref(), None);
        assert_eq!(percent_decode("%é0").as_deref(), None);
        assert_eq!(percent_decode("").unwrap(), b"");
    }
}

#[cfg(test)]
mod hostile {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn any_text_parses_or_is_refused(text in "pkcs11:[a-z%0-9=;?&/._-]{0,80}") {
            if let Ok(u) = Pkcs11Uri::parse(&text) {
                prop_assert!(!u.module_path.is_empty());
                prop_assert!(u.object.is_some() || u.id.is_some());
            }
        }

        #[test]
        fn any_bytes_as_text(text in any::<String>()) {
            let _ = Pkcs11Uri::parse(&text);
            let _ = percent_decode(&text);
        }
    }
}
