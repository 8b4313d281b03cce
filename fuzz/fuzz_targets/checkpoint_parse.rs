//! Fuzzes checkpoint parsing: arbitrary bytes must never make it panic, and
//! every accepted checkpoint must round-trip through `to_text`.

#![no_main]

use evault_note::Checkpoint;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(checkpoint) = Checkpoint::parse(text) else {
        return;
    };
    checkpoint.validate().expect("a parsed checkpoint is valid");
    let encoded = checkpoint.to_text();
    let reparsed = Checkpoint::parse(&encoded).expect("to_text output re-parses");
    assert_eq!(reparsed, checkpoint);
    // Only the canonical encoding is accepted, so the text is reproduced
    // exactly.
    assert_eq!(encoded, text);
});
