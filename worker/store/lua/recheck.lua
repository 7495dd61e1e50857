-- recheck: a claim whose push task was sent and not taken by its reclaim time, after the caller
-- asked the broker about that task: still queued, its reclaim time moves on; lost, the delivery
-- is claimed afresh (a new claim number and stamp) for a new push task. Nothing happens if the
-- claim is no longer the one whose task is awaited (taken meanwhile, or claimed afresh by
-- another worker).
-- KEYS: the record, the outbox zset, the claim numbers' sequence.
-- ARGV: the claim, now, the reclaim time, the member, '1' if the task is lost ('0': queued).
-- Returns false (the claim moved on), 0 (left queued), or the new claim.
local found = redis.call('HMGET', KEYS[1], {{field.delivery}}, {{field.push_claim}},
                         {{field.push_claimed_at}})
if found[1] ~= {{delivery.pending}} or found[2] ~= ARGV[1] or not found[3] then return false end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
if ARGV[5] ~= '1' then return 0 end
local claim = tostring(redis.call('INCR', KEYS[3]))
redis.call('HSET', KEYS[1], {{field.push_claim}}, claim, {{field.push_claimed_at}}, ARGV[2])
return claim
