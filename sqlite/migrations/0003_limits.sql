-- Per-key limits (see docs/limits.md): 0 means the server-wide default,
-- -1 no limit for this key.
ALTER TABLE keys ADD COLUMN rpm INTEGER NOT NULL DEFAULT 0;
ALTER TABLE keys ADD COLUMN tpm INTEGER NOT NULL DEFAULT 0;
ALTER TABLE keys ADD COLUMN max_streams INTEGER NOT NULL DEFAULT 0;
ALTER TABLE keys ADD COLUMN budget_ticks_per_day INTEGER NOT NULL DEFAULT 0;
ALTER TABLE keys ADD COLUMN budget_ticks_per_month INTEGER NOT NULL DEFAULT 0;
