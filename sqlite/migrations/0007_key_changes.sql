-- Every key change is numbered (meta's keys_generation, bumped in the
-- change's transaction) and the key keeps the number of its last change,
-- so servers read only the keys changed since their last poll instead of
-- the whole table. Keys from before keep 0: a server's first read takes
-- every key anyway.
ALTER TABLE keys ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
CREATE INDEX keys_seq ON keys (seq);
