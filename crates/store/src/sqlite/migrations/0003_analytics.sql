-- evault store schema, version 3: typed analytics events.
--
-- A record of content type application/vnd.evault.analytics+json carries
-- an event the vault has validated (docs/FORMATS.md). Its typed fields are
-- copied here in the record's own transaction, so that analytics_summary
-- aggregates in SQL over what is stored (and survives restarts) rather
-- than over memory. The payload stays the source of truth; these rows are
-- an index of it. Records of other types cost nothing here.

-- One row per analytics record, keyed like the record.
CREATE TABLE analytics_events (
    leaf_index  INTEGER PRIMARY KEY CHECK (leaf_index >= 0)
                REFERENCES records (leaf_index),
    source      TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    -- The event's own timestamp (ms since the epoch), not the ingest time.
    ts_ms       INTEGER NOT NULL,
    value       REAL,
    unit        TEXT,
    -- Copied from the record: an ingester summarises its own events.
    ingested_by TEXT    NOT NULL
) STRICT;

-- The summary's filters and GROUP BY: source and kind equalities, then a
-- time window.
CREATE INDEX analytics_events_source_kind_ts ON analytics_events (source, kind, ts_ms);

-- One row per metric of an event. WITHOUT ROWID: the primary key is the
-- table, so an event's metrics are one range read after its row.
CREATE TABLE analytics_metrics (
    leaf_index INTEGER NOT NULL REFERENCES analytics_events (leaf_index),
    name       TEXT    NOT NULL,
    value      REAL    NOT NULL,
    PRIMARY KEY (leaf_index, name)
) STRICT, WITHOUT ROWID;
