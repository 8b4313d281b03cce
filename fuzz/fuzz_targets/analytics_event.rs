//! Fuzzes the analytics event validator and its timestamp parser: any
//! payload is accepted or refused with a reason, never a panic; what is
//! accepted has a finite value and metrics, and a timestamp in range.

#![no_main]

use evault_vault::analytics::{ANALYTICS_TYPE, check, parse_timestamp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(row)) = check(ANALYTICS_TYPE, data) {
        assert!(row.value.is_none_or(f64::is_finite));
        assert!(row.metrics.iter().all(|(_, v)| v.is_finite()));
        assert!(!row.source.is_empty() && !row.kind.is_empty());
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_timestamp(text);
    }
});
