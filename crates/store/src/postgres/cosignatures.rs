//! Cosignatures on PostgreSQL: the `cosignatures` table, as
//! `sqlite/cosignatures.rs` keeps it.

use deadpool_postgres::GenericClient;

use super::log::{i64_of, u64_of};
use super::pg;
use crate::{Cosignature, LogId, Result};

/// Adds `cosigs` of `log`'s checkpoint of `size`; a line already held for
/// a witness and key stays as it is.
pub(super) async fn put(
    c: &impl GenericClient,
    log: LogId,
    size: u64,
    cosigs: &[Cosignature],
) -> Result<()> {
    let size = i64_of(size, "cosignature tree_size")?;
    if cosigs.is_empty() {
        return Ok(());
    }
    let witnesses: Vec<&str> = cosigs.iter().map(|c| c.witness.as_str()).collect();
    let keys: Vec<&str> = cosigs.iter().map(|c| c.key.as_str()).collect();
    let lines: Vec<&str> = cosigs.iter().map(|c| c.line.as_str()).collect();
    let received: Vec<i64> = cosigs.iter().map(|c| c.received_ms).collect();
    // One statement, so all or none; DO NOTHING also keeps the first of
    // two lines for one witness and key within the batch, as SQLite's
    // INSERT OR IGNORE row by row does.
    c.execute(
        "INSERT INTO cosignatures (log, tree_size, witness, key, line, received_ms) \
         SELECT $1, $2, * FROM unnest($3::text[], $4::text[], $5::text[], $6::bigint[]) \
         ON CONFLICT (log, tree_size, witness, key) DO NOTHING",
        &[&log.as_str(), &size, &witnesses, &keys, &lines, &received],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

/// The cosignatures of `log`'s checkpoint of `size`, by witness, then key.
pub(super) async fn at(c: &impl GenericClient, log: LogId, size: u64) -> Result<Vec<Cosignature>> {
    let size = i64_of(size, "cosignature tree_size")?;
    let rows = c
        .query(
            "SELECT witness, key, line, received_ms FROM cosignatures \
             WHERE log = $1 AND tree_size = $2 ORDER BY witness, key",
            &[&log.as_str(), &size],
        )
        .await
        .map_err(pg)?;
    rows.iter()
        .map(|row| {
            Ok(Cosignature {
                witness: row.try_get(0).map_err(pg)?,
                key: row.try_get(1).map_err(pg)?,
                line: row.try_get(2).map_err(pg)?,
                received_ms: row.try_get(3).map_err(pg)?,
            })
        })
        .collect()
}

/// The largest size of `log` that at least `threshold` distinct witnesses
/// among `witnesses` cosigned.
pub(super) async fn witnessed_size(
    c: &impl GenericClient,
    log: LogId,
    threshold: usize,
    witnesses: &[String],
) -> Result<Option<u64>> {
    if threshold == 0 || witnesses.is_empty() {
        return Ok(None);
    }
    let threshold = i64::try_from(threshold).unwrap_or(i64::MAX);
    let row = c
        .query_opt(
            "SELECT tree_size FROM cosignatures WHERE log = $1 AND witness = ANY($3::text[]) \
             GROUP BY tree_size HAVING count(DISTINCT witness) >= $2 \
             ORDER BY tree_size DESC LIMIT 1",
            &[&log.as_str(), &threshold, &witnesses],
        )
        .await
        .map_err(pg)?;
    row.map(|r| u64_of(r.try_get(0).map_err(pg)?, "cosignature tree_size"))
        .transpose()
}
