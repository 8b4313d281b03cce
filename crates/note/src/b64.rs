//! The one base64 encoding used by every format in this crate.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Encodes `bytes` with the standard RFC 4648 (section 4) alphabet, with
/// padding.
pub(crate) fn encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Decodes standard RFC 4648 (section 4) base64.
///
/// Decoding is canonical: padding is required, characters outside the
/// alphabet (including spaces and newlines) are rejected, and so are
/// non-zero pad bits (RFC 4648 section 3.5 allows decoders to reject them).
/// Every accepted string is therefore the encoding [`encode`] produces for
/// the decoded bytes.
pub(crate) fn decode(text: &str) -> Option<Vec<u8>> {
    STANDARD.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_canonical_decoding() {
        assert_eq!(encode(&[0xff, 0xee, 0x01]), "/+4B");
        assert_eq!(decode("/+4B"), Some(vec![0xff, 0xee, 0x01]));
        assert_eq!(decode("AQ=="), Some(vec![1]));
        // Missing padding, non-zero pad bits, URL alphabet, whitespace.
        assert_eq!(decode("AQ"), None);
        assert_eq!(decode("AR=="), None);
        assert_eq!(decode("_-4B"), None);
        assert_eq!(decode("AQ== "), None);
        assert_eq!(decode(""), Some(vec![]));
    }
}
