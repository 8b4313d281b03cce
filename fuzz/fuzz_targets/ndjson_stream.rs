//! Fuzzes the NDJSON stream's line handling: for any body, cutting it into
//! chunks anywhere (inside a line ending or a UTF-8 character included)
//! gives exactly the same lines, records and rejections as one chunk, and
//! nothing panics.

#![no_main]

use evault_server::parse_ndjson;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // First byte: the line limit (small, to reach the too-long path);
    // next 4: cut positions; the rest: the body.
    let Some((&limit, rest)) = data.split_first() else {
        return;
    };
    if rest.len() < 4 {
        return;
    }
    let (cut_bytes, body) = rest.split_at(4);
    let max_line = usize::from(limit) * 4 + 1;
    let whole = parse_ndjson(body, &[], max_line);
    let cuts: Vec<usize> = cut_bytes
        .iter()
        .map(|&b| usize::from(b) % (body.len() + 1))
        .collect();
    assert_eq!(parse_ndjson(body, &cuts, max_line), whole);
    let every: Vec<usize> = (0..=body.len()).collect();
    assert_eq!(parse_ndjson(body, &every, max_line), whole);
    // Line numbers only grow.
    assert!(whole.windows(2).all(|w| w[0].0 < w[1].0));
});
