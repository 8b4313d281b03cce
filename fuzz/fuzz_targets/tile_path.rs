//! Tile paths and entry bundles from the network: parse without panicking;
//! whatever parses must re-encode to the same canonical text.
#![no_main]

use evault_merkle::tiles::{
    TilePath, encode_entry_bundle, entries_path, parse_entry_bundle, parse_tile_path,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        match parse_tile_path(s) {
            Ok(TilePath::Hashes(t)) => assert_eq!(t.path(), s),
            Ok(TilePath::Entries { index, width }) => assert_eq!(entries_path(index, width), s),
            Err(_) => {}
        }
    }
    if let Ok(entries) = parse_entry_bundle(data) {
        assert_eq!(encode_entry_bundle(&entries).expect("entries fit"), data);
    }
});
