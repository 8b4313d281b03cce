//! The SQLite driver passes the driver conformance suite
//! (`evault_store::testing`), one test per case.

use std::path::Path;

use evault_store::{SqliteStore, Store};

evault_store::conformance_tests!(|dir: &Path| -> Box<dyn Store> {
    Box::new(SqliteStore::open(&dir.join("evault.db")).expect("open the SQLite store"))
});
