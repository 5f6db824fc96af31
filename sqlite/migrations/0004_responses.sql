-- Keys gain a server-side tool allow-list (a JSON array of tool types, such
-- as web_search; [] allows every tool).
ALTER TABLE keys ADD COLUMN allowed_tools TEXT NOT NULL DEFAULT '[]';

-- Server-side tool calls xAI made for a request (Responses API), per kind;
-- their fees are part of cost_in_usd_ticks. Older records made none.
ALTER TABLE usage_records ADD COLUMN web_search_calls INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_records ADD COLUMN x_search_calls INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_records ADD COLUMN code_interpreter_calls INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_records ADD COLUMN file_search_calls INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_records ADD COLUMN mcp_calls INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_records ADD COLUMN document_search_calls INTEGER NOT NULL DEFAULT 0;

-- The key that created each stored response: xAI does not isolate stored
-- responses by key, so grokgate refuses every other key. A row lives as long
-- as xAI keeps the response (30 days); created_at lets old rows be pruned.
CREATE TABLE response_owners (
    response_id TEXT PRIMARY KEY,
    key_id      TEXT NOT NULL,
    created_at  INTEGER NOT NULL -- Unix microseconds, UTC
) WITHOUT ROWID;
CREATE INDEX response_owners_created_at ON response_owners (created_at);
