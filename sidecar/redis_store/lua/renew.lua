-- Renew: the holder extends its lease. KEYS[1]: record key. ARGV: fencing token, lease_ms.
-- Reply: {outcome (1 RENEWED, 2 LEASE_LOST), lease_expires_ms}
local record = load(KEYS[1])
if holds(record, ARGV[1]) and record[1] == 'P' then
  local lease = tonumber(ARGV[2])
  record[4] = now_ms + lease
  save(KEYS[1], record, lease)
  return {1, record[4]}
end
return {2, 0}
