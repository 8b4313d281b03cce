//! `evault serve`, `fsck` and `migrate` with the logs in PostgreSQL: each
//! test has a database of its own on the server `EVAULT_TEST_POSTGRES`
//! names (skipped loudly without one, unless EVAULT_REQUIRE_POSTGRES=1).
//! The crash rounds run on PostgreSQL too (`crash.rs`).

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{Server, post_labelled, wait_checkpoint};
use evault_store::testing::postgres::TestDb;
use serde_json::Value;

/// Runs `evault args`, its state directory under `data` (never the
/// user's).
fn evault(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_evault"))
        .args(args)
        .env_remove("EVAULT_CONFIG")
        .env_remove("EVAULT_STORE")
        .env("EVAULT_STATE_DIR", data.join("state"))
        .output()
        .expect("run evault")
}

/// `serve` refuses a database without the schema, naming the command that
/// makes it, and never prints the URL's password.
#[test]
fn serve_refuses_an_unmigrated_database_naming_the_command() {
    let Some(db) = TestDb::create("serve_refuses_an_unmigrated_database_naming_the_command") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    common::write_keystore(&data);
    let url = db.url_as("postgres", "pw-s3cret");
    let out = evault(
        &data,
        &[
            "serve",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--grpc-listen",
            "off",
            "--store",
            &url,
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("has no evault schema")
            && stderr.contains("evault migrate --store postgres://postgres:***@"),
        "{stderr}"
    );
    assert!(!stderr.contains("pw-s3cret"), "{stderr}");
    // Not a store at all.
    let out = evault(
        &data,
        &[
            "serve",
            "--data-dir",
            data.to_str().unwrap(),
            "--store",
            "mysql://x",
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("expected `sqlite` or a postgres://"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A vault on PostgreSQL serves, stops and serves again with what it
/// acknowledged; a clean `fsck --store` passes and writes nothing; a leaf
/// a superuser changed behind the vault's back (triggers disabled) is
/// found by `fsck` at its index, and by the next start-up, which refuses
/// to serve.
#[test]
fn a_row_altered_by_a_superuser_is_found_at_its_index() {
    let Some(db) = TestDb::create("a_row_altered_by_a_superuser_is_found_at_its_index") else {
        return;
    };
    evault_store::postgres::migrate(db.url()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = ["--store", db.url()];
    let server = Server::start(&data, &store);
    for i in 0..20u64 {
        let leaf = post_labelled(&server.url, format!("record {i}").as_bytes(), "n=1");
        assert_eq!(leaf, i);
    }
    wait_checkpoint(&server.url, 20);
    assert!(server.terminate(Duration::from_secs(30)), "clean shutdown");

    // Restarted: still there.
    let server = Server::start(&data, &store);
    let (status, log) = common::get_json(&common::agent(), &format!("{}/api/v1/log", server.url));
    assert_eq!(status, 200);
    assert_eq!(log["tree_size"], 20);
    assert!(server.terminate(Duration::from_secs(30)), "clean shutdown");

    let fsck = |extra: &[&str]| {
        let mut args = vec!["fsck", "--json", "--data-dir", data.to_str().unwrap()];
        args.extend_from_slice(&store);
        args.extend_from_slice(extra);
        evault(&data, &args)
    };
    let before = db.query_text("SELECT count(*) FROM entries");
    let out = fsck(&[]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
    });
    assert_eq!(out.status.code(), Some(0), "{v:#}");
    assert_eq!(v["clean"], true, "{v:#}");
    assert_eq!(db.query_text("SELECT count(*) FROM entries"), before);

    // A superuser changes leaf 17 (in the right edge's tile, which the
    // start-up sample always reads), bypassing the triggers.
    db.execute(
        "ALTER TABLE entries DISABLE TRIGGER USER; \
         UPDATE entries SET leaf_data = leaf_data || '\\x00'::bytea WHERE leaf_index = 17; \
         ALTER TABLE entries ENABLE TRIGGER USER",
    )
    .unwrap();
    let out = fsck(&[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let found = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["kind"] == "leaf_hash" && f["log"] == "evidence" && f["leaf_index"] == 17);
    assert!(found, "{v:#}");

    // And the next start refuses to serve it.
    let out = evault(
        &data,
        &[
            "serve",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--grpc-listen",
            "off",
            "--store",
            db.url(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("start-up check of the evidence log") && stderr.contains("(leaf 17)"),
        "{stderr}"
    );
}

/// `--store` takes EVAULT_STORE too, and `fsck --store` on a database
/// never migrated is refused (exit 2) naming `evault migrate`.
#[test]
fn fsck_refuses_an_unmigrated_database() {
    let Some(db) = TestDb::create("fsck_refuses_an_unmigrated_database") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data: &Path = dir.path();
    let out = Command::new(env!("CARGO_BIN_EXE_evault"))
        .args(["fsck", "--data-dir", data.to_str().unwrap()])
        .env_remove("EVAULT_CONFIG")
        .env("EVAULT_STORE", db.url())
        .output()
        .expect("run evault fsck");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("evault migrate --store"), "{stderr}");
}
