-- requeued: stamp a message that is about to be (re)published: the same stamp rides in the
-- broker message, which is how the watchdog tells a queued message from a lost one.
-- KEYS: the record, the watch zset.
-- ARGV: the stamp (now), the watch deadline, the member.
-- Returns 1, or 0 when the record is gone or finished (nothing written).
local st = redis.call('HGET', KEYS[1], {{field.status}})
if not st or {{FINISHED}}[st] then return 0 end
redis.call('HSET', KEYS[1], {{field.queued_at}}, ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
return 1
