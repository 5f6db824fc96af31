-- A ledger row may stand for several requests: a key's refused requests
-- are written once a minute with their count, not a row each.
ALTER TABLE usage_records ADD COLUMN request_count bigint NOT NULL DEFAULT 1;
