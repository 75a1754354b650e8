-- Admin UI sessions (issue 13). The cookie's token is never stored: only
-- its SHA-256 (hex), so a copy of the database cannot be replayed as a
-- cookie. Every replica reads this table on each UI request, so a revoked
-- session ends everywhere at once.
CREATE TABLE ui_sessions (
    hash         TEXT PRIMARY KEY NOT NULL,
    user_name    TEXT NOT NULL,               -- the key's name, or (password)
    role         TEXT NOT NULL,               -- admin or viewer, at login
    via          TEXT NOT NULL,               -- key or password
    -- Key sessions: 64 bits of SHA-256 over the session's hash and the
    -- key's SHA-256, never the key: a key rotated or made again under the
    -- same name is another key, and does not inherit sessions.
    key_fingerprint TEXT,
    created_at   INTEGER NOT NULL,            -- unix seconds
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX ui_sessions_expires ON ui_sessions (expires_at);

-- Small named values of the gateway's own, such as the admin password's
-- Argon2id hash (PHC string).
CREATE TABLE settings (
    name       TEXT PRIMARY KEY NOT NULL,
    value      TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
