-- One subject's counts as of the caller's clock; reads only.
--
-- KEYS: rm, tm, d:<day>, c, mo:<month>.  ARGV: now_ms, now_sec.
return counts(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], tonumber(ARGV[1]), tonumber(ARGV[2]))
