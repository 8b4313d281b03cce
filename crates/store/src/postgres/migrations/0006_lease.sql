-- PostgreSQL schema, version 6: the sequencing lease and its fence.
--
-- Exactly one vault node may write the logs at a time: the holder of the
-- lease row, for its epoch, until the lease expires on the database's
-- clock. Every write of a log happens in a transaction that first calls
-- evault_fence(epoch, ttl_ms): it fails unless that epoch still holds an
-- unexpired lease, and keeps the lease row locked FOR SHARE until COMMIT,
-- so a takeover (an UPDATE of the row) is ordered after any commit in
-- flight. Statement triggers refuse an INSERT into a log table in a
-- transaction that did not pass the fence, so no SQL path skips it.

CREATE TABLE lease (
    id         smallint    PRIMARY KEY CHECK (id = 1),
    -- Raised by one at each takeover; the fencing token.
    epoch      bigint      NOT NULL CHECK (epoch >= 0),
    holder     text        COLLATE "C" NOT NULL,
    -- Where the holder takes appends from other nodes (empty: nowhere).
    advertise  text        COLLATE "C" NOT NULL,
    expires_at timestamptz NOT NULL
);
INSERT INTO lease (id, epoch, holder, advertise, expires_at) VALUES (1, 0, '', '', '-infinity');

-- One row per committed append: which epoch and node wrote which sizes.
CREATE TABLE commits (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    epoch        bigint      NOT NULL,
    node         text        COLLATE "C" NOT NULL,
    evidence_old bigint      NOT NULL,
    evidence_new bigint      NOT NULL,
    audit_old    bigint      NOT NULL,
    audit_new    bigint      NOT NULL,
    at           timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX commits_epoch ON commits (epoch);

CREATE FUNCTION evault_fence(want bigint, ttl_ms bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    l lease%ROWTYPE;
BEGIN
    SELECT * INTO l FROM lease WHERE id = 1 FOR SHARE;
    IF l.epoch IS DISTINCT FROM want THEN
        RAISE EXCEPTION 'evault: fenced: epoch % no longer holds the lease (epoch % is held by %)',
            want, l.epoch, l.holder USING ERRCODE = 'EV002';
    END IF;
    IF l.expires_at <= clock_timestamp() THEN
        RAISE EXCEPTION 'evault: fenced: the lease of epoch % expired at %', want, l.expires_at
            USING ERRCODE = 'EV002';
    END IF;
    -- A holder stopped inside this transaction must not keep the row
    -- locked past its lease: the server ends the transaction instead.
    IF ttl_ms > 0 THEN
        PERFORM set_config('statement_timeout', ttl_ms::text, true);
        PERFORM set_config('idle_in_transaction_session_timeout', ttl_ms::text, true);
    END IF;
    PERFORM set_config('evault.epoch', want::text, true);
END
$$;

CREATE FUNCTION evault_require_fence() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    fenced text := coalesce(current_setting('evault.epoch', true), '');
    current_epoch bigint;
BEGIN
    IF fenced <> '' THEN
        SELECT epoch INTO current_epoch FROM lease WHERE id = 1;
        IF current_epoch = fenced::bigint THEN
            RETURN NULL;
        END IF;
    END IF;
    RAISE EXCEPTION 'evault: INSERT into % outside the lease fence is refused', TG_TABLE_NAME
        USING ERRCODE = 'EV002',
              HINT = 'only the vault node holding the lease writes the logs, after evault_fence()';
END
$$;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['entries', 'payloads', 'audit_events', 'tiles', 'tile_segments',
                             'checkpoints', 'commits', 'record_labels', 'erasures',
                             'erased_payloads'] LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE INSERT ON %I
                        FOR EACH STATEMENT EXECUTE FUNCTION evault_require_fence()',
                       t || '_fenced', t);
    END LOOP;
END
$$;

CREATE TRIGGER commits_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON commits
    FOR EACH STATEMENT EXECUTE FUNCTION evault_append_only();
