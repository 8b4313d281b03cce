//! The PostgreSQL driver (issue 14), built in steps (plans/issue-14.md).
//!
//! - The schema's versioned migrations, embedded in the binary and applied
//!   by [`migrate`], and the check a store makes before it touches a
//!   database ([`check_schema`]), which refuses one that is unmigrated,
//!   behind, newer than this build or whose applied migrations were
//!   edited, naming the command that fixes it.
//! - [`PgStore`]: the log, both logs' indexes and the index follower on
//!   PostgreSQL (`log.rs`, `entries.rs`, `index.rs`), the optional parts
//!   (tasks, mirrors, cosignatures, compliance), the sequencing lease
//!   (`lease.rs`) and the service-account keystore every node reads
//!   (`keystore.rs`).
//!
//! The traits block, so the driver owns a small tokio runtime for
//! `tokio-postgres` rather than borrowing the caller's: the suite, `evault
//! migrate` and offline `fsck` have none.

mod backoff;
mod cached;
mod compliance;
mod cosignatures;
mod entries;
mod index;
mod keystore;
mod labels;
mod lease;
mod log;
mod mirrors;
mod roles;
mod schema;
mod store;
mod tasks;
mod tls;

pub use keystore::KeystoreVersion;
pub use roles::{ADD_ONLY, APPEND_ONLY, DELETABLE, grant_app_role};
pub use schema::{
    LATEST, MIGRATIONS, MigrateReport, Migration, SchemaError, check_schema, migrate,
};
pub use store::{PgOptions, PgStore};

use crate::{Result, StoreError};

/// The driver's runtime: one worker runs the connections (the queries'
/// futures are polled on the callers' threads).
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("evault-pg")
        .enable_all()
        .build()
        .map_err(|e| StoreError::Backend(Box::new(e)))
}

/// Connects as `target` asks (over TLS or not); the connection runs as a
/// task on the current runtime, whose handle is returned with the client.
pub(crate) async fn connect(
    target: &tls::Target,
) -> std::result::Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), tokio_postgres::Error>
{
    async fn run(
        conn: impl std::future::Future<Output = std::result::Result<(), tokio_postgres::Error>>,
    ) {
        if let Err(e) = conn.await {
            tracing::warn!(error = %e, "PostgreSQL connection ended");
        }
    }
    Ok(match &target.tls {
        None => {
            let (client, conn) = target.config.connect(tokio_postgres::NoTls).await?;
            (client, tokio::spawn(run(conn)))
        }
        Some(tls) => {
            let (client, conn) = target.config.connect(tls.clone()).await?;
            (client, tokio::spawn(run(conn)))
        }
    })
}

/// One connection to a database on a runtime of its own (for migrations
/// and test harnesses; the store pools its connections).
pub(crate) struct Conn {
    rt: Option<tokio::runtime::Runtime>,
    client: tokio_postgres::Client,
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Never blocks, so a Conn may be dropped on an async thread.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl Conn {
    /// Connects to `url` (a libpq URL or key=value string).
    pub(crate) fn open(url: &str) -> Result<Conn> {
        let target = tls::target(url)?;
        let rt = runtime()?;
        let connected = {
            let _context = rt.enter();
            futures_executor::block_on(connect(&target))
        };
        let (client, _connection) = connected.map_err(|e| {
            if e.code() == Some(&tokio_postgres::error::SqlState::INVALID_CATALOG_NAME) {
                // Named, so `evault migrate` can tell it from the rest.
                return StoreError::Backend(Box::new(NoDatabase(format!(
                    "cannot connect to {}: {}",
                    redact(url),
                    PgError(e)
                ))));
            }
            backend(format!("cannot connect to {}: {}", redact(url), PgError(e)))
        })?;
        Ok(Conn {
            rt: Some(rt),
            client,
        })
    }

    /// Runs `f` with the client, blocking this thread until it is done.
    pub(crate) fn run<'a, T, F>(
        &'a mut self,
        f: impl FnOnce(&'a mut tokio_postgres::Client) -> F,
    ) -> T
    where
        F: std::future::Future<Output = T>,
    {
        let Conn { rt, client } = self;
        let _context = rt.as_ref().map(|rt| rt.enter());
        futures_executor::block_on(f(client))
    }
}

/// The database a URL names does not exist (SQLSTATE 3D000).
#[derive(Debug)]
pub(crate) struct NoDatabase(String);

impl std::fmt::Display for NoDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NoDatabase {}

/// Serialises [`create_database_if_missing`] on one server (a session
/// advisory lock, released when its connection closes). "evault\0\x03".
const CREATE_LOCK: i64 = 0x6576_6175_6c74_0003;

/// Creates the database `url` names if the server has none of that name
/// (connecting to the server's `postgres` database, as `url`'s user, who
/// needs CREATEDB); returns whether it did. For `evault migrate`, so a
/// fresh server needs no `createdb` first.
pub fn create_database_if_missing(url: &str) -> Result<bool> {
    match Conn::open(url) {
        Ok(_) => return Ok(false),
        Err(StoreError::Backend(e)) if e.downcast_ref::<NoDatabase>().is_some() => {}
        Err(e) => return Err(e),
    }
    let mut maintenance = tls::target(url)?;
    let Some(name) = maintenance.config.get_dbname().map(str::to_owned) else {
        return Ok(false);
    };
    maintenance.config.dbname("postgres");
    let rt = runtime()?;
    let _context = rt.enter();
    futures_executor::block_on(async {
        let (client, conn) = connect(&maintenance)
            .await
            .map_err(|e| backend(format!("cannot connect to {}: {}", redact(url), PgError(e))))?;
        // Two `migrate`s at once: the second waits, then finds it made
        // (concurrent CREATE DATABASEs fail on the catalog's unique index).
        client
            .execute("SELECT pg_advisory_lock($1)", &[&CREATE_LOCK])
            .await
            .map_err(pg)?;
        let exists = client
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
            .await
            .map_err(pg)?
            .is_some();
        if exists {
            drop(client);
            let _ = conn.await;
            return Ok(false);
        }
        let sql: String = client
            .query_one("SELECT format('CREATE DATABASE %I', $1::text)", &[&name])
            .await
            .map_err(pg)?
            .try_get(0)
            .map_err(pg)?;
        let created = match client.batch_execute(&sql).await {
            Ok(()) => true,
            // Another `migrate` made it meanwhile.
            Err(e)
                if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE)
                    || e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) =>
            {
                false
            }
            Err(e) => {
                return Err(backend(format!(
                    "creating database {name} on {}: {}",
                    redact(url),
                    PgError(e)
                )));
            }
        };
        drop(client);
        let _ = conn.await;
        Ok(created)
    })
}

/// A database error as a [`StoreError`] (`Unavailable` when the server is
/// unreachable, `Backend` otherwise).
pub(crate) fn pg(e: tokio_postgres::Error) -> StoreError {
    store::pg_error(e)
}

/// A `tokio_postgres::Error` whose text says what the server said (its
/// own `Display` is only "db error" for those).
#[derive(Debug)]
pub(crate) struct PgError(pub(crate) tokio_postgres::Error);

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::error::Error as _;
        match self.0.as_db_error() {
            Some(db) => {
                write!(f, "PostgreSQL {}: {}", db.code().code(), db.message())?;
                if let Some(detail) = db.detail() {
                    write!(f, " ({detail})")?;
                }
                Ok(())
            }
            None => match self.0.source() {
                Some(cause) => write!(f, "{}: {cause}", self.0),
                None => write!(f, "{}", self.0),
            },
        }
    }
}

impl std::error::Error for PgError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

fn backend(msg: String) -> StoreError {
    StoreError::Backend(msg.into())
}

/// `url` with its password, if any, replaced by `***`, for messages and
/// logs (a URL may carry one; error texts must not).
pub fn redact(url: &str) -> String {
    // key=value form: password=...
    if !url.contains("://") {
        return url
            .split_whitespace()
            .map(|kv| {
                if kv.starts_with("password=") {
                    "password=***"
                } else {
                    kv
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
    }
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    let mut tail = tail.to_string();
    if let Some((path, query)) = tail.split_once('?') {
        let query: Vec<String> = query
            .split('&')
            .map(|kv| {
                if kv.starts_with("password=") {
                    "password=***".to_string()
                } else {
                    kv.to_string()
                }
            })
            .collect();
        tail = format!("{path}?{}", query.join("&"));
    }
    format!("{scheme}://{authority}{tail}")
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://u:s3cret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact("postgresql://h/db?user=u&password=x&sslmode=disable"),
            "postgresql://h/db?user=u&password=***&sslmode=disable"
        );
        assert_eq!(
            redact("host=h user=u password=x dbname=d"),
            "host=h user=u password=*** dbname=d"
        );
        assert_eq!(redact("postgres://u:p%40ss@h"), "postgres://u:***@h");
    }
}
