-- Console sign-ins. id is the SHA-256 of the browser's session token (the
-- token itself is never stored); every request still checks key_id's key,
-- so a revoked key's sessions end with it.
CREATE TABLE sessions (
    id          bytea PRIMARY KEY,
    key_id      text NOT NULL,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

-- The console's recent-requests view reads the ledger newest first, often
-- for one key.
CREATE INDEX usage_records_key_time ON usage_records (key_id, time);
