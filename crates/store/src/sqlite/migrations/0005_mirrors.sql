-- evault store schema, version 5: mirrors of other logs.
--
-- Evidence imported from verified evidence bundles of other logs. Never a
-- leaf of this vault's own trees: each record keeps its original origin,
-- leaf index and the signed checkpoint its inclusion proof is against.

-- The signed checkpoints of mirrored logs: one per origin and size (a
-- second, different one would be a fork, and is refused).
CREATE TABLE mirror_checkpoints (
    origin       TEXT    NOT NULL,
    tree_size    INTEGER NOT NULL CHECK (tree_size >= 0),
    note         TEXT    NOT NULL,
    imported_ms  INTEGER NOT NULL,
    imported_by  TEXT    NOT NULL,
    PRIMARY KEY (origin, tree_size)
) STRICT, WITHOUT ROWID;

CREATE TABLE mirror_records (
    origin          TEXT    NOT NULL,
    leaf_index      INTEGER NOT NULL CHECK (leaf_index >= 0),
    -- The record's API JSON, as in the bundle's records.jsonl.
    record          TEXT    NOT NULL,
    -- Its payload's SHA-256, lower-case hex (a row of mirror_payloads when
    -- the bundle carried payloads).
    sha256          TEXT    NOT NULL,
    -- The checkpoint (of this origin) its inclusion proof is against.
    tree_size       INTEGER NOT NULL CHECK (tree_size > leaf_index),
    -- RFC 6962 audit path: JSON array of standard base64 hashes.
    inclusion_proof TEXT    NOT NULL,
    PRIMARY KEY (origin, leaf_index),
    FOREIGN KEY (origin, tree_size) REFERENCES mirror_checkpoints (origin, tree_size)
) STRICT, WITHOUT ROWID;

CREATE TABLE mirror_payloads (
    sha256  TEXT PRIMARY KEY,
    data    BLOB NOT NULL
) STRICT, WITHOUT ROWID;
