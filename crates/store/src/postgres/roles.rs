//! The vault's own database role, with least privilege.
//!
//! `evault migrate` runs as the database's owner; the vault itself runs as
//! a role [`grant_app_role`] makes, which may only read and append to the
//! logs' tables (no UPDATE, DELETE or TRUNCATE, on top of the triggers of
//! migration 5), delete payloads and their analytics copies (an
//! erasure), and change the mutable tables (sizes, settings, the
//! follower's index, tasks, mirrors, holds, policies).

use super::{Conn, backend, pg, redact};
use crate::Result;

/// Tables the vault may read and append to, never change.
pub const APPEND_ONLY: &[&str] = &[
    "entries",
    "audit_events",
    "tiles",
    "tile_segments",
    "checkpoints",
    "erased_payloads",
    "erasures",
    "commits",
];

/// Tables the vault may read, append to and delete from (an erasure).
pub const DELETABLE: &[&str] = &["payloads", "analytics_events", "analytics_metrics"];

/// Tables the vault may read and add rows to: the keystore's versions
/// (an edit adds one; only the owner may delete old ones).
pub const ADD_ONLY: &[&str] = &["keystore"];

/// Read only: the record of applied migrations.
const READ_ONLY: &[&str] = &["evault_schema"];

/// Creates the login role `role` in the cluster of the database at `url`
/// if it does not exist, sets its password if one is given, and grants it
/// exactly the privileges above on the database's tables (every other
/// table of the schema gets SELECT, INSERT, UPDATE and DELETE). Run as
/// the owner, after [`super::migrate`]; running it again re-grants the
/// same.
pub fn grant_app_role(url: &str, role: &str, password: Option<&str>) -> Result<()> {
    let valid = !role.is_empty()
        && role.len() <= 63
        && role
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !role.starts_with(|c: char| c.is_ascii_digit())
        && !role.starts_with("pg_");
    if !valid {
        return Err(backend(format!(
            "role name {role:?}: use 1 to 63 of [a-z0-9_], not starting with a digit or pg_"
        )));
    }
    let mut conn = Conn::open(url)?;
    conn.run(|c| async move {
        let tx = c.transaction().await.map_err(pg)?;
        // Role creation is cluster-wide: serialised like migrations.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&0x6576_6175_6c74_0002_i64])
            .await
            .map_err(pg)?;
        let exists = tx
            .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])
            .await
            .map_err(pg)?
            .is_some();
        if !exists {
            tx.batch_execute(&format!("CREATE ROLE {role} LOGIN"))
                .await
                .map_err(pg)?;
        }
        if let Some(password) = password {
            // Utility statements take no parameters: quoted by the server.
            let sql: String = tx
                .query_one("SELECT format('ALTER ROLE %I PASSWORD %L', $1::text, $2::text)", &[
                    &role, &password,
                ])
                .await
                .map_err(pg)?
                .try_get(0)
                .map_err(pg)?;
            tx.batch_execute(&sql).await.map_err(pg)?;
        }
        let db: String = tx
            .query_one("SELECT quote_ident(current_database())", &[])
            .await
            .map_err(pg)?
            .try_get(0)
            .map_err(pg)?;
        let tables: Vec<String> = tx
            .query(
                "SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
                &[],
            )
            .await
            .map_err(pg)?
            .iter()
            .map(|r| r.try_get(0).map_err(pg))
            .collect::<Result<_>>()?;
        let mut sql = format!(
            "GRANT CONNECT ON DATABASE {db} TO {role};\n\
             GRANT USAGE ON SCHEMA public TO {role};\n\
             REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role};\n"
        );
        for t in &tables {
            let privileges = if APPEND_ONLY.contains(&t.as_str()) || ADD_ONLY.contains(&t.as_str()) {
                "SELECT, INSERT"
            } else if DELETABLE.contains(&t.as_str()) {
                "SELECT, INSERT, DELETE"
            } else if READ_ONLY.contains(&t.as_str()) {
                "SELECT"
            } else {
                "SELECT, INSERT, UPDATE, DELETE"
            };
            sql.push_str(&format!("GRANT {privileges} ON TABLE {t} TO {role};\n"));
        }
        tx.batch_execute(&sql).await.map_err(pg)?;
        tx.commit().await.map_err(pg)
    })
    .map_err(|e| backend(format!("granting role {role} on {}: {e}", redact(url))))
}
