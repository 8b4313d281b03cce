//! The PostgreSQL schema's migrations (issue 14, step 1a): each test makes
//! and drops its own database on the server of `EVAULT_TEST_POSTGRES`
//! (default: the local one); skipped loudly without one, unless
//! `EVAULT_REQUIRE_POSTGRES=1`.

use evault_store::StoreError;
use evault_store::postgres::{LATEST, MIGRATIONS, MigrateReport, check_schema, migrate};
use evault_store::testing::postgres::TestDb;

#[test]
fn migrate_creates_the_schema_once() {
    let Some(db) = TestDb::create("migrate_creates_the_schema_once") else {
        return;
    };
    let err = check_schema(db.url())
        .expect_err("an empty database is refused")
        .to_string();
    assert!(
        err.contains("has no evault schema") && err.contains("evault migrate --store"),
        "{err}"
    );

    assert_eq!(
        migrate(db.url()).unwrap(),
        MigrateReport {
            from: 0,
            to: LATEST
        }
    );
    assert_eq!(check_schema(db.url()).unwrap(), LATEST);
    assert_eq!(
        db.query_text("SELECT string_agg(log || '=' || size, ',' ORDER BY log) FROM log_state")
            .as_deref(),
        Some("audit=0,evidence=0")
    );
    // Again: nothing to do, nothing applied twice.
    assert_eq!(
        migrate(db.url()).unwrap(),
        MigrateReport {
            from: LATEST,
            to: LATEST
        }
    );
    assert_eq!(
        db.query_text("SELECT count(*) FROM evault_schema")
            .as_deref(),
        Some(LATEST.to_string().as_str())
    );
    assert_eq!(
        db.query_text("SELECT string_agg(sha256, ',' ORDER BY version) FROM evault_schema"),
        Some(
            MIGRATIONS
                .iter()
                .map(|m| m.sha256())
                .collect::<Vec<_>>()
                .join(",")
        )
    );
}

#[test]
fn concurrent_migrations_apply_each_step_once() {
    let Some(db) = TestDb::create("concurrent_migrations_apply_each_step_once") else {
        return;
    };
    let url = db.url().to_string();
    let reports: Vec<MigrateReport> = std::thread::scope(|s| {
        let runs: Vec<_> = (0..4).map(|_| s.spawn(|| migrate(&url).unwrap())).collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    // Exactly one call found the database empty; the others found it done.
    assert_eq!(
        reports.iter().filter(|r| r.from == 0).count(),
        1,
        "{reports:?}"
    );
    assert!(reports.iter().all(|r| r.to == LATEST));
    assert_eq!(check_schema(&url).unwrap(), LATEST);
}

#[test]
fn a_newer_schema_is_refused_and_left_alone() {
    let Some(db) = TestDb::create("a_newer_schema_is_refused_and_left_alone") else {
        return;
    };
    migrate(db.url()).unwrap();
    let newer = LATEST + 1;
    db.execute(&format!(
        "INSERT INTO evault_schema (version, name, sha256) VALUES ({newer}, 'future', 'x')"
    ))
    .unwrap();
    for result in [
        check_schema(db.url()).map(|_| ()),
        migrate(db.url()).map(|_| ()),
    ] {
        match result {
            Err(StoreError::SchemaTooNew { found, supported }) => {
                assert_eq!((found, supported), (newer, LATEST));
            }
            other => panic!("expected SchemaTooNew, got {other:?}"),
        }
    }
    assert_eq!(
        db.query_text("SELECT max(version) FROM evault_schema")
            .as_deref(),
        Some(newer.to_string().as_str())
    );
}

#[test]
fn an_edited_migration_is_refused() {
    let Some(db) = TestDb::create("an_edited_migration_is_refused") else {
        return;
    };
    migrate(db.url()).unwrap();
    db.execute("UPDATE evault_schema SET sha256 = 'edited' WHERE version = 1")
        .unwrap();
    for err in [
        check_schema(db.url()).unwrap_err().to_string(),
        migrate(db.url()).unwrap_err().to_string(),
    ] {
        assert!(
            err.contains("migration 1 (log) was applied with other SQL"),
            "{err}"
        );
    }
}

#[test]
fn an_empty_record_of_migrations_is_unmigrated() {
    let Some(db) = TestDb::create("an_empty_record_of_migrations_is_unmigrated") else {
        return;
    };
    // Only an empty record table: as if created by a build without migrations.
    db.execute("CREATE TABLE evault_schema (version integer PRIMARY KEY, name text NOT NULL, sha256 text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
        .unwrap();
    let err = check_schema(db.url()).unwrap_err().to_string();
    assert!(err.contains("has no evault schema"), "{err}");
    assert_eq!(
        migrate(db.url()).unwrap(),
        MigrateReport {
            from: 0,
            to: LATEST
        }
    );
}

#[test]
fn a_failed_migration_writes_nothing() {
    let Some(db) = TestDb::create("a_failed_migration_writes_nothing") else {
        return;
    };
    // A table in the way of the first migration: it fails, and the
    // record of migrations it created in the same transaction is gone too.
    db.execute("CREATE TABLE log_state (x integer)").unwrap();
    let err = migrate(db.url()).unwrap_err().to_string();
    assert!(err.contains("log_state"), "{err}");
    assert_eq!(db.query_text("SELECT to_regclass('evault_schema')"), None);
}

#[test]
fn an_unreachable_server_is_an_error_without_the_password() {
    // Port 1 on loopback: nothing listens there.
    let url = "postgres://evault:s3cret-pw@127.0.0.1:1/evault?connect_timeout=2";
    let err = check_schema(url).unwrap_err().to_string();
    assert!(
        err.contains("cannot connect to postgres://evault:***@127.0.0.1:1/evault"),
        "{err}"
    );
    assert!(!err.contains("s3cret-pw"), "{err}");
    // Asked for TLS, with a root certificate that is not there: refused
    // before anything is sent, naming the file.
    let err = migrate("postgres://h/db?sslmode=verify-full&sslrootcert=/nonexistent/root.pem")
        .unwrap_err()
        .to_string();
    assert!(err.contains("sslrootcert /nonexistent/root.pem"), "{err}");
}

/// `PgStore::open` checks the schema before anything else: an unmigrated
/// or older database is refused naming the command that fixes it, a newer
/// one is `SchemaTooNew`.
#[test]
fn the_store_opens_only_this_builds_schema() {
    use evault_store::postgres::PgStore;
    let Some(db) = TestDb::create("the_store_opens_only_this_builds_schema") else {
        return;
    };
    let err = PgStore::open(db.url()).expect_err("unmigrated").to_string();
    assert!(
        err.contains("has no evault schema") && err.contains("evault migrate --store"),
        "{err}"
    );
    // Behind: only the first migration applied, as an older build would.
    db.execute(&format!(
        "CREATE TABLE evault_schema (version integer PRIMARY KEY, name text NOT NULL, \
         sha256 text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now()); {} \
         INSERT INTO evault_schema (version, name, sha256) VALUES (1, 'log', '{}')",
        MIGRATIONS[0].sql,
        MIGRATIONS[0].sha256()
    ))
    .unwrap();
    let err = PgStore::open(db.url()).expect_err("behind").to_string();
    assert!(
        err.contains("has evault schema version 1") && err.contains("evault migrate --store"),
        "{err}"
    );
    migrate(db.url()).unwrap();
    PgStore::open(db.url()).expect("migrated");
    db.execute(&format!(
        "INSERT INTO evault_schema (version, name, sha256) VALUES ({}, 'future', 'x')",
        LATEST + 1
    ))
    .unwrap();
    assert!(matches!(
        PgStore::open(db.url()),
        Err(StoreError::SchemaTooNew { found, supported }) if found == LATEST + 1 && supported == LATEST
    ));
}

/// A call that cannot finish by its deadline (here: a table locked by
/// another session) fails as `Unavailable`, which the vault answers with a
/// 503; the store works again once the lock is gone.
#[test]
fn a_call_past_its_deadline_is_unavailable() {
    use evault_store::postgres::{PgOptions, PgStore};
    use evault_store::{LogId, LogStore};
    let Some(db) = TestDb::create("a_call_past_its_deadline_is_unavailable") else {
        return;
    };
    migrate(db.url()).unwrap();
    let store = PgStore::open_with(
        db.url(),
        PgOptions {
            call_timeout: std::time::Duration::from_millis(300),
            ..PgOptions::default()
        },
    )
    .unwrap();
    assert_eq!(store.tree_size(LogId::Evidence).unwrap(), 0);
    let mut locker = db.session();
    locker
        .execute("BEGIN; LOCK TABLE log_state IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    match store.tree_size(LogId::Evidence) {
        Err(StoreError::Unavailable(why)) => assert!(!why.is_empty()),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    locker.execute("ROLLBACK").unwrap();
    assert_eq!(store.tree_size(LogId::Evidence).unwrap(), 0);
}

/// The logs are append-only in the database itself, twice over: the
/// vault's role (made by `grant_app_role`) has no UPDATE, DELETE or
/// TRUNCATE on the log tables, and triggers refuse them to anyone, a
/// superuser included (each shown alone). Erasure's deletes still work.
#[test]
fn the_logs_are_append_only_by_privilege_and_by_trigger() {
    use evault_store::postgres::{APPEND_ONLY, PgStore, grant_app_role};
    use evault_store::testing::rows;
    use evault_store::{AppendBatch, LogStore};
    let Some(db) = TestDb::create("the_logs_are_append_only_by_privilege_and_by_trigger") else {
        return;
    };
    migrate(db.url()).unwrap();
    let role = db.role_name("app");
    grant_app_role(db.url(), &role, Some("s3cret pass'word")).unwrap();
    // Again: the same grants, no error.
    grant_app_role(db.url(), &role, None).unwrap();
    assert!(grant_app_role(db.url(), "Bad-Name", None).is_err());

    // The vault works as its role: an append, a checkpoint, the follower.
    let app_url = db.url_as(&role, "s3cret pass'word");
    let store = PgStore::open(&app_url).unwrap();
    evault_store::testing::postgres::take_lease(&db, &store);
    let records = rows(0..3);
    let mut tb = evault_merkle::tiles::TileBuilder::new();
    let leaves: Vec<_> = records
        .iter()
        .map(|r| evault_merkle::leaf_hash(&r.leaf_data))
        .collect();
    let tiles = tb.append(&leaves);
    store
        .append(&AppendBatch::new(0, &records, &tiles))
        .unwrap();
    use evault_store::EvidenceIndex;
    assert_eq!(store.index_evidence(3, 10).unwrap(), 3);
    drop(store);

    let mut app = db.session_at(&app_url);
    for table in APPEND_ONLY {
        for sql in [
            format!("UPDATE {table} SET {} = {0}", first_column(table)),
            format!("DELETE FROM {table}"),
            format!("TRUNCATE {table} CASCADE"),
        ] {
            let err = app.execute(&sql).expect_err(&sql);
            assert!(
                err.contains("permission denied"),
                "{sql} as the vault: {err}"
            );
            // The owner (a superuser here) is stopped by the trigger.
            let err = db.execute(&sql).expect_err(&sql);
            assert!(err.contains("append-only"), "{sql} as the owner: {err}");
        }
    }
    // Erasure's deletes are allowed to the vault; updates of payloads are
    // not, by trigger.
    app.execute("DELETE FROM payloads WHERE leaf_index = 0")
        .unwrap();
    let err = db
        .execute("UPDATE payloads SET data = ''::bytea")
        .expect_err("payloads are never rewritten");
    assert!(err.contains("append-only"), "{err}");
    assert_eq!(
        db.query_text("SELECT count(*) FROM entries").as_deref(),
        Some("3")
    );
}

/// A column of each append-only table, to write an UPDATE of it.
fn first_column(table: &str) -> &'static str {
    match table {
        "tiles" | "tile_segments" => "level",
        "checkpoints" => "size",
        "commits" => "epoch",
        _ => "leaf_index",
    }
}

/// `evault migrate` on a fresh server needs no `createdb`: the database
/// is made if missing (once, also when two ask at once), then left alone.
#[test]
fn a_missing_database_is_created_once() {
    use evault_store::postgres::create_database_if_missing;
    let Some(db) = TestDb::create("a_missing_database_is_created_once") else {
        return;
    };
    // A name of the test's own (a role name is, and so is a database's).
    let name = db.role_name("made");
    let url = {
        let base = db.url();
        let cut = base.rfind('/').expect("a URL with a database");
        format!("{}/{name}", &base[..cut])
    };
    assert!(check_schema(&url).is_err(), "no database yet");
    let results: Vec<bool> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|_| s.spawn(|| create_database_if_missing(&url).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results.iter().filter(|c| **c).count(), 1, "{results:?}");
    assert!(!create_database_if_missing(&url).unwrap());
    migrate(&url).unwrap();
    assert_eq!(check_schema(&url).unwrap(), LATEST);
    db.drop_database(&name);
}

/// The keystore table: versions count up from 1, the latest is in force,
/// writers never interleave (each edit sees the one before it), an edit
/// that refuses writes nothing, and the vault's role may add versions but
/// never change or delete one.
#[test]
fn the_keystore_keeps_versions_and_serialises_writers() {
    use evault_store::postgres::{PgStore, grant_app_role};
    let Some(db) = TestDb::create("the_keystore_keeps_versions_and_serialises_writers") else {
        return;
    };
    migrate(db.url()).unwrap();
    let role = db.role_name("app");
    grant_app_role(db.url(), &role, Some("pw-of-the-app")).unwrap();
    let app_url = db.url_as(&role, "pw-of-the-app");
    let store = std::sync::Arc::new(PgStore::open(&app_url).unwrap());
    assert_eq!(store.keystore_version().unwrap(), 0);
    assert_eq!(store.keystore_latest().unwrap(), None);

    // A refused edit writes nothing; one that changes nothing neither.
    let refused = store
        .keystore_write(|_| -> Result<(Option<String>, ()), String> { Err("no".into()) })
        .unwrap();
    assert_eq!(refused, Err("no".to_string()));
    assert_eq!(
        store.keystore_write(|_| Ok((None, ()))).unwrap(),
        Ok((0, ()))
    );
    assert_eq!(store.keystore_version().unwrap(), 0);

    // Two writers, each adding its items one edit at a time: every edit
    // sees the one before, so no item is lost.
    let writers: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|name| {
            let store = std::sync::Arc::clone(&store);
            std::thread::spawn(move || {
                for i in 0..15 {
                    let (version, ()) = store
                        .keystore_write(|latest| {
                            let mut doc = latest.map(|v| v.document.clone()).unwrap_or_default();
                            doc.push_str(&format!("{name}{i},"));
                            Ok((Some(doc), ()))
                        })
                        .unwrap()
                        .unwrap();
                    assert!(version >= 1);
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let latest = store.keystore_latest().unwrap().expect("a version");
    assert_eq!(latest.version, 30);
    assert_eq!(store.keystore_version().unwrap(), 30);
    // Its debug form never shows the document (it holds secrets).
    let shown = format!("{latest:?}");
    assert!(shown.contains("30") && !shown.contains("a0,"), "{shown}");
    for name in ["a", "b"] {
        for i in 0..15 {
            assert!(
                latest.document.contains(&format!("{name}{i},")),
                "{name}{i} lost"
            );
        }
    }

    // The vault's role adds versions only.
    let mut app = db.session_at(&app_url);
    for sql in [
        "UPDATE keystore SET document = ''",
        "DELETE FROM keystore",
        "TRUNCATE keystore",
    ] {
        let err = app.execute(sql).expect_err(sql);
        assert!(err.contains("permission denied"), "{sql}: {err}");
    }
    // The owner may prune old versions (they hold revoked keys' secrets).
    db.execute("DELETE FROM keystore WHERE version < 30")
        .unwrap();
    assert_eq!(store.keystore_latest().unwrap().unwrap(), latest);
}

/// A TCP relay to the test server that can be cut: the connections it
/// carries are shut, and new ones are accepted and closed at once (as a
/// restarting database does), each counted.
struct Relay {
    url: String,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    refused: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    carried: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Relay {
    /// A relay to the server of `url`; its own URL names the relay.
    fn to(url: &str) -> Relay {
        use std::net::{TcpListener, TcpStream};
        use std::sync::atomic::Ordering;
        // postgres://user@host:port/db: the part between '@' and '/'.
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        let at = rest.find('@').map_or(0, |i| i + 1);
        let end = rest[at..].find('/').map_or(rest.len(), |i| at + i);
        let upstream = rest[at..end].to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let relay = Relay {
            url: url.replacen(&upstream, &listener.local_addr().unwrap().to_string(), 1),
            cut: Default::default(),
            refused: Default::default(),
            carried: Default::default(),
        };
        let (cut, refused, carried) = (
            relay.cut.clone(),
            relay.refused.clone(),
            relay.carried.clone(),
        );
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if cut.load(Ordering::SeqCst) {
                    refused.fetch_add(1, Ordering::SeqCst);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let mut held = carried.lock().unwrap();
                for (from, to) in [(&client, &server), (&server, &client)] {
                    let (mut from, mut to) = (from.try_clone().unwrap(), to.try_clone().unwrap());
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
                held.push(client);
                held.push(server);
            }
        });
        relay
    }

    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for s in self.carried.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// Connections accepted and closed while cut.
    fn refused(&self) -> usize {
        self.refused.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// With the database gone, a store does not open a connection for every
/// call: after a failed attempt, calls are refused at once (Unavailable,
/// saying when the next attempt is) until the backoff has passed; once
/// the database is back, the store works again by itself.
#[test]
fn a_lost_database_is_reconnected_with_backoff() {
    use evault_store::postgres::{PgOptions, PgStore};
    use evault_store::{LogId, LogStore};
    use std::time::{Duration, Instant};
    let Some(db) = TestDb::create("a_lost_database_is_reconnected_with_backoff") else {
        return;
    };
    migrate(db.url()).unwrap();
    let relay = Relay::to(db.url());
    let backoff = Duration::from_millis(400);
    let store = PgStore::open_with(
        &relay.url,
        PgOptions {
            pool_size: 2,
            call_timeout: Duration::from_secs(10),
            reconnect_backoff: backoff,
            reconnect_backoff_max: backoff,
            ..PgOptions::default()
        },
    )
    .unwrap();
    assert_eq!(store.tree_size(LogId::Evidence).unwrap(), 0);

    relay.cut();
    let calls = 50;
    let started = Instant::now();
    let mut waiting = 0;
    for _ in 0..calls {
        match store.tree_size(LogId::Evidence) {
            Err(StoreError::Unavailable(why)) => {
                if why.contains("reconnect backoff") {
                    assert!(why.contains("next attempt to connect is in"), "{why}");
                    waiting += 1;
                }
            }
            other => panic!("expected Unavailable with the database cut off, got {other:?}"),
        }
    }
    let elapsed = started.elapsed();
    // One attempt, then none until at least half the backoff has passed
    // (the jitter); one more for a call already connecting at the cut.
    let bound = 2 + (elapsed.as_millis() / (backoff.as_millis() / 2)) as usize;
    let attempts = relay.refused();
    assert!(
        (1..=bound).contains(&attempts),
        "{attempts} attempts to connect in {elapsed:?} for {calls} calls (at most {bound})"
    );
    assert!(
        waiting >= calls - bound - 1,
        "only {waiting} of {calls} calls were refused by the backoff"
    );

    relay.restore();
    let mut tries = 0;
    let size = loop {
        match store.tree_size(LogId::Evidence) {
            Ok(size) => break size,
            Err(StoreError::Unavailable(_)) if tries < 400 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(25));
            }
            Err(e) => panic!("the store did not come back after {tries} tries: {e}"),
        }
    };
    assert_eq!(size, 0);
}
