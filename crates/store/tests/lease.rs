//! The sequencing lease on PostgreSQL (issue 14, step 7): one store at a
//! time writes the logs, judged on the database's clock, and a store that
//! lost the lease writes nothing. Each test makes and drops its own
//! database; skipped loudly without a server, unless
//! `EVAULT_REQUIRE_POSTGRES=1`.

use std::time::Duration;

use evault_merkle::leaf_hash;
use evault_merkle::tiles::TileBuilder;
use evault_store::postgres::{PgStore, migrate};
use evault_store::testing::postgres::TestDb;
use evault_store::testing::rows;
use evault_store::{
    AppendBatch, Coordination, EvidenceIndex, LogId, LogStore, StoreError, StoredCheckpoint,
};

const LONG: Duration = Duration::from_secs(600);

/// Appends records `[tb.size(), tb.size() + n)`.
fn append(store: &PgStore, tb: &mut TileBuilder, n: u64) -> Result<(), StoreError> {
    let old = tb.size();
    let records = rows(old..old + n);
    let mut next = tb.clone();
    let leaves: Vec<_> = records.iter().map(|r| leaf_hash(&r.leaf_data)).collect();
    let tiles = next.append(&leaves);
    store.append(&AppendBatch::new(old, &records, &tiles))?;
    *tb = next;
    Ok(())
}

fn checkpoint(size: u64) -> StoredCheckpoint {
    StoredCheckpoint {
        size,
        note: format!("note of size {size}\n"),
        created_at_ms: 1,
    }
}

fn fenced<T: std::fmt::Debug>(r: Result<T, StoreError>, what: &str) -> String {
    match r {
        Err(StoreError::Fenced(why)) => why,
        other => panic!("{what}: expected Fenced, got {other:?}"),
    }
}

fn open(db: &TestDb) -> PgStore {
    PgStore::open(db.url()).expect("open")
}

/// Appends, checkpoints and the index follower's writes need the lease;
/// a store whose lease expired on the database's clock (while its own
/// ttl still runs) or was taken over writes nothing; the next holder's
/// epoch is one higher, and `commits` says which epoch wrote what.
#[test]
fn only_the_lease_holder_writes_the_logs() {
    let Some(db) = TestDb::create("only_the_lease_holder_writes_the_logs") else {
        return;
    };
    migrate(db.url()).unwrap();
    let (a, b) = (open(&db), open(&db));
    let mut tb = TileBuilder::new();

    // No lease yet: nothing is written.
    let why = fenced(append(&a, &mut tb, 3), "append without a lease");
    assert!(why.contains("no sequencing lease"), "{why}");
    let state = a.lease().unwrap();
    assert_eq!((state.epoch, state.remaining), (0, None));

    let lease = a.acquire("node-a", "10.0.0.1:9000", LONG).unwrap().unwrap();
    assert_eq!((lease.epoch, lease.node.as_str()), (1, "node-a"));
    assert_eq!(a.held(), Some(lease));
    assert_eq!(b.acquire("node-b", "", LONG).unwrap(), None, "held by a");
    let state = b.lease().unwrap();
    assert_eq!(
        (state.epoch, state.holder.as_str(), state.advertise.as_str()),
        (1, "node-a", "10.0.0.1:9000")
    );
    assert!(
        state
            .remaining
            .is_some_and(|r| r > Duration::ZERO && r <= LONG)
    );
    assert!(a.renew().unwrap());

    append(&a, &mut tb, 3).unwrap();
    a.put_checkpoint(LogId::Evidence, &checkpoint(3)).unwrap();
    assert_eq!(a.index_evidence(3, 100).unwrap(), 3);
    append(&a, &mut tb, 2).unwrap();

    // Expired on the database's clock; a's own ttl has ten minutes left.
    db.execute("UPDATE lease SET expires_at = clock_timestamp() - interval '1 millisecond'")
        .unwrap();
    let why = fenced(append(&a, &mut tb, 4), "append past expiry");
    assert!(why.contains("expired"), "{why}");
    fenced(
        a.put_checkpoint(LogId::Evidence, &checkpoint(5)),
        "checkpoint past expiry",
    );
    fenced(a.index_evidence(5, 100), "follower past expiry");
    assert_eq!(a.tree_size(LogId::Evidence).unwrap(), 5);
    assert_eq!(a.indexed_through().unwrap(), 3);
    assert_eq!(
        a.latest_checkpoint(LogId::Evidence)
            .unwrap()
            .map(|c| c.size),
        Some(3)
    );
    assert!(!a.renew().unwrap(), "an expired lease is lost, not renewed");
    assert_eq!(a.held(), None);

    // b takes over: epoch 2; a, still running, is fenced off.
    let lease = b.acquire("node-b", "", LONG).unwrap().unwrap();
    assert_eq!(lease.epoch, 2);
    let why = fenced(append(&a, &mut tb, 1), "append by the old holder");
    assert!(why.contains("no sequencing lease"), "{why}");
    append(&b, &mut tb, 4).unwrap();
    assert_eq!(b.tree_size(LogId::Evidence).unwrap(), 9);
    assert_eq!(
        db.query_text(
            "SELECT string_agg(epoch || ':' || node || ':' || evidence_old || '-' || evidence_new, \
             ',' ORDER BY seq) FROM commits"
        )
        .as_deref(),
        Some("1:node-a:0-3,1:node-a:3-5,2:node-b:5-9")
    );

    // Given up: another takes it at once, with the next epoch.
    b.release().unwrap();
    assert_eq!(b.held(), None);
    assert_eq!(b.lease().unwrap().remaining, None);
    assert_eq!(a.acquire("node-a", "", LONG).unwrap().unwrap().epoch, 3);
    // A store dropped gives its lease up too.
    drop(a);
    assert_eq!(b.acquire("node-b", "", LONG).unwrap().unwrap().epoch, 4);
}

/// A takeover is ordered after the commit in flight: it waits for the
/// fenced transaction's lock on the lease row, and that transaction's
/// writes land before the new epoch begins.
#[test]
fn a_takeover_waits_for_the_commit_in_flight() {
    let Some(db) = TestDb::create("a_takeover_waits_for_the_commit_in_flight") else {
        return;
    };
    migrate(db.url()).unwrap();
    let (a, b) = (open(&db), open(&db));
    let epoch = a
        // Long enough to open the transaction below on a loaded machine.
        .acquire("node-a", "", Duration::from_secs(3))
        .unwrap()
        .unwrap()
        .epoch;
    // A fenced transaction, held open (ttl 0 sets no timeouts in it).
    let mut in_flight = db.session();
    in_flight
        .execute(&format!("BEGIN; SELECT evault_fence({epoch}, 0)"))
        .unwrap();
    // The lease expires on the database's clock while it is open.
    poll(
        || b.lease().unwrap().remaining.is_none(),
        "the lease to expire",
    );
    std::thread::scope(|s| {
        let taker = s.spawn(|| b.acquire("node-b", "", LONG).unwrap());
        poll(
            || {
                db.query_text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                     AND wait_event_type = 'Lock' AND query LIKE 'UPDATE lease%'",
                )
                .as_deref()
                    == Some("1")
            },
            "the takeover to wait for the lease row",
        );
        assert!(!taker.is_finished());
        in_flight
            .execute(
                "INSERT INTO commits (epoch, node, evidence_old, evidence_new, audit_old, audit_new) \
                 VALUES (1, 'in-flight', 0, 0, 0, 0); COMMIT",
            )
            .unwrap();
        let lease = taker.join().unwrap().expect("taken once the commit ended");
        assert_eq!(lease.epoch, epoch + 1);
    });
    assert_eq!(
        db.query_text("SELECT string_agg(node, ',') FROM commits")
            .as_deref(),
        Some("in-flight")
    );
}

/// A holder stopped inside a fenced transaction (SIGSTOP, a cut network)
/// does not keep the lease row locked: the fence bounds the transaction's
/// idle time by the lease's ttl, and the server ends it.
#[test]
fn a_stalled_fenced_transaction_is_ended_by_the_server() {
    let Some(db) = TestDb::create("a_stalled_fenced_transaction_is_ended_by_the_server") else {
        return;
    };
    migrate(db.url()).unwrap();
    let a = open(&db);
    let epoch = a.acquire("node-a", "", LONG).unwrap().unwrap().epoch;
    let mut stalled = db.session();
    stalled
        .execute(&format!("BEGIN; SELECT evault_fence({epoch}, 200)"))
        .unwrap();
    poll(
        || {
            db.query_text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND state LIKE 'idle in transaction%'",
            )
            .as_deref()
                == Some("0")
        },
        "the server to end the stalled transaction",
    );
    assert!(stalled.execute("COMMIT").is_err(), "its session is gone");
    // The row is free: the holder renews at once.
    assert!(a.renew().unwrap());
}

/// No SQL path skips the fence: an INSERT into any log table outside a
/// fenced transaction is refused by trigger, to the owner too, and so is
/// one under a forged epoch setting.
#[test]
fn an_insert_outside_the_fence_is_refused() {
    let Some(db) = TestDb::create("an_insert_outside_the_fence_is_refused") else {
        return;
    };
    migrate(db.url()).unwrap();
    for table in [
        "entries",
        "payloads",
        "audit_events",
        "tiles",
        "tile_segments",
        "checkpoints",
        "commits",
        "record_labels",
        "erasures",
        "erased_payloads",
    ] {
        let err = db
            .execute(&format!("INSERT INTO {table} DEFAULT VALUES"))
            .expect_err(table);
        assert!(err.contains("outside the lease fence"), "{table}: {err}");
    }
    let err = db
        .execute(
            "BEGIN; SELECT set_config('evault.epoch', '7', true); \
             INSERT INTO commits (epoch, node, evidence_old, evidence_new, audit_old, audit_new) \
             VALUES (7, 'forged', 0, 0, 0, 0); COMMIT",
        )
        .expect_err("a forged epoch");
    assert!(err.contains("outside the lease fence"), "{err}");
    let err = db
        .execute("BEGIN; SELECT evault_fence(0, 0); COMMIT")
        .expect_err("epoch 0 never holds an unexpired lease");
    assert!(err.contains("fenced"), "{err}");
    assert_eq!(
        db.query_text("SELECT count(*) FROM commits").as_deref(),
        Some("0")
    );
}

/// Polls `done` until it holds, for at most a minute (a deadline, not a
/// timing assertion).
fn poll(mut done: impl FnMut() -> bool, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "gave up waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A holder stuck inside a fenced transaction that no timeout ends (a
/// backend waiting for COPY data acts on none: shown here by a fence with
/// no timeouts) does not keep the lease: once it has expired, the next
/// node's `acquire` ends that transaction, which commits nothing.
#[test]
fn a_holder_stuck_past_its_lease_is_ended_by_the_next() {
    let Some(db) = TestDb::create("a_holder_stuck_past_its_lease_is_ended_by_the_next") else {
        return;
    };
    migrate(db.url()).unwrap();
    let (a, b) = (open(&db), open(&db));
    let ttl = Duration::from_millis(300);
    let epoch = a.acquire("node-a", "", ttl).unwrap().unwrap().epoch;
    let mut stuck = db.session();
    stuck
        .execute(&format!("BEGIN; SELECT evault_fence({epoch}, 0)"))
        .unwrap();
    poll(
        || b.lease().unwrap().remaining.is_none(),
        "the lease to expire",
    );
    let mut taken = None;
    poll(
        || {
            taken = b.acquire("node-b", "", ttl).unwrap();
            taken.is_some()
        },
        "node-b to take the lease",
    );
    assert_eq!(taken.unwrap().epoch, epoch + 1);
    let late = stuck.execute(
        "INSERT INTO commits (epoch, node, evidence_old, evidence_new, audit_old, audit_new) \
         VALUES (1, 'stuck', 0, 0, 0, 0); COMMIT",
    );
    assert!(late.is_err(), "the stuck transaction was ended");
    assert_eq!(
        db.query_text("SELECT count(*) FROM commits").as_deref(),
        Some("0")
    );
}
