//! Crash safety: a child `evault serve` under concurrent ingest is killed
//! with SIGKILL several times. After every restart each acknowledged record
//! is present with a valid proof and its audit event, listed by label
//! exactly once whether or not the index follower has caught up (and it
//! does), and every checkpoint is consistent with every earlier one. Bounded: a few seconds of load per
//! round.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::{Server, agent, get_json, get_text};
use evault_merkle::verify_consistency;
use evault_note::{Ed25519Verifier, Verifiers};
use evault_verify::open_checkpoint;

const ROUNDS: usize = 4;
const CLIENTS: usize = 8;

fn ingest_until_stopped(
    url: String,
    client: usize,
    round: usize,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<String>>>,
) {
    let agent = agent();
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let body = format!("round {round} client {client} record {i}");
        i += 1;
        let resp = agent
            .post(format!("{url}/api/v1/evidence"))
            .header("Content-Type", "text/plain")
            .header("Authorization", common::bearer())
            .header("X-Evault-Label", format!("round={round}"))
            .send(body.as_bytes());
        let Ok(mut resp) = resp else { return }; // the server died mid-request
        if resp.status().as_u16() != 201 {
            return;
        }
        let Ok(text) = resp.body_mut().read_to_string() else {
            return;
        };
        let v: serde_json::Value = serde_json::from_str(&text).expect("201 body is JSON");
        let id = v["record"]["id"].as_str().expect("record id").to_string();
        acked.lock().unwrap().push(id);
    }
}

/// Lists the records of each earlier round by its label: each record of
/// the tree is listed once (every one carries one round label), and each
/// acknowledged id is among them.
fn check_labels(http: &ureq::Agent, url: &str, rounds: usize, tree_size: u64, acked: &[String]) {
    let mut listed = std::collections::HashSet::new();
    let mut total = 0u64;
    for r in 0..rounds {
        let mut cursor = String::new();
        loop {
            let (status, page) = get_json(
                http,
                &format!("{url}/api/v1/evidence?label=round%3D{r}&limit=1000{cursor}"),
            );
            assert_eq!(status, 200, "{page}");
            for e in page["items"].as_array().unwrap() {
                total += 1;
                let id = e["id"].as_str().unwrap().to_string();
                assert!(listed.insert(id.clone()), "{id} is listed twice");
            }
            match page["next_cursor"].as_str() {
                Some(n) => cursor = format!("&cursor={n}"),
                None => break,
            }
        }
    }
    assert_eq!(total, tree_size, "records listed by label");
    for id in acked {
        assert!(
            listed.contains(id),
            "acknowledged record {id} is not listed by label"
        );
    }
}

/// The leaf index of every line of every audit mirror file. A torn last
/// line may be there while the server writes; it is cut off on restart,
/// and skipped here.
fn mirror_indexes(dir: &std::path::Path) -> Vec<u64> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("mirror directory") {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
            let e: serde_json::Value = serde_json::from_str(line).expect("a whole JSON line");
            out.push(e["leaf_index"].as_u64().expect("leaf_index"));
        }
    }
    out
}

#[test]
fn sigkill_under_load_loses_nothing_and_never_forks() {
    let dir = tempfile::tempdir().unwrap();
    kill_rounds(dir.path(), &[]);
}

/// The same rounds with the logs in PostgreSQL (a database of the test's
/// own; skipped loudly without a server, unless EVAULT_REQUIRE_POSTGRES=1).
#[test]
fn sigkill_under_load_loses_nothing_and_never_forks_on_postgres() {
    let Some(db) = evault_store::testing::postgres::TestDb::create(
        "sigkill_under_load_loses_nothing_and_never_forks_on_postgres",
    ) else {
        return;
    };
    evault_store::postgres::migrate(db.url()).expect("migrate the test database");
    let dir = tempfile::tempdir().unwrap();
    kill_rounds(dir.path(), &["--store", db.url()]);
}

/// Rounds of load and SIGKILL against `evault serve --data-dir dir`
/// with `extra` arguments, each restart checked as the module says.
fn kill_rounds(dir: &std::path::Path, extra: &[&str]) {
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut checked_checkpoints = 0usize;

    for round in 0..=ROUNDS {
        let server = Server::start(dir, extra);
        let http = agent();
        let (_, log) = get_json(&http, &format!("{}/api/v1/log", server.url));
        let key =
            Ed25519Verifier::from_verifier_key(log["verifier_key"].as_str().unwrap()).unwrap();
        let verifiers = Verifiers::new().with(key).unwrap();

        // Everything acknowledged before any earlier kill is here, provable.
        let ids = acked.lock().unwrap().clone();
        let tree_size = log["tree_size"].as_u64().unwrap();
        assert!(
            tree_size >= ids.len() as u64,
            "tree lost records: {tree_size} < {}",
            ids.len()
        );
        common::assert_provable(&http, &server.url, &ids, &verifiers, "test.example/crash");

        // Every acknowledged put left its audit event: both were committed
        // in one transaction, so a kill can never keep one without the other.
        let mut audited = std::collections::HashSet::new();
        let mut cursor = String::new();
        loop {
            let (_, page) = get_json(
                &http,
                &format!(
                    "{}/api/v1/audit?operation=evidence.put&outcome=success&limit=1000{cursor}",
                    server.url
                ),
            );
            for e in page["items"].as_array().unwrap() {
                audited.insert(e["resource"].as_str().unwrap().to_string());
            }
            match page["next_cursor"].as_str() {
                Some(n) => cursor = format!("&cursor={n}"),
                None => break,
            }
        }
        for id in &ids {
            assert!(
                audited.contains(&format!("/api/v1/evidence/{id}")),
                "acknowledged record {id} has no audit event after a crash"
            );
        }

        // The audit mirror follows the audit log from its durable cursor:
        // after each kill it catches up, and holds every committed event
        // exactly once (no line lost, none written twice, none torn).
        let (_, info) = get_json(&http, &format!("{}/api/v1/audit/log", server.url));
        let committed = info["tree_size"].as_u64().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let lines = mirror_indexes(&dir.join("audit"));
            let mut seen = std::collections::HashSet::new();
            for i in &lines {
                assert!(seen.insert(*i), "audit event {i} is mirrored twice");
            }
            if (0..committed).all(|i| seen.contains(&i)) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the mirror did not catch up with {committed} committed events: it has {}",
                seen.len()
            );
            std::thread::yield_now();
        }

        // Label lists are exact whatever the index follower has reached:
        // right after the restart (it may lag) and once it has caught up
        // from its durable cursor, every record is listed under its round
        // exactly once and every acknowledged one is there.
        check_labels(&http, &server.url, round, tree_size, &ids);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, page) = get_json(&http, &format!("{}/api/v1/evidence?limit=1", server.url));
            let through = page["indexed_through"].as_u64().expect("indexed_through");
            assert!(
                through <= tree_size,
                "the index reaches past the log: {through}"
            );
            if through >= tree_size {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the index follower did not catch up with {tree_size} records: at {through}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        check_labels(&http, &server.url, round, tree_size, &ids);

        // Every checkpoint is consistent with every earlier one.
        let mut notes = Vec::new();
        let mut cursor = String::new();
        loop {
            let (_, page) = get_json(
                &http,
                &format!("{}/api/v1/checkpoints?limit=1000{cursor}", server.url),
            );
            for c in page["items"].as_array().unwrap() {
                notes.push(c["note"].as_str().unwrap().to_string());
            }
            match page["next_cursor"].as_str() {
                Some(n) => cursor = format!("&cursor={n}"),
                None => break,
            }
        }
        let cps: Vec<_> = notes
            .iter()
            .map(|n| open_checkpoint(n, &verifiers, None).unwrap().0)
            .collect();
        for w in cps.windows(2) {
            assert!(w[0].size < w[1].size, "checkpoints must grow");
        }
        for (j, new) in cps
            .iter()
            .enumerate()
            .skip(checked_checkpoints.saturating_sub(1))
        {
            // Every tree extends the empty one; RFC 9162 proves from size 1.
            for old in cps[..j].iter().filter(|c| c.size > 0) {
                let (s, p) = get_json(
                    &http,
                    &format!(
                        "{}/api/v1/tree/consistency?from={}&to={}",
                        server.url, old.size, new.size
                    ),
                );
                assert_eq!(s, 200, "consistency {}..{}", old.size, new.size);
                let proof: Vec<Vec<u8>> = p["proof"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|h| STANDARD.decode(h.as_str().unwrap()).unwrap())
                    .collect();
                verify_consistency(old.size, new.size, &proof, &old.root_hash, &new.root_hash)
                    .unwrap_or_else(|e| panic!("fork between {} and {}: {e}", old.size, new.size));
            }
        }
        checked_checkpoints = cps.len();
        let (_, latest) = get_text(&http, &format!("{}/tlog/checkpoint", server.url));
        assert!(latest.starts_with("test.example/crash\n"));

        if round == ROUNDS {
            assert!(
                ids.len() > 100,
                "the load produced too few acknowledgements: {}",
                ids.len()
            );
            eprintln!(
                "crash test: {} acknowledged records, {} checkpoints, {ROUNDS} kills",
                ids.len(),
                cps.len()
            );
            break;
        }

        // Load, then SIGKILL at a moment that varies per round.
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let (url, stop, acked) = (server.url.clone(), stop.clone(), acked.clone());
                std::thread::spawn(move || ingest_until_stopped(url, c, round, stop, acked))
            })
            .collect();
        // The kill comes once this round has a number of acknowledgements
        // that varies per round (polled, with a deadline), not after a
        // fixed time: on a slow machine every round still loads.
        let want = acked.lock().unwrap().len() + 100 + 75 * round;
        let deadline = Instant::now() + Duration::from_secs(60);
        while acked.lock().unwrap().len() < want {
            assert!(
                Instant::now() < deadline,
                "round {round}: fewer than {want} acknowledgements in 60 s"
            );
            std::thread::yield_now();
        }
        server.kill();
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.join().unwrap();
        }
    }
}

/// What each of `n` clients, released at once, got for the same submission
/// (`body` with label `case=<case>`, and `idempotency` as its key if given):
/// the reply's status, leaf index and `duplicate` flag, or `None` where the
/// request failed (the server was killed under it). `started` is passed by
/// every client just before it sends, and by the caller; `replied` counts
/// the replies read.
fn submit_at_once(
    url: &str,
    n: usize,
    case: &str,
    body: &str,
    idempotency: Option<&str>,
    started: Arc<std::sync::Barrier>,
    replied: Arc<AtomicUsize>,
) -> Vec<std::thread::JoinHandle<Option<(u16, u64, bool)>>> {
    (0..n)
        .map(|_| {
            let (url, case, body) = (url.to_string(), case.to_string(), body.to_string());
            let idempotency = idempotency.map(str::to_string);
            let (started, replied) = (started.clone(), replied.clone());
            std::thread::spawn(move || {
                let agent = agent();
                let mut req = agent
                    .post(format!("{url}/api/v1/evidence"))
                    .header("Content-Type", "text/plain")
                    .header("Authorization", common::bearer())
                    .header("X-Evault-Label", format!("case={case}"));
                if let Some(k) = &idempotency {
                    req = req.header("Idempotency-Key", k);
                }
                started.wait();
                let mut resp = req.send(body.as_bytes()).ok()?;
                let status = resp.status().as_u16();
                let v: serde_json::Value =
                    serde_json::from_str(&resp.body_mut().read_to_string().ok()?).ok()?;
                let leaf = v["record"]["leaf_index"].as_u64()?;
                replied.fetch_add(1, Ordering::SeqCst);
                Some((status, leaf, v["duplicate"].as_bool()?))
            })
        })
        .collect()
}

/// Sends the submission from `n` clients at once and waits for every reply:
/// each must be a success naming the same leaf, which is returned with the
/// replies.
fn same_leaf_from(
    url: &str,
    n: usize,
    case: &str,
    body: &str,
    idempotency: Option<&str>,
) -> (u64, Vec<(u16, u64, bool)>) {
    let started = Arc::new(std::sync::Barrier::new(n));
    let replied = Arc::default();
    let replies: Vec<(u16, u64, bool)> =
        submit_at_once(url, n, case, body, idempotency, started, replied)
            .into_iter()
            .map(|h| h.join().unwrap().expect("every client got a reply"))
            .collect();
    for (status, _, _) in &replies {
        assert!(
            *status == 200 || *status == 201,
            "case {case}: a submission failed with {status}"
        );
    }
    let leaf = replies[0].1;
    assert!(
        replies.iter().all(|r| r.1 == leaf),
        "case {case}: {n} clients sending one record got different leaves: {replies:?}"
    );
    (leaf, replies)
}

/// How many records carry label `case=<case>`.
fn leaves_labelled(http: &ureq::Agent, url: &str, case: &str) -> usize {
    let (status, page) = get_json(http, &format!("{url}/api/v1/evidence?label=case%3D{case}"));
    assert_eq!(status, 200);
    page["items"].as_array().unwrap().len()
}

/// Exactly once (storage v2, issue #13): one record sent by 32 clients at
/// once is one leaf, and so is one record sent with one idempotency key.
/// A third record is in flight from 32 clients when the server is killed
/// with SIGKILL, the moment they send; a fourth is killed right after its
/// first acknowledgement. After the restart the same four submissions from
/// 32 clients find one leaf apiece: the first two where they were, the
/// third whether or not it was committed before the kill, the fourth at
/// the leaf acknowledged.
#[test]
fn one_record_from_32_clients_is_one_leaf_across_a_kill() {
    const N: usize = 32;
    let dir = tempfile::tempdir().unwrap();
    let http = agent();

    let server = Server::start(dir.path(), &[]);
    let (a, replies) = same_leaf_from(&server.url, N, "a", "one record, 32 senders", None);
    assert_eq!(
        replies.iter().filter(|r| !r.2).count(),
        1,
        "exactly one sender logs the record, the others are told it is a duplicate: {replies:?}"
    );
    let (b, _) = same_leaf_from(&server.url, N, "b", "one key, 32 senders", Some("key-b"));
    assert_ne!(a, b);

    // The third record is in flight when the server dies: killed the moment
    // the 32 requests are sent (it may or may not be committed).
    let kill_during = |server: Server, case: &str, body: &str, after_replies: usize| {
        let started = Arc::new(std::sync::Barrier::new(N + 1));
        let replied = Arc::new(AtomicUsize::new(0));
        let in_flight = submit_at_once(
            &server.url,
            N,
            case,
            body,
            None,
            started.clone(),
            replied.clone(),
        );
        started.wait();
        while replied.load(Ordering::SeqCst) < after_replies {
            std::thread::yield_now();
        }
        server.kill();
        let acked: Vec<u64> = in_flight
            .into_iter()
            .filter_map(|h| h.join().unwrap())
            .map(|r| r.1)
            .collect();
        acked
    };
    let acked_c = kill_during(server, "c", "in flight at the kill", 0);

    // The fourth is acknowledged to one sender, then the server dies: it
    // is committed, and its 31 twins may be anywhere on their way.
    let server = Server::start(dir.path(), &[]);
    let acked_d = kill_during(server, "d", "acknowledged, then the kill", 1);
    assert!(!acked_d.is_empty());

    let server = Server::start(dir.path(), &[]);
    let (a2, replies) = same_leaf_from(&server.url, N, "a", "one record, 32 senders", None);
    assert_eq!(a2, a, "the record moved to another leaf after the restart");
    assert!(
        replies.iter().all(|r| r.2),
        "after the restart every sender is told the record is a duplicate: {replies:?}"
    );
    let (b2, _) = same_leaf_from(&server.url, N, "b", "one key, 32 senders", Some("key-b"));
    assert_eq!(
        b2, b,
        "the idempotency key led to another leaf after the restart"
    );
    let (c, _) = same_leaf_from(&server.url, N, "c", "in flight at the kill", None);
    assert!(
        acked_c.iter().all(|&l| l == c),
        "a reply acknowledged before the kill named leaf {acked_c:?}, the record is now at {c}"
    );
    let (d, replies) = same_leaf_from(&server.url, N, "d", "acknowledged, then the kill", None);
    assert!(
        acked_d.iter().all(|&l| l == d),
        "a reply acknowledged before the kill named leaf {acked_d:?}, the record is now at {d}"
    );
    assert!(
        replies.iter().all(|r| r.2),
        "an acknowledged record is a duplicate for every later sender: {replies:?}"
    );

    for case in ["a", "b", "c", "d"] {
        assert_eq!(leaves_labelled(&http, &server.url, case), 1, "case {case}");
    }
    let (_, log) = get_json(&http, &format!("{}/api/v1/log", server.url));
    assert_eq!(
        log["tree_size"].as_u64(),
        Some(4),
        "four records were sent: the log holds {log}"
    );
    eprintln!(
        "exactly once: 4 records x {N} senders, 2 kills = 4 leaves; replies before a kill: {} of {N} (killed at send), {} of {N} (killed after the first)",
        acked_c.len(),
        acked_d.len()
    );
}
