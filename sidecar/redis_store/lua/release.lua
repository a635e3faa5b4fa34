-- Release: the holder drops its lease. KEYS[1]: record key. ARGV[1]: fencing token.
-- Reply: 1 RELEASED, 2 LEASE_LOST. Releasing a record flagged by waiting Claims publishes its key (prelude's wake).
local record = load(KEYS[1])
if holds(record, ARGV[1]) and record[1] == 'P' then
  redis.call('DEL', KEYS[1])
  wake(KEYS[1], record)
  return 1
end
return 2
