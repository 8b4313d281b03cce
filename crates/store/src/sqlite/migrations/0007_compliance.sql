-- evault store schema, version 7: erasure, legal holds, retention.

-- The tombstone's leaf, for a record whose payload was erased (its payload
-- column is then NULL and there is no blob): read with the record, so every
-- read knows at once that the bytes are gone and why. NULL: not erased.
ALTER TABLE records ADD COLUMN erased_tombstone INTEGER
    CHECK (erased_tombstone IS NULL OR (payload IS NULL AND erased_tombstone >= 0));

-- Records by payload digest: an erasure finds every record sharing the
-- bytes (and the put path whether a re-upload's bytes were erased) without
-- a scan of the records table.
CREATE INDEX records_by_sha256 ON records (sha256);

-- One row per erased record, written in the same transaction as its
-- tombstone record. The reason's text is kept here for administrators
-- only; the logs hold just its digest.
CREATE TABLE erasures (
    leaf_index     INTEGER PRIMARY KEY REFERENCES records (leaf_index),
    tombstone_leaf INTEGER NOT NULL UNIQUE REFERENCES records (leaf_index),
    reason_sha256  BLOB    NOT NULL CHECK (length(reason_sha256) = 32),
    reason         TEXT    NOT NULL,
    basis          TEXT    NOT NULL,
    erased_at_ms   INTEGER NOT NULL,
    erased_by      TEXT    NOT NULL
) STRICT;

-- Legal holds: while released_at_ms is NULL, a record matching the
-- selector (a JSON object: {"labels": {..}, "content_type": ..}) cannot be
-- erased, by request or by retention.
CREATE TABLE legal_holds (
    id             TEXT    PRIMARY KEY,
    selector       TEXT    NOT NULL,
    reason_sha256  BLOB    NOT NULL CHECK (length(reason_sha256) = 32),
    reason         TEXT    NOT NULL,
    created_at_ms  INTEGER NOT NULL,
    created_by     TEXT    NOT NULL,
    released_at_ms INTEGER,
    released_by    TEXT
) STRICT, WITHOUT ROWID;

-- Retention policies: payloads of records matching the selector are
-- erased once keep_for_ms has passed since they were ingested.
CREATE TABLE retention_policies (
    id            TEXT    PRIMARY KEY,
    name          TEXT    NOT NULL,
    selector      TEXT    NOT NULL,
    keep_for_ms   INTEGER NOT NULL CHECK (keep_for_ms > 0),
    created_at_ms INTEGER NOT NULL,
    created_by    TEXT    NOT NULL
) STRICT, WITHOUT ROWID;
