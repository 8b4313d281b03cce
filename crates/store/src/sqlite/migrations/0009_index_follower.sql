-- evault store schema, version 9: the random-keyed evidence indexes leave
-- the commit path.
--
-- A batch's commit writes the records in log order and the indexes whose
-- keys grow with the log (id and dedup key stay until the sequencer keeps
-- its own tail of them). The label index and the sha256 index are keyed by
-- values that land on random B-tree pages, so each commit dirtied about
-- one page of each per record; they are now written by the index follower
-- (`Store::index_evidence`), in large sorted batches, behind the log.
--
-- `index_state.evidence_through` is the follower's durable cursor: the
-- label and sha256 indexes hold exactly the records below it, and it moves
-- in the transaction that writes their rows. Readers answer from the index
-- below the cursor and from a scan of the records at or above it, so a
-- lagging follower costs speed, never a missing row.
CREATE TABLE index_state (
    id               INTEGER PRIMARY KEY CHECK (id = 0),
    evidence_through INTEGER NOT NULL CHECK (evidence_through >= 0)
) STRICT;
INSERT INTO index_state (id, evidence_through)
    SELECT 0, size FROM tree_state WHERE id = 0;

-- The sha256 index becomes a table the follower writes: one row per
-- record, clustered by (sha256, leaf_index); WITHOUT ROWID, one B-tree.
-- Filled here, sorted, for every record already stored.
DROP INDEX records_by_sha256;
CREATE TABLE records_by_sha256 (
    sha256     BLOB    NOT NULL CHECK (length(sha256) = 32),
    leaf_index INTEGER NOT NULL,
    PRIMARY KEY (sha256, leaf_index)
) STRICT, WITHOUT ROWID;
INSERT INTO records_by_sha256 (sha256, leaf_index)
    SELECT sha256, leaf_index FROM records ORDER BY sha256, leaf_index;
