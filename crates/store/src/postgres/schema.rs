//! Versioned schema: ordered, embedded SQL migrations, each recorded in
//! `evault_schema` with its SHA-256 when applied.
//!
//! Migrations only ever get appended; one that was applied and then
//! edited is refused (the database no longer matches what the code was
//! written against), as is a database with migrations this build does not
//! know (a newer evault wrote it).

use std::fmt;

use sha2::{Digest, Sha256};

use super::{Conn, pg, redact};
use crate::{Result, StoreError};

/// One migration: version `n` takes the schema from `n - 1` to `n`.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    /// The schema version it produces.
    pub version: u32,
    /// A short name, recorded with it.
    pub name: &'static str,
    /// Its SQL, run in the migration's transaction.
    pub sql: &'static str,
}

impl Migration {
    /// The hex SHA-256 of its SQL, recorded when applied.
    pub fn sha256(&self) -> String {
        Sha256::digest(self.sql.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The migrations, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "log",
        sql: include_str!("migrations/0001_log.sql"),
    },
    Migration {
        version: 2,
        name: "logs",
        sql: include_str!("migrations/0002_logs.sql"),
    },
    Migration {
        version: 3,
        name: "tasks_mirrors",
        sql: include_str!("migrations/0003_tasks_mirrors.sql"),
    },
    Migration {
        version: 4,
        name: "compliance",
        sql: include_str!("migrations/0004_compliance.sql"),
    },
    Migration {
        version: 5,
        name: "append_only",
        sql: include_str!("migrations/0005_append_only.sql"),
    },
    Migration {
        version: 6,
        name: "lease",
        sql: include_str!("migrations/0006_lease.sql"),
    },
    Migration {
        version: 7,
        name: "keystore",
        sql: include_str!("migrations/0007_keystore.sql"),
    },
];

/// The schema version this build writes.
pub const LATEST: u32 = MIGRATIONS.len() as u32;

/// Serialises concurrent `migrate` calls on one database (a transaction
/// advisory lock, released at COMMIT or ROLLBACK). "evault\0\x01".
const LOCK_KEY: i64 = 0x6576_6175_6c74_0001;

/// What [`migrate`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MigrateReport {
    /// The schema version before.
    pub from: u32,
    /// The schema version after ([`LATEST`]).
    pub to: u32,
}

/// Why a database's schema cannot be used as it is.
#[derive(Debug)]
pub enum SchemaError {
    /// No evault schema at all.
    Unmigrated {
        /// The database, password redacted.
        url: String,
    },
    /// An older schema: `evault migrate` brings it up to date.
    Behind {
        /// The database, password redacted.
        url: String,
        /// Its version.
        found: u32,
    },
    /// A migration was applied with other SQL than this build's.
    Changed {
        /// The migration's version.
        version: u32,
        /// Its name.
        name: &'static str,
    },
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchemaError::Unmigrated { url } => write!(
                f,
                "the PostgreSQL database {url} has no evault schema; create it with `evault migrate --store {url}` (as the database's owner)"
            ),
            SchemaError::Behind { url, found } => write!(
                f,
                "the PostgreSQL database {url} has evault schema version {found}, this build needs {LATEST}; upgrade it with `evault migrate --store {url}`"
            ),
            SchemaError::Changed { version, name } => write!(
                f,
                "migration {version} ({name}) was applied with other SQL than this build's: the database was not made by this evault's migrations; refusing it"
            ),
        }
    }
}

impl std::error::Error for SchemaError {}

fn schema_error(e: SchemaError) -> StoreError {
    StoreError::Backend(Box::new(e))
}

/// The applied migrations' (version, sha256), in order; `None` if the
/// database has no `evault_schema` table.
async fn applied(
    client: &impl tokio_postgres::GenericClient,
) -> std::result::Result<Option<Vec<(u32, String)>>, tokio_postgres::Error> {
    let exists: bool = client
        .query_one("SELECT to_regclass('evault_schema') IS NOT NULL", &[])
        .await?
        .try_get(0)?;
    if !exists {
        return Ok(None);
    }
    let rows = client
        .query(
            "SELECT version, sha256 FROM evault_schema ORDER BY version",
            &[],
        )
        .await?;
    Ok(Some(
        rows.iter()
            .map(|r| (r.get::<_, i32>(0).max(0) as u32, r.get::<_, String>(1)))
            .collect(),
    ))
}

/// Checks the applied migrations against this build's: each known one
/// with its SQL, none unknown. Returns the version they reach.
fn verify(applied: &[(u32, String)]) -> Result<u32> {
    let mut version = 0;
    for (v, sha) in applied {
        let Some(m) = MIGRATIONS.iter().find(|m| m.version == *v) else {
            return Err(StoreError::SchemaTooNew {
                found: applied.iter().map(|a| a.0).max().unwrap_or(*v),
                supported: LATEST,
            });
        };
        if *sha != m.sha256() {
            return Err(schema_error(SchemaError::Changed {
                version: m.version,
                name: m.name,
            }));
        }
        if *v != version + 1 {
            return Err(StoreError::Corrupt(format!(
                "evault_schema lists migration {v} after {version}"
            )));
        }
        version = *v;
    }
    Ok(version)
}

/// Checks that the database at `url` holds exactly this build's schema:
/// [`SchemaError::Unmigrated`] or [`SchemaError::Behind`] (both naming
/// `evault migrate`), [`StoreError::SchemaTooNew`], or
/// [`SchemaError::Changed`] otherwise. Writes nothing.
pub fn check_schema(url: &str) -> Result<u32> {
    let mut conn = Conn::open(url)?;
    let found = conn
        .run(|c| async move { applied(&*c).await })
        .map_err(pg)?;
    let Some(found) = found else {
        return Err(schema_error(SchemaError::Unmigrated { url: redact(url) }));
    };
    match verify(&found)? {
        LATEST => Ok(LATEST),
        0 => Err(schema_error(SchemaError::Unmigrated { url: redact(url) })),
        v => Err(schema_error(SchemaError::Behind {
            url: redact(url),
            found: v,
        })),
    }
}

/// Brings the database at `url` to [`LATEST`]: in one transaction under an
/// advisory lock (two nodes migrating at once apply each migration once),
/// creates `evault_schema` if needed, checks what was applied (refusing a
/// newer or edited schema, writing nothing), then runs and records each
/// missing migration. A failure rolls every step of the call back.
pub fn migrate(url: &str) -> Result<MigrateReport> {
    let mut conn = Conn::open(url)?;
    conn.run(|c| async move {
        let tx = c.transaction().await.map_err(pg)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
            .await
            .map_err(pg)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS evault_schema (
                 version    integer     PRIMARY KEY CHECK (version > 0),
                 name       text        NOT NULL,
                 sha256     text        NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await
        .map_err(pg)?;
        let done = applied(&tx).await.map_err(pg)?.unwrap_or_default();
        let from = verify(&done)?;
        for m in MIGRATIONS.iter().filter(|m| m.version > from) {
            tracing::info!(
                version = m.version,
                name = m.name,
                "applying PostgreSQL migration"
            );
            tx.batch_execute(m.sql).await.map_err(pg)?;
            tx.execute(
                "INSERT INTO evault_schema (version, name, sha256) VALUES ($1, $2, $3)",
                &[&(m.version as i32), &m.name, &m.sha256()],
            )
            .await
            .map_err(pg)?;
        }
        tx.commit().await.map_err(pg)?;
        Ok(MigrateReport { from, to: LATEST })
    })
}
