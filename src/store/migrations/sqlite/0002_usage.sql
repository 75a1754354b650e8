-- One row per request (issue 12). `request_id` is UNIQUE so that a spill
-- file replayed twice (a crash between its insert and its removal) never
-- counts a request twice: rows are inserted with INSERT OR IGNORE.
CREATE TABLE usage (
    id             INTEGER PRIMARY KEY,
    ts             INTEGER NOT NULL,          -- unix ms, request start
    request_id     TEXT NOT NULL UNIQUE,
    key_name       TEXT,
    dialect        TEXT,
    endpoint       TEXT NOT NULL,
    model          TEXT,                      -- as requested
    provider       TEXT,                      -- served by
    upstream_model TEXT,
    attempts       TEXT NOT NULL,             -- JSON array
    status         INTEGER NOT NULL,
    stream         INTEGER NOT NULL,
    input_uncached INTEGER NOT NULL,
    cache_read     INTEGER NOT NULL,
    cache_write    INTEGER NOT NULL,
    output         INTEGER NOT NULL,          -- visible output plus reasoning
    reasoning      INTEGER NOT NULL,
    cost_nanos     INTEGER,                   -- NULL until priced
    currency       TEXT,
    latency_ms     REAL NOT NULL,
    ttfb_ms        REAL,
    overhead_ms    REAL,
    bytes_in       INTEGER,
    bytes_out      INTEGER,
    client_addr    TEXT,
    user_agent     TEXT,
    session_id     TEXT,
    error          TEXT
);
-- The read side filters by time, then by key or model.
CREATE INDEX usage_ts ON usage (ts);
CREATE INDEX usage_key_ts ON usage (key_name, ts);
