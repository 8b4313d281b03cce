//! Runs a vault test on every store driver: the embedded SQLite store and
//! PostgreSQL (a migrated database of the test's own on the server
//! `EVAULT_TEST_POSTGRES` names; skipped loudly without one, unless
//! `EVAULT_REQUIRE_POSTGRES=1`).
//!
//! A test written as
//! `on_every_store! { #[tokio::test(...)] async fn name() { … } }`
//! becomes `name::sqlite` and `name::postgres`, one body. The file's
//! `config(dir)` takes `c.store = drivers::store()`: the store the running
//! case set (a thread-local, so every vault the body opens on its thread
//! uses it, and a reopen finds the same database).

#![allow(dead_code)]

use std::cell::RefCell;

use evault_store::testing::postgres::TestDb;
use evault_vault::StoreLocation;

thread_local! {
    static STORE: RefCell<StoreLocation> = const { RefCell::new(StoreLocation::Sqlite) };
}

/// The store this thread's test runs on.
pub fn store() -> StoreLocation {
    STORE.with(|s| s.borrow().clone())
}

/// Keeps a case's store (and its database) until the case ends.
pub struct Case {
    _db: Option<TestDb>,
}

impl Drop for Case {
    fn drop(&mut self) {
        STORE.with(|s| *s.borrow_mut() = StoreLocation::Sqlite);
    }
}

/// The SQLite case.
pub fn sqlite() -> Case {
    STORE.with(|s| *s.borrow_mut() = StoreLocation::Sqlite);
    Case { _db: None }
}

/// The PostgreSQL case of `test`, or `None` (skipped, said on stderr).
pub fn postgres(test: &str) -> Option<Case> {
    let db = TestDb::create(test)?;
    evault_store::postgres::migrate(db.url())
        .unwrap_or_else(|e| panic!("{test}: migrate {}: {e}", db.url()));
    let url = db.url().to_string();
    STORE.with(|s| *s.borrow_mut() = StoreLocation::Postgres(url));
    Some(Case { _db: Some(db) })
}

/// One test body, run once per driver (see the module's doc); the
/// test file declares `#[macro_use] mod drivers;`.
macro_rules! on_every_store {
    ($(#[$attr:meta])* async fn $name:ident() $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $(#[$attr])*
            async fn sqlite() {
                let _case = crate::drivers::sqlite();
                $body
            }

            $(#[$attr])*
            async fn postgres() {
                let Some(_case) = crate::drivers::postgres(concat!(module_path!(), "::postgres"))
                else {
                    return;
                };
                $body
            }
        }
    };
}
