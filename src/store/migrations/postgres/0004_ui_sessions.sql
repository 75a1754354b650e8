-- Admin UI sessions (issue 13), as in SQLite's 0004: only the SHA-256
-- (hex) of the cookie's token is stored; every replica reads this table
-- on each UI request, so a revoked session ends everywhere at once.
CREATE TABLE ui_sessions (
    hash         TEXT PRIMARY KEY,
    user_name    TEXT NOT NULL,               -- the key's name, or (password)
    role         TEXT NOT NULL,               -- admin or viewer, at login
    via          TEXT NOT NULL,               -- key or password
    -- Key sessions: a fingerprint of the key (see SQLite's 0004).
    key_fingerprint TEXT,
    created_at   BIGINT NOT NULL,             -- unix seconds
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX ui_sessions_expires ON ui_sessions (expires_at);

-- Small named values of the gateway's own, such as the admin password's
-- Argon2id hash (PHC string).
CREATE TABLE settings (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
