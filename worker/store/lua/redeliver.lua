-- redeliver: replay a dead delivery: pending again, due now, off the dead list; its answer is
-- ready again now.
-- KEYS: the record, the outbox zset, the dead deliveries zset, the outbox ready times zset, the
--       record's parts stored ahead.
-- ARGV: now, the member.
-- Returns 1, or 0 when the delivery is not dead.
if redis.call('HGET', KEYS[1], {{field.delivery}}) ~= {{delivery.dead}} then return 0 end
redis.call('HSET', KEYS[1], {{field.delivery}}, {{delivery.pending}}, {{field.delivery_attempts}}, '0',
           {{field.delivery_since}}, ARGV[1], {{field.delivery_timeouts}}, '0')
redis.call('HDEL', KEYS[1], {{field.push_claimed_at}})  -- claimed afresh
redis.call('PERSIST', KEYS[1])
redis.call('PERSIST', KEYS[5])
redis.call('ZREM', KEYS[3], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[4], ARGV[1], ARGV[2])
return 1
