-- evault store schema, version 4: tracked long-running tasks.
--
-- One row per task the vault runs (an export, an fsck, ...), bound to the
-- principal that created it. The vault updates the row on every state
-- change and, throttled, as progress is made, so a restart finds every
-- task and what became of it.

CREATE TABLE tasks (
    -- UUIDv7, canonical lower-case text: ids sort by creation time.
    id            TEXT    PRIMARY KEY,
    kind          TEXT    NOT NULL,
    principal     TEXT    NOT NULL,
    -- 1: the task reads as a reader that sees everything (an auditor's);
    -- 0: only what its principal submitted.
    reads_all     INTEGER NOT NULL CHECK (reads_all IN (0, 1)),
    -- The parameters as given, JSON text.
    params        TEXT    NOT NULL,
    state         TEXT    NOT NULL
                  CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
    done          INTEGER NOT NULL DEFAULT 0 CHECK (done >= 0),
    total         INTEGER CHECK (total >= 0),
    -- The result file's name under the vault's task directory, its size
    -- and SHA-256 (hex), once the task succeeded with one.
    result_file   TEXT,
    result_size   INTEGER CHECK (result_size >= 0),
    result_sha256 TEXT,
    -- What the kind reported on success (JSON text).
    summary       TEXT,
    error         TEXT,
    created_ms    INTEGER NOT NULL,
    started_ms    INTEGER,
    finished_ms   INTEGER,
    -- The last step the kind checkpointed, from which it resumes.
    checkpoint    TEXT
) STRICT, WITHOUT ROWID;

-- A principal's own tasks, newest first; the unfinished ones at start-up.
CREATE INDEX tasks_principal ON tasks (principal, id);
CREATE INDEX tasks_state ON tasks (state);
