-- wake: messages waiting for something that has happened (their batch was answered) come back
-- at a time given (now, or when their batch is due), if that is sooner than they said: one
-- parked in the due set is moved there; one still running, which has not said yet when it comes
-- back, is marked (``waiting`` takes the mark). One queued but not in the due set is already
-- published, and one finished or gone has nothing to come back for: left alone.
-- KEYS: the due zset.
-- ARGV: when they come back, the record key prefix, then the members.
local at = tonumber(ARGV[1])
for i = 3, #ARGV do
  local m = ARGV[i]
  local key = ARGV[2] .. m
  local st = redis.call('HGET', key, {{field.status}})
  if st == {{status.queued}} then
    local parked = redis.call('ZSCORE', KEYS[1], m)
    if parked and tonumber(parked) > at then
      redis.call('ZADD', KEYS[1], at, m)
      redis.call('HSET', key, {{field.next_attempt_at}}, ARGV[1])
    end
  elseif st == {{status.processing}} then
    local woken = redis.call('HGET', key, {{field.woken_at}})
    if not woken or tonumber(woken) > at then
      redis.call('HSET', key, {{field.woken_at}}, ARGV[1])
    end
  end
end
return 1
