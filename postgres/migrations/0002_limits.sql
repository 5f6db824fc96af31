-- Per-key limits (see docs/limits.md): 0 means the server-wide default,
-- -1 no limit for this key.
ALTER TABLE keys
    ADD COLUMN rpm bigint NOT NULL DEFAULT 0,
    ADD COLUMN tpm bigint NOT NULL DEFAULT 0,
    ADD COLUMN max_streams bigint NOT NULL DEFAULT 0,
    ADD COLUMN budget_ticks_per_day bigint NOT NULL DEFAULT 0,
    ADD COLUMN budget_ticks_per_month bigint NOT NULL DEFAULT 0;
