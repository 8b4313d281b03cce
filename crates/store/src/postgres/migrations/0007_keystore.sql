-- PostgreSQL schema, version 7: the service-account keystore, shared by
-- every node.
--
-- Each edit (evault sa --store URL ...) adds a version: the whole keystore
-- document, the JSON of a service-accounts.json file, validated by the
-- writer. The latest version is in force; every node polls max(version)
-- and reloads when it grows, so a revocation reaches all nodes at once.
-- The vault's role may read and add versions, never change or delete one;
-- the owner may delete old versions (they hold revoked keys' secrets).

CREATE TABLE keystore (
    version    bigint      PRIMARY KEY CHECK (version > 0),
    document   text        NOT NULL,
    written_at timestamptz NOT NULL DEFAULT now(),
    -- Who wrote it: the database role and the tool's own account of it.
    written_by text        COLLATE "C" NOT NULL DEFAULT current_user
);
