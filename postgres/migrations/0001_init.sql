-- Gateway keys. Only the SHA-256 of a secret is kept; prefix is for display.
CREATE TABLE keys (
    id             text PRIMARY KEY,
    name           text NOT NULL,
    prefix         text NOT NULL,
    hash           bytea NOT NULL UNIQUE,
    role           text NOT NULL,
    created_at     timestamptz NOT NULL,
    revoked_at     timestamptz,                   -- NULL while active
    allowed_models text[] NOT NULL DEFAULT '{}',  -- empty: every model
    expires_at     timestamptz                    -- NULL: never
);

-- keys_generation changes with every key mutation so every replica notices
-- a change with one cheap read per poll.
CREATE TABLE meta (
    name  text PRIMARY KEY,
    value bigint NOT NULL
);
INSERT INTO meta (name, value) VALUES ('keys_generation', 0);

-- The usage ledger: one row per metered request. request_id is the key so a
-- batch written twice (a retry after an ambiguous failure) counts once.
CREATE TABLE usage_records (
    request_id        text PRIMARY KEY,
    time              timestamptz NOT NULL,
    key_id            text NOT NULL,
    route             text NOT NULL,
    requested_model   text NOT NULL,
    model             text NOT NULL,      -- '' when xAI never said
    stream            boolean NOT NULL,
    fallback          boolean NOT NULL,
    status            integer NOT NULL,
    outcome           text NOT NULL,
    prompt_tokens     bigint NOT NULL,
    completion_tokens bigint NOT NULL,    -- excludes reasoning, as xAI counts
    reasoning_tokens  bigint NOT NULL,
    cached_tokens     bigint NOT NULL,
    cost_in_usd_ticks bigint NOT NULL,
    estimated         boolean NOT NULL,
    latency_us        bigint NOT NULL,
    ttfb_us           bigint NOT NULL,
    upstream_id       text NOT NULL
);
CREATE INDEX usage_records_time ON usage_records (time);
