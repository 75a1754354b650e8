-- Ends an admission: replaces the reserved tokens and spend by the real
-- usage and cost in the second, day and month they were counted in, where
-- those still exist, and frees the request's place in flight (filters'
-- `Counters::settle`).
--
-- KEYS, per subject: tm, d:<ticket day>, c, mo:<ticket month>.
-- ARGV: ticket_sec, delta (actual - reserved tokens), request_id,
--       spend delta (actual - reserved nanos).
local sec, delta, request_id = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local spent = tonumber(ARGV[4])

-- Moves a counted amount by `by`, never below zero; a field already gone
-- (its minute or day over), or never written (spend of a subject without
-- a budget), is left alone rather than created without TTL.
local function adjust(key, field, by)
  local v = redis.call('HGET', key, field)
  if v then
    redis.call('HSET', key, field, int(math.max(0, tonumber(v) + by)))
  end
end

-- Only an admission still in flight is settled: a settle replayed after an
-- outage, or one for an admission whose reply was lost (and which may never
-- have run), changes nothing twice.
for i = 1, #KEYS / 4 do
  local base = 4 * (i - 1)
  if redis.call('ZREM', KEYS[base + 3], request_id) == 1 then
    if delta ~= 0 then
      adjust(KEYS[base + 1], sec, delta)
      adjust(KEYS[base + 2], 't', delta)
    end
    if spent ~= 0 then
      adjust(KEYS[base + 2], 's', spent)
      adjust(KEYS[base + 4], 's', spent)
    end
  end
end
return 1
