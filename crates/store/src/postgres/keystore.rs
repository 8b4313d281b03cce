//! The service-account keystore on PostgreSQL (migration 7): versions of
//! one JSON document, the format of a `service-accounts.json` file. The
//! store neither parses nor checks the document (that is `evault-auth`'s
//! `KeystoreFile`); it keeps the versions in order and serialises writers.
//!
//! Every node polls [`PgStore::keystore_version`] (one index probe) and
//! loads the document only when the version grew, so a revocation written
//! from anywhere reaches every node within one poll.

use super::log::u64_of;
use super::pg;
use super::store::PgStore;
use crate::Result;

/// The advisory lock a writer holds to COMMIT: "evault", then 7 (the
/// migration that made the table) and 1.
const WRITE_LOCK: i64 = 0x6576_6175_6c74_0701;

/// The latest version and its document.
const LATEST: &str = "SELECT version, document FROM keystore ORDER BY version DESC LIMIT 1";

/// A version of the keystore document.
#[derive(Clone, PartialEq, Eq)]
pub struct KeystoreVersion {
    /// Counts up from 1; 0 is never stored (no version yet).
    pub version: u64,
    /// The document, as written. It holds the keys' secrets.
    pub document: String,
}

/// Never prints the document: it holds the service accounts' secrets.
impl std::fmt::Debug for KeystoreVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeystoreVersion")
            .field("version", &self.version)
            .field("document", &format_args!("<{} bytes>", self.document.len()))
            .finish()
    }
}

/// A row of [`LATEST`].
fn decode(row: &tokio_postgres::Row) -> Result<KeystoreVersion> {
    Ok(KeystoreVersion {
        version: u64_of(row.try_get(0).map_err(pg)?, "keystore version")?,
        document: row.try_get(1).map_err(pg)?,
    })
}

impl PgStore {
    /// The latest keystore version, 0 if none was ever written.
    pub fn keystore_version(&self) -> Result<u64> {
        self.run(|client| async move {
            let row = client
                .query_one("SELECT coalesce(max(version), 0) FROM keystore", &[])
                .await
                .map_err(pg)?;
            u64_of(row.try_get(0).map_err(pg)?, "keystore version")
        })
    }

    /// The latest keystore version and its document, `None` if none was
    /// ever written.
    pub fn keystore_latest(&self) -> Result<Option<KeystoreVersion>> {
        self.run(|client| async move {
            let row = client.query_opt(LATEST, &[]).await.map_err(pg)?;
            row.as_ref().map(decode).transpose()
        })
    }

    /// Reads the latest version and writes the next, in one transaction
    /// that no other writer interleaves with: `edit` gets the latest
    /// document (`None`: none yet) and returns the new one, or `None` to
    /// write nothing. Returns the version in force afterwards and what
    /// `edit` decided (its refusal, `Err`, writes nothing).
    pub fn keystore_write<T>(
        &self,
        edit: impl FnOnce(Option<&KeystoreVersion>) -> std::result::Result<(Option<String>, T), String>,
    ) -> Result<std::result::Result<(u64, T), String>> {
        self.run(|mut client| async move {
            let tx = client.transaction().await.map_err(pg)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])
                .await
                .map_err(pg)?;
            let latest = tx
                .query_opt(LATEST, &[])
                .await
                .map_err(pg)?
                .as_ref()
                .map(decode)
                .transpose()?;
            let current = latest.as_ref().map_or(0, |v| v.version);
            let (document, out) = match edit(latest.as_ref()) {
                Ok(decided) => decided,
                Err(refused) => return Ok(Err(refused)),
            };
            let Some(document) = document else {
                return Ok(Ok((current, out)));
            };
            let next = current + 1;
            tx.execute(
                "INSERT INTO keystore (version, document) VALUES ($1, $2)",
                &[&(next as i64), &document],
            )
            .await
            .map_err(pg)?;
            tx.commit().await.map_err(pg)?;
            Ok(Ok((next, out)))
        })
    }
}
