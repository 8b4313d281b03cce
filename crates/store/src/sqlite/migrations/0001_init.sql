-- evault store schema, version 1.
--
-- All tables are STRICT: a value of the wrong type is rejected by SQLite
-- itself. u64 indexes and sizes are stored as INTEGER (i64); the driver
-- refuses values above i64::MAX instead of wrapping them.

-- The tree size: one row, updated in the same transaction as each batch.
CREATE TABLE tree_state (
    id   INTEGER PRIMARY KEY CHECK (id = 0),
    size INTEGER NOT NULL CHECK (size >= 0)
) STRICT;
INSERT INTO tree_state (id, size) VALUES (0, 0);

-- One row per leaf. leaf_index is the rowid, so records are clustered in
-- log order and range reads (entry bundles, list pages) are sequential.
CREATE TABLE records (
    leaf_index      INTEGER PRIMARY KEY CHECK (leaf_index >= 0),
    id              TEXT    NOT NULL UNIQUE,
    content_type    TEXT    NOT NULL,
    sha256          BLOB    NOT NULL CHECK (length(sha256) = 32),
    size            INTEGER NOT NULL CHECK (size >= 0),
    ingested_at_ms  INTEGER NOT NULL,
    ingested_by     TEXT    NOT NULL,
    idempotency_key TEXT,
    dedup_key       BLOB    NOT NULL UNIQUE CHECK (length(dedup_key) = 32),
    leaf_data       BLOB    NOT NULL,
    -- NULL: the payload is external (the vault's blob directory).
    payload         BLOB,
    -- The record's labels as a JSON object of strings, keys sorted: read
    -- with the record, no second lookup. record_labels indexes them.
    labels          TEXT    NOT NULL
) STRICT;

-- A retried request (same principal, same key) finds its first record.
CREATE UNIQUE INDEX records_idempotency
    ON records (ingested_by, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- Filters of Store::list. Each index entry ends in the rowid (leaf_index),
-- so an equality on content_type scans in leaf order.
CREATE INDEX records_content_type ON records (content_type);
CREATE INDEX records_ingested_at ON records (ingested_at_ms);

-- The label index: one row per (label, record), clustered by
-- (key, value, leaf_index) so a label filter scans its matches in leaf
-- order, and a further label is one primary-key probe. WITHOUT ROWID: the
-- table is its own index, one b-tree write per label.
CREATE TABLE record_labels (
    key        TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    leaf_index INTEGER NOT NULL REFERENCES records (leaf_index),
    PRIMARY KEY (key, value, leaf_index)
) STRICT, WITHOUT ROWID;

-- C2SP tlog-tiles, latest (widest) contents; a narrower tile is a prefix.
CREATE TABLE tiles (
    level INTEGER NOT NULL CHECK (level BETWEEN 0 AND 63),
    idx   INTEGER NOT NULL CHECK (idx >= 0),
    data  BLOB    NOT NULL CHECK (length(data) BETWEEN 32 AND 8192 AND length(data) % 32 = 0),
    PRIMARY KEY (level, idx)
) STRICT, WITHOUT ROWID;

-- Every signed checkpoint, by tree size; the first one stored for a size wins.
CREATE TABLE checkpoints (
    size          INTEGER PRIMARY KEY CHECK (size >= 0),
    note          TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL
) STRICT;

-- Small settings (log origin, key ids).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT, WITHOUT ROWID;
