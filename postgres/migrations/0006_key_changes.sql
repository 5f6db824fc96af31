-- Every key change is numbered (meta's keys_generation, bumped in the
-- change's transaction) and the key keeps the number of its last change,
-- so replicas read only the keys changed since their last poll instead of
-- the whole table. Keys from before keep 0: a replica's first read takes
-- every key anyway.
ALTER TABLE keys ADD COLUMN seq bigint NOT NULL DEFAULT 0;
CREATE INDEX keys_seq ON keys (seq);
-- Statistics for the new column now, so polls use the index at once rather
-- than after autovacuum's next pass.
ANALYZE keys;
