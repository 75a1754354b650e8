-- Every index is written once per request: the (key_name, ts) index cost
-- the usage writer about a quarter of its CPU per row. A key's rows are
-- read by time range (the `ts` index) and then filtered by key; the read
-- side needs nothing more at the volumes one gateway writes.
DROP INDEX IF EXISTS usage_key_ts;
