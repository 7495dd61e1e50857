-- retrying (with listing): the holder schedules its retry, if it still holds the lease; the
-- lease goes with it.
-- KEYS: the record, its lease, the watch zset, the due zset.
-- ARGV: the lease token, now, when the retry is due, the error, the member, the watch deadline.
-- Returns 1, or 0 when the token no longer holds the lease (nothing written).
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], {{field.status}}, {{status.retrying}}, {{field.last_error}}, ARGV[4],
           {{field.next_attempt_at}}, ARGV[3], {{field.updated_at}}, ARGV[2])
listing('add', {{status.retrying}}, KEYS[1], ARGV[5], ARGV[2])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[5])
redis.call('ZADD', KEYS[3], ARGV[6], ARGV[5])
redis.call('DEL', KEYS[2])
return 1
