-- PostgreSQL schema, version 3: the task table, the mirror tables and
-- witness cosignatures (mutable tables, outside both logs).
--
-- The same tables as SQLite's (its migrations 4 to 6), with its columns.
-- Text that is compared or ordered uses the "C" collation: bytewise, as
-- SQLite orders it, whatever the database's default collation is.

-- One row per task the vault runs (an export, an fsck, ...), updated on
-- every state change and, throttled, as progress is made.
CREATE TABLE tasks (
    -- UUIDv7, canonical lower-case text: ids sort by creation time.
    id            text    COLLATE "C" NOT NULL,
    kind          text    COLLATE "C" NOT NULL,
    principal     text    COLLATE "C" NOT NULL,
    -- The task reads as a reader that sees everything (an auditor's),
    -- else only what its principal submitted.
    reads_all     boolean NOT NULL,
    -- The parameters as given, JSON text.
    params        text    NOT NULL,
    state         text    COLLATE "C" NOT NULL
                  CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
    done          bigint  NOT NULL DEFAULT 0 CHECK (done >= 0),
    total         bigint  CHECK (total >= 0),
    -- The result file's name under the vault's task directory, its size
    -- and SHA-256 (hex), once the task succeeded with one.
    result_file   text,
    result_size   bigint  CHECK (result_size >= 0),
    result_sha256 text,
    -- What the kind reported on success (JSON text).
    summary       text,
    error         text,
    created_ms    bigint  NOT NULL,
    started_ms    bigint,
    finished_ms   bigint,
    -- The last step the kind checkpointed, from which it resumes.
    checkpoint    text,
    -- Named: the driver maps its violation to a duplicate task id.
    CONSTRAINT tasks_id PRIMARY KEY (id)
);
-- A principal's own tasks, newest first; the unfinished ones at start-up.
CREATE INDEX tasks_principal ON tasks (principal, id);
CREATE INDEX tasks_state ON tasks (state);

-- The signed checkpoints of mirrored logs: one per origin and size (a
-- second, different one would be a fork, and is refused).
CREATE TABLE mirror_checkpoints (
    origin      text   COLLATE "C" NOT NULL,
    tree_size   bigint NOT NULL CHECK (tree_size >= 0),
    note        text   NOT NULL,
    imported_ms bigint NOT NULL,
    imported_by text   COLLATE "C" NOT NULL,
    PRIMARY KEY (origin, tree_size)
);

-- Records of mirrored logs, never leaves of this vault's own trees.
CREATE TABLE mirror_records (
    origin          text   COLLATE "C" NOT NULL,
    leaf_index      bigint NOT NULL CHECK (leaf_index >= 0),
    -- The record's API JSON, as in the bundle's records.jsonl.
    record          text   NOT NULL,
    -- Its payload's SHA-256, lower-case hex (a row of mirror_payloads when
    -- the bundle carried payloads).
    sha256          text   COLLATE "C" NOT NULL,
    -- The checkpoint (of this origin) its inclusion proof is against.
    tree_size       bigint NOT NULL CHECK (tree_size > leaf_index),
    -- RFC 6962 audit path: JSON array of standard base64 hashes.
    inclusion_proof text   NOT NULL,
    PRIMARY KEY (origin, leaf_index),
    FOREIGN KEY (origin, tree_size) REFERENCES mirror_checkpoints (origin, tree_size)
);

CREATE TABLE mirror_payloads (
    sha256 text  COLLATE "C" PRIMARY KEY,
    data   bytea NOT NULL
);

-- C2SP tlog-cosignature lines witnesses returned for the vault's own
-- checkpoints, each verified before it is stored. One line per witness
-- and cosigner key (`<key name>+<key id hex>`) for a checkpoint: a
-- witness signing it again adds nothing.
CREATE TABLE cosignatures (
    log         text   NOT NULL CHECK (log IN ('evidence', 'audit')),
    tree_size   bigint NOT NULL CHECK (tree_size >= 0),
    witness     text   COLLATE "C" NOT NULL,
    key         text   COLLATE "C" NOT NULL,
    line        text   NOT NULL,
    received_ms bigint NOT NULL,
    PRIMARY KEY (log, tree_size, witness, key)
);
