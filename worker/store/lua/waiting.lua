-- waiting: the holder's attempt ends to come back at a set time (a provider's pace, a booked
-- call), if it still holds the lease: not a failed attempt (its count is given back), queued
-- again for then through the due set; the lease goes with it.
-- KEYS: the record, its lease, the watch zset, the due zset.
-- ARGV: the lease token, now, when it comes back, the member, the watch deadline.
-- Woken while it ran (``wake``: what it waits for happened before it said so), it comes back
-- then instead.
-- Returns 1, or 0 when the token no longer holds the lease (nothing written).
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
local at = ARGV[3]
local woken = redis.call('HGET', KEYS[1], {{field.woken_at}})
if woken then
  redis.call('HDEL', KEYS[1], {{field.woken_at}})
  if tonumber(woken) < tonumber(at) then at = woken end
end
if redis.call('HINCRBY', KEYS[1], {{field.attempts}}, -1) <= 0 then
  redis.call('HDEL', KEYS[1], {{field.retry_since}})
end
redis.call('HSET', KEYS[1], {{field.status}}, {{status.queued}}, {{field.next_attempt_at}}, at,
           {{field.updated_at}}, ARGV[2])
redis.call('ZADD', KEYS[4], at, ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[4])
redis.call('DEL', KEYS[2])
return 1
