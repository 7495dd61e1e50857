-- prune: a dead-list entry leaves once its record has expired (checked only for entries old
-- enough).
-- KEYS: the dead list (zset).
-- ARGV: the score before which entries are looked at, the record key prefix, how many at most.
-- Returns how many entries left.
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
local gone = 0
for _, m in ipairs(old) do
  if redis.call('EXISTS', ARGV[2] .. m) == 0 then
    redis.call('ZREM', KEYS[1], m)
    gone = gone + 1
  end
end
return gone
