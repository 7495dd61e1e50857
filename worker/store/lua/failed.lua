-- failed: a failed push: schedule the next one, or make the delivery dead. A push that timed
-- out is counted in a row; any other failure starts the count over. Counted in the deliveries
-- counter as retrying or dead; a dead one leaves the outbox's ready times and its parts stored
-- ahead and the number index it named expire with the record.
-- KEYS: the record, the outbox zset, the dead deliveries zset, the deliveries counter hash, the
--       outbox ready times zset, the record's parts stored ahead.
-- ARGV: the holder's claim, now, the member, the error, when to push next ('': dead), the
--       record's TTL (seconds), '1' if it timed out else '0', the retrying counter field, the
--       dead counter field.
-- Returns 1 (retrying), 2 (dead), or 0 when the claim no longer holds the push.
if redis.call('HGET', KEYS[1], {{field.push_holder}}) ~= ARGV[1] then return 0 end
redis.call('HINCRBY', KEYS[1], {{field.delivery_attempts}}, 1)
redis.call('HSET', KEYS[1], {{field.delivery_error}}, ARGV[4])
redis.call('HDEL', KEYS[1], {{field.push_holder}})
if ARGV[7] == '1' then
  redis.call('HINCRBY', KEYS[1], {{field.delivery_timeouts}}, 1)
else
  redis.call('HSET', KEYS[1], {{field.delivery_timeouts}}, '0')
end
if ARGV[5] == '' then
  redis.call('HSET', KEYS[1], {{field.delivery}}, {{delivery.dead}})
  redis.call('HDEL', KEYS[1], {{field.next_push_at}})
  redis.call('ZREM', KEYS[2], ARGV[3])
  redis.call('ZADD', KEYS[3], ARGV[2], ARGV[3])
  redis.call('EXPIRE', KEYS[1], ARGV[6])
  redis.call('EXPIRE', KEYS[6], ARGV[6])
  local numbered = redis.call('HGET', KEYS[1], {{field.numbered}})
  if numbered then redis.call('EXPIRE', numbered, ARGV[6]) end  -- its number index with it
  redis.call('ZREM', KEYS[5], ARGV[3])
  redis.call('HINCRBY', KEYS[4], ARGV[9], 1)
  return 2
end
redis.call('HSET', KEYS[1], {{field.next_push_at}}, ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[3])
redis.call('HINCRBY', KEYS[4], ARGV[8], 1)
return 1
