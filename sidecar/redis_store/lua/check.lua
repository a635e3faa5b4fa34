-- Check: mark on first sight. KEYS: one record key per item.
-- ARGV[1] 'S' (shared): ARGV[2..5] = window_ms, sliding (0|1), fingerprint check (0|1), trace context
--   for every item, then one fingerprint per item (the usual batch: fewer arguments to parse);
-- ARGV[1] 'I' (per item): then per item (stride 5) window_ms, sliding, fingerprint check, fingerprint, trace context.
-- Reply: {now_ms, item...}; item = 1 for NEW (first seen now_ms: nothing else to say, and a bare
--   integer is cheaper to build and parse), else {outcome (2 DUPLICATE, 3 CONFLICT), first_seen_ms,
--   age_ms, state (2 IN_PROGRESS, 3 DONE), has_result, result, trace context of the original},
--   or {4} when the namespace's quota refuses a new record (nothing stored).
-- ARGV ends with the quota trailer (prelude.lua's quota_gate), after everything above.
local reply = {now_ms}
local items, admit = quota_gate()
local shared = ARGV[1] == 'S'
local window, sliding, check_fp, trace = tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]
for i = 1, items do
  local key, fingerprint = KEYS[i], ARGV[5 + i]
  if not shared then
    local base = 1 + (i - 1) * 5
    window, sliding, check_fp = tonumber(ARGV[base + 1]), ARGV[base + 2], ARGV[base + 3]
    fingerprint, trace = ARGV[base + 4], ARGV[base + 5]
  end
  local record = load(key)
  if not record and not admit(i) then
    reply[i + 1] = {4}
  elseif not record then
    local slide_ms = 0
    if sliding == '1' then slide_ms = window end
    save_mark(key, fingerprint, trace, slide_ms, window)
    reply[i + 1] = 1
  else
    local outcome = 2
    if conflicts(record, fingerprint, check_fp) then outcome = 3 else slide(key, record) end
    local state = 3
    if record[1] == 'P' then state = 2 end
    reply[i + 1] = {outcome, record[3], now_ms - record[3], state, record[6], record[7], record[8]}
  end
end
return reply
