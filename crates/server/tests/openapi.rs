//! The OpenAPI document is generated from the code; this pins it to the
//! committed `openapi.snapshot.json`. After an intended API change:
//! `UPDATE_SNAPSHOTS=1 cargo test -p evault-server --test openapi`.

mod common;

use std::path::Path;

use serde_json::Value;

fn generated() -> String {
    let mut doc = evault_server::openapi()
        .to_pretty_json()
        .expect("document serialises");
    doc.push('\n');
    doc
}

#[test]
fn openapi_document_matches_the_snapshot() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.snapshot.json");
    let doc = generated();
    if std::env::var("UPDATE_SNAPSHOTS").as_deref() == Ok("1") {
        std::fs::write(&path, &doc).expect("writing the snapshot");
        eprintln!("updated {}", path.display());
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}); create it with \
             `UPDATE_SNAPSHOTS=1 cargo test -p evault-server --test openapi`",
            path.display()
        )
    });
    if committed == doc {
        return;
    }
    let (old, new): (Vec<&str>, Vec<&str>) = (committed.lines().collect(), doc.lines().collect());
    let at = old
        .iter()
        .zip(&new)
        .position(|(a, b)| a != b)
        .unwrap_or(old.len().min(new.len()));
    let show = |lines: &[&str]| -> String {
        lines
            .iter()
            .skip(at.saturating_sub(3))
            .take(8)
            .map(|l| format!("    {l}\n"))
            .collect()
    };
    panic!(
        "the OpenAPI document generated from the code differs from the committed \
         crates/server/openapi.snapshot.json, first at line {}.\n  committed:\n{}  generated:\n{}\
         If the API change is intended, regenerate the snapshot with\n    \
         UPDATE_SNAPSHOTS=1 cargo test -p evault-server --test openapi\nand commit it.",
        at + 1,
        show(&old),
        show(&new),
    );
}

#[test]
fn served_document_is_the_generated_one() {
    let s = common::TestServer::start();
    let r = s.get("/api/v1/openapi.json");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type").unwrap(), "application/json");
    let served: Value = r.json();
    let generated: Value = serde_json::from_str(&generated()).unwrap();
    assert_eq!(served, generated);
    assert_eq!(served["openapi"], "3.1.0");
    let paths = served["paths"].as_object().unwrap();
    for p in [
        "/api/v1/evidence",
        "/api/v1/evidence/{id}",
        "/api/v1/evidence/{id}/payload",
        "/api/v1/evidence/{id}/proof",
        "/api/v1/log",
        "/api/v1/tree/consistency",
        "/api/v1/checkpoints",
        "/api/v1/checkpoints/latest",
        "/api/v1/checkpoints/{size}",
        "/tlog/checkpoint",
        "/tlog/tile/{path}",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(paths.contains_key(p), "{p} is not documented");
    }
    assert!(paths["/api/v1/evidence"]["post"].is_object());
    assert!(paths["/api/v1/evidence"]["get"].is_object());
}
