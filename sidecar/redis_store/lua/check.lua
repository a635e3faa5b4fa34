-- Check: mark on first sight. KEYS: one record key per item.
-- ARGV per item (stride 5): window_ms, sliding (0|1), fingerprint check (0|1), fingerprint, trace context.
-- Reply: {now_ms, item...}; item = {outcome (1 NEW, 2 DUPLICATE, 3 CONFLICT), first_seen_ms,
--   age_ms, state (2 IN_PROGRESS, 3 DONE), has_result, result, trace context of the original};
--   outcome 4 = over quota (nothing stored). ARGV ends with the quota trailer (prelude).
local reply = {now_ms}
local items, admit = quota_gate()
for i = 1, items do
  local base = (i - 1) * 5
  local key, window = KEYS[i], tonumber(ARGV[base + 1])
  local fingerprint, trace = ARGV[base + 4], ARGV[base + 5]
  local record = load(key)
  if not record and not admit(i) then
    reply[i + 1] = {4, 0, 0, 0, 0, '', ''}
  elseif not record then
    local slide_ms = 0
    if ARGV[base + 2] == '1' then slide_ms = window end
    save(key, {'D', 0, now_ms, now_ms, fingerprint, 0, '', trace, '', slide_ms}, window)
    reply[i + 1] = {1, now_ms, 0, 3, 0, '', ''}
  else
    local outcome = 2
    if conflicts(record, fingerprint, ARGV[base + 3]) then outcome = 3 else slide(key, record) end
    local state = 3
    if record[1] == 'P' then state = 2 end
    reply[i + 1] = {outcome, record[3], now_ms - record[3], state, record[6], record[7], record[8]}
  end
end
return reply
