//! Fuzzes the release inventories a backfill reads
//! (`evault_vault::backfill::parse_inventory`), CSV and JSON: hostile bytes
//! must give an item list or an error, never a panic, and every item
//! accepted must hold what the parser promises (a version, a date, an
//! artifact by path or digest, only relative paths that do not climb).
//! The first byte picks the format.

#![no_main]

use evault_vault::backfill::{InventoryFormat, MAX_ITEMS, parse_inventory};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((first, body)) = data.split_first() else {
        return;
    };
    let format = if first & 1 == 0 {
        InventoryFormat::Csv
    } else {
        InventoryFormat::Json
    };
    let Ok(items) = parse_inventory(body, format) else {
        return;
    };
    assert!(items.len() <= MAX_ITEMS);
    for item in &items {
        assert!(!item.version.is_empty());
        assert!(!item.release_date.is_empty());
        assert!(item.path.is_some() || item.sha256.is_some());
        if let Some(sha) = &item.sha256 {
            assert_eq!(sha.len(), 64);
            assert!(sha.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        }
        for path in [&item.path, &item.bundle].into_iter().flatten() {
            assert!(!path.starts_with('/'), "absolute path accepted: {path}");
            assert!(
                !path.split('/').any(|c| c == ".."),
                "climbing path accepted: {path}"
            );
        }
    }
});
