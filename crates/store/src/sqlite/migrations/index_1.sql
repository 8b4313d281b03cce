-- evault index database, version 1 (`PRAGMA ix.user_version`), beside
-- store schema 11: the index follower's tables, in their own SQLite file
-- (`evault-index.db` beside `evault.db`), attached to every connection as
-- `ix`. Everything here is derived from the records in the log database and
-- can be rebuilt from them; the follower is this file's only writer, so
-- its transactions never hold the lock a commit of the log waits for.
--
-- The tables are those schemas 9 and 10 created in the log database, with
-- the same names and keys (so every query names them as before), except
-- that `record_labels` no longer has a foreign key: SQLite cannot check one
-- across files, and the follower writes only labels of stored records.
CREATE TABLE ix.index_state (
    id               INTEGER PRIMARY KEY CHECK (id = 0),
    evidence_through INTEGER NOT NULL CHECK (evidence_through >= 0)
) STRICT;

CREATE TABLE ix.record_labels (
    key        TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    leaf_index INTEGER NOT NULL,
    PRIMARY KEY (key, value, leaf_index)
) STRICT, WITHOUT ROWID;

CREATE TABLE ix.records_by_sha256 (
    sha256     BLOB    NOT NULL CHECK (length(sha256) = 32),
    leaf_index INTEGER NOT NULL,
    PRIMARY KEY (sha256, leaf_index)
) STRICT, WITHOUT ROWID;

CREATE TABLE ix.records_by_dedup (
    dedup_key  BLOB    NOT NULL CHECK (length(dedup_key) = 32),
    leaf_index INTEGER NOT NULL,
    PRIMARY KEY (dedup_key, leaf_index)
) STRICT, WITHOUT ROWID;

CREATE TABLE ix.records_by_idempotency (
    ingested_by     TEXT    NOT NULL,
    idempotency_key TEXT    NOT NULL,
    leaf_index      INTEGER NOT NULL,
    PRIMARY KEY (ingested_by, idempotency_key, leaf_index)
) STRICT, WITHOUT ROWID;
