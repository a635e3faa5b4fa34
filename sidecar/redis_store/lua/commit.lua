-- Commit: a holder's record becomes done for the window. KEYS: one record key per item.
-- ARGV per item (stride 6): fencing token, window_ms, sliding (0|1), has result (0|1), result, trace context.
-- Reply: {now_ms, item...}; item = {outcome (1 COMMITTED, 2 LEASE_LOST), committed_ms, expires_ms}
-- A commit retried by the same holder after it succeeded answers COMMITTED again.
-- Committing a record flagged by waiting Claims (field [11]) publishes its key (prelude's wake).
local reply = {now_ms}
for i = 1, #KEYS do
  local base = (i - 1) * 6
  local key, window = KEYS[i], tonumber(ARGV[base + 2])
  local record = load(key)
  if not holds(record, ARGV[base + 1]) then
    reply[i + 1] = {2, 0, 0}
  elseif record[1] == 'D' then
    reply[i + 1] = {1, record[4], now_ms + math.max(redis.call('PTTL', key), 0)}
  else
    local slide_ms = 0
    if ARGV[base + 3] == '1' then slide_ms = window end
    save(key, {'D', record[2], record[3], now_ms, record[5], tonumber(ARGV[base + 4]), ARGV[base + 5],
               record[8], ARGV[base + 6], slide_ms}, window)
    wake(key, record)
    reply[i + 1] = {1, now_ms, now_ms + window}
  end
end
return reply
