-- Ends an admission: replaces the reserved tokens by the real usage in the
-- second and day they were counted in, where those still exist, and frees
-- the request's place in flight (filters' `Counters::settle`).
--
-- KEYS, per subject: tm, d:<ticket day>, c.
-- ARGV: ticket_sec, delta (actual - reserved), request_id.
local sec, delta, request_id = ARGV[1], tonumber(ARGV[2]), ARGV[3]

-- Moves a counted amount by delta, never below zero; a field already gone
-- (its minute or day over) is left gone rather than created without TTL.
local function adjust(key, field)
  local v = redis.call('HGET', key, field)
  if v then
    redis.call('HSET', key, field, int(math.max(0, tonumber(v) + delta)))
  end
end

-- Only an admission still in flight is settled: a settle replayed after an
-- outage, or one for an admission whose reply was lost (and which may never
-- have run), changes nothing twice.
for i = 1, #KEYS / 3 do
  local base = 3 * (i - 1)
  if redis.call('ZREM', KEYS[base + 3], request_id) == 1 and delta ~= 0 then
    adjust(KEYS[base + 1], sec)
    adjust(KEYS[base + 2], 't')
  end
end
return 1
