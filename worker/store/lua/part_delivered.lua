-- part_delivered: one part of a multi-part answer reached the hub: the next part is pushed
-- next, and the holder's time to push it starts now.
-- KEYS: the record, the outbox zset.
-- ARGV: the holder's claim, the next part, the reclaim time, the member.
-- Returns 1, or 0 when the claim no longer holds the push.
if redis.call('HGET', KEYS[1], {{field.push_holder}}) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], {{field.delivery_part}}, ARGV[2], {{field.delivery_timeouts}}, '0')
redis.call('HDEL', KEYS[1], {{field.delivery_error}})
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
return 1
