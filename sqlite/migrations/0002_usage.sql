-- Keys gain a model allow-list (a JSON array of model ids; [] allows every
-- model) and an optional expiry.
ALTER TABLE keys ADD COLUMN allowed_models TEXT NOT NULL DEFAULT '[]';
ALTER TABLE keys ADD COLUMN expires_at INTEGER; -- Unix microseconds, UTC; NULL: never

-- The usage ledger: one row per metered request. request_id is the key so a
-- batch written twice (a retry after an ambiguous failure) counts once.
CREATE TABLE usage_records (
    request_id        TEXT PRIMARY KEY,
    time              INTEGER NOT NULL, -- Unix microseconds, UTC
    key_id            TEXT NOT NULL,
    route             TEXT NOT NULL,
    requested_model   TEXT NOT NULL,
    model             TEXT NOT NULL,    -- '' when xAI never said
    stream            INTEGER NOT NULL,
    fallback          INTEGER NOT NULL,
    status            INTEGER NOT NULL,
    outcome           TEXT NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL, -- excludes reasoning, as xAI counts
    reasoning_tokens  INTEGER NOT NULL,
    cached_tokens     INTEGER NOT NULL,
    cost_in_usd_ticks INTEGER NOT NULL,
    estimated         INTEGER NOT NULL,
    latency_us        INTEGER NOT NULL,
    ttfb_us           INTEGER NOT NULL,
    upstream_id       TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX usage_records_time ON usage_records (time);
