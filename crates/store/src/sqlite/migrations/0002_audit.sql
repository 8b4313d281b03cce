-- evault store schema, version 2: the audit log, and listing by ingester.
--
-- The audit log is a second Merkle log beside the evidence log, with its
-- own size, tiles and checkpoints, shaped exactly like tree_state, tiles
-- and checkpoints so one code path serves both. Its events are written in
-- the same transaction as the records they describe; every index here is
-- appended to at its right edge (low-cardinality leading column, then the
-- rowid; or a monotonic key), so an event costs no random index writes.

-- The audit tree size: one row, updated in the same transaction as events.
CREATE TABLE audit_state (
    id   INTEGER PRIMARY KEY CHECK (id = 0),
    size INTEGER NOT NULL CHECK (size >= 0)
) STRICT;
INSERT INTO audit_state (id, size) VALUES (0, 0);

-- One row per audit leaf, clustered in log order. leaf_data is the event
-- (RFC 8785 JSON); the other columns are copies of its members that the
-- audit listing filters on.
CREATE TABLE audit_events (
    leaf_index INTEGER PRIMARY KEY CHECK (leaf_index >= 0),
    -- UUIDv7: time-ordered, so the unique index grows at its right edge.
    id         TEXT    NOT NULL UNIQUE,
    time_ms    INTEGER NOT NULL,
    principal  TEXT    NOT NULL,
    operation  TEXT    NOT NULL,
    outcome    TEXT    NOT NULL,
    leaf_data  BLOB    NOT NULL
) STRICT;

-- Filters of Store::list_audit. Each entry ends in the rowid (leaf_index),
-- so an equality scans in leaf order; few distinct values each, so an
-- append touches one hot page per index and commit. time_ms is the
-- request's arrival time, nearly monotonic in leaf order. Every index costs
-- each commit a page write, so outcome is indexed only where it is not
-- 'success' (the events an auditor looks for, and the few): successes
-- cost nothing there. Store::list_audit repeats the WHERE term so SQLite
-- uses it.
CREATE INDEX audit_events_principal ON audit_events (principal);
CREATE INDEX audit_events_operation ON audit_events (operation);
CREATE INDEX audit_events_time ON audit_events (time_ms);
CREATE INDEX audit_events_unusual ON audit_events (outcome) WHERE outcome <> 'success';

-- The audit tree's tiles and checkpoints, as for the evidence log.
CREATE TABLE audit_tiles (
    level INTEGER NOT NULL CHECK (level BETWEEN 0 AND 63),
    idx   INTEGER NOT NULL CHECK (idx >= 0),
    data  BLOB    NOT NULL CHECK (length(data) BETWEEN 32 AND 8192 AND length(data) % 32 = 0),
    PRIMARY KEY (level, idx)
) STRICT, WITHOUT ROWID;

CREATE TABLE audit_checkpoints (
    size          INTEGER PRIMARY KEY CHECK (size >= 0),
    note          TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL
) STRICT;

-- ListQuery.ingested_by: an ingester lists only its own records. Few
-- principals, so appends stay at the right edge of each one's range.
CREATE INDEX records_ingested_by ON records (ingested_by);
