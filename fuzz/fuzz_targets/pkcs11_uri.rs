//! Fuzzes the RFC 7512 PKCS#11 URI parser the signer is configured with:
//! arbitrary text must never make it panic, and the description of what it
//! accepts never depends on the PIN.

#![no_main]

use evault_pkcs11::Pkcs11Uri;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(uri) = Pkcs11Uri::parse(text) {
        // What is shown of it (in logs and errors) never depends on the PIN.
        let mut without = uri.clone();
        without.pin_value = None;
        without.pin_source = None;
        assert_eq!(uri.describe(), without.describe());
    }
});
