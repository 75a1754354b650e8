-- Runtime API keys, as in SQLite's 0001: the secret itself is never
-- stored, only its SHA-256 (hex) to find it by and a short prefix that is
-- safe to show. Integers are BIGINT so every column reads back as the
-- same Rust type (i64) on both backends.
CREATE TABLE keys (
    name       TEXT PRIMARY KEY,
    hash       TEXT NOT NULL UNIQUE,
    prefix     TEXT NOT NULL,
    -- The key's attributes (a KeySpec without its name) as JSON text: new
    -- attributes need no migration.
    spec       TEXT NOT NULL,
    created_at BIGINT NOT NULL,               -- unix seconds
    updated_at BIGINT NOT NULL
);

-- Last use per key name, config keys included. Apart from `keys`: every
-- gateway writes it every few seconds and that is not a change of the
-- keys (it does not bump the version).
CREATE TABLE key_activity (
    name         TEXT PRIMARY KEY,
    last_used_at BIGINT NOT NULL
);

-- One row. `keys_version` is bumped in the same transaction as every
-- change to `keys`, so each replica polls one integer to notice a change
-- made by any other.
CREATE TABLE meta (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    keys_version BIGINT NOT NULL
);
INSERT INTO meta (id, keys_version) VALUES (1, 0);
