//! Fuzzes Sigstore bundle verification on ingest (`evault_sigstore::verify`)
//! against the production trusted root committed under testdata: hostile
//! bundle bytes must give an outcome or an error, never a panic, and a
//! bundle that is not verified must carry no identity (a failed bundle's
//! certificate claims are not labels). The first byte picks the declared
//! bundle version and whether a caller's artifact digest is given.

#![no_main]

use std::sync::OnceLock;

use evault_sigstore::{Status, TrustRoots, verify};
use libfuzzer_sys::fuzz_target;

const TYPES: [&str; 4] = [
    "application/vnd.dev.sigstore.bundle.v0.3+json",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
];

fn roots() -> &'static TrustRoots {
    static R: OnceLock<TrustRoots> = OnceLock::new();
    R.get_or_init(|| {
        let json = include_str!("../../testdata/sigstore/trusted_root.json");
        TrustRoots::from_json([("public-good", json)]).expect("the committed root parses")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((first, bundle)) = data.split_first() else {
        return;
    };
    let content_type = TYPES[usize::from(first & 3)];
    let digest = (first & 4 != 0).then_some([0x5a; 32]);
    let Ok(outcome) = verify(content_type, bundle, digest, roots()) else {
        return;
    };
    let labels = outcome.labels(256);
    if outcome.status != Status::Verified {
        assert!(
            !labels.keys().any(|k| k.contains(".san") || k.contains(".issuer")),
            "an unverified bundle was given identity labels: {labels:?}"
        );
    }
    for (k, v) in &labels {
        assert!(k.starts_with("evault.sigstore."), "{k}");
        assert!(v.len() <= 256 * 4, "{k} is {} bytes", v.len());
    }
});
