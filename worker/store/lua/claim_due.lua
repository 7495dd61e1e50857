-- claim_due: messages whose retry is due, taken off the due set and stamped for publishing in
-- one step (one that finished or expired meanwhile is only taken off).
-- KEYS: the due zset, the watch zset.
-- ARGV: now, how many at most, the watch deadline, the record key prefix.
-- Returns the members claimed.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local out = {}
for _, m in ipairs(due) do
  redis.call('ZREM', KEYS[1], m)
  local key = ARGV[4] .. m
  local st = redis.call('HGET', key, {{field.status}})
  if st and not {{FINISHED}}[st] then
    redis.call('HSET', key, {{field.queued_at}}, ARGV[1])
    redis.call('ZADD', KEYS[2], ARGV[3], m)
    out[#out + 1] = m
  end
end
return out
