-- Inspect: read a record without changing it. KEYS[1]: record key.
-- Reply: {state (1 ABSENT, 2 IN_PROGRESS, 3 DONE), fencing token, first_seen_ms, committed_ms,
--   lease_expires_ms, ttl_ms, has fingerprint, has_result, result, now_ms}
local record = load(KEYS[1])
if not record then return {1, 0, 0, 0, 0, 0, 0, 0, '', now_ms} end
local ttl = math.max(redis.call('PTTL', KEYS[1]), 0)
local has_fingerprint = 0
if record[5] ~= '' then has_fingerprint = 1 end
if record[1] == 'P' then
  return {2, record[2], record[3], 0, record[4], ttl, has_fingerprint, 0, '', now_ms}
end
return {3, record[2], record[3], record[4], 0, ttl, has_fingerprint, record[6], record[7], now_ms}
