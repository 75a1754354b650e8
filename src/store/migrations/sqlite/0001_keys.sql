-- Runtime API keys. The secret itself is never stored: only its SHA-256
-- (hex) to find it by, and a short prefix that is safe to show.
CREATE TABLE keys (
    name       TEXT PRIMARY KEY NOT NULL,
    hash       TEXT NOT NULL UNIQUE,
    prefix     TEXT NOT NULL,
    -- The key's attributes (a KeySpec without its name) as JSON: new
    -- attributes need no migration.
    spec       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Last use per key name, config keys included. Kept apart from `keys`
-- because every gateway writes it every few seconds and that must not
-- look like a change of the keys (it does not bump the version).
CREATE TABLE key_activity (
    name         TEXT PRIMARY KEY NOT NULL,
    last_used_at INTEGER NOT NULL
);

-- One row. `keys_version` is bumped in the same transaction as every
-- change to `keys`, so a gateway polls one integer to notice a change
-- made by any process.
CREATE TABLE meta (
    id           INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    keys_version INTEGER NOT NULL
);
INSERT INTO meta (id, keys_version) VALUES (1, 0);
