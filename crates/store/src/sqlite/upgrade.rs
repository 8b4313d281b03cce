//! What converting a data directory to this binary's schema needs of the
//! store: the steps of a migration as they run
//! ([`SqliteStore::open_with_progress`]), and a fingerprint of both logs
//! read the same way from every schema version
//! ([`SqliteStore::fingerprint`]), so a conversion can be shown to have
//! changed no leaf, tile, size or checkpoint.

use std::fmt;
use std::path::Path;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use sha2::{Digest, Sha256};

use super::error::{DbResult, corrupt, invalid};
use super::{index_db, read_only_uri, schema};
use crate::{LogId, Result};

/// A step of bringing a database up to this binary's schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MigrationStep {
    /// The log database's own migrations, `from` → `to`, in one transaction
    /// (`done`/`total` count records: 0 before, all after).
    LogTables {
        /// The version found.
        from: u32,
        /// The version reached.
        to: u32,
    },
    /// Storing the inner levels of a log's full tiles (`done`/`total`
    /// count tiles), inside the same transaction.
    InnerLevels(LogId),
    /// Moving the index follower's tables into the index database
    /// (`done`/`total` count records).
    MoveIndex,
    /// Converting the index database to sorted runs (index version 2).
    ConvertIndex,
    /// Copying both logs' tiles into rowid tables (schema 12; `done`/`total`
    /// count tiles: 0 before, all after).
    RowidTiles,
    /// Indexing the records past the index's cursor (`done`/`total` count
    /// records).
    Indexing,
}

impl fmt::Display for MigrationStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MigrationStep::LogTables { from, to } => {
                write!(f, "schema {from} to {to}: the log's tables")
            }
            MigrationStep::InnerLevels(log) => write!(f, "inner levels of the {log} log's tiles"),
            MigrationStep::MoveIndex => f.write_str("moving the indexes to the index database"),
            MigrationStep::ConvertIndex => f.write_str("converting the indexes to sorted runs"),
            MigrationStep::RowidTiles => f.write_str("copying the tiles into rowid tables"),
            MigrationStep::Indexing => f.write_str("indexing records"),
        }
    }
}

/// Where a migration is: `done` of `total` units of `step`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MigrationProgress {
    /// The step running.
    pub step: MigrationStep,
    /// Units done.
    pub done: u64,
    /// Units in the step.
    pub total: u64,
}

/// Called as a migration runs: at each step's start and end and every so
/// often between.
pub type OnMigration<'a> = &'a dyn Fn(MigrationProgress);

/// What identifies one log's content: equal before and after a conversion
/// means no leaf, tile, size or checkpoint changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogFingerprint {
    /// The tree size.
    pub size: u64,
    /// Leaf rows stored.
    pub leaves: u64,
    /// Tiles stored (their rows; a tile's inner levels are derived).
    pub tiles: u64,
    /// Checkpoints stored.
    pub checkpoints: u64,
    /// The size of the latest checkpoint, if any.
    pub latest_checkpoint: Option<u64>,
    /// SHA-256 over the size, every checkpoint (size and note), every
    /// tile (level, index, hashes) and every leaf (index, leaf data and
    /// the row's columns every schema has: for a record its id, content
    /// type, digest, size, time, ingester, keys, inline payload and
    /// labels), each in key order and length-prefixed. Not covered: what
    /// is derived from these (tiles' inner levels, the indexes) and the
    /// columns later schemas added (erasure marks): fsck checks those.
    pub digest: [u8; 32],
}

/// The schema versions of a database and its logs' fingerprints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    /// The log database's schema version (`PRAGMA user_version`).
    pub schema_version: u32,
    /// The version this binary writes.
    pub current_version: u32,
    /// The index database's version, if it has one.
    pub index_version: Option<i64>,
    /// The evidence log.
    pub evidence: LogFingerprint,
    /// The audit log (schema 2 on).
    pub audit: Option<LogFingerprint>,
}

impl Fingerprint {
    /// Whether opening the database for writing would convert it.
    pub fn needs_migration(&self) -> bool {
        converts(self.schema_version, self.index_version)
    }
}

/// The tables of a log, by the names every schema version gives them.
struct Tables {
    state: &'static str,
    leaves: &'static str,
    /// The leaf table's columns beside `leaf_index` and `leaf_data` that
    /// every schema version has (those of its first version), each hashed
    /// with its type: what a conversion that rebuilds the table copies.
    columns: &'static str,
    tiles: &'static str,
    checkpoints: &'static str,
}

fn tables(log: LogId) -> Tables {
    match log {
        LogId::Evidence => Tables {
            state: "tree_state",
            leaves: "records",
            columns: "id, content_type, sha256, size, ingested_at_ms, ingested_by, \
                      idempotency_key, dedup_key, payload, labels",
            tiles: "tiles",
            checkpoints: "checkpoints",
        },
        LogId::Audit => Tables {
            state: "audit_state",
            leaves: "audit_events",
            columns: "id, time_ms, principal, operation, outcome",
            tiles: "audit_tiles",
            checkpoints: "audit_checkpoints",
        },
    }
}

/// Opens `path` read only without writing to its directory.
fn open_read_only(path: &Path) -> Result<Connection> {
    Connection::open_with_flags(
        read_only_uri(path),
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .db()
}

/// The schema version of the database at `path` (refused if newer than
/// this binary's; 0 if it holds no schema yet) and its index database's,
/// if any.
fn versions(path: &Path) -> Result<(Connection, u32, Option<i64>)> {
    if !path.is_file() {
        return Err(invalid(format!("no database file at {}", path.display())));
    }
    let conn = open_read_only(path)?;
    let schema_version = schema::version(&conn)?;
    schema::check_not_too_new(schema_version)?;
    let ix = index_db::path_for(path);
    let index_version = if ix.is_file() {
        let v: i64 = open_read_only(&ix)?
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .db()?;
        (v > 0).then_some(v)
    } else {
        None
    };
    Ok((conn, schema_version, index_version))
}

/// Whether opening the existing database at `path` for writing would
/// convert it (read only, cheap: the two version numbers). A file with no
/// schema yet (a first start that stopped before creating it) is created,
/// not converted.
pub(super) fn needs_migration(path: &Path) -> Result<bool> {
    let (_, schema_version, index_version) = versions(path)?;
    Ok(schema_version != 0 && converts(schema_version, index_version))
}

/// Whether a database at these versions is converted when opened.
fn converts(schema_version: u32, index_version: Option<i64>) -> bool {
    schema_version != schema::SCHEMA_VERSION || index_version != Some(index_db::INDEX_VERSION)
}

/// Reads the fingerprint of the database at `path` without writing to its
/// directory (as [`super::SqliteStore::open_read_only`]), whatever its
/// schema version (1 on).
pub(super) fn fingerprint(path: &Path) -> Result<Fingerprint> {
    let (conn, schema_version, index_version) = versions(path)?;
    if schema_version == 0 {
        return Err(invalid(format!(
            "{} holds no evault schema",
            path.display()
        )));
    }
    // One read transaction: both logs as of one commit.
    conn.execute_batch("BEGIN").db()?;
    let evidence = log_fingerprint(&conn, LogId::Evidence, schema_version)?;
    let audit = if schema_version >= 2 {
        Some(log_fingerprint(&conn, LogId::Audit, schema_version)?)
    } else {
        None
    };
    conn.execute_batch("COMMIT").db()?;
    Ok(Fingerprint {
        schema_version,
        current_version: schema::SCHEMA_VERSION,
        index_version,
        evidence,
        audit,
    })
}

fn log_fingerprint(conn: &Connection, log: LogId, schema_version: u32) -> Result<LogFingerprint> {
    let t = tables(log);
    let mut hash = Sha256::new();
    let mut put = |bytes: &[u8]| {
        hash.update((bytes.len() as u64).to_be_bytes());
        hash.update(bytes);
    };
    let size: i64 = conn
        .query_row(
            &format!("SELECT size FROM {} WHERE id = 0", t.state),
            [],
            |r| r.get(0),
        )
        .optional()
        .db()?
        .ok_or_else(|| invalid(format!("the {log} tree size row is missing")))?;
    put(&size.to_be_bytes());

    let mut checkpoints = 0u64;
    let mut latest = None;
    let mut stmt = conn
        .prepare(&format!(
            "SELECT size, note FROM {} ORDER BY size",
            t.checkpoints
        ))
        .db()?;
    let mut rows = stmt.query([]).db()?;
    while let Some(row) = rows.next().db()? {
        let (s, note): (i64, String) = (row.get(0).db()?, row.get(1).db()?);
        put(&s.to_be_bytes());
        put(note.as_bytes());
        checkpoints += 1;
        latest = Some(s);
    }

    let mut tiles = 0u64;
    // The same order either way: each schema's key (schema 12's rowid is
    // `level << 56 | idx`), so no sort of the whole table.
    let order = if schema_version >= schema::ROWID_TILES_VERSION {
        "id"
    } else {
        "level, idx"
    };
    let mut stmt = conn
        .prepare(&format!(
            "SELECT level, idx, data FROM {} ORDER BY {order}",
            t.tiles
        ))
        .db()?;
    let mut rows = stmt.query([]).db()?;
    while let Some(row) = rows.next().db()? {
        let (level, idx): (i64, i64) = (row.get(0).db()?, row.get(1).db()?);
        put(&level.to_be_bytes());
        put(&idx.to_be_bytes());
        put(blob(row, 2, log)?);
        tiles += 1;
    }

    let mut leaves = 0u64;
    let mut stmt = conn
        .prepare(&format!(
            "SELECT leaf_index, leaf_data, {} FROM {} ORDER BY leaf_index",
            t.columns, t.leaves
        ))
        .db()?;
    let width = stmt.column_count();
    let mut rows = stmt.query([]).db()?;
    while let Some(row) = rows.next().db()? {
        let index: i64 = row.get(0).db()?;
        put(&index.to_be_bytes());
        put(blob(row, 1, log)?);
        for i in 2..width {
            match row.get_ref(i).db()? {
                ValueRef::Null => put(b"n"),
                ValueRef::Integer(v) => {
                    put(b"i");
                    put(&v.to_be_bytes());
                }
                ValueRef::Real(v) => {
                    put(b"r");
                    put(&v.to_be_bytes());
                }
                ValueRef::Text(v) => {
                    put(b"t");
                    put(v);
                }
                ValueRef::Blob(v) => {
                    put(b"b");
                    put(v);
                }
            }
        }
        leaves += 1;
    }

    let non_negative = |v: i64, what: &str| {
        u64::try_from(v).map_err(|_| corrupt(format!("the {log} log's {what} {v} is negative")))
    };
    Ok(LogFingerprint {
        size: non_negative(size, "tree size")?,
        leaves,
        tiles,
        checkpoints,
        latest_checkpoint: latest
            .map(|s| non_negative(s, "checkpoint size"))
            .transpose()?,
        digest: hash.finalize().into(),
    })
}

/// Column `i` of `row` as the blob every schema stores there.
fn blob<'r>(row: &'r rusqlite::Row<'_>, i: usize, log: LogId) -> Result<&'r [u8]> {
    row.get_ref(i).db()?.as_blob().map_err(|_| {
        corrupt(format!(
            "a {log} log row holds a non-blob value in a blob column"
        ))
    })
}
