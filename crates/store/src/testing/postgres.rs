//! A PostgreSQL database per test (features `testing` and `postgres`).
//!
//! [`TestDb::create`] connects to the server named by
//! `EVAULT_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/postgres`,
//! the local server with trust auth), creates a database of its own and
//! drops it (`WITH (FORCE)`) when the value is dropped. Without a server it
//! returns `None` after printing `SKIPPED` on stderr, so a plain
//! `cargo test` on a machine without PostgreSQL passes loudly; with
//! `EVAULT_REQUIRE_POSTGRES=1` (CI) it panics instead, so nothing is
//! skipped there.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::Store;
use crate::postgres::{Conn, PgStore};

/// The server tests use unless `EVAULT_TEST_POSTGRES` names another.
pub const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database of one test's own, dropped with this value.
pub struct TestDb {
    admin: Conn,
    name: String,
    url: String,
    /// Roles made for the test (cluster-wide), dropped after the database.
    roles: Mutex<Vec<String>>,
}

impl TestDb {
    /// A new, empty database for the test `test`; `None` (skipped, said on
    /// stderr) if no server answers, unless `EVAULT_REQUIRE_POSTGRES=1`,
    /// where that panics.
    pub fn create(test: &str) -> Option<TestDb> {
        let server =
            std::env::var("EVAULT_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_SERVER.into());
        let mut admin = match Conn::open(&server) {
            Ok(c) => c,
            Err(e) => {
                let why = format!("no PostgreSQL at {}: {e}", crate::postgres::redact(&server));
                if std::env::var("EVAULT_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                    panic!("{test}: EVAULT_REQUIRE_POSTGRES=1 but {why}");
                }
                eprintln!("SKIPPED {test}: {why} (set EVAULT_TEST_POSTGRES to a server's URL)");
                return None;
            }
        };
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() % 1_000_000_000);
        let name = format!(
            "evault_t_{}_{}_{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let sql = format!("CREATE DATABASE {name}");
        admin
            .run(|c| async move { c.batch_execute(&sql).await })
            .unwrap_or_else(|e| panic!("{test}: CREATE DATABASE {name}: {e}"));
        let url = with_database(&server, &name);
        Some(TestDb {
            admin,
            name,
            url,
            roles: Mutex::new(Vec::new()),
        })
    }

    /// The database's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs SQL statements in the database as the server's user (a
    /// superuser in tests: it can do what the vault's role may not).
    pub fn execute(&self, sql: &str) -> Result<(), String> {
        let mut conn = Conn::open(&self.url).map_err(|e| e.to_string())?;
        conn.run(|c| async move { c.batch_execute(sql).await })
            .map_err(|e| match e.as_db_error() {
                Some(db) => db.message().to_string(),
                None => e.to_string(),
            })
    }

    /// A role name of the test's own (roles are the server's, not the
    /// database's), dropped with the database.
    pub fn role_name(&self, suffix: &str) -> String {
        let role = format!("{}_{suffix}", self.name);
        self.roles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(role.clone());
        role
    }

    /// Drops another database the test made (`WITH (FORCE)`).
    pub fn drop_database(&self, name: &str) {
        let mut conn = Conn::open(&self.url).expect("connect to the test database");
        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        conn.run(|c| async move { c.batch_execute(&sql).await })
            .unwrap_or_else(|e| panic!("drop database {name}: {e}"));
    }

    /// The database's URL with `user` (and `password`) instead of the
    /// server's user.
    pub fn url_as(&self, user: &str, password: &str) -> String {
        let (scheme, rest) = self
            .url
            .split_once("://")
            .unwrap_or(("postgres", &self.url));
        let host = match rest.find('/') {
            Some(slash) => {
                let authority = &rest[..slash];
                let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
                format!("{host}{}", &rest[slash..])
            }
            None => rest.to_string(),
        };
        format!("{scheme}://{user}:{password}@{host}")
    }

    /// A connection of its own to the database as `url` (e.g.
    /// [`TestDb::url_as`]), kept open.
    pub fn session_at(&self, url: &str) -> TestSession {
        TestSession(Conn::open(url).expect("connect to the test database"))
    }

    /// A connection of its own to the database, kept open (to hold a lock
    /// or a transaction across store calls).
    pub fn session(&self) -> TestSession {
        TestSession(Conn::open(&self.url).expect("connect to the test database"))
    }

    /// The first column of the first row of `sql`, as text (`NULL` as
    /// `None`).
    pub fn query_text(&self, sql: &str) -> Option<String> {
        let mut conn = Conn::open(&self.url).expect("connect to the test database");
        conn.run(|c| async move { c.query_opt(&format!("SELECT ({sql})::text"), &[]).await })
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .and_then(|row| row.get::<_, Option<String>>(0))
    }
}

/// A connection to a test database, open until dropped.
pub struct TestSession(Conn);

impl TestSession {
    /// Runs SQL statements on this connection.
    pub fn execute(&mut self, sql: &str) -> Result<(), String> {
        self.0
            .run(|c| async move { c.batch_execute(sql).await })
            .map_err(|e| match e.as_db_error() {
                Some(db) => db.message().to_string(),
                None => e.to_string(),
            })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = self
            .admin
            .run(|c| async move { c.batch_execute(&sql).await })
        {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
        for role in self.roles.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let sql = format!("DROP ROLE IF EXISTS {role}");
            if let Err(e) = self
                .admin
                .run(|c| async move { c.batch_execute(&sql).await })
            {
                eprintln!("could not drop test role {role}: {e}");
            }
        }
    }
}

/// The conformance suite's `open` for PostgreSQL, for the test `test`: each
/// directory a case opens gets a migrated database of its own (opening the
/// same directory again reopens it), dropped when the returned function
/// is. `None` (the test is skipped, said on stderr) without a server,
/// unless `EVAULT_REQUIRE_POSTGRES=1`.
pub fn opener(test: &str) -> Option<impl Fn(&Path) -> Box<dyn Store> + use<>> {
    let first = TestDb::create(test)?;
    let test = test.to_owned();
    let spare = Mutex::new(Some(first));
    let dbs: Mutex<HashMap<PathBuf, TestDb>> = Mutex::new(HashMap::new());
    Some(move |dir: &Path| -> Box<dyn Store> {
        let mut dbs = dbs.lock().unwrap_or_else(|e| e.into_inner());
        let db = dbs.entry(dir.to_path_buf()).or_insert_with(|| {
            let db = spare
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .or_else(|| TestDb::create(&test))
                .unwrap_or_else(|| panic!("{test}: the PostgreSQL server went away"));
            crate::postgres::migrate(db.url())
                .unwrap_or_else(|e| panic!("{test}: migrate {}: {e}", db.url()));
            db
        });
        let store =
            PgStore::open(db.url()).unwrap_or_else(|e| panic!("{test}: open {}: {e}", db.url()));
        take_lease(db, &store);
        Box::new(store)
    })
}

/// Makes `store` the writer of `db`: any lease held there is expired (a
/// store a case opened earlier on the same database is fenced off from
/// then on) and `store` takes a new one, long enough for any test.
pub fn take_lease(db: &TestDb, store: &PgStore) {
    use crate::Coordination as _;
    db.execute("UPDATE lease SET expires_at = '-infinity'")
        .unwrap_or_else(|e| panic!("expire the lease in {}: {e}", db.url()));
    store
        .acquire("test", "", std::time::Duration::from_secs(24 * 3600))
        .unwrap_or_else(|e| panic!("acquire the lease in {}: {e}", db.url()))
        .unwrap_or_else(|| panic!("the lease in {} was taken meanwhile", db.url()));
}

/// `server` (a URL) with its database name replaced by `name`.
fn with_database(server: &str, name: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (server, None),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let base = match base[after_scheme..].find('/') {
        Some(i) => &base[..after_scheme + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_name_is_replaced() {
        assert_eq!(
            with_database("postgres://u@h:5432/postgres", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
        assert_eq!(
            with_database("postgres://h/db?sslmode=disable", "x"),
            "postgres://h/x?sslmode=disable"
        );
    }
}
