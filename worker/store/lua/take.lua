-- take: take a claimed push: the claim must be the current one and the delivery still pending.
-- KEYS: the record, the outbox zset, the record's parts stored ahead (list).
-- ARGV: the claim, the reclaim time, the member, now.
-- Returns false, or {answer, delivery_attempts, delivery_since, delivery_id, delivery_part,
-- delivery_timeouts, store, service, the number of parts stored ahead}.
if redis.call('HGET', KEYS[1], {{field.push_claim}}) ~= ARGV[1] then return false end
if redis.call('HGET', KEYS[1], {{field.delivery}}) ~= {{delivery.pending}} then return false end
redis.call('HSET', KEYS[1], {{field.push_claim}}, '', {{field.push_holder}}, ARGV[1])
redis.call('HDEL', KEYS[1], {{field.push_claimed_at}})
redis.call('HSETNX', KEYS[1], {{field.delivery_since}}, ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
local found = redis.call('HMGET', KEYS[1], {{field.answer}}, {{field.delivery_attempts}},
                         {{field.delivery_since}}, {{field.delivery_id}}, {{field.delivery_part}},
                         {{field.delivery_timeouts}}, {{field.store}}, {{field.service}})
found[#found + 1] = redis.call('LLEN', KEYS[3])
return found
