-- Shared by the client limiter's scripts (src/limits/redis.rs). The rules
-- are filters/src/limits/mod.rs's; the Rust tests run both side by side.

-- An admission made in second s counts while now_sec < s + 61: as if made
-- at the end of its second, so no 60 s span ever holds more than a limit.
local LIVE_SECS = 61

-- Numbers go into redis.call as decimal strings: Redis prints a Lua number
-- argument in its shortest form, which for a large integer is exponent
-- notation ("1.7e+12") that HINCRBY and ZADD refuse or misread.
local function int(n)
  return string.format('%d', n)
end

local function expiry_ms(sec)
  return (sec + LIVE_SECS) * 1000
end

-- A minute hash (second -> amount): the buckets still in the window,
-- oldest first, their total, and the fields already past it.
local function window(key, now_sec)
  local flat = redis.call('HGETALL', key)
  local live, stale, total = {}, {}, 0
  for i = 1, #flat, 2 do
    local sec, amount = tonumber(flat[i]), tonumber(flat[i + 1]) or 0
    if sec and now_sec < sec + LIVE_SECS then
      live[#live + 1] = { sec, amount }
      total = total + amount
    else
      stale[#stale + 1] = flat[i]
    end
  end
  table.sort(live, function(a, b) return a[1] < b[1] end)
  return { live = live, stale = stale, total = total }
end

-- Until the newest bucket leaves, when the window is empty again.
local function reset_ms(w, now_ms)
  local newest = w.live[#w.live]
  if not newest then
    return 0
  end
  return math.max(0, expiry_ms(newest[1]) - now_ms)
end

-- Until `need` more fits under `limit`, as buckets leave oldest first.
local function wait_for(w, now_ms, need, limit)
  local held = w.total
  for _, b in ipairs(w.live) do
    held = math.max(0, held - b[2])
    if held + need <= limit then
      return math.max(0, expiry_ms(b[1]) - now_ms)
    end
  end
  return 0
end

-- A day's requests, tokens and spend (hash fields r, t, s).
local function day_counts(key)
  local rts = redis.call('HMGET', key, 'r', 't', 's')
  return tonumber(rts[1]) or 0, tonumber(rts[2]) or 0, tonumber(rts[3]) or 0
end

-- A month's spend (hash field s).
local function month_spend(key)
  return tonumber(redis.call('HGET', key, 's')) or 0
end

-- Leases not yet ended: a gateway that died mid-request stops holding a
-- place once its lease ends.
local function in_flight(key, now_ms)
  return redis.call('ZCOUNT', key, '(' .. int(now_ms), '+inf')
end

-- What one subject's status is made of, in the order redis.rs reads it.
local function counts(rm, tm, d, c, mo, now_ms, now_sec)
  local r, t = window(rm, now_sec), window(tm, now_sec)
  local rd, td, sd = day_counts(d)
  return {
    r.total, reset_ms(r, now_ms), t.total, reset_ms(t, now_ms), rd, td, in_flight(c, now_ms),
    sd, month_spend(mo),
  }
end

