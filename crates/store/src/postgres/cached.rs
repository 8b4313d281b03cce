//! Statements prepared once per pooled connection.
//!
//! `tokio-postgres` answers a query given as text in two round trips
//! (parse and describe, then bind and execute); a statement from
//! deadpool's per-connection cache needs one. These helpers are for SQL
//! of a few fixed shapes (the cache is never pruned), which is every hot
//! read and the append's own statements; queries built from a client's
//! filters stay unprepared.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use super::pg;
use crate::Result;

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// Every row of `sql`.
pub(super) async fn query(
    c: &impl GenericClient,
    sql: &str,
    params: Params<'_>,
) -> Result<Vec<Row>> {
    let statement = c.prepare_cached(sql).await.map_err(pg)?;
    c.query(&statement, params).await.map_err(pg)
}

/// The one row of `sql`, if any (more than one is an error).
pub(super) async fn query_opt(
    c: &impl GenericClient,
    sql: &str,
    params: Params<'_>,
) -> Result<Option<Row>> {
    let statement = c.prepare_cached(sql).await.map_err(pg)?;
    c.query_opt(&statement, params).await.map_err(pg)
}

/// The one row of `sql` (none, or more than one, is an error).
pub(super) async fn query_one(
    c: &impl GenericClient,
    sql: &str,
    params: Params<'_>,
) -> Result<Row> {
    let statement = c.prepare_cached(sql).await.map_err(pg)?;
    c.query_one(&statement, params).await.map_err(pg)
}

/// Runs `sql`; the rows it changed.
pub(super) async fn execute(c: &impl GenericClient, sql: &str, params: Params<'_>) -> Result<u64> {
    let statement = c.prepare_cached(sql).await.map_err(pg)?;
    c.execute(&statement, params).await.map_err(pg)
}

/// A binary `COPY … FROM STDIN` of `sql` into `tx`, of rows of `types`.
pub(super) async fn copy_in(
    tx: &deadpool_postgres::Transaction<'_>,
    sql: &str,
    types: &[Type],
) -> Result<BinaryCopyInWriter> {
    let statement = tx.prepare_cached(sql).await.map_err(pg)?;
    let sink = tx.copy_in(&statement).await.map_err(pg)?;
    Ok(BinaryCopyInWriter::new(sink, types))
}
