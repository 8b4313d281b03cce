//! Every driver passes the driver conformance suite
//! (`evault_store::testing`), one test per case: SQLite at the top level,
//! PostgreSQL in `postgres` (each case in a database of its own on the
//! server `EVAULT_TEST_POSTGRES` names; skipped loudly without one, unless
//! `EVAULT_REQUIRE_POSTGRES=1`).

use std::path::Path;

use evault_store::{SqliteStore, Store};

evault_store::conformance_tests!(|dir: &Path| -> Box<dyn Store> {
    Box::new(SqliteStore::open(&dir.join("evault.db")).expect("open the SQLite store"))
});

mod postgres {
    evault_store::conformance_tests!(skippable: evault_store::testing::postgres::opener);
}
