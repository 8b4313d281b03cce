//! Fuzzes the audit event leaf parser: arbitrary bytes are refused or
//! parsed, never a panic; what parses re-encodes to a leaf that parses back
//! to the same event (the canonical form is a fixed point).

#![no_main]

use evault_verify::audit::AuditEvent;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = AuditEvent::from_leaf_data(data, 7) {
        let canonical = event.leaf_data();
        let again = AuditEvent::from_leaf_data(&canonical, 7).expect("canonical leaf parses");
        assert_eq!(again, event);
        assert_eq!(again.leaf_data(), canonical);
    }
});
