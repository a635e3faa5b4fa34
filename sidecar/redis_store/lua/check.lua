-- Check: mark on first sight. KEYS: one record key per item.
-- ARGV per item (stride 5): window_ms, sliding (0|1), fingerprint check (0|1), fingerprint, trace context.
-- Reply: {now_ms, item...}; item = 1 for NEW (first seen now_ms: nothing else to say, and a bare
--   integer is cheaper to build and parse), else {outcome (2 DUPLICATE, 3 CONFLICT), first_seen_ms,
--   age_ms, state (2 IN_PROGRESS, 3 DONE), has_result, result, trace context of the original}
local reply = {now_ms}
for i = 1, #KEYS do
  local base = (i - 1) * 5
  local key, window = KEYS[i], tonumber(ARGV[base + 1])
  local fingerprint, trace = ARGV[base + 4], ARGV[base + 5]
  local record = load(key)
  if not record then
    local slide_ms = 0
    if ARGV[base + 2] == '1' then slide_ms = window end
    save_mark(key, fingerprint, trace, slide_ms, window)
    reply[i + 1] = 1
  else
    local outcome = 2
    if conflicts(record, fingerprint, ARGV[base + 3]) then outcome = 3 else slide(key, record) end
    local state = 3
    if record[1] == 'P' then state = 2 end
    reply[i + 1] = {outcome, record[3], now_ms - record[3], state, record[6], record[7], record[8]}
  end
end
return reply
