//! The monitor against logs the test writes and serves itself: a log it
//! did not write follows through growth; a fork, a rollback, a flipped
//! byte in a tile or an entry, a bad signature are each a failure that
//! leaves the state where it was and saves both checkpoints.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::{StaticServer, TestLog, opaque_entries};
use evault_monitor::{
    Exit, FailureKind, LogKind, LogRequest, Monitor, Options, RunReport, State, Status,
};

const ORIGIN: &str = "example.test/not-evault";

fn request(name: &str, prefix: &str, key: &str) -> LogRequest {
    LogRequest {
        name: name.into(),
        kind: LogKind::Tlog,
        prefix: prefix.into(),
        origin: None,
        key: Some(key.into()),
        more_keys: Vec::new(),
        key_policy: None,
    }
}

fn run_with(state: &Path, req: &[LogRequest], entries: bool, token: Option<&str>) -> RunReport {
    let options = Options {
        entries,
        token: token.map(str::to_string),
        ..Options::default()
    };
    Monitor::open(state, req, options)
        .expect("open monitor")
        .run_once()
}

fn run(state: &Path, req: &[LogRequest], entries: bool) -> RunReport {
    run_with(state, req, entries, None)
}

fn trusted_size(state: &Path, name: &str) -> Option<u64> {
    State::load(state)
        .unwrap()
        .log(name)
        .and_then(|l| l.trusted.as_ref())
        .map(|t| t.size)
}

/// Asserts a verification failure of `kind` that kept the state file as
/// it was and saved the trusted and served checkpoints; returns the
/// failure message.
fn assert_failed(
    report: &RunReport,
    kind: FailureKind,
    state: &Path,
    before: &[u8],
    trusted_note: &str,
    served_note: &[u8],
) -> String {
    assert_eq!(report.outcome, Exit::Failed, "{report}");
    assert_eq!(report.exit_code, 1);
    let log = &report.logs[0];
    assert_eq!(log.status, Status::Failed, "{report}");
    let failure = log.failure.as_ref().expect("failure");
    assert_eq!(failure.kind, kind, "{report}");
    assert_eq!(std::fs::read(state).unwrap(), before, "state changed");
    let files: Vec<&PathBuf> = log.evidence_files.iter().collect();
    assert_eq!(files.len(), 3, "{files:?}");
    let trusted = files
        .iter()
        .find(|p| p.to_string_lossy().contains("-trusted-"));
    let served = files
        .iter()
        .find(|p| p.to_string_lossy().contains("-served-"));
    assert_eq!(
        std::fs::read_to_string(trusted.expect("trusted file")).unwrap(),
        trusted_note
    );
    assert_eq!(
        std::fs::read(served.expect("served file")).unwrap(),
        served_note
    );
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(files[2]).unwrap()).unwrap();
    assert_eq!(record["failure"]["kind"], kind.as_str());
    // The human report names the log and every evidence file.
    let text = report.to_string();
    assert!(text.contains("VERIFICATION FAILED"), "{text}");
    for f in files {
        assert!(text.contains(&f.display().to_string()), "{text}");
    }
    failure.message.clone()
}

#[test]
fn follows_a_log_it_did_not_write_over_http() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = TestLog::new(&tmp.path().join("log"), ORIGIN);
    log.append(&opaque_entries(0, 0, 300));
    let server = StaticServer::start(&log.dir);
    let state = tmp.path().join("monitor.json");
    let req = [request("foreign", &server.url, &log.vkey)];

    let r = run(&state, &req, true);
    assert_eq!(r.outcome, Exit::Ok, "{r}");
    let l = &r.logs[0];
    assert_eq!(l.status, Status::Verified);
    assert_eq!(l.trusted_after.as_ref().unwrap().size, 300);
    assert_eq!(
        l.trusted_after.as_ref().unwrap().root,
        STANDARD.encode(log.root())
    );
    assert_eq!((l.tiles_read, l.entries_checked), (2, 300));
    assert_eq!(
        std::fs::metadata(&state).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let saved = State::load(&state).unwrap();
    assert_eq!(saved.logs[0].origin, ORIGIN);
    assert_eq!(saved.logs[0].key, log.vkey);
    assert_eq!(saved.logs[0].prefix, server.url);

    // Growth: only the tiles from the one holding leaf 300 on are read.
    log.append(&opaque_entries(0, 300, 400));
    let r = run(&state, &req, true);
    assert_eq!(r.outcome, Exit::Ok, "{r}");
    let l = &r.logs[0];
    assert_eq!(l.trusted_before.as_ref().unwrap().size, 300);
    assert_eq!(l.trusted_after.as_ref().unwrap().size, 700);
    assert_eq!((l.tiles_read, l.entries_checked), (2, 700 - 256));
    assert_eq!(trusted_size(&state, "foreign"), Some(700));

    // Nothing new; and a run with no request follows the state's logs.
    let r = run(&state, &[], false);
    assert_eq!(r.logs[0].status, Status::Unchanged, "{r}");
    assert_eq!(r.exit_code, 0);
    // No token was sent to a log that is not evault's.
    assert!(server.hits().iter().all(|h| h.bearer.is_none()));
}

#[test]
fn follows_growth_across_tile_boundaries() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = TestLog::new(&tmp.path().join("log"), ORIGIN);
    let prefix = log.dir.display().to_string();
    let state = tmp.path().join("monitor.json");
    let req = [request("b", &prefix, &log.vkey)];
    let mut size = 0;
    for n in [1u64, 254, 1, 1, 254, 1, 1, 487, 1] {
        log.append(&opaque_entries(11, size as usize, n as usize));
        size += n;
        let r = run(&state, &req, true);
        assert_eq!(r.outcome, Exit::Ok, "size {size}: {r}");
        assert_eq!(trusted_size(&state, "b"), Some(size));
        // A first run at the same size agrees.
        let fresh = tmp.path().join(format!("fresh-{size}.json"));
        assert_eq!(run(&fresh, &req, true).outcome, Exit::Ok, "size {size}");
        assert_eq!(
            std::fs::read_to_string(&fresh)
                .unwrap()
                .replace(&fresh_stamp(&fresh), ""),
            std::fs::read_to_string(&state)
                .unwrap()
                .replace(&fresh_stamp(&state), ""),
        );
    }
    assert_eq!(size, 1001);
}

#[test]
fn follows_a_log_past_the_second_tile_level() {
    // Past 65,536 leaves: a full level-1 tile and a level-2 tile.
    let tmp = tempfile::tempdir().unwrap();
    let mut log = TestLog::new(&tmp.path().join("log"), ORIGIN);
    let state = tmp.path().join("monitor.json");
    let req = [request("big", log.dir.to_str().unwrap(), &log.vkey)];
    let mut size = 0;
    for n in [65_000usize, 537, 4_463] {
        log.append(&opaque_entries(12, size, n));
        size += n;
        let r = run(&state, &req, false);
        assert_eq!(r.outcome, Exit::Ok, "size {size}: {r}");
    }
    assert_eq!(trusted_size(&state, "big"), Some(70_000));
    let before = std::fs::read(&state).unwrap();
    let at_70000 = String::from_utf8(log.read("checkpoint")).unwrap();

    // A flipped byte in a full tile of new leaves is named through its
    // parent in the level-1 tile.
    let at_70300 = log.append(&opaque_entries(12, size, 300));
    log.flip("tile/0/273", 212 * 32);
    let r = run(&state, &req, false);
    let msg = assert_failed(
        &r,
        FailureKind::BadTile,
        &state,
        &before,
        &at_70000,
        at_70300.as_bytes(),
    );
    assert!(
        msg.contains("tile/0/273 hashes to") && msg.contains("tile/1/001.p/18"),
        "{msg}"
    );
}

/// The `verified_at` member of a one-log state file (differs per run).
fn fresh_stamp(state: &Path) -> String {
    let t = State::load(state).unwrap().logs[0]
        .trusted
        .as_ref()
        .unwrap()
        .verified_at;
    format!("\"verified_at\": {t}")
}

#[test]
fn reads_gzip_bundles_directories_and_full_tiles_for_gone_partial_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = TestLog::new(&tmp.path().join("log"), ORIGIN);
    let at_300 = log.append(&opaque_entries(1, 0, 300));
    log.append(&opaque_entries(1, 300, 300));

    // A directory (and a file:// URL) is a log prefix too.
    for prefix in [
        log.dir.display().to_string(),
        format!("file://{}", log.dir.display()),
    ] {
        let state = tmp.path().join(format!("dir-{}.json", prefix.len()));
        let r = run(&state, &[request("dir", &prefix, &log.vkey)], true);
        assert_eq!(r.outcome, Exit::Ok, "{r}");
        assert_eq!(r.logs[0].entries_checked, 600);
    }

    // Entry bundles gzip-encoded without negotiation.
    let server = StaticServer::start(&log.dir);
    server.gzip.store(true, Ordering::SeqCst);
    let state = tmp.path().join("gzip.json");
    let r = run(&state, &[request("gz", &server.url, &log.vkey)], true);
    assert_eq!(r.outcome, Exit::Ok, "{r}");
    assert_eq!(r.logs[0].entries_checked, 600);

    // The log went back to serving size 300, but its partial tile and
    // bundle for 300 are gone: the full ones stand in (C2SP tlog-tiles).
    log.write("checkpoint", at_300.as_bytes());
    std::fs::remove_file(log.dir.join("tile/0/001.p/44")).unwrap();
    std::fs::remove_file(log.dir.join("tile/entries/001.p/44")).unwrap();
    let state = tmp.path().join("fallback.json");
    let r = run(&state, &[request("fb", &server.url, &log.vkey)], true);
    assert_eq!(r.outcome, Exit::Ok, "{r}");
    assert_eq!(r.logs[0].trusted_after.as_ref().unwrap().size, 300);
    assert_eq!(r.logs[0].entries_checked, 300);
}

#[test]
fn a_forked_checkpoint_of_the_same_size_fails_and_keeps_evidence() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = TestLog::new(&tmp.path().join("log"), ORIGIN);
    let good = log.append(&opaque_entries(2, 0, 300));
    let server = StaticServer::start(&log.dir);
    let state = tmp.path().join("monitor.json");
    let req = [request("forky", &server.url, &log.vkey)];
    assert_eq!(run(&state, &req, false).outcome, Exit::Ok);
    let before = std::fs::read(&state).unwrap();

    // Same key, same size, another root.
    let forged = log.sign(300, [7u8; 32]);
    log.write("checkpoint", forged.as_bytes());
    let r = run(&state, &req, false);
    let msg = assert_failed(
        &r,
        FailureKind::Fork,
        &state,
        &before,
        &good,
        forged.as_bytes(),
    );
    assert!(msg.contains("forky") && msg.contains("300"), "{msg}");
    assert!(msg.contains(&STANDARD.encode(log.root())), "{msg}");
    assert!(msg.contains(&STANDARD.encode([7u8; 32])), "{msg}");
    // Detected again on every run; the evidence is not overwritten.
    let again = run(&state, &req, false);
    assert_eq!(
        again.logs[0].failure.as_ref().unwrap().kind,
        FailureKind::Fork
    );
    assert!(
        again.logs[0]
            .evidence_files
            .iter()
            .all(|p| !r.logs[0].evidence_files.contains(p))
    );
    assert!(
        r.logs[0].evidence_files[0].starts_with(tmp.path().join("monitor-evidence")),
        "evidence goes next to the state file by default"
    );
}

#[test]
fn a_larger_tree_that_does_not_extend_the_trusted_one_is_a_fork() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = TestLog::new(&tmp.path().join("a"), ORIGIN);
    let good = log.append(&opaque_entries(3, 0, 300));
    let state = tmp.path().join("monitor.json");
    let server = StaticServer::start(&log.dir);
    assert_eq!(
        run(&state, &[request("l", &server.url, &log.vkey)], false).outcome,
        Exit::Ok
    );
    let before = std::fs::read(&state).unwrap();

    // The same key signs a different history of 700 entries, served
    // whole and self-consistent from elsewhere.
    let mut other = TestLog::with_key(&tmp.path().join("b"), ORIGIN, &log.skey);
    let forked = other.append(&opaque_entries(4, 0, 700));
    let elsewhere = StaticServer::start(&other.dir);
    let r = run(&state, &[request("l", &elsewhere.url, &log.vkey)], false);
    let msg = assert_failed(
        &r,
        FailureKind::Fork,
        &state,
        &before,
        &good,
        forked.as_bytes(),
    );
    assert!(
        msg.contains("size 700") && msg.contains("size 300"),
        "{msg}"
    );
    assert!(msg.contains(&STANDARD.encode(other.root())), "{msg}");
}

#[test]
fn a_rolled_back_checkpoint_fails_and_keeps_evidence() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = TestLog::new(&tmp.path().join("log"), ORIGIN);
    let old = log.append(&opaque_entries(5, 0, 300));
    let new = log.append(&opaque_entries(5, 300, 400));
    let server = StaticServer::start(&log.dir);
    let state = tmp.path().join("monitor.json");
    let req = [request("rb", &server.url, &log.vkey)];
    assert_eq!(run(&state, &req, false).outcome, Exit::Ok);
    assert_eq!(trusted_size(&state, "rb"), Some(700));
    let before = std::fs::read(&state).unwrap();

    log.write("checkpoint", old.as_bytes());
    let r = run(&state, &req, false);
    let msg = assert_failed(
        &r,
        FailureKind::Rollback,
        &state,
        &before,
        &new,
        old.as_bytes(),
    );
    assert!(msg.contains("ROLLBACK") && msg.contains("rb"), "{msg}");
    assert!(
        msg.contains("size 300") && msg.contains("size 700"),
        "{msg}"
    );
}

#[test]
fn a_flipped_byte_in_a_full_tile_is_a_bad_tile() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = TestLog::new(&tmp.path().join("log"), ORIGIN);
    let at_100 = log.append(&opaque_entries(6, 0, 100));
    let server = StaticServer::start(&log.dir);
    let state = tmp.path().join("monitor.json");
    let req = [request("tiles", &server.url, &log.vkey)];
    assert_eq!(run(&state, &req, false).outcome, Exit::Ok);
    let before = std::fs::read(&state).unwrap();
    let at_600 = log.append(&opaque_entries(6, 100, 500));

    // A new leaf's hash, in a full tile of new leaves.
    log.flip("tile/0/001", 17 * 32 + 5);
    let r = run(&state, &req, false);
    let msg = assert_failed(
        &r,
        FailureKind::BadTile,
        &state,
        &before,
        &at_100,
        at_600.as_bytes(),
    );
    assert!(msg.contains("tile/0/001 hashes to"), "{msg}");
    assert!(msg.contains("tiles") && msg.contains("size 600"), "{msg}");
    log.flip("tile/0/001", 17 * 32 + 5);

    // An old leaf's hash, in the full tile that also holds new leaves: the
    // old part must rebuild the trusted frontier.
    log.flip("tile/0/000", 5 * 32);
    let r = run(&state, &req, false);
    let msg = assert_failed(
        &r,
        FailureKind::BadTile,
        &state,
        &before,
        &at_100,
        at_600.as_bytes(),
    );
    assert!(msg.contains("tile/0/000 hashes to"), "{msg}");
    log.flip("tile/0/000", 5 * 32);

    // Repaired, the same state advances.
    let r = run(&state, &req, false);
    assert_eq!(r.outcome, Exit::Ok, "{r}");
    assert_eq!(trusted_size(&state, "tiles"), Some(600));

    // With no state (first use), a bad tile is caught too and nothing is
    // written.
    log.flip("tile/0/001", 0);
    let fresh = tmp.path().join("fresh.json");
    let r = run(&fresh, &[request("tiles", &server.url, &log.vkey)], false);
    assert_eq!(
        r.logs[0].failure.as_ref().unwrap().kind,
        FailureKind::BadTile,
        "{r}"
    );
    assert!(!fresh.exists());
    // Only the served checkpoint and the failure: nothing was trusted.
    assert_eq!(r.logs[0].evidence_files.len(), 2);
}

#[test]
fn a_tile_of_the_wrong_length_or_a_missing_one_does_not_advance() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = TestLog::new(&tmp.path().join("log"), ORIGIN);
    log.append(&opaque_entries(7, 0, 10));
    let server = StaticServer::start(&log.dir);
    let state = tmp.path().join("monitor.json");
    let req = [request("len", &server.url, &log.vkey)];
    assert_eq!(run(&state, &req, false).outcome, Exit::Ok);
    log.append(&opaque_entries(7, 10, 10));

    let mut long = log.read("tile/0/000.p/20");
    long.extend_from_slice(&[0; 32]);
    log.write("tile/0/000.p/20", &long);
    let r = run(&state, &req, false);
    assert_eq!(
        r.logs[0].failure.as_ref().unwrap().kind,
        FailureKind::BadTile
    );
    assert_eq!(trusted_size(&state, "len"), Some(10));

    std::fs::remove_file(log.dir.join("tile/0/000.p/20")).unwrap();
    let r = run(&state, &req, false);
    assert_eq!(
        (r.outcome, r.logs[0].status),
        (Exit::Refused, Status::Refused)
    );
    assert_eq!(r.exit_code, 3);
    assert!(r.logs[0].error.as_ref().unwrap().contains("404"), "{r}");
    assert_eq!(trusted_size(&state, "len"), Some(10));
}

#[test]
fn entries_are_checked_against_authenticated_leaf_hashes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = TestLog::new(&tmp.path().join("log"), ORIGIN);
    let note = log.append(&opaque_entries(8, 0, 300));
    log.flip("tile/entries/000", 40);
    let server = StaticServer::start(&log.dir);
    let req = [request("ent", &server.url, &log.vkey)];

    // The tree is fine, so without --entries it verifies...
    let r = run(&tmp.path().join("hashes.json"), &req, false);
    assert_eq!(r.outcome, Exit::Ok, "{r}");
    // ...and with them the altered entry is caught.
    let state = tmp.path().join("entries.json");
    let r = run(&state, &req, true);
    let f = r.logs[0].failure.as_ref().expect("failure");
    assert_eq!(f.kind, FailureKind::BadEntry, "{r}");
    assert!(f.message.contains("tile/entries/000"), "{}", f.message);
    assert!(!state.exists());
    assert_eq!(
        std::fs::read(&r.logs[0].evidence_files[0]).unwrap(),
        note.as_bytes()
    );
}

#[test]
fn evault_entries_must_be_canonical_records_and_get_the_token() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = TestLog::new(&tmp.path().join("log"), ORIGIN);
    let leaves: Vec<Vec<u8>> = (0..5).map(record_leaf).collect();
    log.append(&leaves);
    let server = StaticServer::start(&log.dir);
    let mut req = request("evidence", &server.url, &log.vkey);
    req.kind = LogKind::EvaultEvidence;
    let state = tmp.path().join("monitor.json");
    let r = run_with(&state, std::slice::from_ref(&req), true, Some("tok"));
    assert_eq!(r.outcome, Exit::Ok, "{r}");
    assert!(
        server
            .hits()
            .iter()
            .all(|h| h.bearer.as_deref() == Some("tok"))
    );

    // An entry that hashes right but is not a canonical record leaf.
    log.append(&[b"{\"not\":\"a record\"}".to_vec()]);
    let r = run(&state, std::slice::from_ref(&req), true);
    let f = r.logs[0].failure.as_ref().expect("failure");
    assert_eq!(f.kind, FailureKind::BadEntry, "{r}");
    assert!(f.message.contains("entry 5"), "{}", f.message);
    assert_eq!(trusted_size(&state, "evidence"), Some(5));
}

#[test]
fn a_checkpoint_not_signed_by_the_pinned_key_or_for_another_origin_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = TestLog::new(&tmp.path().join("log"), ORIGIN);
    let good = log.append(&opaque_entries(9, 0, 3));
    let server = StaticServer::start(&log.dir);
    let state = tmp.path().join("monitor.json");
    let req = [request("sig", &server.url, &log.vkey)];
    assert_eq!(run(&state, &req, false).outcome, Exit::Ok);
    let before = std::fs::read(&state).unwrap();

    // Another key of the same name.
    let impostor = TestLog::new(&tmp.path().join("impostor"), ORIGIN);
    let forged = impostor.sign(3, [1; 32]);
    log.write("checkpoint", forged.as_bytes());
    let r = run(&state, &req, false);
    let msg = assert_failed(
        &r,
        FailureKind::BadCheckpoint,
        &state,
        &before,
        &good,
        forged.as_bytes(),
    );
    assert!(msg.contains("pinned key"), "{msg}");

    // A checkpoint far larger than any note: refused unread.
    log.write("checkpoint", &vec![b'a'; 100_000]);
    let r = run(&state, &req, false);
    let f = r.logs[0].failure.as_ref().expect("failure");
    assert_eq!(f.kind, FailureKind::BadCheckpoint, "{r}");
    assert!(
        f.message.contains("larger than 65536 bytes"),
        "{}",
        f.message
    );
    assert_eq!(std::fs::read(&state).unwrap(), before);

    // The pinned key, another origin.
    let mut elsewhere =
        TestLog::with_key(&tmp.path().join("other"), "example.test/other", &log.skey);
    let other = elsewhere.append(&opaque_entries(9, 0, 3));
    log.write("checkpoint", other.as_bytes());
    let r = run(&state, &req, false);
    assert_failed(
        &r,
        FailureKind::WrongOrigin,
        &state,
        &before,
        &good,
        other.as_bytes(),
    );
}

#[test]
fn follows_a_log_that_signs_with_ml_dsa_44_and_refuses_its_forgeries() {
    // C2SP tlog-checkpoint recommends ML-DSA-44 for a log's own signature;
    // the monitor pins such a key like an Ed25519 one.
    let tmp = tempfile::tempdir().unwrap();
    let mut log = TestLog::new_mldsa(&tmp.path().join("log"), ORIGIN);
    let good = log.append(&opaque_entries(4, 0, 20));
    assert!(log.vkey.contains("+B"), "type 0x06: {}", log.vkey);
    let server = StaticServer::start(&log.dir);
    let state = tmp.path().join("monitor.json");
    let req = [request("pq", &server.url, &log.vkey)];
    let r = run(&state, &req, true);
    assert_eq!(r.outcome, Exit::Ok, "{r}");
    assert_eq!(trusted_size(&state, "pq"), Some(20));
    log.append(&opaque_entries(4, 20, 10));
    assert_eq!(run(&state, &req, true).outcome, Exit::Ok);
    assert_eq!(trusted_size(&state, "pq"), Some(30));
    let good = std::fs::read_to_string(log.dir.join("checkpoint")).unwrap_or(good);
    let before = std::fs::read(&state).unwrap();

    // Another ML-DSA-44 key of the same name, and an Ed25519 one: both
    // refused by the pinned key.
    for impostor in [
        TestLog::new_mldsa(&tmp.path().join("i1"), ORIGIN),
        TestLog::new(&tmp.path().join("i2"), ORIGIN),
    ] {
        let forged = impostor.sign(30, log.root());
        log.write("checkpoint", forged.as_bytes());
        let r = run(&state, &req, false);
        let msg = assert_failed(
            &r,
            FailureKind::BadCheckpoint,
            &state,
            &before,
            &good,
            forged.as_bytes(),
        );
        assert!(msg.contains("pinned key"), "{msg}");
        std::fs::remove_dir_all(tmp.path().join("monitor.json.evidence")).ok();
    }

    // A witness key (cosignature/v1) cannot be pinned as a log's key.
    let witness = evault_note::CosignatureSigner::from_seed("w.example/w", &[3; 32]).unwrap();
    let bad = [request("w", &server.url, witness.verifier_key().as_str())];
    let err = Monitor::open(&tmp.path().join("other.json"), &bad, Options::default())
        .err()
        .expect("refused");
    assert!(
        err.to_string().contains("unsupported key algorithm 0x04"),
        "{err}"
    );
}

#[test]
fn a_key_set_with_policy_all_needs_every_pinned_signature() {
    // A log signing with Ed25519 and ML-DSA-44; the monitor pins both.
    let tmp = tempfile::tempdir().unwrap();
    let mut log = TestLog::new(&tmp.path().join("log"), ORIGIN);
    let (pq_skey, pq_vkey) = evault_note::generate_mldsa44(ORIGIN).unwrap();
    log.also.push(Box::new(
        evault_note::MlDsaCosigner::from_signer_key(pq_skey.expose_secret())
            .unwrap()
            .with_fixed_timestamp(0),
    ));
    log.append(&opaque_entries(5, 0, 12));
    let server = StaticServer::start(&log.dir);
    let all = LogRequest {
        more_keys: vec![pq_vkey.to_string()],
        key_policy: Some(evault_monitor::KeyPolicy::All),
        ..request("dual", &server.url, &log.vkey)
    };
    let any = LogRequest {
        key_policy: Some(evault_monitor::KeyPolicy::Any),
        ..all.clone()
    };
    let (state_all, state_any) = (tmp.path().join("all.json"), tmp.path().join("any.json"));
    assert_eq!(
        run(&state_all, std::slice::from_ref(&all), true).outcome,
        Exit::Ok
    );
    assert_eq!(
        run(&state_any, std::slice::from_ref(&any), true).outcome,
        Exit::Ok
    );
    let pinned = std::fs::read_to_string(&state_all).unwrap();
    assert!(pinned.contains("\"key_policy\": \"all\""), "{pinned}");
    assert!(pinned.contains(pq_vkey.as_str()), "{pinned}");

    // The log grows, but its next checkpoint carries only the Ed25519
    // signature: enough under "any", refused under "all".
    log.also.clear();
    log.append(&opaque_entries(5, 12, 4));
    assert_eq!(
        run(&state_any, std::slice::from_ref(&any), true).outcome,
        Exit::Ok
    );
    assert_eq!(trusted_size(&state_any, "dual"), Some(16));
    let before = std::fs::read(&state_all).unwrap();
    let r = run(&state_all, std::slice::from_ref(&all), false);
    assert_eq!(r.outcome, Exit::Failed, "{r}");
    let f = r.logs[0].failure.as_ref().expect("a failure");
    assert_eq!(f.kind, FailureKind::BadCheckpoint, "{r}");
    assert!(f.message.contains("key policy is all"), "{}", f.message);
    assert_eq!(
        std::fs::read(&state_all).unwrap(),
        before,
        "the state did not move"
    );
    assert_eq!(trusted_size(&state_all, "dual"), Some(12));

    // The pinned set is the log's identity: another set, or another
    // policy, is a conflict, not an update.
    let other = LogRequest {
        more_keys: Vec::new(),
        ..all.clone()
    };
    let r = run(&state_all, &[other], false);
    assert_eq!(r.outcome, Exit::Failed, "{r}");
    assert!(r.to_string().contains("KEY CHANGED"), "{r}");
    let r = run(&state_all, &[any], false);
    assert!(r.to_string().contains("KEY POLICY CHANGED"), "{r}");

    // The same set in another order is the same log; a key given twice is
    // a usage error, not a failure of the log.
    let reordered = LogRequest {
        key: Some(pq_vkey.to_string()),
        more_keys: vec![log.vkey.clone()],
        ..all.clone()
    };
    let r = run(&state_all, std::slice::from_ref(&reordered), false);
    assert!(!r.to_string().contains("KEY CHANGED"), "{r}");
    let twice = LogRequest {
        more_keys: vec![pq_vkey.to_string(), log.vkey.clone()],
        ..all
    };
    let err = Monitor::open(&state_all, &[twice], Options::default())
        .err()
        .expect("refused");
    assert!(err.to_string().contains("given twice"), "{err}");
}

#[test]
fn pinned_identity_usage_errors_unreachable_servers_and_the_lock() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = TestLog::new(&tmp.path().join("log"), ORIGIN);
    log.append(&opaque_entries(10, 0, 3));
    let server = StaticServer::start(&log.dir);
    let state = tmp.path().join("monitor.json");
    assert_eq!(
        run(&state, &[request("pin", &server.url, &log.vkey)], false).outcome,
        Exit::Ok
    );
    let before = std::fs::read(&state).unwrap();

    // Another key for a known log.
    let other = TestLog::new(&tmp.path().join("other"), ORIGIN);
    let r = run(&state, &[request("pin", &server.url, &other.vkey)], false);
    let f = r.logs[0].failure.as_ref().expect("failure");
    assert_eq!(f.kind, FailureKind::KeyChanged);
    assert!(f.message.contains(&log.vkey), "{}", f.message);
    assert_eq!(std::fs::read(&state).unwrap(), before);

    // A new log needs its key; no log at all is a usage error; so is a
    // second monitor on the same state.
    let mut keyless = request("new", &server.url, &log.vkey);
    keyless.key = None;
    assert!(Monitor::open(&state, &[keyless], Options::default()).is_err());
    assert!(Monitor::open(&tmp.path().join("empty.json"), &[], Options::default()).is_err());
    let held = Monitor::open(&state, &[], Options::default()).unwrap();
    let err = Monitor::open(&state, &[], Options::default())
        .err()
        .expect("locked");
    assert!(err.contains("in use"), "{err}");
    drop(held);

    // Nothing listens on the port of a server that is gone.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let r = run(
        &state,
        &[request(
            "pin",
            &format!("http://127.0.0.1:{port}/"),
            &log.vkey,
        )],
        false,
    );
    assert_eq!((r.outcome, r.exit_code), (Exit::Unreachable, 4), "{r}");
    assert_eq!(trusted_size(&state, "pin"), Some(3));
    // A new prefix is kept only once the log verified there.
    assert_eq!(State::load(&state).unwrap().logs[0].prefix, server.url);
    let r = run(
        &state,
        &[request("pin", log.dir.to_str().unwrap(), &log.vkey)],
        false,
    );
    assert_eq!(r.logs[0].status, Status::Unchanged, "{r}");
    assert_eq!(
        State::load(&state).unwrap().logs[0].prefix,
        log.dir.display().to_string()
    );

    // An empty directory has no checkpoint: refused.
    let empty = tmp.path().join("nothing");
    std::fs::create_dir(&empty).unwrap();
    let r = run(
        &tmp.path().join("e.json"),
        &[request("e", empty.to_str().unwrap(), &log.vkey)],
        false,
    );
    assert_eq!((r.outcome, r.exit_code), (Exit::Refused, 3), "{r}");
}

/// An evault evidence leaf (index `i`) holding the key event `action` of
/// `subject`, signed by `signers`, as the vault logs it.
fn key_event_leaf(
    i: u64,
    action: evault_verify::KeyAction,
    subject: &str,
    signers: &[&dyn evault_note::Signer],
) -> Vec<u8> {
    let event = evault_verify::KeyEvent {
        origin: ORIGIN.into(),
        action,
        subject: subject.into(),
    };
    let note = evault_note::sign(&event.statement(), signers).unwrap();
    evault_verify::Evidence {
        id: format!("01936f0e-8f3a-7cc2-9b1e-{i:012}"),
        leaf_index: i,
        content_type: evault_verify::KEY_EVENT_TYPE.into(),
        sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into(),
        size: note.len() as u64,
        labels: event.labels(&note).unwrap(),
        ingested_at: "2026-11-30T11:30:00.123Z".into(),
        ingested_by: "evault".into(),
        idempotency_key: None,
    }
    .leaf_data()
    .unwrap()
}

/// A plain evidence leaf of index `i`.
fn record_leaf(i: u64) -> Vec<u8> {
    evault_verify::Evidence {
        id: format!("01936f0e-8f3a-7cc2-9b1e-{i:012}"),
        leaf_index: i,
        content_type: "text/plain".into(),
        sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into(),
        size: 0,
        labels: Default::default(),
        ingested_at: "2026-11-30T11:30:00.123Z".into(),
        ingested_by: "sa:ci".into(),
        idempotency_key: None,
    }
    .leaf_data()
    .unwrap()
}

#[test]
fn follows_a_key_rotation_and_refuses_a_retired_keys_checkpoint() {
    use evault_note::{Ed25519Signer, Signer, generate_ed25519};
    use evault_verify::KeyAction;
    let tmp = tempfile::tempdir().unwrap();
    let mut log = TestLog::new(&tmp.path().join("log"), ORIGIN);
    let a = Ed25519Signer::from_signer_key(&log.skey).unwrap();
    let (b_skey, b_vkey) = generate_ed25519(ORIGIN).unwrap();
    let b = Ed25519Signer::from_signer_key(b_skey.expose_secret()).unwrap();
    let (a_vkey, b_vkey) = (log.vkey.clone(), b_vkey.to_string());
    let a_skey = log.skey.clone();
    let key =
        |skey: &str| -> Box<dyn Signer> { Box::new(Ed25519Signer::from_signer_key(skey).unwrap()) };
    let server = StaticServer::start(&log.dir);
    let req = LogRequest {
        kind: LogKind::EvaultEvidence,
        ..request("evidence", &server.url, &a_vkey)
    };
    let state = tmp.path().join("monitor.json");
    let follow = || run(&state, std::slice::from_ref(&req), true);

    // Before: A signs.
    log.append(&(0..3).map(record_leaf).collect::<Vec<_>>());
    assert_eq!(follow().outcome, Exit::Ok);

    // The rotation: B is added at leaf 3 by an event A and B signed; both
    // sign the checkpoints of the overlap. The monitor learns B.
    let add = key_event_leaf(3, KeyAction::Add, &b_vkey, &[&a as &dyn Signer, &b]);
    log.also.push(key(b_skey.expose_secret()));
    log.append(&[add, record_leaf(4)]);
    let r = follow();
    assert_eq!(r.outcome, Exit::Ok, "{r}");
    assert_eq!(
        r.logs[0].key_events,
        vec![format!("added {b_vkey} at leaf 3")]
    );
    let pinned = State::load(&state)
        .unwrap()
        .log("evidence")
        .unwrap()
        .clone();
    assert_eq!(pinned.learned_keys.len(), 1);
    assert_eq!(pinned.learned_keys[0].key, b_vkey);
    // Giving the same pinned key again is the same identity.
    assert_eq!(follow().outcome, Exit::Ok);
    // A second monitor, from here, sees the rest in one run (below).
    let state2 = tmp.path().join("monitor2.json");
    std::fs::copy(&state, &state2).unwrap();

    // After the overlap: A is retired at leaf 5 (signed by A and B), and
    // only B signs.
    let retire = key_event_leaf(5, KeyAction::Retire, &a_vkey, &[&a as &dyn Signer, &b]);
    log.signer = key(b_skey.expose_secret());
    log.also.clear();
    log.append(&[retire, record_leaf(6)]);
    let r = follow();
    assert_eq!(r.outcome, Exit::Ok, "{r}");
    assert_eq!(
        r.logs[0].key_events,
        vec![format!("retired {a_vkey} at leaf 5")]
    );
    assert_eq!(trusted_size(&state, "evidence"), Some(7));

    // A checkpoint of a larger tree signed only by the retired key A:
    // refused, though A is pinned and its signature is valid.
    let trusted_note = String::from_utf8(log.read("checkpoint")).unwrap();
    log.signer = key(&a_skey);
    log.append(&[record_leaf(7)]);
    let served = log.read("checkpoint");
    let before = std::fs::read(&state).unwrap();
    let r = follow();
    let msg = assert_failed(
        &r,
        FailureKind::BadCheckpoint,
        &state,
        &before,
        &trusted_note,
        &served,
    );
    assert!(msg.contains("retired"), "{msg}");
    // So it is when the retirement and that checkpoint come in one run.
    let r = run(&state2, std::slice::from_ref(&req), true);
    let f = r.logs[0].failure.as_ref().expect("failure");
    assert_eq!(f.kind, FailureKind::BadCheckpoint, "{r}");
    assert!(f.message.contains("retired"), "{}", f.message);
    assert_eq!(trusted_size(&state2, "evidence"), Some(5));

    // Signed by B, it is fine again.
    log.signer = key(b_skey.expose_secret());
    let note = log.sign(log.size(), log.root());
    log.write("checkpoint", note.as_bytes());
    assert_eq!(follow().outcome, Exit::Ok);

    // A key event that, of the keys it knows, only the retired one signed
    // adds nothing: the entry is refused.
    let (c_skey, c_vkey) = generate_ed25519(ORIGIN).unwrap();
    let c = Ed25519Signer::from_signer_key(c_skey.expose_secret()).unwrap();
    let forged = key_event_leaf(9, KeyAction::Add, c_vkey.as_str(), &[&a as &dyn Signer, &c]);
    log.append(&[forged]);
    let r = follow();
    let f = r.logs[0].failure.as_ref().expect("failure");
    assert_eq!(f.kind, FailureKind::BadEntry, "{r}");
    assert!(f.message.contains("counts"), "{}", f.message);
    assert_eq!(trusted_size(&state, "evidence"), Some(8));

    // A monitor pinned to B from the start: the history before B (the add
    // of B, the retirement of A, which it never trusted) teaches it
    // nothing and is no failure; the event no key it knows signed is
    // ignored with a note.
    let fresh = tmp.path().join("fresh.json");
    let req_b = LogRequest {
        kind: LogKind::EvaultEvidence,
        ..request("evidence", &server.url, &b_vkey)
    };
    let r = run(&fresh, std::slice::from_ref(&req_b), true);
    assert_eq!(r.outcome, Exit::Ok, "{r}");
    assert_eq!(r.logs[0].key_events.len(), 1, "{r}");
    assert!(
        r.logs[0].key_events[0].starts_with("ignored the add"),
        "{r}"
    );
    let pinned = State::load(&fresh)
        .unwrap()
        .log("evidence")
        .unwrap()
        .clone();
    assert!(pinned.learned_keys.is_empty() && pinned.retired_keys.is_empty());
}
