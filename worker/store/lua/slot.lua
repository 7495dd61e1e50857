-- slot: take one of a limited number of slots (calls in flight).
-- KEYS: the slots zset (member -> expiry).
-- ARGV: now, limit, the token, when the slot expires.
-- Returns 1 when taken, else 0.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[3])
redis.call('EXPIRE', KEYS[1], 3600)
return 1
