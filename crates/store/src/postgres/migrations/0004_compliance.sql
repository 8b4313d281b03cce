-- PostgreSQL schema, version 4: erasures, legal holds and retention
-- policies. An erasure deletes the record's row in `payloads` (and its
-- analytics copies) and adds one in `erased_payloads` (version 2) and
-- here, in the transaction that appends its tombstone.

CREATE TABLE erasures (
    leaf_index     bigint PRIMARY KEY REFERENCES entries (leaf_index),
    tombstone_leaf bigint NOT NULL UNIQUE REFERENCES entries (leaf_index),
    reason_sha256  bytea  NOT NULL CHECK (length(reason_sha256) = 32),
    -- For administrators; never in either log (the tombstone carries its
    -- SHA-256).
    reason         text   NOT NULL,
    basis          text   NOT NULL,
    erased_at_ms   bigint NOT NULL,
    erased_by      text   NOT NULL
);

CREATE TABLE legal_holds (
    id             text   COLLATE "C" PRIMARY KEY,
    -- A JSON selector (evault_store::Selector), as text.
    selector       text   NOT NULL,
    reason_sha256  bytea  NOT NULL CHECK (length(reason_sha256) = 32),
    reason         text   NOT NULL,
    created_at_ms  bigint NOT NULL,
    created_by     text   NOT NULL,
    released_at_ms bigint,
    released_by    text,
    CHECK ((released_at_ms IS NULL) = (released_by IS NULL))
);

CREATE TABLE retention_policies (
    id            text   COLLATE "C" PRIMARY KEY,
    name          text   NOT NULL,
    selector      text   NOT NULL,
    keep_for_ms   bigint NOT NULL CHECK (keep_for_ms > 0),
    created_at_ms bigint NOT NULL,
    created_by    text   NOT NULL
);
