-- PostgreSQL schema, version 2: both logs' entries, tiles and checkpoints,
-- the analytics copies, and the index follower's label index
-- (evault_store::postgres, plans/issue-14.md).
--
-- Text columns compare with the "C" collation: bytewise, as the SQLite
-- driver and the conformance suite order them, whatever the database's
-- default collation is.
--
-- Every table of the logs is written by INSERT only: a payload lives in
-- its own table so that an erasure deletes it there without touching the
-- entry (triggers and privileges that enforce this come with the roles).

-- One row per evidence record, in leaf order.
CREATE TABLE entries (
    leaf_index      bigint  PRIMARY KEY CHECK (leaf_index >= 0),
    id              text    COLLATE "C" NOT NULL,
    content_type    text    COLLATE "C" NOT NULL,
    sha256          bytea   NOT NULL,
    size            bigint  NOT NULL,
    ingested_at_ms  bigint  NOT NULL,
    ingested_by     text    COLLATE "C" NOT NULL,
    idempotency_key text    COLLATE "C",
    dedup_key       bytea   NOT NULL,
    leaf_data       bytea   NOT NULL,
    -- A JSON object of strings (the vault forbids control characters, so
    -- jsonb holds every label it accepts).
    labels          jsonb   NOT NULL,
    -- The payload is in the vault's blob store, not in `payloads`.
    external        boolean NOT NULL,
    CONSTRAINT entries_id UNIQUE (id)
);
-- The unique-key lookups are exact on the commit path (no follower tail):
-- neither key is UNIQUE here, as in SQLite since schema 10; the sequencer
-- keeps them unique and fsck reports twins.
CREATE INDEX entries_dedup ON entries (dedup_key, leaf_index);
CREATE INDEX entries_idempotency ON entries (ingested_by, idempotency_key, leaf_index)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX entries_sha256 ON entries (sha256, leaf_index);
CREATE INDEX entries_content_type ON entries (content_type, leaf_index);
CREATE INDEX entries_ingested_at ON entries (ingested_at_ms);
CREATE INDEX entries_ingested_by ON entries (ingested_by, leaf_index);

-- Inline payloads (an empty one is a row with no bytes).
CREATE TABLE payloads (
    leaf_index bigint PRIMARY KEY,
    data       bytea  NOT NULL
);

-- Records whose payload was erased, and the tombstone record saying so.
CREATE TABLE erased_payloads (
    leaf_index     bigint PRIMARY KEY,
    tombstone_leaf bigint NOT NULL
);

-- The typed copy of analytics records, written with them.
CREATE TABLE analytics_events (
    leaf_index  bigint PRIMARY KEY,
    source      text   COLLATE "C" NOT NULL,
    kind        text   COLLATE "C" NOT NULL,
    ts_ms       bigint NOT NULL,
    value       double precision,
    unit        text   COLLATE "C",
    ingested_by text   COLLATE "C" NOT NULL
);
CREATE INDEX analytics_events_group ON analytics_events (source, kind, ts_ms);
CREATE TABLE analytics_metrics (
    leaf_index bigint NOT NULL,
    name       text   COLLATE "C" NOT NULL,
    value      double precision NOT NULL,
    PRIMARY KEY (leaf_index, name)
);

-- One row per audit event, in leaf order.
CREATE TABLE audit_events (
    leaf_index bigint PRIMARY KEY CHECK (leaf_index >= 0),
    id         text   COLLATE "C" NOT NULL,
    time_ms    bigint NOT NULL,
    principal  text   COLLATE "C" NOT NULL,
    operation  text   COLLATE "C" NOT NULL,
    outcome    text   COLLATE "C" NOT NULL,
    leaf_data  bytea  NOT NULL,
    CONSTRAINT audit_events_id UNIQUE (id)
);
CREATE INDEX audit_events_principal ON audit_events (principal, leaf_index);
CREATE INDEX audit_events_operation ON audit_events (operation, leaf_index);
CREATE INDEX audit_events_time ON audit_events (time_ms);
CREATE INDEX audit_events_unusual ON audit_events (outcome, leaf_index)
    WHERE outcome <> 'success';

-- Full tiles (256 hashes) with their inner levels, written once.
CREATE TABLE tiles (
    log   text     NOT NULL CHECK (log IN ('evidence', 'audit')),
    level smallint NOT NULL CHECK (level BETWEEN 0 AND 63),
    idx   bigint   NOT NULL CHECK (idx >= 0),
    data  bytea    NOT NULL,
    inner_levels bytea NOT NULL,
    PRIMARY KEY (log, level, idx)
);

-- The growth of partial tiles: the hashes `start ..` a commit added to a
-- tile that was not full yet. A tile's contents are its segments in order
-- (until it is full and has a row in `tiles`), so no row is ever updated.
CREATE TABLE tile_segments (
    log    text     NOT NULL CHECK (log IN ('evidence', 'audit')),
    level  smallint NOT NULL CHECK (level BETWEEN 0 AND 63),
    idx    bigint   NOT NULL CHECK (idx >= 0),
    start  smallint NOT NULL CHECK (start BETWEEN 0 AND 255),
    hashes bytea    NOT NULL,
    PRIMARY KEY (log, level, idx, start)
);

-- Signed checkpoints: the first stored for a size wins.
CREATE TABLE checkpoints (
    log           text   NOT NULL CHECK (log IN ('evidence', 'audit')),
    size          bigint NOT NULL CHECK (size >= 0),
    note          text   NOT NULL,
    created_at_ms bigint NOT NULL,
    PRIMARY KEY (log, size)
);

-- The index follower: its cursor, and the label index it writes behind
-- the log (a list by label reads it below the cursor, and the entries'
-- own labels at or past it).
CREATE TABLE index_state (
    id               integer PRIMARY KEY CHECK (id = 0),
    evidence_through bigint  NOT NULL CHECK (evidence_through >= 0)
);
INSERT INTO index_state VALUES (0, 0);
CREATE TABLE record_labels (
    key        text   COLLATE "C" NOT NULL,
    value      text   COLLATE "C" NOT NULL,
    leaf_index bigint NOT NULL,
    PRIMARY KEY (key, value, leaf_index)
);
