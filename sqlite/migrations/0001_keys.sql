-- Gateway keys. Only the SHA-256 of a secret is kept; prefix is for display.
CREATE TABLE keys (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    prefix      TEXT NOT NULL,
    hash        BLOB NOT NULL UNIQUE,
    role        TEXT NOT NULL,
    created_at  INTEGER NOT NULL, -- Unix microseconds, UTC
    revoked_at  INTEGER           -- NULL while active
);

-- keys_generation changes with every key mutation so running servers can
-- notice a change with one cheap read.
CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO meta (name, value) VALUES ('keys_generation', 0);
