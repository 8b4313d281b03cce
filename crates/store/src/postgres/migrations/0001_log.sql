-- PostgreSQL schema, version 1: each log's size and the store's settings.
-- The entries, tiles, checkpoints and the follower's indexes come in the
-- next migrations, with the driver code that writes them (plans/issue-14.md).
-- Applied by `evault migrate --store URL` (evault_store::postgres::migrate),
-- recorded in evault_schema with this file's SHA-256.

CREATE TABLE log_state (
    log  text   PRIMARY KEY CHECK (log IN ('evidence', 'audit')),
    size bigint NOT NULL DEFAULT 0 CHECK (size >= 0)
);
INSERT INTO log_state (log) VALUES ('evidence'), ('audit');

CREATE TABLE meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);
