-- Shared by every script (prepended by scripts.py). The record is a msgpack array:
--   [1] state 'P' (in progress) | 'D' (done)     [2] fencing token (0 = marked by Check)
--   [3] first seen, unix ms                       [4] lease expiry (P) | commit time (D), unix ms
--   [5] fingerprint ('' = none)                   [6] has result (0|1)   [7] result
--   [8] trace context of the first sighting       [9] trace context of the commit
--   [10] sliding window length in ms (0 = fixed window)
--   [11] P only, optional: the wake channel of waiting Claims (absent = nobody waits; ADR 0065)
-- Compact form: a Check-only record with no fingerprint, no trace context and a
-- fixed window is stored as its first-seen time alone, in decimal ('1712345678901'),
-- which Redis keeps as an integer inside the value object (no string allocation):
-- it reads back as {'D', 0, t, t, '', 0, '', '', '', 0}. A msgpack array never
-- starts with a digit, so the two forms cannot be confused.
-- The key's TTL is the lease while P and the window while D, so an expired
-- lease or window is an absent key. All times come from the server's TIME.
local server_time = redis.call('TIME')
local now_ms = tonumber(server_time[1]) * 1000 + math.floor(tonumber(server_time[2]) / 1000)
local now_us = tonumber(server_time[1]) * 1000000 + tonumber(server_time[2])

local function load(key)
  local raw = redis.call('GET', key)
  if not raw then return nil end
  local first = string.byte(raw, 1)
  if first >= 48 and first <= 57 then
    local seen = tonumber(raw)
    return {'D', 0, seen, seen, '', 0, '', '', '', 0}
  end
  return cmsgpack.unpack(raw)
end

local function save(key, record, ttl_ms)
  redis.call('SET', key, cmsgpack.pack(record), 'PX', ttl_ms)
end

-- A new Check mark: compact when nothing but the time needs keeping.
local function save_mark(key, fingerprint, trace, slide_ms, ttl_ms)
  if fingerprint == '' and trace == '' and slide_ms == 0 then
    redis.call('SET', key, string.format('%.0f', now_ms), 'PX', ttl_ms)
  else
    save(key, {'D', 0, now_ms, now_ms, fingerprint, 0, '', trace, '', slide_ms}, ttl_ms)
  end
end

-- Tokens are compared as decimal strings: exact for every integer below 2^53.
local function holds(record, token)
  return record ~= nil and record[2] ~= 0 and string.format('%.0f', record[2]) == token
end

local function conflicts(record, fingerprint, check)
  return check == '1' and fingerprint ~= '' and record[5] ~= '' and record[5] ~= fingerprint
end

-- A sighting of a done record in a sliding-window namespace restarts its window.
local function slide(key, record)
  if record[1] == 'D' and record[10] > 0 then redis.call('PEXPIRE', key, record[10]) end
end

-- Fencing tokens (ADR 0002): the server time in microseconds, but always above the
-- high-water mark of the record's slot (a key per slot, KEYS after the quota counters),
-- so a clock step back, a failover or a re-claim right after Release/Forget still gives
-- a larger token.
local function next_token(fence_key)
  local token = now_us
  local high = tonumber(redis.call('GET', fence_key) or '0')
  if token <= high then token = high + 1 end
  redis.call('SET', fence_key, string.format('%.0f', token))
  return token
end

-- Quotas (check and claim only; ADR 0051). KEYS = the items' record keys, then Q quota
-- counter keys (claim: then one fence key per item, `fenced`);
-- ARGV ends with a trailer read from the back: Q pairs (limit, period_ms),
-- then one quota number per item (0 = none, else 1..Q), then Q itself. With Q = 0 the
-- trailer is the single '0'. Returns the number of items and admit(i), which counts a new
-- record of item i against its quota (a fixed window per counter key) and says whether
-- it may be written.
local function quota_gate(fenced)
  local q = tonumber(ARGV[#ARGV])
  local items = #KEYS - q
  if fenced then items = items / 2 end
  if q == 0 then return items, function() return true end end
  local index_base = #ARGV - 1 - items
  local param_base = index_base - 2 * q
  return items, function(i)
    local n = tonumber(ARGV[index_base + i])
    if n == 0 then return true end
    local key = KEYS[items + n]
    local used = redis.call('INCR', key)
    if used == 1 then redis.call('PEXPIRE', key, tonumber(ARGV[param_base + 2 * n])) end
    if used > tonumber(ARGV[param_base + 2 * n - 1]) then
      redis.call('DECR', key)
      return false
    end
    return true
  end
end

-- A holder's Commit or Release ends a wait: name the key on the channel the waiting Claims left.
local function wake(key, record)
  local channel = record[11]
  -- pcall: a refused PUBLISH (an ACL without the channel) must not fail the Commit or Release
  -- that already changed the record; the waiters then fall back to their timers.
  if channel and channel ~= '' then redis.pcall('PUBLISH', channel, key) end
end
