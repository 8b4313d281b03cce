-- evault store schema, version 10: the dedup and idempotency keys leave
-- the commit path.
--
-- Both keys are random, so their UNIQUE indexes on `records` dirtied about
-- one B-tree page per record at every commit (bench/README.md: the dedup
-- key's index alone cost more than half the commit). They become follower
-- tables, written by `Store::index_evidence` in sorted batches with the
-- label and sha256 indexes, below `index_state.evidence_through`. The store
-- keeps the keys of the records at or past that cursor in memory (rebuilt
-- from the records on open), so a lookup by either key stays exact the
-- moment a commit returns. Uniqueness is the single sequencer's: it looks
-- every key up before it assigns a leaf; fsck reports two leaves that
-- share a key.
--
-- A column's UNIQUE constraint cannot be dropped in SQLite: `records` is
-- rebuilt (the documented create-copy-drop-rename procedure; the store
-- turns foreign key enforcement off around this migration, and the rows
-- keep their leaf indexes, so every reference still holds). `id` keeps its
-- UNIQUE index: UUIDv7 ids grow with time, so it is written at its edge.
CREATE TABLE records_v10 (
    leaf_index       INTEGER PRIMARY KEY CHECK (leaf_index >= 0),
    id               TEXT    NOT NULL UNIQUE,
    content_type     TEXT    NOT NULL,
    sha256           BLOB    NOT NULL CHECK (length(sha256) = 32),
    size             INTEGER NOT NULL CHECK (size >= 0),
    ingested_at_ms   INTEGER NOT NULL,
    ingested_by      TEXT    NOT NULL,
    idempotency_key  TEXT,
    dedup_key        BLOB    NOT NULL CHECK (length(dedup_key) = 32),
    leaf_data        BLOB    NOT NULL,
    -- NULL: the payload is external (the vault's blob directory) or erased.
    payload          BLOB,
    -- The record's labels as a JSON object of strings, keys sorted.
    labels           TEXT    NOT NULL,
    -- The tombstone's leaf, for a record whose payload was erased.
    erased_tombstone INTEGER
        CHECK (erased_tombstone IS NULL OR (payload IS NULL AND erased_tombstone >= 0))
) STRICT;
INSERT INTO records_v10 (leaf_index, id, content_type, sha256, size, ingested_at_ms,
        ingested_by, idempotency_key, dedup_key, leaf_data, payload, labels, erased_tombstone)
    SELECT leaf_index, id, content_type, sha256, size, ingested_at_ms,
        ingested_by, idempotency_key, dedup_key, leaf_data, payload, labels, erased_tombstone
    FROM records ORDER BY leaf_index;
DROP TABLE records;
ALTER TABLE records_v10 RENAME TO records;
-- The edge indexes, as before.
CREATE INDEX records_content_type ON records (content_type);
CREATE INDEX records_ingested_at ON records (ingested_at_ms);
CREATE INDEX records_ingested_by ON records (ingested_by);

-- The follower's key tables: (key, leaf) so a twin (a bug; fsck names it)
-- never stalls the follower, and a lookup takes the first leaf.
CREATE TABLE records_by_dedup (
    dedup_key  BLOB    NOT NULL CHECK (length(dedup_key) = 32),
    leaf_index INTEGER NOT NULL,
    PRIMARY KEY (dedup_key, leaf_index)
) STRICT, WITHOUT ROWID;
INSERT INTO records_by_dedup (dedup_key, leaf_index)
    SELECT dedup_key, leaf_index FROM records
    WHERE leaf_index < (SELECT evidence_through FROM index_state WHERE id = 0)
    ORDER BY dedup_key, leaf_index;

CREATE TABLE records_by_idempotency (
    ingested_by     TEXT    NOT NULL,
    idempotency_key TEXT    NOT NULL,
    leaf_index      INTEGER NOT NULL,
    PRIMARY KEY (ingested_by, idempotency_key, leaf_index)
) STRICT, WITHOUT ROWID;
INSERT INTO records_by_idempotency (ingested_by, idempotency_key, leaf_index)
    SELECT ingested_by, idempotency_key, leaf_index FROM records
    WHERE idempotency_key IS NOT NULL
      AND leaf_index < (SELECT evidence_through FROM index_state WHERE id = 0)
    ORDER BY ingested_by, idempotency_key, leaf_index;
