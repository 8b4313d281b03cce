//! SIGTERM under load: `evault serve` stops taking requests, lets the
//! vault commit what it accepted, signs a final checkpoint of each log and
//! exits, well before its (hour-long) checkpoint interval would have. Every
//! record acknowledged before the signal is under that checkpoint.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Server, agent, get_json};
use evault_note::{Ed25519Verifier, Verifiers};
use evault_store::{LogId, LogStore, SqliteStore};
use evault_verify::open_checkpoint;

fn ingest(url: String, stop: Arc<AtomicBool>, acked: Arc<Mutex<Vec<u64>>>) {
    let agent = agent();
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let resp = agent
            .post(format!("{url}/api/v1/evidence"))
            .header("Content-Type", "text/plain")
            .header("Authorization", common::bearer())
            .send(format!("record {i} of {:?}", std::thread::current().id()).as_bytes());
        // Refused or cut off once the server stops: no acknowledgement.
        let Ok(mut resp) = resp else { return };
        if resp.status().as_u16() != 201 {
            return;
        }
        let Ok(text) = resp.body_mut().read_to_string() else {
            return;
        };
        let v: serde_json::Value = serde_json::from_str(&text).expect("201 body is JSON");
        let index = v["record"]["leaf_index"].as_u64().expect("leaf index");
        acked.lock().unwrap().push(index);
    }
}

#[test]
fn sigterm_under_load_leaves_every_acknowledged_record_under_a_final_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--checkpoint-interval", "1h"]);
    let (_, log) = get_json(&agent(), &format!("{}/api/v1/log", server.url));
    let key = Ed25519Verifier::from_verifier_key(log["verifier_key"].as_str().unwrap()).unwrap();
    let verifiers = Verifiers::new().with(key).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<u64>>> = Arc::default();
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (url, stop, acked) = (server.url.clone(), stop.clone(), acked.clone());
            std::thread::spawn(move || ingest(url, stop, acked))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < 300 {
        assert!(Instant::now() < deadline, "the load never got going");
        std::thread::yield_now();
    }
    // The clients keep sending while the server stops.
    assert!(
        server.terminate(Duration::from_secs(30)),
        "evault serve exits 0 on SIGTERM"
    );
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let highest = *acked.iter().max().unwrap();

    let store = SqliteStore::open(&dir.path().join("evault.db")).unwrap();
    let size = store.tree_size(LogId::Evidence).unwrap();
    let cp = store.latest_checkpoint(LogId::Evidence).unwrap().unwrap();
    assert!(
        cp.size > highest,
        "the final checkpoint (size {}) must cover every acknowledged record (up to leaf \
         {highest}; {} acknowledged)",
        cp.size,
        acked.len()
    );
    assert_eq!(cp.size, size, "the final checkpoint covers the whole tree");
    let (body, _) = open_checkpoint(&cp.note, &verifiers, Some("test.example/crash")).unwrap();
    assert_eq!(body.size, size);
    // The audit log got its final checkpoint too.
    let audit = store.latest_checkpoint(LogId::Audit).unwrap().unwrap();
    assert_eq!(audit.size, store.tree_size(LogId::Audit).unwrap());
    eprintln!(
        "shutdown test: {} acknowledged, final checkpoint {}, audit {}",
        acked.len(),
        cp.size,
        audit.size
    );
}
