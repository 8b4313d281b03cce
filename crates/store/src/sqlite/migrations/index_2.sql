-- evault index database, version 2 (`PRAGMA ix.user_version`): the index
-- follower's indexes as sorted runs (issue 13, step 5c).
--
-- Version 1 kept one B-tree per index; each follower batch (16,384 records
-- sorted by key) landed on most of its leaf pages, so a batch rewrote the
-- whole tree once it outgrew the batch, and the bytes written per record
-- grew with the tree (bench/index_layout.py: 4.2 KB at 2M, 9.5 KB at 10M
-- for one index). Here each batch is a run: its rows, keyed by the run
-- first, are appended at the right edge of each table, and the follower
-- merges the newest runs when FANOUT of them share a level
-- (`follower.rs`), so a row is rewritten once per level.
--
-- A run is named by its first leaf and its level; it holds the records
-- [run, end_leaf). Live runs cover [0, the cursor) without overlap, so in
-- (run, level) order they are in leaf order. A merge writes the merged run
-- and drops the runs it replaces in one transaction.
--
-- The views keep version 1's table names and columns over the live runs,
-- so the store's lookups read as before (one primary-key search per live
-- run). The follower writes the `*_runs` tables; nothing writes a view.
CREATE TABLE ix.index_state (
    id               INTEGER PRIMARY KEY CHECK (id = 0),
    evidence_through INTEGER NOT NULL CHECK (evidence_through >= 0)
) STRICT;

CREATE TABLE ix.index_runs (
    run      INTEGER NOT NULL CHECK (run >= 0),
    level    INTEGER NOT NULL CHECK (level BETWEEN 0 AND 63),
    end_leaf INTEGER NOT NULL CHECK (end_leaf > run),
    -- The run's Bloom filter of its unique keys (`filters.rs`); NULL until
    -- built (the follower builds it with the run, open builds a missing one).
    filter   BLOB,
    PRIMARY KEY (run, level)
) STRICT;

CREATE TABLE ix.label_runs (
    run        INTEGER NOT NULL,
    level      INTEGER NOT NULL,
    key        TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    leaf_index INTEGER NOT NULL,
    PRIMARY KEY (run, level, key, value, leaf_index)
) STRICT, WITHOUT ROWID;

CREATE TABLE ix.sha256_runs (
    run        INTEGER NOT NULL,
    level      INTEGER NOT NULL,
    sha256     BLOB    NOT NULL CHECK (length(sha256) = 32),
    leaf_index INTEGER NOT NULL,
    PRIMARY KEY (run, level, sha256, leaf_index)
) STRICT, WITHOUT ROWID;

CREATE TABLE ix.dedup_runs (
    run        INTEGER NOT NULL,
    level      INTEGER NOT NULL,
    dedup_key  BLOB    NOT NULL CHECK (length(dedup_key) = 32),
    leaf_index INTEGER NOT NULL,
    PRIMARY KEY (run, level, dedup_key, leaf_index)
) STRICT, WITHOUT ROWID;

CREATE TABLE ix.idempotency_runs (
    run             INTEGER NOT NULL,
    level           INTEGER NOT NULL,
    ingested_by     TEXT    NOT NULL,
    idempotency_key TEXT    NOT NULL,
    leaf_index      INTEGER NOT NULL,
    PRIMARY KEY (run, level, ingested_by, idempotency_key, leaf_index)
) STRICT, WITHOUT ROWID;

CREATE VIEW ix.record_labels AS
    SELECT l.key, l.value, l.leaf_index
    FROM index_runs r CROSS JOIN label_runs l ON l.run = r.run AND l.level = r.level;

CREATE VIEW ix.records_by_sha256 AS
    SELECT x.sha256, x.leaf_index
    FROM index_runs r CROSS JOIN sha256_runs x ON x.run = r.run AND x.level = r.level;

CREATE VIEW ix.records_by_dedup AS
    SELECT x.dedup_key, x.leaf_index
    FROM index_runs r CROSS JOIN dedup_runs x ON x.run = r.run AND x.level = r.level;

CREATE VIEW ix.records_by_idempotency AS
    SELECT x.ingested_by, x.idempotency_key, x.leaf_index
    FROM index_runs r CROSS JOIN idempotency_runs x ON x.run = r.run AND x.level = r.level;
