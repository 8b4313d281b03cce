-- evault store schema, version 6: witness cosignatures.
--
-- C2SP tlog-cosignature lines that witnesses returned for the vault's own
-- checkpoints (C2SP tlog-witness add-checkpoint), each verified with the
-- witness's key before it is stored, and served appended to the
-- checkpoint's note.
--
-- One line per witness and cosigner key (`<key name>+<key id hex>`) for a
-- checkpoint: a witness that signs the same checkpoint again (a new
-- timestamp, or a randomised ML-DSA signature) does not add lines, so the
-- served note stays within the signed-note limit of 100 signatures.
CREATE TABLE cosignatures (
    log          TEXT    NOT NULL CHECK (log IN ('evidence', 'audit')),
    tree_size    INTEGER NOT NULL CHECK (tree_size >= 0),
    witness      TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    line         TEXT    NOT NULL,
    received_ms  INTEGER NOT NULL,
    PRIMARY KEY (log, tree_size, witness, key)
) STRICT, WITHOUT ROWID;
