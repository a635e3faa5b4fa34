-- Claim: take a lease on an absent record. KEYS: one record key per item.
-- ARGV per item (stride 5): lease_ms, fingerprint check (0|1), fingerprint, trace context,
--   wake channel ('' = none; else the claim will wait: an IN_PROGRESS record is flagged with the
--   channel, field [11], so that its holder's Commit or Release publishes the key there; ADR 0065).
-- Reply: {now_ms, item...}; item = {outcome (1 ACQUIRED, 2 IN_PROGRESS, 3 DUPLICATE, 4 CONFLICT),
--   fencing token, lease_expires_ms, retry_after_ms, first_seen_ms, age_ms, committed_ms,
--   has_result, result, trace context of the original}; outcome 5 = over quota (nothing stored).
-- ARGV ends with the quota trailer (prelude).
-- The token is the server time in microseconds: the key is absent when a lease is
-- granted, so the token must exceed every earlier holder's without reading one.
local reply = {now_ms}
local items, admit = quota_gate()
for i = 1, items do
  local base = (i - 1) * 5
  local key, lease = KEYS[i], tonumber(ARGV[base + 1])
  local fingerprint, trace = ARGV[base + 3], ARGV[base + 4]
  local record = load(key)
  if not record and not admit(i) then
    reply[i + 1] = {5, 0, 0, 0, 0, 0, 0, 0, '', ''}
  elseif not record then
    save(key, {'P', now_us, now_ms, now_ms + lease, fingerprint, 0, '', trace, '', 0}, lease)
    reply[i + 1] = {1, now_us, now_ms + lease, 0, now_ms, 0, 0, 0, '', ''}
  elseif conflicts(record, fingerprint, ARGV[base + 2]) then
    reply[i + 1] = {4, 0, 0, 0, record[3], now_ms - record[3], 0, 0, '', record[8]}
  elseif record[1] == 'P' then
    local retry_after = math.max(redis.call('PTTL', key), 0)
    local channel = ARGV[base + 5]
    if channel ~= '' and record[11] ~= channel then
      record[11] = channel
      redis.call('SET', key, cmsgpack.pack(record), 'KEEPTTL')
    end
    reply[i + 1] = {2, 0, 0, retry_after, record[3], now_ms - record[3], 0, 0, '', record[8]}
  else
    slide(key, record)
    local original = record[9]
    if original == '' then original = record[8] end
    reply[i + 1] = {3, 0, 0, 0, record[3], now_ms - record[3], record[4], record[6], record[7], original}
  end
end
return reply
