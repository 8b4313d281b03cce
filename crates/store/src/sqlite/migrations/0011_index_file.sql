-- evault store schema, version 11: the index follower's tables move to
-- their own database file (`evault-index.db`, attached as `ix`; its schema
-- is `index_1.sql`).
--
-- Until 10 the follower's batches were transactions of this file: each
-- held the one writer lock a batch's commit waits for (about 0.4 s per
-- batch of 16,384 records at 1,000,000 stored), and its random pages shared
-- the writer's cache and this file's WAL. In their own file they have
-- their own lock, WAL, cache and a 4 KiB page (a random insert dirties one
-- page: a quarter of the bytes of a 16 KiB one).
--
-- SQLite commits a transaction over two WAL-mode files atomically in each
-- file, not across them, so the store moves the tables in two steps, each
-- safe to repeat: it fills `ix` from this file's tables in one transaction
-- of `ix`, then this script drops them with the version bump in one
-- transaction of this file. A crash between the two leaves version 10,
-- which the next start moves again from the start.
DROP TABLE main.record_labels;
DROP TABLE main.records_by_sha256;
DROP TABLE main.records_by_dedup;
DROP TABLE main.records_by_idempotency;
DROP TABLE main.index_state;
