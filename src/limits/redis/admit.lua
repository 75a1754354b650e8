-- Admits one request against every subject or none: all are checked
-- first, and only if all admit does each count it (filters' `admit`).
--
-- KEYS, per subject: rm, tm, d:<day>, c, mo:<month>.
-- ARGV: now_ms, now_sec, tokens, until_tomorrow_ms, lease_ms, request_id,
--       day_ttl_ms, spend, until_next_month_ms, month_ttl_ms, then per
--       subject rpm, tpm, rpd, tpd, concurrency, daily budget, monthly
--       budget (-1: not limited).
-- Returns {0, subject (1-based), dimension, retry_ms or -1, too_large} on a
-- refusal (which writes nothing), else {1, then each subject's counts}.
local now_ms, now_sec = tonumber(ARGV[1]), tonumber(ARGV[2])
local tokens = tonumber(ARGV[3])
local until_tomorrow = tonumber(ARGV[4])
local lease_ms = tonumber(ARGV[5])
local request_id = ARGV[6]
local day_ttl = ARGV[7]
local spend = tonumber(ARGV[8])
local until_next_month = tonumber(ARGV[9])
local month_ttl = ARGV[10]
local n = #KEYS / 5
local LIMITS = 7
local FIRST_LIMIT = 11

-- Dimension codes, in Limits::each order (redis.rs maps them back).
local RPM, TPM, RPD, TPD, CONCURRENCY, DAILY, MONTHLY = 0, 1, 2, 3, 4, 5, 6
-- Minute hashes outlive their newest bucket (61 s) with room for a late
-- settlement; an idle subject's keys then vanish.
local MINUTE_TTL_MS = '120000'

local function limit(i, dimension)
  local v = tonumber(ARGV[FIRST_LIMIT + LIMITS * (i - 1) + dimension])
  if v < 0 then
    return nil
  end
  return v
end

-- The first limit of subject i this request would break, in Counters::check
-- order: {dimension, retry_ms or -1, too_large}.
local function check(i)
  local base = 5 * (i - 1)
  local rpm, tpm, rpd, tpd, concurrency =
    limit(i, RPM), limit(i, TPM), limit(i, RPD), limit(i, TPD), limit(i, CONCURRENCY)
  if concurrency and in_flight(KEYS[base + 4], now_ms) >= concurrency then
    return { CONCURRENCY, -1, 0 }
  end
  if rpm then
    local w = window(KEYS[base + 1], now_sec)
    if w.total >= rpm then
      return { RPM, wait_for(w, now_ms, 1, rpm), 0 }
    end
  end
  local requests_day, tokens_day, spend_day = day_counts(KEYS[base + 3])
  if rpd and requests_day >= rpd then
    return { RPD, until_tomorrow, 0 }
  end
  if tpm then
    if tokens > tpm then
      return { TPM, -1, 1 }
    end
    local w = window(KEYS[base + 2], now_sec)
    if w.total + tokens > tpm then
      return { TPM, wait_for(w, now_ms, tokens, tpm), 0 }
    end
  end
  if tpd then
    if tokens > tpd then
      return { TPD, -1, 1 }
    end
    if tokens_day + tokens > tpd then
      return { TPD, until_tomorrow, 0 }
    end
  end
  local daily, monthly = limit(i, DAILY), limit(i, MONTHLY)
  if daily then
    if spend > daily then
      return { DAILY, -1, 1 }
    end
    if spend_day + spend > daily then
      return { DAILY, until_tomorrow, 0 }
    end
  end
  if monthly then
    if spend > monthly then
      return { MONTHLY, -1, 1 }
    end
    if month_spend(KEYS[base + 5]) + spend > monthly then
      return { MONTHLY, until_next_month, 0 }
    end
  end
  return nil
end

for i = 1, n do
  local refused = check(i)
  if refused then
    return { 0, i, refused[1], refused[2], refused[3] }
  end
end

-- Drops the buckets past the window, so a hash holds at most 61 fields.
local function prune(key)
  local stale = window(key, now_sec).stale
  if #stale > 0 then
    redis.call('HDEL', key, unpack(stale))
  end
end

local reply = { 1 }
for i = 1, n do
  local base = 5 * (i - 1)
  local rm, tm, d, c, mo =
    KEYS[base + 1], KEYS[base + 2], KEYS[base + 3], KEYS[base + 4], KEYS[base + 5]
  prune(rm)
  prune(tm)
  redis.call('HINCRBY', rm, ARGV[2], '1')
  -- Even zero tokens: settlement finds the bucket to put the real usage in.
  redis.call('HINCRBY', tm, ARGV[2], ARGV[3])
  redis.call('PEXPIRE', rm, MINUTE_TTL_MS)
  redis.call('PEXPIRE', tm, MINUTE_TTL_MS)
  redis.call('HINCRBY', d, 'r', '1')
  redis.call('HINCRBY', d, 't', ARGV[3])
  -- Money only where a budget counts it (as Counters::reserve).
  if limit(i, DAILY) or limit(i, MONTHLY) then
    redis.call('HINCRBY', d, 's', ARGV[8])
    redis.call('HINCRBY', mo, 's', ARGV[8])
    redis.call('PEXPIRE', mo, month_ttl)
  end
  redis.call('PEXPIRE', d, day_ttl)
  redis.call('ZREMRANGEBYSCORE', c, '-inf', ARGV[1])
  redis.call('ZADD', c, int(now_ms + lease_ms), request_id)
  -- The set outlives its longest lease.
  local keep = lease_ms + 60000
  if redis.call('PTTL', c) < keep then
    redis.call('PEXPIRE', c, int(keep))
  end
  for _, v in ipairs(counts(rm, tm, d, c, mo, now_ms, now_sec)) do
    reply[#reply + 1] = v
  end
end
return reply
