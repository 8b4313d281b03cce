-- PostgreSQL schema, version 5: the logs are append-only in the database
-- itself. UPDATE, DELETE and TRUNCATE of the log tables are refused by
-- triggers here, whoever runs them; `evault migrate --app-role` also
-- grants the vault's own role no more than SELECT and INSERT on them
-- (evault_store::postgres::grant_app_role), so both would have to fail.
--
-- Payloads and the analytics copies may be deleted (an erasure does), but
-- never updated. A superuser can still disable triggers: what such a
-- hand changes, the vault's start-up check and `evault fsck` find.

CREATE FUNCTION evault_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'evault: % on % is refused: the table is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'EV001',
              HINT = 'evault''s logs are append-only; an erasure goes through the vault';
END
$$;

-- Statement triggers: they fire even when no row matches, so a refused
-- statement fails whatever it selects.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['entries', 'audit_events', 'tiles', 'tile_segments',
                             'checkpoints', 'erased_payloads', 'erasures'] LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE OR TRUNCATE ON %I
                        FOR EACH STATEMENT EXECUTE FUNCTION evault_append_only()',
                       t || '_append_only', t);
    END LOOP;
    FOREACH t IN ARRAY ARRAY['payloads', 'analytics_events', 'analytics_metrics'] LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR TRUNCATE ON %I
                        FOR EACH STATEMENT EXECUTE FUNCTION evault_append_only()',
                       t || '_no_update', t);
    END LOOP;
END
$$;
