-- evault store schema, version 12: tiles in rowid tables.
--
-- Until 11 `tiles` and `audit_tiles` were WITHOUT ROWID tables keyed
-- (level, idx). A full tile's row (8,192 bytes of hashes and 8,128 of
-- inner levels) is far larger than an index b-tree keeps in a page (about
-- 4 KiB of a 16 KiB page), so each read walked interior pages holding
-- whole rows' prefixes and then followed an overflow page: at 10,000,000
-- records 27 % of a proof's time went there. A rowid table keeps a row of
-- up to 16,349 bytes in its leaf page and only 8-byte keys above it, so
-- a read is one small descent and one page (4.5-5.2x the reads per second
-- in a same-run copy of 39,063 tiles).
--
-- The rowid is `level << 56 | idx` (below 2^62: levels up to 63, and a
-- tile index of a tree of fewer than 2^63 leaves is below 2^55), so key
-- order is (level, idx) order. `level` and `idx` stay as columns, checked
-- against the key, for every reader that names them.
CREATE TABLE tiles_v12 (
    id    INTEGER PRIMARY KEY CHECK (id = (level << 56) | idx),
    level INTEGER NOT NULL CHECK (level BETWEEN 0 AND 63),
    idx   INTEGER NOT NULL CHECK (idx >= 0 AND idx < 72057594037927936),
    data  BLOB    NOT NULL CHECK (length(data) BETWEEN 32 AND 8192 AND length(data) % 32 = 0),
    inner BLOB CHECK (inner IS NULL OR length(inner) = 8128)
) STRICT;
INSERT INTO tiles_v12 (id, level, idx, data, inner)
    SELECT (level << 56) | idx, level, idx, data, inner FROM tiles ORDER BY level, idx;
DROP TABLE tiles;
ALTER TABLE tiles_v12 RENAME TO tiles;

CREATE TABLE audit_tiles_v12 (
    id    INTEGER PRIMARY KEY CHECK (id = (level << 56) | idx),
    level INTEGER NOT NULL CHECK (level BETWEEN 0 AND 63),
    idx   INTEGER NOT NULL CHECK (idx >= 0 AND idx < 72057594037927936),
    data  BLOB    NOT NULL CHECK (length(data) BETWEEN 32 AND 8192 AND length(data) % 32 = 0),
    inner BLOB CHECK (inner IS NULL OR length(inner) = 8128)
) STRICT;
INSERT INTO audit_tiles_v12 (id, level, idx, data, inner)
    SELECT (level << 56) | idx, level, idx, data, inner FROM audit_tiles ORDER BY level, idx;
DROP TABLE audit_tiles;
ALTER TABLE audit_tiles_v12 RENAME TO audit_tiles;
