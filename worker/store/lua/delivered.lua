-- delivered: the whole answer reached the hub: counted, and off the outbox's ready times; its
-- parts stored ahead and the number index it named expire with the record.
-- KEYS: the record, the outbox zset, the deliveries counter hash, the outbox ready times zset,
--       the record's parts stored ahead.
-- ARGV: the holder's claim, now, the member, the record's TTL (seconds), the counter field.
-- Returns 1, or 0 when the claim no longer holds the push.
if redis.call('HGET', KEYS[1], {{field.push_holder}}) ~= ARGV[1] then return 0 end
redis.call('HINCRBY', KEYS[1], {{field.delivery_attempts}}, 1)
redis.call('HSET', KEYS[1], {{field.delivery}}, {{delivery.delivered}}, {{field.delivered_at}}, ARGV[2])
redis.call('HDEL', KEYS[1], {{field.delivery_error}}, {{field.push_holder}}, {{field.next_push_at}})
redis.call('ZREM', KEYS[2], ARGV[3])
redis.call('ZREM', KEYS[4], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[5], ARGV[4])
local numbered = redis.call('HGET', KEYS[1], {{field.numbered}})
if numbered then redis.call('EXPIRE', numbered, ARGV[4]) end  -- its number index with it
redis.call('HINCRBY', KEYS[3], ARGV[5], 1)
return 1
