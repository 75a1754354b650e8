-- One row per request (issue 12), the same columns as SQLite's 0002.
-- `request_id` is UNIQUE so a spill file replayed twice never counts a
-- request twice (INSERT ... ON CONFLICT (request_id) DO NOTHING).
-- Types read back as SQLite's do: every integer BIGINT (i64), every
-- millisecond figure DOUBLE PRECISION (f64); `stream` is BOOLEAN, which
-- reads as bool here and from SQLite's 0/1 alike.
CREATE TABLE usage (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ts             BIGINT NOT NULL,           -- unix ms, request start
    request_id     TEXT NOT NULL UNIQUE,
    key_name       TEXT,
    dialect        TEXT,
    endpoint       TEXT NOT NULL,
    model          TEXT,                      -- as requested
    provider       TEXT,                      -- served by
    upstream_model TEXT,
    attempts       TEXT NOT NULL,             -- JSON array
    status         BIGINT NOT NULL,
    stream         BOOLEAN NOT NULL,
    input_uncached BIGINT NOT NULL,
    cache_read     BIGINT NOT NULL,
    cache_write    BIGINT NOT NULL,
    output         BIGINT NOT NULL,           -- visible output plus reasoning
    reasoning      BIGINT NOT NULL,
    cost_nanos     BIGINT,                    -- NULL until priced
    currency       TEXT,
    latency_ms     DOUBLE PRECISION NOT NULL,
    ttfb_ms        DOUBLE PRECISION,
    overhead_ms    DOUBLE PRECISION,
    bytes_in       BIGINT,
    bytes_out      BIGINT,
    client_addr    TEXT,
    user_agent     TEXT,
    session_id     TEXT,
    error          TEXT
);
-- The read side filters by time, then by key or model.
CREATE INDEX usage_ts ON usage (ts);
CREATE INDEX usage_key_ts ON usage (key_name, ts);
