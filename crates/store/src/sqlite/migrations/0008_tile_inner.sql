-- evault store schema, version 8: each full tile's inner levels.

-- The seven tree levels between a full tile's row and the next tile row
-- (254 hashes, 8,128 bytes; evault_merkle::tiles::tile_inner), so a proof
-- reads its nodes instead of rehashing up to 255 row hashes per tile.
-- NULL for a partial tile, whose inner levels are still growing. Rows
-- written before this version are filled in by the migration itself
-- (schema.rs), in the same transaction.
ALTER TABLE tiles ADD COLUMN inner BLOB CHECK (inner IS NULL OR length(inner) = 8128);
ALTER TABLE audit_tiles ADD COLUMN inner BLOB CHECK (inner IS NULL OR length(inner) = 8128);
