-- run_slot: take one of an integration's slots (its concurrency limit), or say where in line
-- the message waits.
-- KEYS: the running zset (token -> expiry), the waiting zset (member -> when it first asked).
-- ARGV: now, limit, the token, when the slot expires, the member.
-- Returns -1 when taken, else the message's place among those waiting (0: first).
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tostring(now - 600))
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], ARGV[4], ARGV[3])
  redis.call('EXPIRE', KEYS[1], 3600)
  redis.call('ZREM', KEYS[2], ARGV[5])
  return -1
end
redis.call('ZADD', KEYS[2], 'NX', ARGV[1], ARGV[5])
redis.call('EXPIRE', KEYS[2], 3600)
return redis.call('ZRANK', KEYS[2], ARGV[5])
