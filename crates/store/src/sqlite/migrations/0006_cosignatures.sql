-- evault store schema, version 6: witness cosignatures.
--
-- C2SP tlog-cosignature lines that witnesses returned for the vault's own
-- checkpoints (C2SP tlog-witness add-checkpoint), each verified with the
-- witness's key before it is stored, and served appended to the
-- checkpoint's note.
CREATE TABLE cosignatures (
    log          TEXT    NOT NULL CHECK (log IN ('evidence', 'audit')),
    tree_size    INTEGER NOT NULL CHECK (tree_size >= 0),
    witness      TEXT    NOT NULL,
    line         TEXT    NOT NULL,
    received_ms  INTEGER NOT NULL,
    PRIMARY KEY (log, tree_size, witness, line)
) STRICT, WITHOUT ROWID;
